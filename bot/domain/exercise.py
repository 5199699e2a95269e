"""Exercises (övning) and test alarms (larmprov): what is planned, when it runs, how it ended.

An exercise is an :class:`bot.domain.Incident` of its own kind (``Ö-3``; a test alarm ``T-2``)
that runs the real chain; this module holds what only exercises have:

- :class:`ExerciseRecord`, frozen into the exercise's incident: the scenario, who started it,
  the schedule it came from, which parties take part, its deadline and how it ended;
- :class:`PlannedExercise`, one planned run (``S-4``): when, what, who takes part, announced or
  not, and its reminders to the coordinators;
- :class:`Recurrence`, a recurring schedule of the config, as an RFC 5545 rule read by
  python-dateutil (``FREQ=MONTHLY;BYDAY=1TU`` at 09:00: the first Tuesday of every month),
  evaluated in local wall-clock time so that 09:00 stays 09:00 across daylight-saving changes;
- :func:`read_when`, the time a coordinator types (``2027-01-12 09:00``, ``12 januari 09:00``,
  ``imorgon 09:00``), strictly: an impossible date (``31 februari``) or a time in the past is
  a problem with a reason, never a guess.

Plain Python: the clock is passed in as ``now``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

SCHEDULE_PREFIX = "S"

#: Due-time kinds of exercises: a plan's start and its reminders to the coordinators (rows of
#: the plan, no incident yet), and a running exercise's deadline (a row of its incident).
START = "exercise_start"
REMIND = "exercise_remind"
END = "exercise_end"
REPORT = "exercise_report"  # the report of an exercise that ended, in its own transaction
DUE_KINDS = (START, REMIND, END, REPORT)


def exercise_due_key(incident_id: str, kind: str) -> str:
    """The key of an exercise's own due row (its deadline, its report): ``Ö-3:exercise.end``."""
    return f"{incident_id}:{kind}"


_SCHEDULE_ID = re.compile(r"^#?s-?([0-9]{1,9})$", re.IGNORECASE)

#: How far ahead a schedule may be set, and how far a recurrence is searched: a rule that has
#: no occurrence within this horizon "never fires".
HORIZON = timedelta(days=5 * 366)
#: Frequencies a recurring schedule may have: finer ones are no exercise plan (and would make
#: the search for the next occurrence slow).
FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY")


class EndReason(StrEnum):
    """Why an exercise or test alarm ended (the report says it)."""

    COMPLETED = "completed"  # every party acknowledged (and pledged what was asked)
    DEADLINE = "deadline"  # its time ran out
    STOOD_DOWN = "stood_down"  # !avlarma by the initiating region's duty officer
    ENDED = "ended"  # !övning avsluta by a coordinator
    LIVE_INCIDENT = "live_incident"  # a live incident was confirmed or alarmed: live wins


@dataclass(frozen=True)
class ExerciseRecord:
    """What an exercise's incident carries besides the chain."""

    started_by: str
    scenario: str = ""
    schedule_id: str | None = None  # "S-4" when it came from a schedule
    announced: bool = False
    parties: tuple[str, ...] = ()  # the parties taking part; empty: the whole chain
    deadline_at: datetime | None = None
    ended_reason: EndReason | None = None
    ended_by: str | None = None  # who, or the live incident's id that ended it

    def ended(self, reason: EndReason, by: str | None) -> ExerciseRecord:
        return replace(self, ended_reason=reason, ended_by=by)

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_by": self.started_by,
            "scenario": self.scenario,
            "schedule_id": self.schedule_id,
            "announced": self.announced,
            "parties": list(self.parties),
            "deadline_at": None if self.deadline_at is None else self.deadline_at.isoformat(),
            "ended_reason": None if self.ended_reason is None else self.ended_reason.value,
            "ended_by": self.ended_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExerciseRecord:
        deadline = data.get("deadline_at")
        reason = data.get("ended_reason")
        return cls(
            started_by=data["started_by"],
            scenario=data.get("scenario", ""),
            schedule_id=data.get("schedule_id"),
            announced=bool(data.get("announced", False)),
            parties=tuple(data.get("parties", ())),
            deadline_at=None if deadline is None else datetime.fromisoformat(deadline),
            ended_reason=None if reason is None else EndReason(reason),
            ended_by=data.get("ended_by"),
        )


# -- planned exercises ---------------------------------------------------------------------


class PlanStatus(StrEnum):
    PLANNED = "planned"
    STARTED = "started"
    CANCELLED = "cancelled"
    MISSED = "missed"  # its time passed while the bot was down: not started late
    SKIPPED = "skipped"  # a live incident was open at its time: live wins


def format_schedule_id(number: int) -> str:
    return f"{SCHEDULE_PREFIX}-{number}"


def parse_schedule_id(text: str) -> int | None:
    """``S-4``, ``s4``, ``#S-4`` mean planned exercise 4."""
    match = _SCHEDULE_ID.match(text.strip())
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class PlannedExercise:
    """One planned run of an exercise or test alarm.

    ``kind`` is ``exercise`` or ``test`` (:class:`bot.domain.IncidentKind` values).
    ``reminders`` are how long before ``at`` the coordinators are reminded; ``source`` is
    ``command`` or the id of the config's recurring schedule it is an occurrence of.
    """

    number: int
    kind: str
    at: datetime
    region_id: str
    created_by: str
    scenario: str = ""
    parties: tuple[str, ...] = ()
    announced: bool = False
    reminders: tuple[timedelta, ...] = ()
    source: str = "command"
    status: PlanStatus = PlanStatus.PLANNED
    incident_id: str | None = None

    @property
    def id(self) -> str:
        return format_schedule_id(self.number)

    def reminder_times(self) -> list[tuple[timedelta, datetime]]:
        """(how long before, when) of each reminder, soonest first."""
        return sorted(((b, self.at - b) for b in set(self.reminders)), key=lambda r: r[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scenario": self.scenario,
            "parties": list(self.parties),
            "announced": self.announced,
            "reminders_s": [r.total_seconds() for r in self.reminders],
        }


# -- recurring schedules -------------------------------------------------------------------


class RecurrenceError(ValueError):
    """A recurring schedule that cannot be used, with the reason for the config's answer."""


@dataclass(frozen=True)
class Recurrence:
    """An RFC 5545 recurrence rule at a local time of day in a time zone.

    The rule runs on naive local wall-clock times (dateutil's way for a floating DTSTART), then
    each occurrence is placed in ``zone``: 09:00 is 09:00 in winter and in summer. A local time
    that does not exist (02:30 on the night clocks go forward) moves forward by the gap; one
    that exists twice (02:30 when they go back) is the first.
    """

    rule: str
    at: time
    zone: str = "Europe/Stockholm"
    starting: date = date(2026, 1, 1)  # DTSTART's date: the phase of INTERVAL rules
    _parsed: rrule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.rule.strip()
        if not text or "\n" in text or text.upper().startswith(("DTSTART", "RRULE:")):
            raise RecurrenceError("give the rule's parts only, e.g. FREQ=MONTHLY;BYDAY=1TU")
        try:
            ZoneInfo(self.zone)
        except Exception:
            raise RecurrenceError(f"unknown time zone {self.zone!r}") from None
        freq = re.search(r"(?:^|;)FREQ=([A-Z]+)", text.upper())
        if freq is None or freq.group(1) not in FREQUENCIES:
            raise RecurrenceError("FREQ must be YEARLY, MONTHLY, WEEKLY or DAILY")
        if re.search(r"(?:^|;)BY(?:HOUR|MINUTE|SECOND)=", text.upper()):
            raise RecurrenceError("give the time of day as 'time', not BYHOUR/BYMINUTE")
        start = datetime.combine(self.starting, self.at.replace(second=0, microsecond=0))
        try:
            parsed = rrulestr(text, dtstart=start)
        except (ValueError, TypeError) as problem:
            raise RecurrenceError(f"not an RFC 5545 rule: {problem}") from None
        if not isinstance(parsed, rrule):
            raise RecurrenceError("one rule only")
        object.__setattr__(self, "_parsed", parsed)

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after ``after`` (aware), in UTC; None if there is
        none within :data:`HORIZON`."""
        zone = ZoneInfo(self.zone)
        local_after = after.astimezone(zone).replace(tzinfo=None)
        limit = local_after + HORIZON
        found = self._parsed.after(local_after - timedelta(hours=3), inc=False)
        # Local wall-clock times, so an occurrence just before ``after`` in UTC can still be
        # after it locally around a clock change: walk on until it is after in real time.
        while found is not None and found <= limit:
            when = _place(found, zone)
            if when > after:
                return when
            found = self._parsed.after(found, inc=False)
        return None

    def fires_within_horizon(self, after: datetime) -> bool:
        return self.next_after(after) is not None


def _place(local: datetime, zone: ZoneInfo) -> datetime:
    """A naive local time in ``zone`` as an aware UTC time. zoneinfo reads a time in a
    spring-forward gap with the offset before the change (fold 0), so 02:30 becomes 03:30:
    it moves forward by the gap; a time that exists twice is the first."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


# -- reading a time a coordinator typed --------------------------------------------------


class WhenProblem(StrEnum):
    """Why a typed time is no time to schedule at (each a catalogue text)."""

    UNREADABLE = "unreadable"
    NO_TIME = "no_time"
    NO_SUCH_DATE = "no_such_date"
    NO_SUCH_TIME = "no_such_time"
    PAST = "past"
    TOO_FAR = "too_far"


@dataclass(frozen=True)
class When:
    """A time read from what was typed, and how many of the words it took."""

    at: datetime
    words: int


@dataclass(frozen=True)
class WhenRejected:
    problem: WhenProblem
    words: int = 0
    detail: str = ""


# Month names in the three languages (and their usual abbreviations), folded.
_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("januari", "january", "jan"),
        ("februari", "februar", "february", "feb"),
        ("mars", "march", "mar"),
        ("april", "apr"),
        ("maj", "mai", "may"),
        ("juni", "june", "jun"),
        ("juli", "july", "jul"),
        ("augusti", "august", "aug"),
        ("september", "sep", "sept"),
        ("oktober", "october", "okt", "oct"),
        ("november", "nov"),
        ("december", "desember", "dec", "des"),
    ),
    start=1,
):
    for _name in _names:
        _MONTHS[_name] = _number

# Relative days, folded: each language's today, tomorrow and yesterday (one or two words).
_RELATIVE: dict[tuple[str, ...], int] = {
    ("idag",): 0,
    ("i", "dag"): 0,
    ("today",): 0,
    ("imorgon",): 1,
    ("i", "morgon"): 1,
    ("imorgen",): 1,
    ("i", "morgen"): 1,
    ("tomorrow",): 1,
    ("igar",): -1,
    ("i", "gar"): -1,
    ("yesterday",): -1,
}
_ISO_DATE = re.compile(
    r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[tT]([0-9]{1,2})[:.]([0-9]{2}))?$"
)
_TIME = re.compile(r"^([0-9]{1,2})[:.]([0-9]{2})$")
_DAY = re.compile(r"^([0-9]{1,2})\.?$")
_YEAR = re.compile(r"^[0-9]{4}$")
_AT_WORDS = frozenset({"kl", "kl.", "klokka", "klokken", "at"})


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ø", "o")


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def read_when(
    words: Iterable[str], *, now: datetime, zone: str = "Europe/Stockholm"
) -> When | WhenRejected:
    """The time at the start of ``words``: ``2027-01-12 09:00``, ``2027-01-12T09:00``,
    ``12 januari 2027 09:00``, ``12 jan 09:00`` (the next 12 January), ``imorgon 09:00``,
    ``idag kl 14.30``; always a date and a time of day, local to ``zone``.

    Anything else is a :class:`WhenRejected` with its reason: an impossible date
    (``31 februari``), a time in the past (``igår 09:00``), no time of day, or more than
    :data:`HORIZON` ahead.
    """
    tokens = list(words)
    folded = [_fold(t) for t in tokens]
    local_zone = ZoneInfo(zone)
    today = now.astimezone(local_zone).date()
    index = 0
    day: date | None = None
    clock: tuple[int, int] | None = None
    if not tokens:
        return WhenRejected(WhenProblem.UNREADABLE)
    iso = _ISO_DATE.match(tokens[0])
    if iso:
        year, month, mday = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
        day = _date(year, month, mday)
        if day is None:
            return WhenRejected(WhenProblem.NO_SUCH_DATE, 1, tokens[0])
        index = 1
        if iso.group(4):
            clock = (int(iso.group(4)), int(iso.group(5)))
    else:
        for phrase, offset in sorted(_RELATIVE.items(), key=lambda r: -len(r[0])):
            if tuple(folded[: len(phrase)]) == phrase:
                day = today + timedelta(days=offset)
                index = len(phrase)
                break
        else:
            match = _DAY.match(tokens[0])
            month = _MONTHS.get(folded[1].rstrip(".")) if len(tokens) > 1 else None
            if match is None or month is None:
                return WhenRejected(WhenProblem.UNREADABLE)
            mday = int(match.group(1))
            index = 2
            year: int | None = None
            if index < len(tokens) and _YEAR.match(tokens[index]):
                year = int(tokens[index])
                index += 1
            if year is None:
                year = today.year
                # 31 februari is no date in any year; 29 februari is, in a leap year.
                if not any(_date(year + k, month, mday) for k in range(5)):
                    return WhenRejected(WhenProblem.NO_SUCH_DATE, index, " ".join(tokens[:2]))
                candidate = _date(year, month, mday)
                while candidate is None or candidate < today:
                    year += 1
                    candidate = _date(year, month, mday)
                day = candidate
            else:
                day = _date(year, month, mday)
                if day is None:
                    return WhenRejected(WhenProblem.NO_SUCH_DATE, index, " ".join(tokens[:index]))
    if clock is None:
        if index < len(tokens) and folded[index] in _AT_WORDS:
            index += 1
        match = _TIME.match(tokens[index]) if index < len(tokens) else None
        if match is None:
            return WhenRejected(WhenProblem.NO_TIME, index)
        clock = (int(match.group(1)), int(match.group(2)))
        index += 1
    hour, minute = clock
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return WhenRejected(WhenProblem.NO_SUCH_TIME, index, str(tokens[index - 1]))
    assert day is not None
    at = _place(datetime.combine(day, time(hour, minute)), local_zone)
    if at <= now:
        return WhenRejected(WhenProblem.PAST, index)
    if at - now > HORIZON:
        return WhenRejected(WhenProblem.TOO_FAR, index)
    return When(at, index)
