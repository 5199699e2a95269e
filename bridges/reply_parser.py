"""Reading SMS and e-mail replies to an alarm: the reply code, an optional pledge, a remark.

People answer an alarm SMS from a phone at night and an alarm e-mail from whatever mail client
they have, so the parser is tolerant of *form* (case, spacing, diacritics, punctuation, the
keyword in any of the three languages or missing, the code inside a sentence) and strict about
*meaning* (the pledge, negations, two possible codes):

- ``KVITTERA 4821 5``, ``kvittera 4821``, ``Kvittera  4821   5 ambulanser``, ``ack 4821 3``,
  ``ok 4821``, ``KVITTER 4821``, ``!kvittera 4821 5`` all read as code 4821 (pledge, remark).
- ``4821 5``: **accepted**. The code is the capability (single-use, bound to the number it was
  sent to), so the keyword adds no safety, and a TiB who answers with just the code and a
  number clearly means it; refusing would cost a failed acknowledgement at 3 a.m. A code is
  4..8 digits and a pledge at most 3 (≤ 999), so ``4821 5`` cannot be misread. Without the
  keyword the code must however come *first*: ``Hej 4821`` is refused (``no_keyword``), so a
  number that happens to be in a chatty message never becomes an acknowledgement nor burns one
  of the sender's few allowed wrong guesses.
- E-mail: only what the person wrote above the quoted original is read
  (:func:`bridges.email.reply_text.strip_quoted`, the one rule for quotes), so a reply quoting
  the alarm does not acknowledge with the code printed in the quote. Then ``Vi kvitterar, kod
  4821, 5 transporter`` reads as code 4821 and pledge 5.
- What the rest *means* is the rule every channel shares, chat included
  (:mod:`bot.domain.answer`): the pledge is the token directly after the code, and ``-3``,
  ``2,5``, ``100000``, ``fem`` and ``0184`` (a leading zero: how codes are printed, never a
  count; so ``KVITTERA 4810 0184`` is asked about, not read as 184) are each a specific
  rejection with the chat command's own answer, never a remark nor an acknowledgement without
  the pledge meant. Fullwidth ``４８２１ ５`` reads as ``4821 5``; superscripts and other scripts'
  digits are no digits. A number directly *before* the code (``KVITTERA 5 4821``) is refused
  for the same reason.
- A negation before the code (``kvitterar inte 4821``, ``kan ikke 4821``), or a remark that
  opens with one (``4821 nej``, ``4821 5 kan inte``, ``4821 not yet``), is refused: a false
  acknowledgement is the worst outcome of this bot.
- The remark is what follows the code and pledge, cleaned and on one line, cut at
  :data:`bot.domain.answer.MAX_REMARK` characters with ``…`` (a long e-mail must not turn an
  acknowledgement into a rejection).
- A 4–8 digit token is a code candidate wherever it stands; two different ones without a
  keyword saying which is meant (``4821 5512``) are refused as ambiguous, and the sender asked.

:func:`parse_reply` never raises and refuses oversized input before looking at it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bot.domain.answer import (
    MAX_COUNT,
    MAX_REMARK,
    NEGATIONS,
    NotACount,
    claims_count,
    negates,
    numeral,
    read_count,
)
from bot.domain.answer import remark as clean_remark
from bot.domain.user_text import excerpt
from bot.domain.words import fold
from bridges.email.reply_text import strip_quoted

__all__ = ["ParseProblem", "ParsedReply", "parse_reply", "strip_quoted"]

# SMS: 10 concatenated parts of 153 characters is already more than any phone sends.
MAX_SMS_CHARS = 2_000
# E-mail: the text/plain part as handed over by the mail bridge, before quotes are dropped.
MAX_EMAIL_CHARS = 100_000
# What is left after quotes and signature: a reply, not a document.
MAX_REPLY_CHARS = 5_000
MAX_TOKENS = 400

_KEYWORDS = frozenset(
    fold(w)
    for w in (
        # sv
        "kvittera",
        "kvitterar",
        "kvitterat",
        "kvitterad",
        "kvitteras",
        "kvittens",
        "kvittering",
        "kvitera",
        "kviterar",
        "bekräfta",
        "bekräftar",
        "bekräftat",
        # nb
        "kvitter",
        "kvitterer",
        "kvittert",
        "kvittere",
        "bekreft",
        "bekrefte",
        "bekrefter",
        "bekreftet",
        # en
        "ack",
        "acked",
        "acknowledge",
        "acknowledged",
        "acknowledging",
        "confirm",
        "confirmed",
        "confirming",
        # everywhere
        "ok",
        "okay",
        "okej",
        "oki",
    )
)
# Words that announce the code itself ("kod 4821", "code: 4821").
_CUES = frozenset({"kod", "koden", "kode", "code", "svar", "svara", "svarer"})
_CODE = re.compile(r"^[0-9]{4,8}$")
_INCIDENT = re.compile(r"^#?h-?[0-9]+$")
_PLACEHOLDER = re.compile(r"^[<\[(].{1,30}[>\])]$")
_EDGE_PUNCTUATION = ".,;:!?¡¿()[]{}\"'«»„“”‘’*_#<>/\\|~`\ufffd"
_GLUED_CUE = re.compile(r"^([^\W\d_]{2,12})[:=#]([0-9]{4,8})$")
# Characters that carry no text: zero-width spaces, joiners, bidi marks, BOM, soft hyphen.
_INVISIBLE_CATEGORIES = frozenset({"Cf"})
#: How much of a value an SMS or e-mail answer quotes back (ASCII, so an SMS stays GSM-7).
ECHO_CHARS = 12


@dataclass(frozen=True)
class ParsedReply:
    """A reply that names a code. ``code`` is hidden from ``repr`` so that logging a parsed
    reply never logs a live code."""

    code: str = field(repr=False)
    pledge: int | None = None
    remark: str = ""
    remark_truncated: bool = False


@dataclass(frozen=True)
class ParseProblem:
    """Why a reply could not be read. ``kind`` is stable (tests, metrics, audit); ``key`` and
    ``params`` render the answer from the catalogue (the ``arg.count.*`` keys are the chat
    command's own). Carries no code."""

    kind: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)


def _echo(value: str, limit: int = ECHO_CHARS) -> str:
    """What the sender typed, as an answer may quote it: the shared excerpt, and ASCII (an SMS
    with one non-GSM character costs twice the segments)."""
    text = excerpt(value, limit).replace("\u2026", "...")
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in text)


def _problem(kind: str, **params: Any) -> ParseProblem:
    return ParseProblem(kind, f"reply.{kind}", params)


def _count_problem(problem: NotACount) -> ParseProblem:
    """The chat command's own answer (``arg.count.<kind>``), the value ASCII and short."""
    params: dict[str, Any] = {"value": _echo(problem.value)}
    if problem.kind == "too_large":
        params["max"] = MAX_COUNT
    return ParseProblem(f"count_{problem.kind}", f"arg.count.{problem.kind}", params)


@dataclass(frozen=True)
class _Token:
    text: str  # as typed
    core: str  # a numeral's digits (bot.domain.answer.numeral), invisibles and edges removed
    folded: str  # core, case- and diacritic-folded
    start: int
    end: int


def _clean(text: str) -> str:
    """Invisible characters out, other control characters to spaces, newlines kept."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in _INVISIBLE_CATEGORIES:
            continue
        if category == "Cc" and ch not in "\n\t":
            out.append(" ")
        elif category in ("Zl", "Zp"):
            out.append("\n")
        else:
            out.append(ch)
    return "".join(out)


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in re.finditer(r"\S+", text):
        raw = match.group()
        core = numeral(raw).strip(_EDGE_PUNCTUATION)
        glued = _GLUED_CUE.match(core)
        if glued and fold(glued.group(1)) in _CUES | _KEYWORDS:
            # "kod:4821" is two tokens; positions are approximate but only used for remarks.
            cue, code = glued.group(1), glued.group(2)
            tokens.append(_Token(cue, cue, fold(cue), match.start(), match.start()))
            tokens.append(_Token(code, code, code, match.start(), match.end()))
            continue
        tokens.append(_Token(raw, core, fold(core), match.start(), match.end()))
    return tokens


def _claims_count(token: _Token) -> bool:
    """The chat command's rule (:func:`bot.domain.answer.claims_count`)."""
    return bool(token.core) and claims_count(token.core)


def _is_placeholder(raw: str) -> bool:
    return bool(_PLACEHOLDER.match(raw)) and not any(c.isnumeric() for c in raw)


def _choose_code(tokens: list[_Token]) -> int | ParseProblem:
    candidates = [i for i, t in enumerate(tokens) if _CODE.match(t.core)]
    if not candidates:
        return _problem("no_code")
    if len(candidates) == 1:
        return candidates[0]
    announced = [
        i
        for i in candidates
        if i > 0 and (tokens[i - 1].folded in _KEYWORDS or tokens[i - 1].folded in _CUES)
    ]
    if len({tokens[i].core for i in announced}) == 1:
        return announced[0]
    if not announced and len({tokens[i].core for i in candidates}) == 1:
        return candidates[0]  # the same code twice ("4821 ... kod 4821")
    return _problem("ambiguous_code")


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _remark(text: str, tokens: list[_Token], first: int, channel: str) -> tuple[str, bool]:
    if first >= len(tokens):
        return "", False
    raw = text[tokens[first].start :]
    if channel == "email" and first > 0:
        # The remark is the rest of the code's paragraph, not the greeting under it.
        previous = tokens[first - 1]
        raw = _PARAGRAPH_BREAK.split(text[previous.start + len(previous.text) :], maxsplit=1)[0]
    return clean_remark(raw, MAX_REMARK)


def _parse(text: str, channel: str) -> ParsedReply | ParseProblem:
    if channel == "email":
        text = strip_quoted(text)
    text = _clean(text)
    if not text.strip():
        return _problem("empty")
    if len(text) > MAX_REPLY_CHARS:
        return _problem("too_long", max=MAX_REPLY_CHARS)
    tokens = _tokens(text)
    if len(tokens) > MAX_TOKENS:
        return _problem("too_long", max=MAX_REPLY_CHARS)
    chosen = _choose_code(tokens)
    if isinstance(chosen, ParseProblem):
        return chosen
    index = chosen
    before = tokens[:index]
    intent = any(t.folded in _KEYWORDS or t.folded in _CUES for t in before)
    if before and not intent and not all(_INCIDENT.match(t.folded) for t in before):
        return _problem("no_keyword")
    if any(t.folded in NEGATIONS or t.core in NEGATIONS for t in before):
        return _problem("negated")
    previous = before[-1] if before else None
    if (
        previous is not None
        and previous.folded not in _KEYWORDS
        and previous.folded not in _CUES
        and not _INCIDENT.match(previous.folded)
        and _claims_count(previous)
    ):
        return _problem("count_before_code")
    pledge: int | None = None
    after = index + 1
    if after < len(tokens) and _is_placeholder(tokens[after].text):
        after += 1  # "KVITTERA 4821 <antal>" copied from the alarm as it stands
    elif after < len(tokens) and _claims_count(tokens[after]):
        try:
            pledge = read_count(tokens[after].core or tokens[after].text)
        except NotACount as problem:
            return _count_problem(problem)
        after += 1
    remark, truncated = _remark(text, tokens, after, channel)
    if negates(remark):  # "KVITTERA 4821 nej", "4821 5 kan inte": the chat command's rule
        return _problem("negated")
    return ParsedReply(tokens[index].core, pledge, remark, truncated)


def parse_reply(text: object, *, channel: str = "sms") -> ParsedReply | ParseProblem:
    """Read one SMS (``channel="sms"``) or the text/plain body of one e-mail reply
    (``channel="email"``). Never raises: anything unreadable is a :class:`ParseProblem`."""
    try:
        if isinstance(text, bytes | bytearray):
            if len(text) > 4 * MAX_EMAIL_CHARS:
                return _problem("too_long", max=MAX_EMAIL_CHARS)
            text = bytes(text).decode("utf-8", errors="replace")
        if not isinstance(text, str):
            return _problem("not_text")
        limit = MAX_EMAIL_CHARS if channel == "email" else MAX_SMS_CHARS
        if len(text) > limit:
            return _problem("too_long", max=limit)
        return _parse(text, channel)
    except Exception:  # the contract is "never raises"; the fuzz test checks this never happens
        return _problem("unreadable")
