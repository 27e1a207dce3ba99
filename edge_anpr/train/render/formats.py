"""Registration text formats per country, as plate *faces* (pure: an rng in, a string out).

A face is the text as printed: characters plus layout marks the painter interprets and the
label leaves out:

* ``" "`` a gap, ``"-"`` a dash, ``"."`` a middle dot (all drawn as such, not labelled);
* ``"*"`` the German registration seals (round stickers stacked between district and letters);
* ``"^"`` a coat of arms between groups (AT, SK, SI, HR, RS);
* ``"~"`` a small square tax sticker between the groups (older Swedish plates);
* ``"/"`` the line break of a two-line (square, motorcycle or trailer) plate.

Pattern symbols expanded by ``face``: ``@`` a letter of the country's letter set, ``#`` a
digit, ``&`` a digit other than 0 (numbers that never start with 0), ``%`` a region code from
the country's list, ``$`` a digit or a letter.
Invariant: ``label(face(rng, c))`` always matches ``label_regex(c)`` (tests/test_render.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
MARKS = " -.*^~/"
NONZERO = "123456789"


@dataclass(frozen=True)
class CountryFormat:
    one_line: tuple[str, ...]
    two_line: tuple[str, ...]
    letters: str = LETTERS
    regions: tuple[str, ...] = ()
    max_chars: int = 10
    """Longest label (German plates hold at most 8 characters, for example)."""


def _split(*codes: str) -> tuple[str, ...]:
    return tuple(c for group in codes for c in group.split())


_NL_SIDECODES = (
    "@@-##-##", "##-##-@@", "##-@@-##", "@@-##-@@", "@@-@@-##", "##-@@-@@",
    "##-@@@-#", "#-@@@-##", "@@-###-@", "@-###-@@", "@@@-##-@", "@-##-@@@", "#-@@-###",
    "###-@@-#",
)

FORMATS: dict[str, CountryFormat] = {
    # district code, seals, 1-2 letters, 1-4 digits; at most 8 characters in all
    "de": CountryFormat(
        ("%* @@ &###", "%* @@ &##", "%* @ &###", "%* @@ &#", "%* @ &##", "%* @ &#",
         "%* @@ &", "%* @ &"),
        ("%*/@@ &##", "%*/@ &##", "%*/@@ &#", "%*/@ &#", "%*/@ &###", "%*/@@ &"),
        regions=_split(
            "B M HH K F S D DO E DU H HB N L KA MA WI MZ BN AC BI BO GE OB WL BOR COE HER KL WES",
            "WB DIN GAP HN LEV OF RV SAD GÖ EN ME RE GT PB MS OS OL KI HL SN MD LU WÜ",
        ),
        max_chars=8,
    ),
    # Austria: district, coat of arms, digits then letters (Vienna "W 12345 A")
    "at": CountryFormat(
        ("%^ & @@@", "%^ &# @@@", "%^ &## @@", "%^ &### @", "%^ &#### @", "%^ &# @@",
         "%^ &## @"),
        ("%^/& @@@", "%^/&# @@@", "%^/&## @@", "%^/&### @", "%^/&# @@"),
        regions=_split("W G L S I K B P KI LA SZ GF HA IL WB WL BN MD BL GM KS VB VI ZE"),
        max_chars=8,
    ),
    # Switzerland: canton code and up to six digits
    "ch": CountryFormat(
        ("% &#####", "% &####", "% &###", "% &##", "% &# ###", "% &## ###"),
        ("%/&#####", "%/&####", "%/&###", "%/&##"),
        regions=_split("ZH BE LU UR SZ OW NW GL ZG FR SO BS BL SH AR AI SG GR AG TG TI VD VS",
                       "NE GE JU"),
    ),
    # Netherlands: the sidecodes; no vowels (and no C, Q, M, W) on current series
    "nl": CountryFormat(
        _NL_SIDECODES,
        ("@@/##-##", "##/##-@@", "##/@@-##", "@@/##-@@", "@@/@@-##", "##/@@-@@",
         "##/@@@-#", "#-@/@@-##", "@@/###-@", "@-#/##-@@", "@@@/##-@"),
        letters="BDFGHJKLNPRSTVXZ",
    ),
    # France: SIV "AB-123-CD" (no I, O, U), older FNI "1234 AB 56"
    "fr": CountryFormat(
        ("@@-###-@@", "@@-###-@@", "@@-###-@@", "#### @@ ##", "### @@ ##", "## @@@ ##"),
        ("@@-/###-@@", "@@-/###-@@", "###/@@ ##", "####/@@ ##", "##/@@@ ##"),
        letters="ABCDEFGHJKLMNPQRSTVWXYZ",
    ),
    # Belgium: "1-ABC-123" (dark red characters); the older "ABC-123"
    "be": CountryFormat(
        ("%-@@@-###", "%-@@@-###", "@@@-###"),
        ("%-@@@/###", "@@@/###"),
        letters="ABCDEFGHJKLMNPQRSTUVWXYZ",
        regions=("1", "2"),  # the leading series digit
    ),
    # Italy: "AB 123 CD" (no I, O, Q, U); motorcycles "AB 12345"
    "it": CountryFormat(("@@ ###@@",), ("@@/### @@", "@@/#####"), letters="ABCDEFGHJKLMNPRSTVWXYZ"),
    # Spain: "1234 BCD", consonants only
    "es": CountryFormat(("#### @@@",), ("####/@@@",), letters="BCDFGHJKLMNPRSTVWXYZ"),
    # Poland: county code, then five (two-letter code) or four/five (three-letter) characters
    "pl": CountryFormat(
        ("% #####", "% ####@", "% ###@@", "% #@###", "% #@@##", "% @###", "% ##@@",
         "% #@##", "% ##@#"),
        ("%/#####", "%/####@", "%/###@@", "%/#@##", "%/@###", "%/##@@"),
        regions=_split("WA WB WD WE WI WN WW KR KK GD GA PO PZ DW LU EL SK BI ZS CB TK RZ OP",
                       "BIA CIN CRA GPU KNS KOS RJA SWD TKI WCI WYD"),
    ),
    # Slovakia: district, coat of arms, "123AB"
    "sk": CountryFormat(("%^###@@", "%-###@@"), ("%/###@@",),
                        regions=_split("BA BB BL BT KE KI NR PO PP PV TN TT ZA SC LM LV MI")),
    # Czechia: "1A2 3456": region letter second
    "cz": CountryFormat(
        ("#%$ ####",), ("#%$/####", "#%/####"),
        regions=tuple("ABCEHJKLMPSTUZ"),
    ),
    # United Kingdom: current "AB12 CDE" (no I or Q), older prefix, suffix and dateless
    "uk": CountryFormat(
        ("@@## @@@", "@@## @@@", "@@## @@@", "@### @@@", "@@@ ###@", "@@@ ###"),
        ("@@##/@@@", "@@##/@@@", "@@@/###", "@@@/##@", "@###/@@@", "@##/###"),
        letters="ABCDEFGHJKLMNOPRSTUVWXYZ",
    ),
    # Norway: two letters and four or five digits
    "no": CountryFormat(("@@ &####", "@@ &###"), ("@@/&###", "@@/&####"),
                        letters="ABCDEFGHJKLNPRSTUVXYZ"),
    # Denmark: "AB 12 345"
    "dk": CountryFormat(("@@ ## ###",), ("@@##/###", "@@ ##/###"),
                        letters="ABCDEFGHJKLMNPRSTUVXYZ"),
    # Sweden: "ABC 123" or "ABC 12A" (no I, Q, V); old plates had a tax sticker between
    "se": CountryFormat(("@@@ ###", "@@@ ##@", "@@@~###"), ("@@@/###", "@@@/##@"),
                        letters="ABCDEFGHJKLMNOPRSTUWXYZ"),
    "fi": CountryFormat(("@@@-###", "@@-###"), ("@@@-/###", "@@-/###")),
    # Portugal: the four orders of pairs
    "pt": CountryFormat(("@@-##-@@", "##-@@-##", "##-##-@@", "@@-##-##"),
                        ("@@-##/-@@", "##-@@/-##", "##-##/-@@")),
    # Ireland: year, county, sequence
    "ie": CountryFormat(
        ("##-%-####", "##-%-#####", "###-%-####", "###-%-###", "##-%-######", "##-%-##"),
        ("##-%/####", "###-%/####", "##-%/#####"),
        regions=_split("C CE CN CW D DL G KE KK KY L LD LH LK LM LS MH MN MO OY RN SO T W WH",
                       "WX WW"),
    ),
    # Romania: county, two digits, three letters (Bucharest "B 123 ABC")
    "ro": CountryFormat(
        ("% ## @@@", "B ### @@@"), ("%/## @@@", "% ##/@@@"),
        regions=_split("AB AG AR BC BH BN BR BT BV BZ CJ CL CS CT CV DB DJ GJ GL GR HD HR IF",
                       "IL IS MH MM MS NT OT PH SB SJ SM SV TL TM TR VL VN VS"),
    ),
    # Hungary: "ABC-123", newest "AA AA-123"
    "hu": CountryFormat(("@@@-###", "@@@-###", "@@ @@-###"), ("@@@/###", "@@@-/###")),
    "lt": CountryFormat(("@@@ ###",), ("@@@/###", "##/@@@")),
    "lv": CountryFormat(("@@-####", "@@-###"), ("@@-/####", "@/####")),
    # Slovenia: region, coat of arms, five characters with a dash
    "si": CountryFormat(("%^ @@-###", "%^ ##-@@@", "%^ @-####"), ("%^/@@-###", "%^/##-@@@"),
                        regions=_split("LJ CE KR KP MB MS NM GO KK PO SG")),
    # Croatia: city, coat of arms, digits, dash, letters
    "hr": CountryFormat(("%^ ###-@@", "%^ ####-@@", "%^ ###-@"), ("%^/###-@@", "%^/####-@"),
                        regions=_split("ZG ST RI OS ZD PU SB KA DU SK BJ VK")),
    # Greece: letters that exist in both alphabets only
    "gr": CountryFormat(("@@@-####",), ("@@@/###", "@@@/####"), letters="ABEHIKMNOPTXYZ"),
    # Bulgaria: region, four digits, two letters (Cyrillic-Latin look-alikes only)
    "bg": CountryFormat(("% #### @@",), ("% @@/####", "%/#### @@"), letters="ABEKMHOPCTYX",
                        regions=_split("A B BH BP C CA CB CH CM CO E EB EH H K KH M OB P PA PB",
                                       "PK PP T TX X Y")),
    # Serbia: city, coat of arms, "123-AB"
    "rs": CountryFormat(("%^ ###-@@", "%^ ####-@@"), ("%^/###-@@",),
                        regions=_split("BG NS NI KG SU KV SO ZR SA VA PA SM")),
    # no country: mixed letter/digit groups on a plain plate (layout "one_line")
    "generic": CountryFormat(("@@@ ###", "@@ ####", "###-@@@", "$$$$$$$", "@@@@ ##", "$$$$"),
                             ("@@@/###", "@@/####")),
    # Luxembourg: yellow, "AB 1234"
    "lu": CountryFormat(("@@ ####", "#####"), ("@@/####",)),
}

BR_FORMATS: dict[str, str] = {
    "old": "@@@-####",  # grey or red, LLL-NNNN
    "mercosur": "@@@#@##",  # LLLNLNN
    "old_moto": "@@@/####",
    "mercosur_moto": "@@@/#@##",
}


def expand(rng: np.random.Generator, pattern: str, letters: str = LETTERS,
           regions: tuple[str, ...] = ()) -> str:
    out = []
    for c in pattern:
        if c == "@":
            out.append(letters[int(rng.integers(len(letters)))])
        elif c == "#":
            out.append(DIGITS[int(rng.integers(10))])
        elif c == "&":
            out.append(NONZERO[int(rng.integers(9))])
        elif c == "$":
            out.append((DIGITS + letters)[int(rng.integers(10 + len(letters)))])
        elif c == "%":
            out.append(regions[int(rng.integers(len(regions)))])
        else:
            out.append(c)
    return "".join(out)


def label(face: str) -> str:
    """The characters a reader must return: the face without layout marks."""
    return "".join(c for c in face if c not in MARKS)


def face(rng: np.random.Generator, country: str, two_line: bool = False) -> str:
    """A plausible registration of ``country`` laid out for a one- or two-line plate."""
    fmt = FORMATS[country]
    patterns = fmt.two_line if two_line else fmt.one_line
    for _ in range(20):
        pattern = patterns[int(rng.integers(len(patterns)))]
        out = expand(rng, pattern, fmt.letters, fmt.regions)
        if len(label(out)) <= fmt.max_chars:
            return _ascii(out)
    return _ascii(out)


def _ascii(face: str) -> str:
    """Umlauts in region codes (GÖ, WÜ) are read as their base letter by the classifier."""
    return face.replace("Ö", "O").replace("Ü", "U").replace("Ä", "A")


def label_regex(country: str) -> re.Pattern[str]:
    """Every label ``face`` can produce for ``country`` (one or two lines)."""
    fmt = FORMATS[country]
    regions = "|".join(sorted({_ascii(r) for r in fmt.regions}, key=len, reverse=True))
    alts = []
    for pattern in fmt.one_line + fmt.two_line:
        parts = []
        for c in label(pattern):
            parts.append(
                f"[{fmt.letters}]" if c == "@" else "[0-9]" if c == "#" else "[1-9]" if c == "&"
                else f"[0-9{fmt.letters}]" if c == "$" else f"(?:{regions})" if c == "%"
                else re.escape(c)
            )
        alts.append("".join(parts))
    return re.compile("^(?:" + "|".join(alts) + ")$")
