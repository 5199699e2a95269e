"""Text people typed: how the bot compares their words, and how it may quote them back.

Why at the bottom of the house: chat commands (``commands/``), SMS and e-mail replies
(``bridges/``) and every renderer read or echo what people type, and each must do it the same
way, or one channel can be fooled where another cannot. Plain functions, no state.

- the forgiving comparison of *words* (command names, levels, keywords, negations) is
  :func:`bot.domain.words.fold`: ``Förstärkningsläge`` and ``forstarkningslage`` are one word.
  Never applied to free text, which is kept as typed.
- :func:`clean` is what every piece of typed text becomes before the bot stores or shows it:
  no control characters (NUL, escape sequences, C1 controls), no bidi embeddings, overrides or
  isolates (U+202A–U+202E, U+2066–U+2069, and the invisible direction marks), which would let
  ``U+202E`` turn a remark on the board or an answer around; no lone surrogates.
- :func:`excerpt` is what an answer may quote of it: cleaned, on one line, and short, with
  ``…`` where it was cut. A reply that quotes 30,000 typed characters back is a reply the
  homeserver refuses (and an SMS that costs 200 segments).
"""

from __future__ import annotations

#: Bidi embeddings, overrides and isolates, and the invisible direction marks.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
ELLIPSIS = "…"


def _table(newlines: bool) -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)):
        table[code] = None
    table[ord("\t")] = " "
    table[ord("\n")] = "\n" if newlines else " "
    table[ord("\r")] = None  # "\r\n" → "\n"; a lone "\r" is handled before translating
    for char in BIDI_CONTROLS:
        table[ord(char)] = None
    table[0xFEFF] = None  # a byte-order mark from a copy-paste
    table[0x2028] = table[0x2029] = "\n" if newlines else " "
    table[0x0085] = "\n" if newlines else " "
    for code in range(0xD800, 0xE000):  # lone surrogates (undecodable bytes) cannot be sent
        table[code] = "\ufffd"
    return table


_MULTILINE = _table(newlines=True)
_ONE_LINE = _table(newlines=False)


def clean(text: str, *, newlines: bool = True) -> str:
    """``text`` without control characters, bidi controls or lone surrogates.

    Tabs become spaces; line breaks (``\\r\\n``, ``\\r``, U+2028/2029, NEL) become ``\\n``,
    or spaces with ``newlines=False``. Everything else, emoji and combining marks included, is
    kept as typed.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_MULTILINE if newlines else _ONE_LINE)


def excerpt(text: object, limit: int) -> str:
    """What an answer may quote of ``text``: cleaned, whitespace collapsed to single spaces,
    at most ``limit`` characters, ending in ``…`` if it was cut. Never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    limit = max(1, limit)
    # Whitespace collapses, so only a bounded prefix can end up in the excerpt unless the text
    # is mostly whitespace; cleaning 100 kB for a 40-character excerpt is wasted work.
    head = text[: limit * 8 + 64]
    one_line = " ".join(clean(head, newlines=False).split())
    if len(head) < len(text) and len(one_line) <= limit:
        one_line = " ".join(clean(text, newlines=False).split())
    if len(one_line) <= limit:
        return one_line
    return one_line[: limit - 1].rstrip(" \u200d") + ELLIPSIS
