"""The status board: one message per room, edited in place as acknowledgements arrive.

Layout, for a phone at night: who started what, how long ago, then one line per party
(✅ acknowledged by whom, when, how, and what they pledged; ⏳ still missing, with the reminders
and escalations that ran and the next one due), the pledged total against the requirement,
and the missing parties last so the eye lands on them.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import ChainParty, Incident, IncidentState
from commands.render.escalation import render_party_escalation
from commands.render.situation import render_board_situation
from commands.render.voice import Voice

_NEXT_KEYS = {
    "email": "delivery.next.email",
    "backup": "delivery.next.backup",
    "none": "delivery.next.none",
}


def _delivery_problems(incident: Incident, party_id: str, voice: Voice) -> str:
    """`` · ⚠️ via sms ej levererat 04:07 → e-post``: a channel that did not reach the party."""
    return "".join(
        voice.text(
            "board.delivery.failed",
            channel=voice.channel_name(p.channel),
            time=voice.time(p.at),
            next=voice.text(_NEXT_KEYS.get(p.fell_back_to, "delivery.next.none")),
        )
        for p in incident.delivery_problems_of(party_id)
    )


def _party_line(incident: Incident, member: ChainParty, voice: Voice) -> str:
    party = member.party
    first = incident.first_ack(party.id)
    if first is None:
        return (
            voice.text("board.party.missing", party=party.name)
            + render_party_escalation(incident, member, voice)
            + _delivery_problems(incident, party.id, voice)
        )
    line = voice.text(
        "board.party.acknowledged",
        party=party.name,
        person=voice.person(first.person),
        time=voice.time(first.at),
        channel=voice.channel(first.channel),
    )
    later = [a for a in incident.acks_of(party.id) if a is not first]
    if later:  # acknowledged more than once: the board says who else did, and when
        line += voice.text(
            "board.party.also",
            people=", ".join(
                voice.text(
                    "board.party.also_one", person=voice.person(a.person), time=voice.time(a.at)
                )
                for a in later
            ),
        )
    pledge = incident.pledge_of(party.id)
    needed = member.requirement.secondary_transports
    given = pledge.secondary_transports if pledge is not None else None
    if given is not None:
        line += voice.text("board.party.transports", count=given)
    elif needed > 0:
        line += voice.text("board.party.no_transports")
    if needed > 0 and (given is None or given < needed):
        line += voice.text("board.party.short", required=needed)
    if member.requirement.alarm_blood_centres:
        line += voice.text("board.party.blood_centres")
    remark = incident.remark_of(party.id)
    if remark:
        line += voice.text("board.party.remark", remark=remark)
    return line + render_party_escalation(incident, member, voice)


def _state_lines(incident: Incident, voice: Voice, now: datetime, alarm_command: str) -> str:
    if incident.chain is None or incident.alarmed_at is None:
        return voice.lines(
            voice.text(
                "board.confirmed",
                time=voice.time(incident.confirmed_at),
                now=voice.time(now),
                person=voice.person(incident.confirmed_by),
                elapsed=voice.duration(now - incident.confirmed_at),
            ),
            voice.text("board.not_alarmed", command=alarm_command, incident=incident.id)
            if incident.is_open
            else None,
        )
    total = len(incident.chain.parties)
    return voice.text(
        "board.alarmed",
        time=voice.time(incident.alarmed_at),
        now=voice.time(now),
        person=voice.person(incident.alarmed_by),
        elapsed=voice.duration(now - incident.alarmed_at),
        acknowledged=total - len(incident.missing()),
        total=total,
    )


def _closing_lines(incident: Incident, voice: Voice) -> str:
    chain = incident.chain
    parts: list[str | None] = []
    if chain is not None:
        required = chain.required_transports
        pledged = incident.total_pledged()
        if required or pledged:
            key = "board.total.short" if pledged < required else "board.total"
            parts.append(voice.text(key, pledged=pledged, required=required))
        missing = incident.missing()
        if missing:
            parts.append(
                voice.text("board.missing", parties=voice.join(p.party.name for p in missing))
            )
        elif chain.parties:
            parts.append(voice.text("board.all_acknowledged"))
    if incident.state is IncidentState.STOOD_DOWN and incident.stood_down_at is not None:
        parts.append(
            voice.text(
                "board.stood_down",
                time=voice.time(incident.stood_down_at),
                person=voice.person(incident.stood_down_by),
            )
        )
        if incident.stand_down_remark:
            parts.append(voice.text("board.stand_down_remark", remark=incident.stand_down_remark))
    return voice.lines(*parts)


def render_board(
    incident: Incident,
    voice: Voice,
    *,
    now: datetime,
    alarm_command: str,
    situation_command: str | None = None,
) -> str:
    """The whole board of ``incident`` in ``voice``'s language, as of ``now``.

    ``alarm_command`` is the alarm command's name in this room (shown while the chain has not
    started), passed in because the board knows nothing of the command registry; so is
    ``situation_command``, named next to the current situation report's version and time.
    """
    header = voice.text(
        "board.header",
        incident=incident.id,
        level=voice.level(incident.level),
        region=incident.region_name,
    )
    headline = voice.text("board.headline", headline=incident.headline)
    parties = (
        "\n".join(_party_line(incident, p, voice) for p in incident.chain.parties)
        if incident.chain is not None
        else ""
    )
    top = voice.lines(
        header,
        headline,
        _state_lines(incident, voice, now, alarm_command),
        render_board_situation(incident, voice, situation_command),
    )
    return "\n\n".join(p for p in (top, parties, _closing_lines(incident, voice)) if p)
