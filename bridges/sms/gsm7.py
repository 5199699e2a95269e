"""How much of an SMS a text costs: the GSM 03.38 (3GPP TS 23.038) alphabet and segment sizes.

Why this matters here: an alarm on SMS (or Rakel text) has a budget of segments, and one
character outside the GSM 7-bit default alphabet (a typographic dash, a curly quote, an emoji)
silently switches the whole message to UCS-2 and cuts a segment from 160 to 70 characters. The
alarm formatter therefore asks this module what a text costs before it sends, and Kannel is told
the coding explicitly (coding 0 for GSM-7, 2 for UCS-2) instead of guessing.

Swedish and Norwegian letters (å ä ö Å Ä Ö æ ø Æ Ø é ü …) are all in the *basic* table and
cost one septet each; the extension table (``€ [ ] { } \\ ^ ~ |`` and form feed) costs two,
because each is sent as ESC plus a character, and the pair is never split across parts.
"""

from __future__ import annotations

from enum import StrEnum

#: The 128 characters of the default alphabet, in code order 0x00-0x7F. 0x1B is the escape to
#: the extension table and is not a character of its own (written here as a placeholder).
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

#: Extension table: code after ESC (0x1B) for each character. Two septets each.
_EXTENSION_TABLE = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

BASIC_CHARACTERS: frozenset[str] = frozenset(_BASIC_TABLE) - {"\x1b"}
EXTENSION_CHARACTERS: frozenset[str] = frozenset(_EXTENSION_TABLE)

#: Septets in one SMS, and per part once a message is concatenated (the 6-octet concatenation
#: header takes 7 septets).
GSM7_SINGLE = 160
GSM7_PART = 153
#: UTF-16 code units (2 octets each) in one UCS-2 SMS, and per concatenated part.
UCS2_SINGLE = 70
UCS2_PART = 67

#: Typographic characters that word processors and phones put into text people type, mapped to
#: GSM-7 look-alikes, so that one pasted dash does not turn an alarm into UCS-2.
_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201a": "'",  # ‚
        "\u2032": "'",  # ′
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u00ab": '"',  # «
        "\u00bb": '"',  # »
        "\u2033": '"',  # ″
        "\u2010": "-",  # ‐
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # ‒
        "\u2013": "-",  # –
        "\u2014": "-",  # —
        "\u2212": "-",  # −
        "\u2026": "...",  # …
        "\u00a0": " ",  # no-break space
        "\u2009": " ",  # thin space
        "\u202f": " ",  # narrow no-break space
        "\u200b": "",  # zero-width space
        "\u00b4": "'",  # ´
        "\u0060": "'",  # ` is not in GSM-7 either
        "\u2022": "-",  # •
        "\u00b7": "-",  # ·
        "\t": " ",
    }
)


class Encoding(StrEnum):
    """How a text goes over the air; Kannel's ``coding`` is 0 for GSM7 and 2 for UCS2."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"


def is_gsm7(text: str) -> bool:
    """True if every character is in the default alphabet or its extension table."""
    return all(ch in BASIC_CHARACTERS or ch in EXTENSION_CHARACTERS for ch in text)


def encoding(text: str) -> Encoding:
    """GSM7 if the text can be sent in the 7-bit alphabet, else UCS2."""
    return Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2


def septets(text: str) -> int:
    """Septets the text takes in GSM-7: one per character, two per extension character.

    Raises ``ValueError`` for text outside GSM-7, whose length is not counted in septets.
    """
    count = 0
    for ch in text:
        if ch in BASIC_CHARACTERS:
            count += 1
        elif ch in EXTENSION_CHARACTERS:
            count += 2
        else:
            raise ValueError(f"{ch!r} (U+{ord(ch):04X}) is not in the GSM 7-bit alphabet")
    return count


def _ucs2_units(text: str) -> list[int]:
    """UTF-16 code units per character: 2 for characters outside the BMP (most emoji)."""
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _gsm7_units(text: str) -> list[int]:
    return [2 if ch in EXTENSION_CHARACTERS else 1 for ch in text]


def _parts(units: list[int], single: int, part: int) -> int:
    """Pack characters into parts, never splitting one character (ESC pair, surrogate pair).

    Kannel splits UCS-2 by octets and may cut a surrogate pair in two (seen with fakesmsc);
    counting whole characters can only give the same or one more part, which is the safe side
    for a budget.
    """
    if sum(units) <= single:
        return 1
    parts, room = 1, part
    for cost in units:
        if cost > room:
            parts, room = parts + 1, part
        room -= cost
    return parts


def segments(text: str) -> int:
    """SMS parts the text is sent as: 160/153 septets for GSM-7, 70/67 units for UCS-2.

    An empty text is one (empty) SMS.
    """
    if is_gsm7(text):
        return _parts(_gsm7_units(text), GSM7_SINGLE, GSM7_PART)
    return _parts(_ucs2_units(text), UCS2_SINGLE, UCS2_PART)


def normalize(text: str) -> str:
    """Replace typographic look-alikes (curly quotes, dashes, ellipsis, odd spaces) by GSM-7.

    Letters are left alone: a name with a character outside GSM-7 must stay right even if it
    costs UCS-2. Run this on alarm text before :func:`fit`.
    """
    return text.translate(_LOOKALIKES)


def fit(text: str, budget_segments: int, *, suffix: str = "", ellipsis: str = "...") -> str:
    """The text, shortened if needed so that ``text + suffix`` takes at most the budget.

    The suffix (e.g. the reply code ``Svara KVITTERA 4821 <antal>``) is always kept whole: it is
    what the recipient must act on. A shortened text ends with ``ellipsis``; it is cut at a
    word boundary when one is near, so no half word is left that could be misread. Raises
    ``ValueError`` if the budget is below one or even the suffix does not fit.
    """
    if budget_segments < 1:
        raise ValueError("the budget must be at least one segment")
    if segments(text + suffix) <= budget_segments:
        return text + suffix
    if segments(ellipsis + suffix) > budget_segments:
        raise ValueError(f"the suffix alone does not fit in {budget_segments} segment(s)")

    def fits(length: int) -> bool:
        return segments(text[:length].rstrip() + ellipsis + suffix) <= budget_segments

    # segments() never decreases as the prefix grows, so the longest prefix is found by
    # bisection.
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    cut = low
    # Prefer a word boundary within the last 15 characters of what fits.
    space = text.rfind(" ", max(0, cut - 15), cut + 1)
    if space > 0 and text[:space].strip():
        cut = space
    return text[:cut].rstrip() + ellipsis + suffix
