"""Plate formats chosen by where the plate was read to be from (pure).

The region model (``vision.region``) says which country a plate is from (``us-ca``, ``us``,
``br``, ``eu``). ``formats_for`` turns that and a camera's configured plate-format regions
(``plates.formats.REGIONS``) into the regions a read is ranked with:

* ``generic`` alone (nothing configured): a region read with at least ``REGION_MIN_SCORE``
  picks its country's formats (``COUNTRY_FORMATS``), so a camera with nothing configured reads
  a plate as one configured for its country would; a country without formats there, or a
  region read with less, keeps ``generic``.
* a configured list is kept, with the regions of the plate's country moved to the front (in
  their configured order): the list's own order decides between near-equal readings, so the
  plate's country decides between a camera's countries. A list without the plate's country is
  kept as it is: the configuration is the user's word.
* a US plate (``us_plate``) is ranked as with ``generic``, whatever US regions are
  configured: a US table fits nearly every serial-length text, so ranked with its swaps and
  its prior it forces readings a vanity plate never had (hidden US scenes read 0.541 with
  ``us`` against 0.703 with ``generic``); the state's serials decide how the read is written.

``us_plate`` says whether a plate is a US one: read as one, or read by a camera configured for
US plates only. ``us_serials`` says whether a read is written by the US convention
(``plates.us.write_us``), a US plate read more surely, and with which serials: its state's,
when the region names a state ``plates.us`` knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from edge_anpr.plates.us import STATE_SERIALS
from edge_anpr.values import PlateRegion

REGION_MIN_SCORE = 0.5
"""A read region picks formats for a ``generic`` camera only at this score or above (chosen on
the training split, docs/performance.md: 0.5, 0.7, 0.9, 0.95 and never read 1,720, 1,718,
1,717, 1,715 and 1,618 of 1,829 Brazilian crops exactly, US and European plates alike)."""

COUNTRY_FORMATS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "br": ("br", "mercosur"),
})
"""The formats a country read from the plate picks for a ``generic`` camera. Europe is not
here: the region model tells the continent, not the country, and the ``eu`` table (every
member state's patterns at once) fits nearly any text of 5-8 characters, so it swaps look-alikes
without knowing the country's rules (European crops of many countries read 0.872 / 0.702 one-
/ two-line with it against 0.894 / 0.809 without). The US is not here either: a US plate is
ranked as with ``generic`` on every camera (``us_plate``) and its state's serials decide how the
read is written (``us_serials``)."""

US_MIN_SCORE = 0.8
"""A plate is written as a US one (``us_serials``) on a camera not configured for US plates
only when its region is read as the US with at least this score (it is ranked as one from
``REGION_MIN_SCORE``) (chosen on the training split,
docs/performance.md "US plates": 0.5 wrote two Brazilian scene plates read as US at 0.54 and
0.65 with O as 0; 0.7, 0.8 and 0.9 read every training set alike; 0.8, the middle, kept)."""

FORMAT_COUNTRY: Mapping[str, str] = MappingProxyType({
    "br": "br", "mercosur": "br", "us": "us",
    **{name: "eu" for name in ("eu", "de", "nl", "fr", "be", "it", "es", "pl", "sk", "cz",
                               "uk", "gb", "at", "ch")},
})
"""The country (as the region model names it) of each plate-format region."""


def formats_for(configured: Sequence[str], region: PlateRegion) -> tuple[str, ...]:
    """The plate-format regions to read a plate with (see the module docstring)."""
    country = region.code.split("-", 1)[0]
    if us_plate(configured, region):
        return ("generic",)
    if not country:
        return tuple(configured)
    if all(name == "generic" for name in configured):
        if region.score >= REGION_MIN_SCORE and country in COUNTRY_FORMATS:
            return COUNTRY_FORMATS[country]
        return tuple(configured)
    own = [name for name in configured if FORMAT_COUNTRY.get(name) == country]
    if not own:
        return tuple(configured)
    return (*own, *(name for name in configured if name not in own))


def us_plate(
    configured: Sequence[str], region: PlateRegion, min_score: float = REGION_MIN_SCORE
) -> bool:
    """Whether a plate is read as a US one: its region is read as ``us`` (or a state) with at
    least ``min_score`` on a camera configured with ``generic`` or a US region, or, on a camera
    whose configured regions are all US ones, it is not read as another country with that
    score. A camera configured without US regions never reads a US plate: the configuration is
    the user's word. A US plate is ranked as with ``generic`` (``formats_for``)."""
    country = region.code.split("-", 1)[0]
    sure = region.score >= min_score
    kinds = {"generic" if name == "generic" else FORMAT_COUNTRY.get(name) for name in configured}
    if kinds == {"us"}:
        return not (country and country != "us" and sure)
    return country == "us" and sure and bool(kinds & {"generic", "us"})


def us_serials(configured: Sequence[str], region: PlateRegion) -> tuple[str, ...] | None:
    """The serials a read is written with by the US convention (``plates.us.write_us``), or
    None when it is not written so: a ``us_plate`` at ``US_MIN_SCORE``.

    The serials are its state's (``plates.us.STATE_SERIALS``) when the region names a state
    (the region model names one only when it is likelier than all the others together); with
    no state, or a state the table does not hold, there are none, so the read is written as a
    vanity plate (O as 0). Chosen on the training split (docs/performance.md, "US plates"):
    the union of every state's serials for a plate whose state is not known wrote the training
    scene plates' O in letter slots, which their labels write 0.
    """
    if not us_plate(configured, region, US_MIN_SCORE):
        return None
    state = region.code[3:] if region.code.startswith("us-") else ""
    entry = STATE_SERIALS.get(state)
    return entry[0] if entry is not None else ()
