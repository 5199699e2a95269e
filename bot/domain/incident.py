"""The incident (särskild händelse) and its state machine.

    confirmed ──start_alarm──▶ alarming ──last party acknowledges──▶ all_acknowledged
        │                         │                                        │
        └────────────stand_down───┴──────────────stand_down────────────────┴──▶ stood_down

Illegal moves raise a :mod:`bot.domain.errors` error carrying the facts for a clear answer
("H-7 was already alarmed at 03:02"); they never half-apply.

Acknowledgement rules (chosen, and relied on by the board and the report):

- every acknowledgement is recorded, duplicates and late channels included;
- the party's *first* acknowledgement is its acknowledgement time and "by whom";
- the party's pledge is its *latest* acknowledgement that named a number: people correct
  themselves ("!kvittera 5", then "!kvittera 3" when two ambulances are needed at home), and a
  later ✅ or remark without a number leaves the pledge standing;
- acknowledgements after ``all_acknowledged`` are still recorded; after ``stood_down`` they are
  refused, so a late "!kvittera" gets "already stood down" rather than a silent success.

Situation report and log (see :mod:`bot.domain.situation_report`, :mod:`bot.domain.incident_log`):

- the situation report can be written from confirmation until the stand-down, before the chain
  starts too (the alarm then carries its current version); its template is frozen into the
  incident with the first version;
- log entries can be written at any time, after the stand-down too: the evaluation goes on.

Escalation rules (see :mod:`bot.domain.escalation`):

- starting the chain makes each party's first step due; firing a step makes the next one due,
  counted from the fired step's *due* time, so a late firing never shifts the schedule;
- a party's first acknowledgement cancels its step due at once, and a stand-down cancels every
  due: a due time that fires after either is moot and does nothing;
- an acknowledgement that leaves the party short of its required transports arms one pledge
  reminder (if the policy has one and none was armed and is pending or has fired); an
  acknowledgement that meets the requirement cancels it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.clock import Clock
from bot.domain.ack import Ack, Pledge
from bot.domain.chain import AlarmChain, ChainParty, Requirement
from bot.domain.delivery import DeliveryProblem
from bot.domain.errors import (
    AlreadyAlarmed,
    AlreadyStoodDown,
    IllegalTransition,
    NotAlarmed,
    NotInChain,
)
from bot.domain.escalation import PLEDGE, STEP, Due, FiredStep, fire
from bot.domain.exercise import ExerciseRecord
from bot.domain.incident_log import LogEntry, new_entry
from bot.domain.situation_report import ReportTemplate, SituationReport, SituationReportVersion

ID_PREFIX = "H"
_ID = re.compile(r"^#?(?:h-?)?([0-9]{1,9})$", re.IGNORECASE)
# 2: the situation report and the log. 3: the kind (live, exercise, test alarm) and the
# exercise's own record. Documents of versions 1 and 2 (stored before them) still load, live.
_FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)


class IncidentKind(StrEnum):
    """What an incident is: a live one, an exercise (övning) or a test alarm (larmprov).

    Exercises and test alarms run the real chain, but have their own id series (``Ö-3``,
    ``T-2``), so nothing typed, no reply code and no link of one can ever name the other, and
    everything they send is marked (see :mod:`commands.exercise.marking`).
    """

    LIVE = "live"
    EXERCISE = "exercise"
    TEST = "test"


#: The kinds that are exercises: the real chain, marked, reported on their own.
EXERCISE_KINDS = (IncidentKind.EXERCISE, IncidentKind.TEST)

#: The id prefix of each kind's series: ``H-7``, ``Ö-3``, ``T-2``.
ID_PREFIXES = {IncidentKind.LIVE: "H", IncidentKind.EXERCISE: "Ö", IncidentKind.TEST: "T"}
# What people type for each prefix (folded to lower case): an "Ö" is hard to find on a
# Norwegian or English keyboard, so ``Ø-3`` and ``O-3`` mean exercise 3 too.
_TYPED_PREFIXES = {
    "h": IncidentKind.LIVE,
    "ö": IncidentKind.EXERCISE,
    "ø": IncidentKind.EXERCISE,
    "o": IncidentKind.EXERCISE,
    "t": IncidentKind.TEST,
}
_ANY_ID = re.compile(r"^#?([a-zöø])-?([0-9]{1,9})$", re.IGNORECASE)


class ReadinessLevel(StrEnum):
    STAFF = "staff"  # stabsläge
    REINFORCEMENT = "reinforcement"  # förstärkningsläge
    DISASTER = "disaster"  # katastrofläge


class IncidentState(StrEnum):
    CONFIRMED = "confirmed"
    ALARMING = "alarming"
    ALL_ACKNOWLEDGED = "all_acknowledged"
    STOOD_DOWN = "stood_down"


_TRANSITIONS: dict[IncidentState, frozenset[IncidentState]] = {
    IncidentState.CONFIRMED: frozenset({IncidentState.ALARMING, IncidentState.STOOD_DOWN}),
    IncidentState.ALARMING: frozenset({IncidentState.ALL_ACKNOWLEDGED, IncidentState.STOOD_DOWN}),
    IncidentState.ALL_ACKNOWLEDGED: frozenset({IncidentState.STOOD_DOWN}),
    IncidentState.STOOD_DOWN: frozenset(),
}


def format_incident_id(number: int, kind: IncidentKind = IncidentKind.LIVE) -> str:
    """The short id people type and read on a phone: ``H-7`` (an exercise ``Ö-3``)."""
    return f"{ID_PREFIXES[kind]}-{number}"


def parse_incident_number(text: str) -> int | None:
    """``H-7``, ``h7``, ``#7`` and ``7`` all mean incident 7; anything else is not an id."""
    match = _ID.match(text.strip())
    return int(match.group(1)) if match else None


def parse_incident_id(text: str) -> str | None:
    """The canonical id of what was typed: ``H-7``/``h7``/``#7``/``7`` → ``H-7``; ``Ö-3``,
    ``ö3``, ``Ø-3``, ``O-3`` → ``Ö-3``; ``T-2`` → ``T-2``. A bare number is always live: an
    exercise is only ever named with its prefix."""
    text = text.strip()
    number = parse_incident_number(text)
    if number is not None:
        return format_incident_id(number)
    match = _ANY_ID.match(text)
    if match is None:
        return None
    kind = _TYPED_PREFIXES.get(match.group(1).lower())
    return None if kind is None else format_incident_id(int(match.group(2)), kind)


def incident_kind(incident_id: str | None) -> IncidentKind | None:
    """The kind an incident id belongs to (by its series), or None if it is not one."""
    if not incident_id:
        return None
    prefix, sep, number = incident_id.partition("-")
    if not sep or not number.isdigit():
        return None
    return next((k for k, p in ID_PREFIXES.items() if p == prefix), None)


def is_exercise_id(incident_id: str | None) -> bool:
    """True for an exercise's or test alarm's id (``Ö-3``, ``T-2``): its traffic is marked."""
    kind = incident_kind(incident_id)
    return kind is not None and kind is not IncidentKind.LIVE


@dataclass(frozen=True)
class ChainStarted:
    """Decision: alarm these parties now."""

    incident_id: str
    parties: tuple[ChainParty, ...]
    at: datetime
    completed: bool  # an empty chain is complete at once
    dues: tuple[Due, ...] = ()  # each party's first escalation step


@dataclass(frozen=True)
class AckRecorded:
    """Decision: an acknowledgement was recorded; tell the party and update the board."""

    ack: Ack
    first: Ack  # the party's first acknowledgement (== ack when this is the first)
    requirement: Requirement
    pledge: Pledge | None  # the party's pledge after this acknowledgement
    chain_completed: bool  # this acknowledgement was the last one missing
    cancelled: tuple[Due, ...] = ()  # the party's reminders this acknowledgement made moot
    armed: Due | None = None  # a pledge reminder this acknowledgement armed

    @property
    def is_first(self) -> bool:
        return self.first is self.ack

    @property
    def short_of_requirement(self) -> bool:
        return _short(self.requirement, self.pledge)


@dataclass(frozen=True)
class StoodDown:
    """Decision: tell these parties the incident is over."""

    incident_id: str
    parties: tuple[ChainParty, ...]  # empty if the chain never started
    at: datetime
    remark: str
    cancelled: tuple[Due, ...] = ()  # every pending reminder, now moot


def _short(requirement: Requirement, pledge: Pledge | None) -> bool:
    needed = requirement.secondary_transports
    if needed <= 0:
        return False
    given = pledge.secondary_transports if pledge is not None else None
    return given is None or given < needed


class Incident:
    """A confirmed major incident and everything that happened to it since."""

    def __init__(
        self,
        *,
        number: int,
        region_id: str,
        region_name: str,
        level: ReadinessLevel,
        headline: str,
        confirmed_by: str,
        confirmed_at: datetime,
        state: IncidentState = IncidentState.CONFIRMED,
        chain: AlarmChain | None = None,
        alarmed_at: datetime | None = None,
        alarmed_by: str | None = None,
        acks: tuple[Ack, ...] = (),
        stood_down_at: datetime | None = None,
        stood_down_by: str | None = None,
        stand_down_remark: str = "",
        dues: Iterable[Due] = (),
        fired: Iterable[FiredStep] = (),
        delivery_problems: Iterable[DeliveryProblem] = (),
        situation_report: SituationReport | None = None,
        log: Iterable[LogEntry] = (),
        kind: IncidentKind = IncidentKind.LIVE,
        exercise: ExerciseRecord | None = None,
    ) -> None:
        if (kind is IncidentKind.LIVE) != (exercise is None):
            raise ValueError("an exercise or test alarm has an exercise record, a live one none")
        self.kind = kind
        self.exercise = exercise
        self.number = number
        self.region_id = region_id
        self.region_name = region_name
        self.level = level
        self.headline = headline
        self.confirmed_by = confirmed_by
        self.confirmed_at = confirmed_at
        self.state = state
        self.chain = chain
        self.alarmed_at = alarmed_at
        self.alarmed_by = alarmed_by
        self.acks: list[Ack] = list(acks)
        self.stood_down_at = stood_down_at
        self.stood_down_by = stood_down_by
        self.stand_down_remark = stand_down_remark
        self.dues: list[Due] = list(dues)  # pending: at most one step and one pledge per party
        self.fired: list[FiredStep] = list(fired)  # in the order they fired
        self.delivery_problems: list[DeliveryProblem] = list(delivery_problems)
        self.situation_report = situation_report
        self.log: list[LogEntry] = list(log)

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def confirm(
        cls,
        *,
        number: int,
        region_id: str,
        region_name: str,
        level: ReadinessLevel,
        headline: str,
        by: str,
        clock: Clock,
        kind: IncidentKind = IncidentKind.LIVE,
        exercise: ExerciseRecord | None = None,
    ) -> Incident:
        """A duty officer confirms a särskild händelse; nobody is alarmed yet. A coordinator
        "confirms" an exercise or test alarm the same way (``kind`` and its ``exercise``
        record), in its own id series."""
        headline = headline.strip()
        if not headline:
            raise ValueError("an incident needs a headline")
        if number < 1:
            raise ValueError("incident numbers start at 1")
        return cls(
            number=number,
            region_id=region_id,
            region_name=region_name,
            level=level,
            headline=headline,
            confirmed_by=by,
            confirmed_at=clock.now(),
            kind=kind,
            exercise=exercise,
        )

    # -- state machine -----------------------------------------------------------------------

    @property
    def id(self) -> str:
        return format_incident_id(self.number, self.kind)

    @property
    def is_exercise(self) -> bool:
        """An exercise or a test alarm: the real chain, marked, reported on its own."""
        return self.kind is not IncidentKind.LIVE

    @property
    def is_open(self) -> bool:
        return self.state is not IncidentState.STOOD_DOWN

    @property
    def is_alarmed(self) -> bool:
        return self.chain is not None

    def _move(self, to: IncidentState, action: str) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise IllegalTransition(self.id, self.state.value, action)
        self.state = to

    def start_alarm(self, chain: AlarmChain, *, by: str, clock: Clock) -> ChainStarted:
        """Freeze ``chain`` into the incident and say whom to alarm. Happens once."""
        if self.state is IncidentState.STOOD_DOWN:
            raise AlreadyStoodDown(self.id, "start_alarm", self.stood_down_at, self.stood_down_by)
        if self.chain is not None:
            raise AlreadyAlarmed(self.id, self.state.value, self.alarmed_at, self.alarmed_by)
        if chain.initiator.id != self.region_id:
            raise ValueError(f"{self.id}: chain of {chain.initiator.id}, not {self.region_id}")
        self._move(IncidentState.ALARMING, "start_alarm")
        self.chain = chain
        self.alarmed_at = clock.now()
        self.alarmed_by = by
        completed = not chain.parties
        if completed:
            self._move(IncidentState.ALL_ACKNOWLEDGED, "complete")
        for member in chain.parties:
            due = member.escalation.first(self.id, member.id, self.alarmed_at)
            if due is not None:
                self.dues.append(due)
        return ChainStarted(
            self.id, chain.parties, self.alarmed_at, completed, tuple(self.pending_dues())
        )

    def acknowledge(
        self,
        party_id: str,
        *,
        by: str,
        via: str,
        clock: Clock,
        pledge: Pledge | None = None,
        at: datetime | None = None,
    ) -> AckRecorded:
        """Record an acknowledgement of ``party_id`` by ``by`` on channel ``via``.

        ``at`` is when the person acknowledged (the homeserver's timestamp), which matters when
        the bot processes the event late; it is kept between the alarm and now so that a
        skewed timestamp cannot produce a negative time to acknowledge.
        """
        if self.state is IncidentState.STOOD_DOWN:
            raise AlreadyStoodDown(self.id, "acknowledge", self.stood_down_at, self.stood_down_by)
        if self.chain is None or self.alarmed_at is None:
            raise NotAlarmed(self.id)
        member = self.chain.party(party_id)
        if member is None:
            raise NotInChain(self.id, party_id)
        now = clock.now()
        when = now if at is None else min(max(at, self.alarmed_at), now)
        if pledge is not None and not pledge.counts and not pledge.remark:
            pledge = None
        ack = Ack(party_id=party_id, person=by, channel=via, at=when, pledge=pledge)
        self.acks.append(ack)
        completed = False
        if self.state is IncidentState.ALARMING and not self.missing():
            self._move(IncidentState.ALL_ACKNOWLEDGED, "complete")
            completed = True
        first = self.first_ack(party_id)
        assert first is not None
        cancelled, armed = self._escalate_after_ack(member, ack)
        return AckRecorded(
            ack=ack,
            first=first,
            requirement=member.requirement,
            pledge=self.pledge_of(party_id),
            chain_completed=completed,
            cancelled=cancelled,
            armed=armed,
        )

    def _escalate_after_ack(
        self, member: ChainParty, ack: Ack
    ) -> tuple[tuple[Due, ...], Due | None]:
        """Cancel the party's step reminders; arm, keep or cancel its pledge reminder."""
        party_id = member.id
        cancelled = [d for d in self.dues if d.party_id == party_id and d.kind == STEP]
        pledge_due = self._pending(party_id, PLEDGE)
        armed = None
        if not _short(member.requirement, self.pledge_of(party_id)):
            if pledge_due is not None:
                cancelled.append(pledge_due)
        elif (
            pledge_due is None
            and member.escalation.pledge_reminder is not None
            and not any(f.party_id == party_id and f.kind == PLEDGE for f in self.fired)
        ):
            armed = Due(
                self.id,
                party_id,
                PLEDGE,
                len(self.acks_of(party_id)),
                0,
                ack.at + member.escalation.pledge_reminder,
            )
            self.dues.append(armed)
        self.dues = [d for d in self.dues if d not in cancelled]
        return tuple(cancelled), armed

    def stand_down(self, *, by: str, clock: Clock, remark: str = "") -> StoodDown:
        """End the incident; everyone alarmed must be told."""
        if self.state is IncidentState.STOOD_DOWN:
            raise AlreadyStoodDown(self.id, "stand_down", self.stood_down_at, self.stood_down_by)
        self._move(IncidentState.STOOD_DOWN, "stand_down")
        self.stood_down_at = clock.now()
        self.stood_down_by = by
        self.stand_down_remark = remark.strip()
        parties = self.chain.parties if self.chain is not None else ()
        cancelled = tuple(self.pending_dues())
        self.dues = []
        return StoodDown(self.id, parties, self.stood_down_at, self.stand_down_remark, cancelled)

    # -- situation report and log ---------------------------------------------------------

    def update_situation_report(
        self,
        template: ReportTemplate,
        changes: Iterable[tuple[str, str | None]],
        *,
        by: str,
        clock: Clock,
    ) -> SituationReportVersion:
        """Publish the next version of the situation report.

        ``template`` is used only for the first version: it is frozen into the incident then.
        Raises :class:`AlreadyStoodDown` after the stand-down, and the report's own errors
        (:class:`~bot.domain.situation_report.InvalidSituationReport`, ``NoChange``).
        """
        if self.state is IncidentState.STOOD_DOWN:
            raise AlreadyStoodDown(
                self.id, "update_situation_report", self.stood_down_at, self.stood_down_by
            )
        report = self.situation_report or SituationReport(template)
        version = report.update(changes, by=by, at=clock.now())
        self.situation_report = report
        return version

    @property
    def situation(self) -> SituationReportVersion | None:
        """The current version of the situation report, if there is one."""
        return None if self.situation_report is None else self.situation_report.current

    def add_log_entry(
        self, text: str, *, by: str, clock: Clock, party_id: str | None = None
    ) -> LogEntry:
        """A timed entry in the incident's log; allowed after the stand-down too."""
        return new_entry(self.log, text=text, by=by, at=clock.now(), party_id=party_id)

    # -- escalation --------------------------------------------------------------------------

    def fire_due(self, key: str, now: datetime) -> FiredStep | None:
        """Fire the pending due time ``key`` if it is due by ``now``.

        None when it is not the party's pending due (the party acknowledged, the incident was
        stood down, it fired already) or is not due yet. Otherwise it is recorded as fired
        (late by ``now - due_at``), the party's next step becomes due (counted from this
        step's due time, not from now) and the record says what to do.
        """
        due = self.pending_due(key)
        if due is None or due.due_at > now:
            return None
        self.dues.remove(due)
        member = self.chain.party(due.party_id) if self.chain is not None else None
        if member is None or self.state is IncidentState.STOOD_DOWN:
            return None  # cannot happen to a consistent incident; dropped, not fired
        if due.kind == STEP and self.first_ack(due.party_id) is not None:
            return None
        if due.kind == PLEDGE and not _short(member.requirement, self.pledge_of(due.party_id)):
            return None
        fired = fire(due, member.escalation, now)
        self.fired.append(fired)
        following = member.escalation.after(due)
        if following is not None:
            self.dues.append(following)
        return fired

    def pending_dues(self) -> list[Due]:
        """Every pending reminder and escalation, soonest first; at the same time in the
        chain's order (the order the parties were alarmed in)."""
        order = {pid: i for i, pid in enumerate(self.chain.party_ids)} if self.chain else {}
        return sorted(
            self.dues, key=lambda d: (d.due_at, order.get(d.party_id, len(order)), d.key)
        )

    def pending_due(self, key: str) -> Due | None:
        return next((d for d in self.dues if d.key == key), None)

    def _pending(self, party_id: str, kind: str) -> Due | None:
        return next((d for d in self.dues if d.party_id == party_id and d.kind == kind), None)

    def next_due(self, party_id: str, kind: str | None = None) -> Due | None:
        """The party's soonest pending due time (of ``kind``, if given)."""
        dues = [
            d for d in self.pending_dues() if d.party_id == party_id and kind in (None, d.kind)
        ]
        return dues[0] if dues else None

    def fired_of(self, party_id: str, kind: str | None = None) -> tuple[FiredStep, ...]:
        return tuple(f for f in self.fired if f.party_id == party_id and kind in (None, f.kind))

    def why_moot(self, key: str) -> str:
        """Why ``key`` is not (or no longer) a pending due time: for the audit log."""
        if any(f.key == key for f in self.fired):
            return "already_fired"
        if self.state is IncidentState.STOOD_DOWN:
            return "stood_down"
        parts = key.split(":")
        if len(parts) == 5 and parts[0] == self.id:
            party_id, kind = parts[1], parts[2]
            if kind == STEP and self.first_ack(party_id) is not None:
                return "acknowledged"
            member = self.chain.party(party_id) if self.chain is not None else None
            if (
                kind == PLEDGE
                and member is not None
                and not _short(member.requirement, self.pledge_of(party_id))
            ):
                return "pledge_met"
        return "not_pending"

    # -- views -------------------------------------------------------------------------------

    def record_delivery_problem(
        self, party_id: str, channel: str, fell_back_to: str, at: datetime, reason: str = ""
    ) -> DeliveryProblem | None:
        """Note that ``channel`` did not reach ``party_id`` and where the alarm went instead.
        Returns None (and changes nothing) if this party and channel already have one: the
        fallback happens once, however many numbers of the channel fail."""
        if self.chain is None or self.chain.party(party_id) is None:
            raise NotInChain(self.id, party_id)
        if any(p.party_id == party_id and p.channel == channel for p in self.delivery_problems):
            return None
        problem = DeliveryProblem(party_id, channel, fell_back_to, at, reason)
        self.delivery_problems.append(problem)
        return problem

    def delivery_problems_of(self, party_id: str) -> tuple[DeliveryProblem, ...]:
        return tuple(p for p in self.delivery_problems if p.party_id == party_id)

    def acks_of(self, party_id: str) -> tuple[Ack, ...]:
        return tuple(a for a in self.acks if a.party_id == party_id)

    def first_ack(self, party_id: str) -> Ack | None:
        # The earliest by time, not by arrival: a late-processed SMS may predate a reaction.
        acks = self.acks_of(party_id)
        return min(acks, key=lambda a: a.at) if acks else None

    def pledge_of(self, party_id: str) -> Pledge | None:
        """The party's pledge: its latest acknowledgement that named a number."""
        counted = [a.pledge for a in self.acks_of(party_id) if a.pledge and a.pledge.counts]
        return counted[-1] if counted else None

    def remark_of(self, party_id: str) -> str:
        remarks = [a.pledge.remark for a in self.acks_of(party_id) if a.pledge and a.pledge.remark]
        return remarks[-1] if remarks else ""

    def acknowledged(self) -> tuple[ChainParty, ...]:
        if self.chain is None:
            return ()
        done = {a.party_id for a in self.acks}
        return tuple(p for p in self.chain.parties if p.id in done)

    def missing(self) -> tuple[ChainParty, ...]:
        if self.chain is None:
            return ()
        done = {a.party_id for a in self.acks}
        return tuple(p for p in self.chain.parties if p.id not in done)

    def short_of_requirement(self) -> tuple[ChainParty, ...]:
        """Acknowledged parties whose pledge is below what the chain asks of them."""
        return tuple(p for p in self.acknowledged() if _short(p.requirement, self.pledge_of(p.id)))

    def total_pledged(self) -> int:
        if self.chain is None:
            return 0
        total = 0
        for party in self.chain.parties:
            pledge = self.pledge_of(party.id)
            if pledge is not None and pledge.secondary_transports is not None:
                total += pledge.secondary_transports
        return total

    # -- storage -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe document; :meth:`from_dict` restores an equal incident."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "version": _FORMAT_VERSION,
            "number": self.number,
            "region_id": self.region_id,
            "region_name": self.region_name,
            "level": self.level.value,
            "headline": self.headline,
            "confirmed_by": self.confirmed_by,
            "confirmed_at": iso(self.confirmed_at),
            "state": self.state.value,
            "chain": None if self.chain is None else self.chain.to_dict(),
            "alarmed_at": iso(self.alarmed_at),
            "alarmed_by": self.alarmed_by,
            "acks": [a.to_dict() for a in self.acks],
            "stood_down_at": iso(self.stood_down_at),
            "stood_down_by": self.stood_down_by,
            "stand_down_remark": self.stand_down_remark,
            "dues": [d.to_dict() for d in self.pending_dues()],
            "fired": [f.to_dict() for f in self.fired],
            "delivery_problems": [p.to_dict() for p in self.delivery_problems],
            "situation_report": None
            if self.situation_report is None
            else self.situation_report.to_dict(),
            "log": [e.to_dict() for e in self.log],
            "kind": self.kind.value,
            "exercise": None if self.exercise is None else self.exercise.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        if data.get("version") not in _READABLE_VERSIONS:
            raise ValueError(f"unknown incident document version {data.get('version')!r}")

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return None if value is None else datetime.fromisoformat(value)

        confirmed_at = when("confirmed_at")
        assert confirmed_at is not None
        chain = data.get("chain")
        report = data.get("situation_report")
        kind = IncidentKind(data.get("kind", IncidentKind.LIVE.value))
        exercise = data.get("exercise")
        incident_id = format_incident_id(data["number"], kind)
        return cls(
            number=data["number"],
            region_id=data["region_id"],
            region_name=data["region_name"],
            level=ReadinessLevel(data["level"]),
            headline=data["headline"],
            confirmed_by=data["confirmed_by"],
            confirmed_at=confirmed_at,
            state=IncidentState(data["state"]),
            chain=None if chain is None else AlarmChain.from_dict(chain),
            alarmed_at=when("alarmed_at"),
            alarmed_by=data.get("alarmed_by"),
            acks=tuple(Ack.from_dict(a) for a in data.get("acks", ())),
            stood_down_at=when("stood_down_at"),
            stood_down_by=data.get("stood_down_by"),
            stand_down_remark=data.get("stand_down_remark", ""),
            dues=[Due.from_dict(incident_id, d) for d in data.get("dues", ())],
            fired=[FiredStep.from_dict(incident_id, f) for f in data.get("fired", ())],
            delivery_problems=[
                DeliveryProblem.from_dict(p) for p in data.get("delivery_problems", ())
            ],
            situation_report=None if report is None else SituationReport.from_dict(report),
            log=[LogEntry.from_dict(e) for e in data.get("log", ())],
            kind=kind,
            exercise=None if exercise is None else ExerciseRecord.from_dict(exercise),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Incident) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Incident({self.id}, {self.region_id}, {self.state.value})"
