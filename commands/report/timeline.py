"""The after-action report's content: the incident's timeline and its figures.

Built from what was recorded (:class:`bot.domain.IncidentHistory`): the decisions from the
hash-chained audit log (confirmation, alarm, acknowledgements, reminders and escalations,
fallbacks, situation-report versions, log entries, stand-down), the moments messages actually
left the bot and what their channel said (retries, failures, undelivered SMS) from the outbox,
and the frozen chain (who was asked for what) from the incident. Pure: no database, no clock.

Time to acknowledge is counted two ways, because both are asked for in an evaluation:

- per party, from the moment the chain started (``!larma``) to the party's first
  acknowledgement on any channel;
- per party and channel, from the moment the alarm on that channel actually left the bot (the
  first alarm message to that party on it: the room post for ``room`` and ✅, the SMS for an SMS
  reply, the e-mail for an e-mail reply or a link) to the first acknowledgement on that channel.
  Without a record of the send (a channel not configured) it is not given.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.domain import ChainParty, Incident, IncidentHistory, Recorded, SentMessage


class Kind:
    """What a timeline event is (stable ids: CSV and JSON carry them)."""

    CONFIRMED = "confirmed"
    CHAIN_STARTED = "chain_started"
    SENT = "sent"  # a message left the bot (alarm, reminder, stand-down, situation report)
    DELIVERED = "delivered"  # the SMS gateway reported it delivered to the handset
    RETRY = "retry"  # a channel failed for now; it is tried again
    FAILED = "failed"  # a channel failed for good (or the Matrix sender refused)
    UNDELIVERED = "undelivered"  # the SMS gateway reported it not delivered
    CANCELLED = "cancelled"  # no longer wanted when its turn came
    FALLBACK = "fallback"  # the party was moved on to its next channel
    ESCALATION = "escalation"  # a reminder or escalation step fired
    ACK = "ack"
    ACK_REFUSED = "ack_refused"  # an acknowledgement that came too late, or was refused
    CHAIN_COMPLETED = "chain_completed"
    SITUATION = "situation"  # a version of the situation report
    LOG = "log"  # an entry of the incident log
    STOOD_DOWN = "stood_down"


#: Ways to acknowledge → the alarm channel whose send they answer.
ACK_CHANNEL_SENT_ON = {
    "room": "matrix",
    "reaction": "matrix",
    "sms": "sms",
    "email": "email",
    "link": "email",
}

# The audit actions the report reads, and what each becomes on the timeline.
OUTBOX_ACTIONS = (
    "outbox.retry",
    "outbox.failed",
    "outbox.refused",
    "outbox.undelivered",
    "outbox.cancelled",
)
_OUTBOX_KINDS = dict(
    zip(
        OUTBOX_ACTIONS,
        (Kind.RETRY, Kind.FAILED, Kind.FAILED, Kind.UNDELIVERED, Kind.CANCELLED),
        strict=True,
    )
)
DECISION_ACTIONS = (
    "incident.confirmed",
    "chain.started",
    "ack.recorded",
    "ack.rejected",
    "escalation.fired",
    "delivery.fallback",
    "chain.completed",
    "sitrep.version",
    "log.entry",
    "incident.stood_down",
)
_DECISION_KINDS = dict(
    zip(
        DECISION_ACTIONS,
        (
            Kind.CONFIRMED,
            Kind.CHAIN_STARTED,
            Kind.ACK,
            Kind.ACK_REFUSED,
            Kind.ESCALATION,
            Kind.FALLBACK,
            Kind.CHAIN_COMPLETED,
            Kind.SITUATION,
            Kind.LOG,
            Kind.STOOD_DOWN,
        ),
        strict=True,
    )
)
_PROBLEM_KINDS = (Kind.RETRY, Kind.FAILED, Kind.UNDELIVERED, Kind.FALLBACK)


@dataclass(frozen=True)
class Event:
    """One line of the timeline."""

    at: datetime
    kind: str
    seq: int | None = None  # the audit entry it comes from (None: an outbox send)
    party_id: str | None = None
    channel: str | None = None  # matrix/sms/email (sends); room/reaction/sms/email/link (acks)
    person: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "seq": self.seq,
            "party": self.party_id,
            "channel": self.channel,
            "person": self.person,
            "data": dict(self.data),
        }


@dataclass(frozen=True)
class ChannelFigure:
    """How one party was reached and answered on one channel."""

    channel: str  # matrix, sms, email
    alarm_sent_at: datetime | None
    acknowledged_at: datetime | None  # the party's first acknowledgement on this channel
    acknowledged_as: str | None  # room, reaction, sms, email, link

    @property
    def time_to_ack(self) -> timedelta | None:
        if self.alarm_sent_at is None or self.acknowledged_at is None:
            return None
        return max(timedelta(0), self.acknowledged_at - self.alarm_sent_at)


@dataclass(frozen=True)
class PartyFigures:
    party_id: str
    name: str
    required: int  # secondary transports asked for
    alarm_blood_centres: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledged_via: str | None
    time_to_ack: timedelta | None  # from the chain's start
    acknowledgements: int
    pledged: int | None  # the standing pledge
    channels: tuple[ChannelFigure, ...]
    reminders: int  # escalation steps that fired for it
    problems: int  # retries, failures, undelivered SMS, fallbacks

    @property
    def short(self) -> bool:
        return self.required > 0 and (self.pledged is None or self.pledged < self.required)


@dataclass(frozen=True)
class Figures:
    confirmed_at: datetime
    alarmed_at: datetime | None
    completed_at: datetime | None
    stood_down_at: datetime | None
    parties: int
    acknowledged: int
    median_time_to_ack: timedelta | None
    slowest: PartyFigures | None
    pledged: int
    required: int
    problems: int
    fallbacks: int
    reminders: int
    situation_versions: int
    log_entries: int

    @property
    def time_to_complete(self) -> timedelta | None:
        if self.alarmed_at is None or self.completed_at is None:
            return None
        return self.completed_at - self.alarmed_at


@dataclass(frozen=True)
class Timeline:
    history: IncidentHistory
    events: tuple[Event, ...]
    parties: tuple[PartyFigures, ...]
    figures: Figures

    @property
    def incident(self) -> Incident:
        return self.history.incident


def _when(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return fallback
    return fallback


def _decision(entry: Recorded) -> Event | None:
    kind = _DECISION_KINDS.get(entry.action)
    if kind is None:
        return None
    d = entry.detail
    at = entry.at
    if kind == Kind.ACK:
        at = _when(d.get("at"), entry.at)
        pledge = d.get("pledge") or {}
        return Event(
            at,
            kind,
            entry.seq,
            d.get("party"),
            d.get("channel"),
            d.get("by") or entry.actor,
            {
                "first": bool(d.get("first")),
                "pledge": pledge.get("secondary_transports"),
                "remark": pledge.get("remark") or "",
            },
        )
    if kind == Kind.ACK_REFUSED:
        return Event(at, kind, entry.seq, d.get("party"), d.get("channel"), d.get("by"), {})
    if kind == Kind.ESCALATION:
        return Event(
            _when(d.get("fired_at"), at),
            kind,
            entry.seq,
            d.get("party"),
            None,
            None,
            {
                "action": d.get("action"),
                "step_kind": d.get("kind"),
                "channels": list(d.get("channels") or ()),
                "late": bool(d.get("late")),
                "late_by_s": d.get("late_by_s") or 0,
            },
        )
    if kind == Kind.FALLBACK:
        return Event(
            at,
            kind,
            entry.seq,
            d.get("party"),
            d.get("channel"),
            None,
            {"to": d.get("to"), "reason": d.get("reason") or ""},
        )
    if kind == Kind.SITUATION:
        return Event(
            _when(d.get("at"), at),
            kind,
            entry.seq,
            None,
            None,
            d.get("by") or entry.actor,
            {
                "version": d.get("version"),
                "changed": [c.get("key") for c in d.get("changes") or ()],
            },
        )
    if kind == Kind.LOG:
        return Event(
            _when(d.get("at"), at),
            kind,
            entry.seq,
            d.get("party"),
            None,
            entry.actor,
            {"number": d.get("number"), "text": d.get("text") or ""},
        )
    if kind == Kind.STOOD_DOWN:
        return Event(at, kind, entry.seq, None, None, entry.actor, {"remark": d.get("remark")})
    if kind == Kind.CHAIN_STARTED:
        return Event(at, kind, entry.seq, None, None, entry.actor, {"parties": d.get("parties")})
    return Event(at, kind, entry.seq, None, None, entry.actor, {})


def _send_events(messages: tuple[SentMessage, ...]) -> list[Event]:
    out = []
    for m in messages:
        data = {"purpose": m.purpose, "destination": m.destination}
        if m.sent_at is not None:
            out.append(Event(m.sent_at, Kind.SENT, None, m.party_id, m.channel, None, data))
        if m.delivered_at is not None:
            out.append(
                Event(m.delivered_at, Kind.DELIVERED, None, m.party_id, m.channel, None, data)
            )
    return out


def _outbox_events(
    recorded: tuple[Recorded, ...], messages: tuple[SentMessage, ...]
) -> list[Event]:
    by_key = {m.key: m for m in messages}
    out = []
    for entry in recorded:
        kind = _OUTBOX_KINDS.get(entry.action)
        message = by_key.get(str(entry.detail.get("key")))
        if kind is None or message is None:
            continue
        out.append(
            Event(
                entry.at,
                kind,
                entry.seq,
                message.party_id,
                message.channel,
                None,
                {
                    "purpose": message.purpose,
                    "destination": message.destination,
                    "reason": str(entry.detail.get("reason") or ""),
                    "attempts": entry.detail.get("attempts"),
                },
            )
        )
    return out


def _party(member: ChainParty, events: list[Event], history: IncidentHistory) -> PartyFigures:
    incident = history.incident
    pid = member.id
    acks = sorted((e for e in events if e.kind == Kind.ACK and e.party_id == pid), key=_at)
    first = acks[0] if acks else None
    sent: dict[str, datetime] = {}
    for m in history.messages:
        if m.party_id == pid and m.purpose == "alarm" and m.sent_at is not None:
            sent[m.channel] = min(sent.get(m.channel, m.sent_at), m.sent_at)
    acked: dict[str, Event] = {}
    for ack in acks:
        channel = ACK_CHANNEL_SENT_ON.get(ack.channel or "", ack.channel or "")
        acked.setdefault(channel, ack)
    channels = tuple(
        ChannelFigure(
            c,
            sent.get(c),
            acked[c].at if c in acked else None,
            acked[c].channel if c in acked else None,
        )
        for c in ("matrix", "sms", "email")
        if c in sent or c in acked
    )
    pledge = incident.pledge_of(pid)
    alarmed_at = incident.alarmed_at
    return PartyFigures(
        party_id=pid,
        name=member.party.name,
        required=member.requirement.secondary_transports,
        alarm_blood_centres=member.requirement.alarm_blood_centres,
        acknowledged_at=first.at if first else None,
        acknowledged_by=first.person if first else None,
        acknowledged_via=first.channel if first else None,
        time_to_ack=max(timedelta(0), first.at - alarmed_at)
        if first is not None and alarmed_at is not None
        else None,
        acknowledgements=len(acks),
        pledged=pledge.secondary_transports if pledge is not None else None,
        channels=channels,
        reminders=sum(1 for e in events if e.kind == Kind.ESCALATION and e.party_id == pid),
        problems=sum(1 for e in events if e.kind in _PROBLEM_KINDS and e.party_id == pid),
    )


def _at(event: Event) -> datetime:
    return event.at


def build_timeline(history: IncidentHistory) -> Timeline:
    """The report's content for ``history``: events in time order, figures per party and in
    total."""
    incident = history.incident
    events = [e for e in (_decision(r) for r in history.recorded) if e is not None]
    events += _send_events(history.messages)
    events += _outbox_events(history.recorded, history.messages)
    # In time order; at the same time, audit order, with sends after the decision behind them.
    events.sort(key=lambda e: (e.at, e.seq if e.seq is not None else 1 << 62))
    members = incident.chain.parties if incident.chain is not None else ()
    parties = tuple(_party(m, events, history) for m in members)
    times = [p.time_to_ack for p in parties if p.time_to_ack is not None]
    acknowledged = [p for p in parties if p.acknowledged_at is not None]
    completed = next((e.at for e in events if e.kind == Kind.CHAIN_COMPLETED), None)
    figures = Figures(
        confirmed_at=incident.confirmed_at,
        alarmed_at=incident.alarmed_at,
        completed_at=completed if incident.chain is not None and incident.chain.parties else None,
        stood_down_at=incident.stood_down_at,
        parties=len(parties),
        acknowledged=len(acknowledged),
        median_time_to_ack=statistics.median_low(times) if times else None,
        slowest=max(acknowledged, key=lambda p: p.time_to_ack or timedelta(0))
        if acknowledged
        else None,
        pledged=incident.total_pledged(),
        required=incident.chain.required_transports if incident.chain is not None else 0,
        problems=sum(1 for e in events if e.kind in _PROBLEM_KINDS),
        fallbacks=sum(1 for e in events if e.kind == Kind.FALLBACK),
        reminders=sum(1 for e in events if e.kind == Kind.ESCALATION),
        situation_versions=len(incident.situation_report.versions)
        if incident.situation_report is not None
        else 0,
        log_entries=len(incident.log),
    )
    return Timeline(history, tuple(events), parties, figures)
