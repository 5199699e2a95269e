"""Reminders, escalations and the escalation part of the board, from catalogue fragments only.

Every message that fires late says so, with how late and when it should have gone: a duty
officer reading "reminder" at 04:40 must know it was due at 04:05 and the bot was behind, not
that the party was given 40 minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain import Action, ChainParty, Due, FiredStep, Incident
from bot.domain.escalation import PLEDGE, STEP
from commands.render.bridges import email_reply_lines, sms_headline, sms_reply_line
from commands.render.messages import render_alarm
from commands.render.voice import Voice

_ACTION_KEYS = {
    Action.REMIND: "escalation.action.remind",
    Action.SEND: "escalation.action.send",
    Action.NOTIFY_BACKUP: "escalation.action.notify_backup",
    Action.NOTIFY_INITIATOR: "escalation.action.notify_initiator",
    Action.PLEDGE_REMINDER: "escalation.action.pledge_reminder",
}
_CHANNEL_KEYS = {
    "room": "escalation.channel.room",
    "sms": "escalation.channel.sms",
    "email": "escalation.channel.email",
}


def action_name(voice: Voice, action: Action, channels: Sequence[str] = ()) -> str:
    """``påminnelse``, ``nytt larm via sms/e-post``: a step as the board and notices name it."""
    if action is Action.SEND:
        names = "/".join(voice.text(_CHANNEL_KEYS[c]) for c in channels if c in _CHANNEL_KEYS)
        return voice.text(_ACTION_KEYS[action], channels=names)
    return voice.text(_ACTION_KEYS[action])


def due_name(incident: Incident, due: Due, voice: Voice) -> str:
    """The name of what ``due`` will do."""
    if due.kind == PLEDGE:
        return action_name(voice, Action.PLEDGE_REMINDER)
    member = incident.chain.party(due.party_id) if incident.chain is not None else None
    if member is None or due.step >= len(member.escalation.steps):
        return action_name(voice, Action.REMIND)
    step = member.escalation.steps[due.step]
    return action_name(voice, step.action, step.channels)


def _late_line(fired: FiredStep, voice: Voice) -> str | None:
    if not fired.is_late:
        return None
    return voice.text(
        "escalation.late", delay=voice.delay(fired.late_by), time=voice.time(fired.due_at)
    )


def _how(member: ChainParty, voice: Voice, ack_command: str) -> str:
    transports = member.requirement.secondary_transports
    if transports > 0:
        return voice.text("alarm.how.with_count", command=ack_command, count=transports)
    return voice.text("alarm.how.plain", command=ack_command)


def _alarmed_at(incident: Incident, fired: FiredStep) -> datetime:
    return incident.alarmed_at if incident.alarmed_at is not None else fired.due_at


def render_reminder(
    incident: Incident, member: ChainParty, fired: FiredStep, voice: Voice, *, ack_command: str
) -> str:
    """In the party's room: you have not acknowledged, this is the alarm, this is how."""
    party = member.party
    return voice.lines(
        voice.text(
            "escalation.remind.header", incident=incident.id, level=voice.level(incident.level)
        ),
        voice.text(
            "escalation.remind.body",
            party=party.name,
            region=incident.region_name,
            time=voice.time(_alarmed_at(incident, fired)),
            headline=incident.headline,
        ),
        voice.text("alarm.to", party=party.name, people=voice.people(party.duty_officers)),
        _how(member, voice, ack_command),
        _late_line(fired, voice),
    )


def render_resent_alarm(
    incident: Incident, member: ChainParty, fired: FiredStep, voice: Voice, *, ack_command: str
) -> str:
    """The alarm again, in the party's room, saying why it comes again."""
    return voice.lines(
        voice.text("escalation.resend", party=member.party.name),
        render_alarm(incident, member, voice, ack_command=ack_command),
        _late_line(fired, voice),
    )


def render_backup_notice(
    incident: Incident, member: ChainParty, fired: FiredStep, voice: Voice, *, ack_command: str
) -> str:
    """In the party's room, to its backup contacts: see to it that the alarm is answered."""
    party = member.party
    return voice.lines(
        voice.text(
            "escalation.backup.header",
            incident=incident.id,
            level=voice.level(incident.level),
            party=party.name,
            elapsed=voice.duration(fired.fired_at - _alarmed_at(incident, fired)),
        ),
        voice.text("alarm.intro", region=incident.region_name, headline=incident.headline),
        voice.text(
            "escalation.backup.ask", people=voice.people(party.backup_contacts), party=party.name
        ),
        _how(member, voice, ack_command),
        _late_line(fired, voice),
    )


def render_initiator_notice(
    incident: Incident, member: ChainParty, fired: FiredStep, voice: Voice
) -> str:
    """In the initiating region's room: who is still silent, how to reach them, what next."""
    party = member.party
    following = incident.next_due(party.id, STEP)
    if following is not None:
        next_line = voice.text(
            "escalation.initiator.next",
            action=due_name(incident, following, voice),
            time=voice.time(following.due_at),
        )
    else:
        next_line = voice.text("escalation.initiator.exhausted", party=party.name)
    return voice.lines(
        voice.text(
            "escalation.initiator",
            party=party.name,
            incident=incident.id,
            elapsed=voice.duration(fired.fired_at - _alarmed_at(incident, fired)),
        ),
        voice.text("escalation.initiator.phone", numbers=voice.join(party.sms))
        if party.sms
        else None,
        next_line,
        _late_line(fired, voice),
    )


def render_pledge_reminder(
    incident: Incident, member: ChainParty, fired: FiredStep, voice: Voice, *, ack_command: str
) -> str:
    pledge = incident.pledge_of(member.id)
    given = pledge.secondary_transports if pledge is not None else None
    required = member.requirement.secondary_transports
    if given is None:
        body = voice.text(
            "escalation.pledge.missing",
            party=member.party.name,
            incident=incident.id,
            required=required,
            command=ack_command,
        )
    else:
        body = voice.text(
            "escalation.pledge.short",
            party=member.party.name,
            incident=incident.id,
            count=given,
            required=required,
            command=ack_command,
        )
    return voice.lines(body, _late_line(fired, voice))


def render_sms(incident: Incident, member: ChainParty, fired: FiredStep, voice: Voice) -> str:
    """One short, plain paragraph (no emoji: GSM-7), the headline cut, the reply line last."""
    text = voice.text(
        "escalation.sms",
        incident=incident.id,
        level=voice.level(incident.level),
        headline=sms_headline(incident),
        region=incident.region_name,
        party=member.party.name,
        time=voice.time(_alarmed_at(incident, fired)),
    )
    if fired.is_late:
        text += voice.text("escalation.sms.late", delay=voice.delay(fired.late_by))
    return voice.lines(text, sms_reply_line(member, voice))


def render_email(
    incident: Incident,
    member: ChainParty,
    fired: FiredStep,
    voice: Voice,
    *,
    ack_command: str,
    with_link: bool = False,
) -> str:
    """The alarm again as plain-text e-mail to a function address; the first line is its
    subject."""
    party = member.party
    requirement = member.requirement
    transports = requirement.secondary_transports
    return voice.lines(
        voice.text("alarm.header", incident=incident.id, level=voice.level(incident.level)),
        voice.text("escalation.resend", party=party.name),
        voice.text("alarm.intro", region=incident.region_name, headline=incident.headline),
        voice.text("alarm.to", party=party.name, people=voice.people(party.duty_officers)),
        voice.text("alarm.ask.acknowledge"),
        voice.text("alarm.ask.transports", count=transports) if transports > 0 else None,
        voice.text("alarm.ask.blood_centres") if requirement.alarm_blood_centres else None,
        _late_line(fired, voice),
        "",
        *email_reply_lines(member, voice, ack_command=ack_command, with_link=with_link),
    )


# -- the board --------------------------------------------------------------------------------


def _fired_time(fired: FiredStep, voice: Voice) -> str:
    """When a step ran, by its schedule: ``04:25``, or ``04:25 (sen 21 min)`` if it went out
    late (the schedule is what the party was promised; the delay says what happened)."""
    if fired.is_late:
        return voice.text(
            "board.escalation.late",
            time=voice.time(fired.due_at),
            delay=voice.delay(fired.late_by),
        )
    return voice.time(fired.due_at)


def _history(fired: Sequence[FiredStep], voice: Voice) -> str:
    """`` · påminnelse 04:05, 04:15 (sen 4 min) · besked till larmande TiB 04:10``: what ran,
    in order, runs of the same step grouped."""
    groups: list[tuple[str, list[str]]] = []
    last: tuple[Action, tuple[str, ...]] | None = None
    for record in fired:
        this = (record.action, record.channels)
        if this != last:
            groups.append((action_name(voice, record.action, record.channels), []))
            last = this
        groups[-1][1].append(_fired_time(record, voice))
    return "".join(
        voice.text("board.escalation.done", action=name, times=voice.join(times))
        for name, times in groups
    )


def render_party_escalation(incident: Incident, member: ChainParty, voice: Voice) -> str:
    """The board's escalation fragment for one party ('' when there is nothing to say).

    Not acknowledged: the steps that ran and the next one (or that no more will come). Once
    acknowledged only the pledge reminder still matters: sent, or when it is due.
    """
    party_id = member.id
    acknowledged = incident.first_ack(party_id) is not None
    fired = incident.fired_of(party_id, PLEDGE if acknowledged else STEP)
    text = _history(fired, voice)
    following = incident.next_due(party_id, PLEDGE if acknowledged else STEP)
    if following is not None:
        text += voice.text(
            "board.escalation.next",
            action=due_name(incident, following, voice),
            time=voice.time(following.due_at),
        )
    elif not acknowledged and incident.is_open and member.escalation.steps and fired:
        text += voice.text("board.escalation.exhausted")
    return text
