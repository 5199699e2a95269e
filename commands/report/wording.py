"""The after-action report in words: the room's short summary and one line per event.

The same words serve the room summary, the HTML page, the CSV and the JSON (which carries the
event's text beside its data), so the report reads the same wherever it is opened. Every word
is a catalogue text; this module sits beside the report's other renderers rather than in
``commands/render`` only because it reads the events' data by name.
"""

from __future__ import annotations

from datetime import timedelta

from bot.domain import AuditHead, ChainParty
from commands.render.voice import Voice
from commands.report.timeline import Event, Kind, PartyFigures, Timeline

_SENT_KEYS = {
    "alarm": "report.event.sent.alarm",
    "reminder": "report.event.sent.reminder",
    "escalation": "report.event.sent.escalation",
    "standdown": "report.event.sent.standdown",
    "situation-report": "report.event.sent.situation",
}
_PROBLEM_KEYS = {
    Kind.RETRY: "report.event.retry",
    Kind.FAILED: "report.event.failed",
    Kind.UNDELIVERED: "report.event.undelivered",
    Kind.CANCELLED: "report.event.cancelled",
}
_TRANSPORT_NAMES = {
    "matrix": "escalation.channel.room",
    "sms": "escalation.channel.sms",
    "email": "escalation.channel.email",
}
_FALLBACK_KEYS = {
    "email": "delivery.next.email",
    "backup": "delivery.next.backup",
    "none": "delivery.next.none",
}
_ACTION_KEYS = {
    "remind": "report.action.remind",
    "send": "report.action.send",
    "notify_backup": "report.action.notify_backup",
    "notify_initiator": "report.action.notify_initiator",
}
#: Characters of a hash shown in a room (the whole hash is in the file and in the anchor).
SHORT_HASH = 12


def transport_name(channel: str | None, voice: Voice) -> str:
    """``rummet``, ``sms``, ``e-post``: the channel a message went on."""
    key = _TRANSPORT_NAMES.get(channel or "")
    return voice.text(key) if key else channel or "?"


def party_name(timeline: Timeline, party_id: str | None, voice: Voice) -> str:
    if party_id is None:  # the coordination room (a copy, a log entry written there)
        return voice.text("report.coordination")
    chain = timeline.incident.chain
    member: ChainParty | None = chain.party(party_id) if chain is not None else None
    if member is not None:
        return member.party.name
    if party_id == timeline.incident.region_id:
        return timeline.incident.region_name
    return party_id


def duration(delta: timedelta | None, voice: Voice) -> str:
    """Minutes and seconds under an hour (an evaluation counts them), else as the board does."""
    if delta is None:
        return voice.text("report.none")
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        return voice.text("report.duration", minutes=seconds // 60, seconds=seconds % 60)
    return voice.duration(delta)


def _destination(event: Event) -> str:
    """`` ***4567``: the number (masked) or address a message went to, with its leading space;
    nothing for a room, which is named by its party."""
    destination = str(event.data.get("destination") or "")
    return "" if event.channel == "matrix" or not destination else " " + destination


def _pledge(event: Event, voice: Voice) -> str:
    count = event.data.get("pledge")
    return "" if count is None else voice.text("report.event.ack.pledge", count=count)


def describe(event: Event, timeline: Timeline, voice: Voice) -> str:
    """One event as a sentence of the report."""
    party = party_name(timeline, event.party_id, voice)
    person = voice.person(event.person)
    incident = timeline.incident
    data = event.data
    kind = event.kind
    if kind == Kind.CONFIRMED:
        return voice.text(
            "report.event.confirmed", person=person, level=voice.level(incident.level)
        )
    if kind == Kind.CHAIN_STARTED:
        return voice.text(
            "report.event.chain_started", person=person, count=len(data.get("parties") or ())
        )
    if kind == Kind.SENT:
        key = _SENT_KEYS.get(str(data.get("purpose")), "report.event.sent.alarm")
        return voice.text(
            key,
            party=party,
            channel=transport_name(event.channel, voice),
            destination=_destination(event),
        )
    if kind == Kind.DELIVERED:
        return voice.text("report.event.delivered", party=party, destination=_destination(event))
    if kind in _PROBLEM_KEYS:
        return voice.text(
            _PROBLEM_KEYS[kind],
            party=party,
            channel=transport_name(event.channel, voice),
            destination=_destination(event),
            reason=data.get("reason") or "",
        )
    if kind == Kind.FALLBACK:
        return voice.text(
            "report.event.fallback",
            party=party,
            channel=voice.channel_name(event.channel or ""),
            next=voice.text(_FALLBACK_KEYS.get(str(data.get("to")), "delivery.next.none")),
        )
    if kind == Kind.ESCALATION:
        action = _ACTION_KEYS.get(str(data.get("action")), "report.action.remind")
        text = voice.text("report.event.escalation", party=party, action=voice.text(action))
        if data.get("late"):
            text += voice.text(
                "report.event.late", delay=voice.delay(timedelta(seconds=data["late_by_s"]))
            )
        return text
    if kind == Kind.ACK:
        text = voice.text(
            "report.event.ack",
            party=party,
            person=person,
            channel=voice.channel(event.channel or ""),
            pledge=_pledge(event, voice),
        )
        if not data.get("first"):
            text += voice.text("report.event.ack.again")
        return text
    if kind == Kind.ACK_REFUSED:
        return voice.text(
            "report.event.ack_refused", party=party, channel=voice.channel(event.channel or "")
        )
    if kind == Kind.CHAIN_COMPLETED:
        return voice.text("report.event.chain_completed")
    if kind == Kind.SITUATION:
        return voice.text("report.event.situation", version=data.get("version"), person=person)
    if kind == Kind.LOG:
        return voice.text(
            "report.event.log", number=data.get("number"), person=person, text=data.get("text")
        )
    return voice.text("report.event.stood_down", person=person)


def render_party_figure(party: PartyFigures, voice: Voice) -> str:
    """``✅ Region Dalarna: 2 min 10 s (i rummet) · 5 av 5``: one party in the summary."""
    if party.acknowledged_at is None:
        line = voice.text("report.party.missing", party=party.name)
    else:
        line = voice.text(
            "report.party.acknowledged",
            party=party.name,
            elapsed=duration(party.time_to_ack, voice),
            channel=voice.channel(party.acknowledged_via or ""),
        )
    if party.required > 0:
        line += voice.text(
            "report.party.short" if party.short else "report.party.pledged",
            pledged=party.pledged if party.pledged is not None else 0,
            required=party.required,
        )
    if party.problems:
        line += voice.text("report.party.problems", count=party.problems)
    return line


def render_head(head: AuditHead | None, voice: Voice) -> str:
    if head is None:
        return voice.text("report.audit.empty")
    return voice.text("report.audit.head", seq=head.seq, hash=head.hash[:SHORT_HASH])


def render_report_summary(timeline: Timeline, voice: Voice) -> str:
    """The short summary posted in the room; the whole report is the attached file."""
    incident = timeline.incident
    f = timeline.figures
    lines: list[str | None] = [
        voice.text(
            "report.header",
            incident=incident.id,
            level=voice.level(incident.level),
            region=incident.region_name,
        ),
        voice.text("board.headline", headline=incident.headline),
        voice.text(
            "report.confirmed",
            time=voice.time(f.confirmed_at),
            person=voice.person(incident.confirmed_by),
        ),
    ]
    if f.alarmed_at is None:
        lines.append(voice.text("report.not_alarmed"))
    else:
        lines.append(
            voice.text(
                "report.alarmed",
                time=voice.time(f.alarmed_at),
                person=voice.person(incident.alarmed_by),
                count=f.parties,
            )
        )
        lines.append(
            voice.text(
                "report.acknowledged",
                acknowledged=f.acknowledged,
                total=f.parties,
                elapsed=duration(f.time_to_complete, voice),
            )
            if f.time_to_complete is not None
            else voice.text(
                "report.acknowledged.incomplete", acknowledged=f.acknowledged, total=f.parties
            )
        )
        if f.median_time_to_ack is not None and f.slowest is not None:
            lines.append(
                voice.text(
                    "report.times",
                    median=duration(f.median_time_to_ack, voice),
                    slowest=f.slowest.name,
                    longest=duration(f.slowest.time_to_ack, voice),
                )
            )
        if f.required or f.pledged:
            lines.append(
                voice.text(
                    "report.transports.short" if f.pledged < f.required else "report.transports",
                    pledged=f.pledged,
                    required=f.required,
                )
            )
        lines.append(
            voice.text(
                "report.problems",
                problems=f.problems,
                fallbacks=f.fallbacks,
                reminders=f.reminders,
            )
        )
    lines.append(
        voice.text(
            "report.situation_and_log", versions=f.situation_versions, entries=f.log_entries
        )
    )
    if f.stood_down_at is not None:
        lines.append(
            voice.text(
                "report.stood_down",
                time=voice.time(f.stood_down_at),
                person=voice.person(incident.stood_down_by),
            )
        )
    else:
        lines.append(voice.text("report.still_open"))
    parties = [render_party_figure(p, voice) for p in timeline.parties]
    return voice.lines(
        *lines,
        voice.text("report.parties") if parties else None,
        *parties,
        render_head(timeline.history.head, voice),
    )
