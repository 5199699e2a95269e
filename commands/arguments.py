"""Typed command arguments: each type knows its name in usage, how to parse, and how to fail.

A parse failure is an :class:`ArgumentProblem` naming a catalogue key and its parameters, so
the answer is specific ("the number cannot be negative") and in the reply's language, and the
dispatcher adds the usage line generated from the declaration.

Optional arguments *claim* tokens: ``!avlarma H-7 Räddningstjänsten klar`` gives ``H-7`` to the
incident id, while ``!avlarma Räddningstjänsten klar`` leaves it out and gives everything to the
text. A claimed token that then fails to parse is an error, never silently reinterpreted: a
mistyped pledge such as ``fem`` or ``-3`` must not become a remark and an acknowledgement
without a pledge.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.domain import ReadinessLevel, parse_incident_number
from commands.text import fold

MAX_COUNT = 999
MAX_HEADLINE = 200
MAX_TEXT = 500
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
        raise ArgumentProblem("arg.level.invalid", value=token)
    return level


LEVEL = ArgumentType("arg.level", "arg.level.hint", parse_level)


# -- incident id -------------------------------------------------------------------------------

_PREFIXED_ID = re.compile(r"^#?h-?\S*$", re.IGNORECASE)
_NUMERIC_ID = re.compile(r"^#?[0-9]+$")


def parse_incident(token: str) -> int:
    number = parse_incident_number(token)
    if number is None or number < 1:
        raise ArgumentProblem("arg.incident.invalid", value=token)
    return number


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

# Number words people may type instead of digits. Words that also start ordinary remarks
# (sv "en", "ett", "ni", "ingen"; nb "to", "fire" in English rooms) are left out: a remark must
# stay a remark.
_NUMBER_WORDS = frozenset(
    fold(w)
    for w in (
        *("noll", "null", "zero", "två", "tre", "fyra", "fem", "sex", "seks", "sju", "syv"),
        *("åtta", "åtte", "nio", "tio", "ti", "elva", "elleve", "tolv"),
        *("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
        *("eleven", "twelve"),
    )
)
_WHOLE = re.compile(r"^\+?[0-9]+$")
_NEGATIVE = re.compile(r"^-[0-9]+([.,][0-9]+)?$")
_DECIMAL = re.compile(r"^\+?[0-9]+[.,][0-9]+$")


def _claims_count(token: str) -> bool:
    # Any numeral (also ½ or Arabic-Indic digits), a sign, or a number word is meant as a
    # count; a plain word is the start of a remark.
    return any(c.isnumeric() for c in token) or token[:1] in "+-" or fold(token) in _NUMBER_WORDS


def parse_count(token: str) -> int:
    if _WHOLE.match(token):
        digits = token.lstrip("+").lstrip("0")
        # Compare lengths first: int() of a 5000-digit string raises rather than parses.
        if len(digits) > len(str(MAX_COUNT)) or int(digits or "0") > MAX_COUNT:
            raise ArgumentProblem("arg.count.too_large", value=token, max=MAX_COUNT)
        return int(digits or "0")
    if _NEGATIVE.match(token):
        raise ArgumentProblem("arg.count.negative", value=token)
    if _DECIMAL.match(token):
        raise ArgumentProblem("arg.count.not_whole", value=token)
    if fold(token) in _NUMBER_WORDS:
        raise ArgumentProblem("arg.count.word", value=token)
    raise ArgumentProblem("arg.count.invalid", value=token)


COUNT = ArgumentType("arg.count", "arg.count.hint", parse_count, claims=_claims_count)


# -- free text ---------------------------------------------------------------------------------


def _text_parser(limit: int, too_long_key: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        text = text.strip()
        if len(text) > limit:
            raise ArgumentProblem(too_long_key, length=len(text), max=limit)
        return text

    return parse


HEADLINE = ArgumentType(
    "arg.headline",
    "arg.headline.hint",
    _text_parser(MAX_HEADLINE, "arg.headline.too_long"),
    greedy=True,
)
TEXT = ArgumentType(
    "arg.text", "arg.text.hint", _text_parser(MAX_TEXT, "arg.text.too_long"), greedy=True
)


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
        raise ArgumentProblem("usage.too_many", extra=" ".join(tokens[index:]))
    return values
