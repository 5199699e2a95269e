"""Reminders and escalation: the policy a chain is frozen with, and the due times it yields.

A party that has not acknowledged is worked on by its :class:`EscalationPolicy`: ordered steps,
each a delay and an action (remind in the party's room, send the alarm again on named
channels, alert the party's backup contacts, tell the initiating duty officer). The first
step's delay counts from the chain's start, every later step's from the step before it; the
last step may repeat every ``repeat_every`` up to ``max_repeats`` more times. A party that
acknowledged without enough secondary transports gets one pledge reminder
``pledge_reminder`` after that acknowledgement.

The policy is copied into the chain when it starts (see :class:`bot.domain.chain.ChainParty`),
so a config edit cannot change an alarm in flight. What is *pending* is a :class:`Due`: the
incident holds at most one step due and one pledge due per party, and the storage layer mirrors
them as rows, so the scheduler is only a trigger that can be rebuilt from the database.

Schedules are computed from due times, never from "now": a step that fires late (the bot was
down) is marked late by how much, and the next step is still due when it always was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

STEP = "step"  # a due time of the policy's steps
PLEDGE = "pledge"  # the pledge reminder after a short acknowledgement
CHANNELS = ("room", "sms", "email")

# Firing this little after the due time is "on time" (a scheduler never fires at the exact
# microsecond); anything later is shown and audited as late. ``late_by`` is always exact.
LATE_TOLERANCE = timedelta(seconds=1)


class Action(StrEnum):
    REMIND = "remind"  # remind in the party's room, mentioning its duty officers
    SEND = "send"  # send the alarm again on the step's channels (room, sms, email)
    NOTIFY_BACKUP = "notify_backup"  # mention the party's backup contacts in its room
    NOTIFY_INITIATOR = "notify_initiator"  # tell the initiating region's duty officers
    PLEDGE_REMINDER = "pledge_reminder"  # the pledge is missing or below the requirement


STEP_ACTIONS = (Action.REMIND, Action.SEND, Action.NOTIFY_BACKUP, Action.NOTIFY_INITIATOR)


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


@dataclass(frozen=True)
class EscalationStep:
    """Do ``action`` ``after`` the previous step (the first step: after the chain started)."""

    after: timedelta
    action: Action
    channels: tuple[str, ...] = ()  # for SEND only

    def __post_init__(self) -> None:
        if self.after < timedelta(0):
            raise ValueError("a step cannot be due before the one it follows")
        if self.action not in STEP_ACTIONS:
            raise ValueError(f"{self.action!r} is not an escalation step")
        if self.action is Action.SEND:
            if not self.channels:
                raise ValueError("a send step needs at least one channel")
            unknown = set(self.channels) - set(CHANNELS)
            if unknown:
                raise ValueError(f"unknown channels {sorted(unknown)}")
        elif self.channels:
            raise ValueError("only a send step has channels")

    def to_dict(self) -> dict[str, Any]:
        return {
            "after_s": _seconds(self.after),
            "action": self.action.value,
            "channels": list(self.channels),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EscalationStep:
        return cls(
            timedelta(seconds=data["after_s"]),
            Action(data["action"]),
            tuple(data.get("channels", ())),
        )


@dataclass(frozen=True)
class EscalationPolicy:
    """How one party is reminded and escalated; an empty policy does nothing."""

    steps: tuple[EscalationStep, ...] = ()
    repeat_every: timedelta = timedelta(0)  # zero: the last step does not repeat
    max_repeats: int = 0  # how many times the last step runs again after its first run
    pledge_reminder: timedelta | None = None  # None: no pledge reminder

    def __post_init__(self) -> None:
        if self.repeat_every < timedelta(0) or self.max_repeats < 0:
            raise ValueError("repeat_every and max_repeats cannot be negative")
        if self.pledge_reminder is not None and self.pledge_reminder < timedelta(0):
            raise ValueError("pledge_reminder cannot be negative")

    @property
    def repeats(self) -> int:
        """How many times the last step runs after its first run."""
        return self.max_repeats if self.repeat_every > timedelta(0) else 0

    def first(self, incident_id: str, party_id: str, started: datetime) -> Due | None:
        """The first due time of a chain that started at ``started``."""
        if not self.steps:
            return None
        return Due(incident_id, party_id, STEP, 0, 0, started + self.steps[0].after)

    def after(self, due: Due) -> Due | None:
        """The step due after ``due`` (counted from ``due.due_at``), or None when done."""
        if due.kind != STEP:
            return None
        last = len(self.steps) - 1
        if due.step < last:
            step = due.step + 1
            return Due(
                due.incident_id, due.party_id, STEP, step, 0, due.due_at + self.steps[step].after
            )
        if due.repeat < self.repeats:
            return Due(
                due.incident_id,
                due.party_id,
                STEP,
                last,
                due.repeat + 1,
                due.due_at + self.repeat_every,
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "repeat_every_s": _seconds(self.repeat_every),
            "max_repeats": self.max_repeats,
            "pledge_reminder_s": None
            if self.pledge_reminder is None
            else _seconds(self.pledge_reminder),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EscalationPolicy:
        pledge = data.get("pledge_reminder_s")
        return cls(
            steps=tuple(EscalationStep.from_dict(s) for s in data.get("steps", ())),
            repeat_every=timedelta(seconds=data.get("repeat_every_s", 0)),
            max_repeats=data.get("max_repeats", 0),
            pledge_reminder=None if pledge is None else timedelta(seconds=pledge),
        )


NO_ESCALATION = EscalationPolicy()


def due_key(incident_id: str, party_id: str, kind: str, step: int, repeat: int) -> str:
    return f"{incident_id}:{party_id}:{kind}:{step}:{repeat}"


@dataclass(frozen=True)
class Due:
    """A pending reminder or escalation of one party.

    For ``kind == "step"``, ``step`` indexes the policy's steps and ``repeat`` counts the runs
    of the last step after its first (0 for every first run). For ``kind == "pledge"``,
    ``step`` is the number of acknowledgements the party had when the reminder was armed, so
    a reminder armed again after a correction gets a new key; ``repeat`` is 0. A key is never
    reused: once fired, moot or cancelled, it stays so.
    """

    incident_id: str
    party_id: str
    kind: str
    step: int
    repeat: int
    due_at: datetime

    @property
    def key(self) -> str:
        return due_key(self.incident_id, self.party_id, self.kind, self.step, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        return {
            "party_id": self.party_id,
            "kind": self.kind,
            "step": self.step,
            "repeat": self.repeat,
            "due_at": self.due_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, incident_id: str, data: dict[str, Any]) -> Due:
        return cls(
            incident_id,
            data["party_id"],
            data["kind"],
            data["step"],
            data["repeat"],
            datetime.fromisoformat(data["due_at"]),
        )


@dataclass(frozen=True)
class FiredStep:
    """A due time that fired: what to do now, and the record of it kept in the incident."""

    incident_id: str
    party_id: str
    kind: str
    step: int
    repeat: int
    action: Action
    channels: tuple[str, ...]
    due_at: datetime
    fired_at: datetime
    late_by: timedelta  # fired_at - due_at, never negative

    @property
    def key(self) -> str:
        return due_key(self.incident_id, self.party_id, self.kind, self.step, self.repeat)

    @property
    def is_late(self) -> bool:
        return self.late_by > LATE_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "party_id": self.party_id,
            "kind": self.kind,
            "step": self.step,
            "repeat": self.repeat,
            "action": self.action.value,
            "channels": list(self.channels),
            "due_at": self.due_at.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "late_by_s": _seconds(self.late_by),
        }

    @classmethod
    def from_dict(cls, incident_id: str, data: dict[str, Any]) -> FiredStep:
        return cls(
            incident_id=incident_id,
            party_id=data["party_id"],
            kind=data["kind"],
            step=data["step"],
            repeat=data["repeat"],
            action=Action(data["action"]),
            channels=tuple(data.get("channels", ())),
            due_at=datetime.fromisoformat(data["due_at"]),
            fired_at=datetime.fromisoformat(data["fired_at"]),
            late_by=timedelta(seconds=data["late_by_s"]),
        )


def fire(due: Due, policy: EscalationPolicy, now: datetime) -> FiredStep:
    """The record of ``due`` firing at ``now`` under ``policy``."""
    if due.kind == STEP:
        step = policy.steps[due.step]
        action, channels = step.action, step.channels
    else:
        action, channels = Action.PLEDGE_REMINDER, ()
    return FiredStep(
        incident_id=due.incident_id,
        party_id=due.party_id,
        kind=due.kind,
        step=due.step,
        repeat=due.repeat,
        action=action,
        channels=channels,
        due_at=due.due_at,
        fired_at=now,
        late_by=max(now - due.due_at, timedelta(0)),
    )
