"""Plate Recognizer's region codes onto the reader's plate-format regions, and back (pure).

Plate Recognizer names a country by its ISO 3166 code in lower case (``br``, ``sk``, ``gb``)
and a US state or Canadian province as ``us-ca``, ``ca-on``. The reader has format tables for
fewer places (``plates.formats.REGIONS``): a code it has a table for is used, a US state uses
the ``us`` table, ``br`` means both Brazilian tables (grey plates and Mercosur), and a code
with no table is ignored (the request is read with the camera's regions, as with none), which
is also what Plate Recognizer does with a region that does not fit: it is a hint, not a filter.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_anpr.plates.formats import REGIONS
from edge_anpr.plates.origin import FORMAT_COUNTRY
from edge_anpr.values import PlateRead

MAX_REGION_CODES = 16
"""Codes looked at per request; more are ignored (clients send the top 3-4)."""

_ALIASES: dict[str, tuple[str, ...]] = {
    "br": ("br", "mercosur"),
}
_OUTPUT_CODES: dict[str, str] = {"uk": "gb", "mercosur": "br", "generic": ""}
"""The reader's region names that Plate Recognizer spells otherwise (``generic``: none)."""


def reader_regions(codes: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the reader's regions for ``codes``, in order and without repeats; the codes ignored).

    Case and surrounding blanks do not matter. An empty first part means: the camera's."""
    regions: list[str] = []
    ignored: list[str] = []
    for raw in codes[:MAX_REGION_CODES]:
        mapped = _map_code(raw.strip().lower())
        if not mapped:
            ignored.append(raw)
        for name in mapped:
            if name not in regions:
                regions.append(name)
    return tuple(regions), tuple(ignored)


def _map_code(code: str) -> tuple[str, ...]:
    if code in _ALIASES:
        return _ALIASES[code]
    if code.startswith("us-"):
        return ("us",)
    if code in REGIONS and code != "generic":
        return (code,)
    return ()


def plate_region(read: PlateRead, requested: Sequence[str] = ()) -> tuple[str, float]:
    """(Plate Recognizer's region code, its score 0-1) of where the plate ``read`` shows was
    read to be from (``PlateText.region``, the region model's answer); ``("", 0.0)`` when none
    was read. Every answer shape (``http.shapes``) takes the region from here and nowhere else.

    The region model tells Europe, not its countries: a European plate whose text fits a
    European format table is answered with that table's country (the requested code that maps
    to it, ``region_code``) and the region's score; one that fits none is ``eu``. A format table
    a text fits is never the region by itself (a German plate's text fits a Californian
    format)."""
    region, format_region = read.text.region, read.text.format_region
    if not region.code:
        return "", 0.0
    if region.code == "eu" and FORMAT_COUNTRY.get(format_region) == "eu":
        return region_code(format_region, requested), region.score
    return region.code, region.score


def region_code(region: str, requested: Sequence[str] = ()) -> str:
    """Plate Recognizer's code for a read whose text fits ``region`` (the reader's name):
    the first requested code that maps to it (so ``us-ca`` comes back as asked), else the
    country code; '' for ``generic`` (the text fits no configured pattern)."""
    if region == "generic":
        return ""
    for raw in requested[:MAX_REGION_CODES]:
        code = raw.strip().lower()
        if region in _map_code(code):
            return code
    return _OUTPUT_CODES.get(region, region)
