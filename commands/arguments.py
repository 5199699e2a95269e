"""Typed command arguments: each type knows its name in usage, how to parse, and how to fail.

A parse failure is an :class:`ArgumentProblem` naming a catalogue key and its parameters, so
the answer is specific ("the number cannot be negative") and in the reply's language, and the
dispatcher adds the usage line generated from the declaration.

Optional arguments *claim* tokens: ``!avlarma H-7 Räddningstjänsten klar`` gives ``H-7`` to the
incident id, while ``!avlarma Räddningstjänsten klar`` leaves it out and gives everything to the
text. A claimed token that then fails to parse is an error, never silently reinterpreted: a
mistyped pledge such as ``fem`` or ``-3`` must not become a remark and an acknowledgement
without a pledge.

What a count is, and which remark says no (``!kvittera inte än``), is not decided here but by
the rule every channel shares (:mod:`bot.domain.answer`), so ``!kvittera 0184`` and ``KVITTERA
4821 0184`` by SMS get the same answer. Free text is stored without control characters or bidi
overrides, and a problem quotes at most a short excerpt of what was typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.domain import ReadinessLevel, parse_incident_id
from bot.domain.answer import MAX_COUNT, MAX_REMARK, NotACount, claims_count, negates, read_count
from bot.domain.user_text import clean
from commands.text import ECHO, excerpt, fold

MAX_HEADLINE = 200
MAX_TEXT = MAX_REMARK
MAX_FIELDS = 10_000  # the whole of "!lägesbild fält=text …"; the template's limits are tighter


class ArgumentProblem(Exception):
    """Why a token is not a valid value; rendered from the catalogue by the dispatcher."""

    def __init__(
        self, key: str, *, localized: dict[str, str] | None = None, **params: Any
    ) -> None:
        super().__init__(key)
        self.key = key
        self.params = params
        # Parameters that are themselves catalogue keys, rendered in the reply's language.
        self.localized = localized or {}


@dataclass(frozen=True)
class ArgumentType:
    name_key: str  # its name in usage lines: <nivå>
    hint_key: str  # one line for the detailed help
    parse: Callable[[str], Any]  # raises ArgumentProblem
    claims: Callable[[str], bool] = lambda _token: True
    greedy: bool = False  # takes all remaining text


@dataclass(frozen=True)
class Argument:
    name: str  # the key the executor reads
    type: ArgumentType
    optional: bool = False


# -- readiness level ---------------------------------------------------------------------------

# Every spelling in every language is accepted in every room (input vocabulary, not output).
_LEVELS: dict[str, ReadinessLevel] = {
    "stabslage": ReadinessLevel.STAFF,
    "stabs": ReadinessLevel.STAFF,
    "stab": ReadinessLevel.STAFF,
    "staff": ReadinessLevel.STAFF,
    "forstarkningslage": ReadinessLevel.REINFORCEMENT,
    "forstarkning": ReadinessLevel.REINFORCEMENT,
    "forsterkning": ReadinessLevel.REINFORCEMENT,
    "forsterkningsniva": ReadinessLevel.REINFORCEMENT,
    "reinforcement": ReadinessLevel.REINFORCEMENT,
    "katastroflage": ReadinessLevel.DISASTER,
    "katastrof": ReadinessLevel.DISASTER,
    "katastrofe": ReadinessLevel.DISASTER,
    "disaster": ReadinessLevel.DISASTER,
}


def parse_level(token: str) -> ReadinessLevel:
    level = _LEVELS.get(fold(token))
    if level is None:
        raise ArgumentProblem("arg.level.invalid", value=excerpt(token, ECHO["value"]))
    return level


LEVEL = ArgumentType("arg.level", "arg.level.hint", parse_level)


# -- incident id -------------------------------------------------------------------------------

# H-7 (live), Ö-3/Ø-3/O-3 (exercise), T-2 (test alarm): each series names only its own.
_PREFIXED_ID = re.compile(r"^#?[höøot]-?\S*$", re.IGNORECASE)
_NUMERIC_ID = re.compile(r"^#?[0-9]+$")


def parse_incident(token: str) -> str:
    """The canonical id typed: ``7``/``h7``/``H-7`` → ``H-7``, ``ö3``/``Ø-3`` → ``Ö-3``,
    ``T-2`` → ``T-2``. A bare number is always live."""
    incident_id = parse_incident_id(token)
    if incident_id is None or incident_id.endswith("-0"):
        raise ArgumentProblem("arg.incident.invalid", value=excerpt(token, ECHO["value"]))
    return incident_id


def _looks_like_id(token: str) -> bool:
    return bool(_PREFIXED_ID.match(token) and any(c.isdigit() for c in token))


# Where an id is the only optional argument, any token is meant as an id.
INCIDENT = ArgumentType("arg.incident", "arg.incident.hint", parse_incident)
# Before free text: ``H-7`` or ``7`` is an id, a word starts the text.
INCIDENT_BEFORE_TEXT = ArgumentType(
    "arg.incident",
    "arg.incident.hint",
    parse_incident,
    claims=lambda t: _looks_like_id(t) or bool(_NUMERIC_ID.match(t)),
)
# Before a count: only the prefixed form, since a bare number is the count.
INCIDENT_BEFORE_COUNT = ArgumentType(
    "arg.incident", "arg.incident.hint", parse_incident, claims=_looks_like_id
)


# -- count of secondary transports -------------------------------------------------------------

# What a count is, and why a token is not one, is the rule every channel shares
# (:mod:`bot.domain.answer`): here it only becomes the chat command's argument problems.


_COUNT_KEYS = {
    "negative": "arg.count.negative",
    "too_large": "arg.count.too_large",
    "not_whole": "arg.count.not_whole",
    "word": "arg.count.word",
    "invalid": "arg.count.invalid",
    "leading_zero": "arg.count.leading_zero",
}


def _claims_count(token: str) -> bool:
    return claims_count(token)


def parse_count(token: str) -> int:
    try:
        return read_count(token)
    except NotACount as problem:
        params: dict[str, Any] = {"value": excerpt(token, ECHO["value"])}
        if problem.kind == "too_large":
            params["max"] = MAX_COUNT
        raise ArgumentProblem(_COUNT_KEYS[problem.kind], **params) from None


COUNT = ArgumentType("arg.count", "arg.count.hint", parse_count, claims=_claims_count)


# -- free text ---------------------------------------------------------------------------------


def _text_parser(limit: int, too_long_key: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        # Stored as typed, less what must never be shown: controls and bidi overrides.
        text = clean(text, newlines=False).strip()
        if len(text) > limit:
            raise ArgumentProblem(too_long_key, length=len(text), max=limit)
        return text

    return parse


def parse_ack_remark(text: str) -> str:
    """The remark of ``!kvittera``: free text, unless it says no (``!kvittera inte än``,
    ``!ack not yet``), which is refused by the same rule as an SMS or e-mail reply."""
    remark = _text_parser(MAX_TEXT, "arg.text.too_long")(text)
    if negates(remark):
        raise ArgumentProblem("arg.ack.negated", value=excerpt(remark, ECHO["value"]))
    return remark


HEADLINE = ArgumentType(
    "arg.headline",
    "arg.headline.hint",
    _text_parser(MAX_HEADLINE, "arg.headline.too_long"),
    greedy=True,
)
TEXT = ArgumentType(
    "arg.text", "arg.text.hint", _text_parser(MAX_TEXT, "arg.text.too_long"), greedy=True
)
#: What follows !övning / !larmprov: a sub-command and its words, read by the executor.
EXERCISE_WORDS = ArgumentType(
    "arg.exercise", "arg.exercise.hint", _text_parser(MAX_TEXT, "arg.text.too_long"), greedy=True
)
#: The remark of an acknowledgement: :data:`TEXT` that may not say no.
ACK_REMARK = ArgumentType("arg.text", "arg.text.hint", parse_ack_remark, greedy=True)


# The fields of a situation report, ``plats=E4 Knivsta antal=40``: read against the config's
# template by the executor (the template is not known here), so this only bounds the input.
FIELDS = ArgumentType(
    "arg.fields",
    "arg.fields.hint",
    _text_parser(MAX_FIELDS, "arg.fields.too_long"),
    greedy=True,
)
# Before the fields: only the prefixed form ``H-7`` is an id; anything else starts the fields,
# so "!lägesbild 40 skadade" is answered as stray text, not as "there is no incident H-40".
INCIDENT_PREFIXED = ArgumentType(
    "arg.incident", "arg.incident.hint", parse_incident, claims=_looks_like_id
)


# -- command name (for help) -------------------------------------------------------------------


def parse_command_name(token: str) -> str:
    return token.removeprefix("!")


COMMAND_NAME = ArgumentType("arg.command", "arg.command.hint", parse_command_name)


def parse_arguments(arguments: tuple[Argument, ...], tokens: list[str]) -> dict[str, Any]:
    """Match ``tokens`` to ``arguments`` in order; raise :class:`ArgumentProblem` on the first
    thing wrong. Missing optional arguments are None."""
    values: dict[str, Any] = {}
    index = 0
    for argument in arguments:
        kind = argument.type
        if kind.greedy:
            rest = " ".join(tokens[index:])
            index = len(tokens)
            if not rest:
                if not argument.optional:
                    raise ArgumentProblem("usage.missing", localized={"argument": kind.name_key})
                values[argument.name] = None
                continue
            values[argument.name] = kind.parse(rest)
            continue
        if index >= len(tokens):
            if not argument.optional:
                raise ArgumentProblem("usage.missing", localized={"argument": kind.name_key})
            values[argument.name] = None
            continue
        token = tokens[index]
        if argument.optional and not kind.claims(token):
            values[argument.name] = None
            continue
        values[argument.name] = kind.parse(token)
        index += 1
    if index < len(tokens):
        extra = excerpt(" ".join(tokens[index:]), ECHO["extra"])
        raise ArgumentProblem("usage.too_many", extra=extra)
    return values
