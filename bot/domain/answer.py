"""What an answer to an alarm means, the same on every channel.

A party answers an alarm with ``!kvittera 5 två från Mora`` in its room, with ``KVITTERA 4821
5`` by SMS, with an e-mail reply, or on the acknowledge-link page. Where the *code* sits is the
channel's business (:mod:`bridges.reply_parser`); what the rest means is decided here, once,
for all of them, because a rule that differs between channels is a channel that can be
fooled: ``!ack not yet`` once acknowledged in chat while the SMS parser refused it.

**Negation.** A false acknowledgement is the worst thing this bot can do, so an answer that
says no is refused, never recorded: ``nej``, ``no``, ``not yet``, ``inte än``, ``kan inte``,
``kan ikke``, ``❌``. The rule (:func:`negates`): a negation word among the first
:data:`NEGATION_WINDOW` words of the remark, before the first clause ends (``,`` ``;`` ``.``
…) and before a contrast word. So ``men inte förrän 04.30`` (a condition) and ``2 bilar, inte
fler`` (a limit) still acknowledge, and ``bilarna kommer inte förrän 05`` is asked again. A
refusal costs one more message; a false acknowledgement costs a missing ambulance.

**The count** (:func:`read_count`). A pledge is a whole number 0–:data:`MAX_COUNT` written in
digits: ``5``, ``+5``, ``0``. Refused, each with its own answer: negative (``-3``), not whole
(``2,5``), too large (``1000``, and so every 4–8 digit reply code), a number word (``fem``:
the count must not be guessed), anything else (``5st``), and **a leading zero** (``0184``,
``05``): codes are printed with leading zeros and a count never is, so ``KVITTERA 4810 0184``
is asked about instead of recorded as 184 transports.

**Digits.** Digits in any width are the same digits: a token of decimal digits (Unicode
category Nd) is read after NFKC, so fullwidth ``５`` from an Asian keyboard or a copy-paste and
mathematical ``𝟓`` are 5, in chat, SMS, e-mail and the link page alike; reply codes are read the
same way (:func:`numeral`). Other numerals are refused everywhere as "not a number":
superscripts (``5²`` must not become 52), circled or fraction forms (``⑤``, ``½``), and digits
of other scripts (``٣``), which NFKC leaves as they are.

**The remark** (:func:`remark`): what follows the count, cleaned (:func:`bot.domain.user_text.
clean`), on one line. Chat refuses a remark over :data:`MAX_REMARK` characters (the sender can
shorten it at once); SMS and e-mail cut it with ``…`` (a long mail must not turn an
acknowledgement into a rejection).
"""

from __future__ import annotations

import re
import unicodedata

from bot.domain.user_text import ELLIPSIS, clean
from bot.domain.words import fold

MAX_COUNT = 999
MAX_REMARK = 500
#: How many words of a remark are read for a negation.
NEGATION_WINDOW = 3

#: Number words people may type instead of digits (refused: the count must be written, not
#: guessed). Words that also start ordinary remarks (sv "en", "ett", "ni", "ingen"; nb "to",
#: "fire" in English rooms) are left out: a remark must stay a remark.
NUMBER_WORDS = frozenset(
    fold(w)
    for w in (
        *("noll", "null", "zero", "två", "tre", "fyra", "fem", "sex", "seks", "sju", "syv"),
        *("åtta", "åtte", "nio", "tio", "ti", "elva", "elleve", "tolv"),
        *("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
        *("eleven", "twelve"),
    )
)
NEGATIONS = frozenset(
    fold(w)
    for w in (
        *("inte", "ej", "icke", "nej", "aldrig", "nekar", "avböjer"),  # sv
        *("ikke", "ikkje", "itte", "nei", "aldri", "avslår"),  # nb
        *("not", "no", "nope", "never", "cannot", "can't", "cant", "don't", "dont"),  # en
        *("won't", "wont", "isn't", "decline", "declined"),
        *("❌", "✖", "✖️", "✗", "🚫", "👎", "⛔"),
    )
)
#: Words that open a condition or a limit, not a refusal: "men inte förrän 04.30".
CONTRASTS = frozenset(
    fold(w)
    for w in (
        *("men", "dock", "utom", "förutom", "såvida"),
        *("unntatt", "bortsett"),
        *("but", "however", "though", "except", "unless"),
    )
)
_CLAUSE_END = ",;.:!?)"
_EDGE = ".,;:!?¡¿()[]{}\"'«»„“”‘’*_#<>/\\|~`"

_WHOLE = re.compile(r"^\+?[0-9]+$")
_NEGATIVE = re.compile(r"^-[0-9]+([.,][0-9]+)?$")
_DECIMAL = re.compile(r"^\+?[0-9]+[.,][0-9]+$")


class NotACount(ValueError):  # noqa: N818 - a reading, not a failure of the program
    """Why a token meant as a count is not one. ``kind`` is stable (catalogue keys
    ``arg.count.<kind>``, audit, metrics); ``value`` is the token as typed."""

    KINDS = ("negative", "too_large", "not_whole", "word", "invalid", "leading_zero")

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.value = value


def numeral(token: str) -> str:
    """``"５"`` → ``"5"``, ``"−3"`` → ``"-3"``: a token as the number it spells, if it is one.

    NFKC is applied unless the token holds another kind of numeral (category No: ``²``, ``⑤``,
    ``½``), which is left as it is and so fails to read as a number; the typographic minus is a
    minus. Anything that is no number comes back NFKC-normalised, harmlessly.
    """
    if any(unicodedata.category(c) == "No" for c in token):
        return token
    return unicodedata.normalize("NFKC", token).replace("\u2212", "-")


def claims_count(token: str) -> bool:
    """Is ``token`` meant as a count? A numeral, a sign or a number word is; a word is the
    start of a remark (``!kvittera mottaget`` acknowledges with a remark)."""
    text = numeral(token.strip())
    return any(c.isnumeric() for c in text) or text[:1] in "+-" or fold(text) in NUMBER_WORDS


def read_count(token: str) -> int:
    """The count ``token`` spells, or :class:`NotACount` saying why it is none."""
    text = numeral(token.strip())
    if _WHOLE.match(text):
        digits = text.lstrip("+")
        if len(digits) > 1 and digits[0] == "0":
            raise NotACount("leading_zero", token)
        # Compare lengths first: int() of a 5000-digit string raises rather than parses.
        if len(digits) > len(str(MAX_COUNT)) or int(digits) > MAX_COUNT:
            raise NotACount("too_large", token)
        return int(digits)
    if _NEGATIVE.match(text):
        raise NotACount("negative", token)
    if _DECIMAL.match(text):
        raise NotACount("not_whole", token)
    if fold(text) in NUMBER_WORDS:
        raise NotACount("word", token)
    raise NotACount("invalid", token)


def word(token: str) -> str:
    """A token as a word to compare: NFKC, folded, edge punctuation off, ``’`` as ``'``."""
    text = unicodedata.normalize("NFKC", token).replace("’", "'").strip(_EDGE)
    return fold(text)


def is_negation(token: str) -> bool:
    return word(token) in NEGATIONS


def negates(text: str) -> bool:
    """Does this remark say no? See the module docstring for the rule."""
    for index, token in enumerate(text.split()):
        if index >= NEGATION_WINDOW:
            return False
        folded = word(token)
        if folded in CONTRASTS:
            return False
        if folded in NEGATIONS or token in NEGATIONS:
            return True
        if token[-1:] in _CLAUSE_END:
            return False
    return False


def remark(text: str, limit: int = MAX_REMARK) -> tuple[str, bool]:
    """The remark as stored and shown: cleaned, on one line, leading separators off, cut at
    ``limit`` characters with ``…``. Returns (remark, whether it was cut)."""
    one_line = " ".join(clean(text, newlines=False).split()).lstrip(" ,;:-–—").strip()
    if len(one_line) <= limit:
        return one_line, False
    return one_line[: limit - 1].rstrip() + ELLIPSIS, True
