"""Alarm, stand-down and the answers to the people who started or acknowledged them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.domain import AckRecorded, ChainParty, ChainStarted, Incident
from commands.render.voice import Voice


def render_alarm(incident: Incident, member: ChainParty, voice: Voice, *, ack_command: str) -> str:
    """The alarm to one party: what happened, what is asked of *this* party, how to answer."""
    requirement = member.requirement
    transports = requirement.secondary_transports
    return voice.lines(
        voice.text("alarm.header", incident=incident.id, level=voice.level(incident.level)),
        voice.text("alarm.intro", region=incident.region_name, headline=incident.headline),
        voice.text(
            "alarm.to", party=member.party.name, people=voice.people(member.party.duty_officers)
        ),
        voice.text("alarm.ask.acknowledge"),
        voice.text("alarm.ask.transports", count=transports) if transports > 0 else None,
        voice.text("alarm.ask.blood_centres") if requirement.alarm_blood_centres else None,
        voice.text("alarm.how.with_count", command=ack_command, count=transports)
        if transports > 0
        else voice.text("alarm.how.plain", command=ack_command),
    )


def render_stand_down(incident: Incident, voice: Voice) -> str:
    return voice.lines(
        voice.text("standdown.header", incident=incident.id, region=incident.region_name),
        voice.text("standdown.body", headline=incident.headline),
        voice.text("standdown.remark", remark=incident.stand_down_remark)
        if incident.stand_down_remark
        else None,
    )


def render_chain_started(
    incident: Incident,
    started: ChainStarted,
    voice: Voice,
    *,
    sms: int = 0,
    email: int = 0,
    unreachable: Mapping[str, str] | None = None,
) -> str:
    """The initiator's answer: what is being sent to whom, where (``sms``/``email``: how many
    numbers and addresses get the alarm too), and which rooms are known not to be reachable
    (``unreachable``: party id → :data:`bot.domain.ROOM_REASONS`). It does not claim anything
    arrived: the delivery report follows when the messages are out."""
    if not started.parties:
        return voice.text("alarm.started.empty", incident=incident.id)
    unreachable = unreachable or {}
    lines: list[str | None] = [
        voice.text("alarm.started", incident=incident.id, count=len(started.parties))
    ]
    for p in started.parties:
        problem = unreachable.get(p.id)
        if problem is not None:
            lines.append(
                voice.text(
                    "alarm.started.unreachable",
                    party=p.party.name,
                    reason=voice.room_reason(problem),
                )
            )
        elif p.party.room is None:
            lines.append(voice.text("alarm.started.no_room", party=p.party.name))
        else:
            lines.append(
                voice.text(
                    "alarm.started.party",
                    party=p.party.name,
                    people=voice.people(p.party.duty_officers),
                )
            )
    lines.append(
        voice.text("alarm.started.bridges", sms=sms, email=email) if sms or email else None
    )
    lines.append(voice.text("alarm.started.report"))
    return voice.lines(*lines)


def render_ack_reply(
    incident: Incident,
    recorded: AckRecorded,
    member: ChainParty,
    voice: Voice,
    *,
    ack_command: str,
    open_ids: Sequence[str] = (),
) -> str:
    """The answer to an acknowledgement: what was recorded and anything worth a second look.

    ``open_ids`` lists every open incident the party is alarmed for when the command did not
    name one and several were open, so the answer says which one was chosen.
    """
    ack = recorded.ack
    name = member.party.name
    lines: list[str | None] = [
        voice.text(
            "ack.recorded",
            party=name,
            incident=incident.id,
            person=voice.person(ack.person),
            time=voice.time(ack.at),
        )
    ]
    if len(open_ids) > 1:
        example = next(i for i in open_ids if i != incident.id)
        lines.append(
            voice.text(
                "ack.which",
                incident=incident.id,
                incidents=voice.join(open_ids),
                command=ack_command,
                example=example,
            )
        )
    if not recorded.is_first:
        first = recorded.first
        lines.append(
            voice.text(
                "ack.repeat",
                party=name,
                time=voice.time(first.at),
                person=voice.person(first.person),
            )
        )
    given = ack.pledge.secondary_transports if ack.pledge is not None else None
    standing = recorded.pledge.secondary_transports if recorded.pledge is not None else None
    if given is not None:
        lines.append(voice.text("ack.pledge", count=given))
    elif standing is not None:
        lines.append(voice.text("ack.pledge_standing", count=standing))
    if recorded.short_of_requirement:
        required = recorded.requirement.secondary_transports
        key = "ack.pledge_missing" if standing is None else "ack.pledge_short"
        lines.append(voice.text(key, required=required, command=ack_command))
    if recorded.chain_completed:
        lines.append(voice.text("ack.completed", incident=incident.id))
    return voice.lines(*lines)
