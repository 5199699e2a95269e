"""The status board: one message per room, edited in place as acknowledgements arrive.

Layout, for a phone at night: who started what, how long ago, then one line per party
(✅ acknowledged by whom, when, how, and what they pledged; ⏳ still missing, with the reminders
and escalations that ran and the next one due), the pledged total against the requirement,
and the missing parties last so the eye lands on them.

The board has a size budget (:data:`bot.event_size.BOARD_BUDGET_BYTES`): it is edited with
every acknowledgement, and an edit over the homeserver's event size limit is refused. Repeated
acknowledgements are summarised (the newest few named, the rest counted) and remarks are cut;
should a board still not fit (hundreds of parties), it is rendered compact (no repeats, remarks
or escalation details) and, last, the parties that do not fit are counted instead of listed.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import NOTHING_LEFT, ROOM, Ack, ChainParty, Incident, IncidentState
from bot.event_size import BOARD_BUDGET_BYTES, text_edit_bytes
from commands.render.escalation import render_party_escalation
from commands.render.situation import render_board_situation
from commands.render.voice import Voice

#: Later acknowledgements of one party named on the board; the rest are counted.
ALSO_SHOWN = 3
#: A remark on the board is cut here (the whole remark is in the audit log and the report).
REMARK_CHARS = 120
#: On a board too big for its budget, the missing parties named in the closing line.
MISSING_NAMED_COMPACT = 10

_NEXT_KEYS = {
    "email": "delivery.next.email",
    "backup": "delivery.next.backup",
    "none": "delivery.next.none",
}


def _delivery_problems(incident: Incident, party_id: str, voice: Voice) -> str:
    """`` · ⚠️ via sms ej levererat 04:07 → e-post``, `` · ⚠️ rummet nås inte (ej krypterat)
    04:07 → sms, e-post``: a channel that did not reach the party, and where the alarm went."""
    parts = []
    for p in incident.delivery_problems_of(party_id):
        if p.channel == ROOM:
            parts.append(
                voice.text(
                    "board.delivery.room",
                    reason=voice.room_reason(p.reason),
                    time=voice.time(p.at),
                    next=voice.text("delivery.next.none")
                    if p.fell_back_to == NOTHING_LEFT
                    else voice.join(voice.channel_name(c) for c in p.fell_back_to.split(",")),
                )
            )
            continue
        parts.append(
            voice.text(
                "board.delivery.failed",
                channel=voice.channel_name(p.channel),
                time=voice.time(p.at),
                next=voice.text(_NEXT_KEYS.get(p.fell_back_to, "delivery.next.none")),
            )
        )
    return "".join(parts)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _later_acks(later: list[Ack], voice: Voice) -> str:
    shown = later[-ALSO_SHOWN:]
    line = voice.text(
        "board.party.also",
        people=", ".join(
            voice.text(
                "board.party.also_one", person=voice.person(a.person), time=voice.time(a.at)
            )
            for a in shown
        ),
    )
    if len(later) > len(shown):
        line += voice.text("board.party.also_more", count=len(later) - len(shown))
    return line


def _party_line(
    incident: Incident, member: ChainParty, voice: Voice, *, compact: bool = False
) -> str:
    party = member.party
    first = incident.first_ack(party.id)
    if first is None:
        return (
            voice.text("board.party.missing", party=party.name)
            + ("" if compact else render_party_escalation(incident, member, voice))
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
    if later and not compact:  # acknowledged more than once: who else did, and when
        line += _later_acks(later, voice)
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
    if remark and not compact:
        line += voice.text("board.party.remark", remark=_cut(remark, REMARK_CHARS))
    return line + ("" if compact else render_party_escalation(incident, member, voice))


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


def _missing_names(missing: tuple[ChainParty, ...], voice: Voice, compact: bool) -> str:
    if not compact or len(missing) <= MISSING_NAMED_COMPACT:
        return voice.join(p.party.name for p in missing)
    named = voice.join(p.party.name for p in missing[:MISSING_NAMED_COMPACT])
    return named + voice.text("board.party.also_more", count=len(missing) - MISSING_NAMED_COMPACT)


def _closing_lines(incident: Incident, voice: Voice, *, compact: bool = False) -> str:
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
                voice.text("board.missing", parties=_missing_names(missing, voice, compact))
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
    top = voice.lines(
        header,
        headline,
        _state_lines(incident, voice, now, alarm_command),
        render_board_situation(incident, voice, situation_command),
    )
    members = incident.chain.parties if incident.chain is not None else ()

    def board(lines: list[str], compact: bool = False) -> str:
        closing = _closing_lines(incident, voice, compact=compact)
        return "\n\n".join(p for p in (top, "\n".join(lines), closing) if p)

    body = board([_party_line(incident, p, voice) for p in members])
    if text_edit_bytes(body) <= BOARD_BUDGET_BYTES:
        return body
    lines = [_party_line(incident, p, voice, compact=True) for p in members]
    body = board(lines, compact=True)
    # Still too big: drop lines, acknowledged parties first (the eye is on the missing ones),
    # and say how many are not shown.
    order = sorted(range(len(members)), key=lambda i: incident.first_ack(members[i].id) is None)
    dropped: set[int] = set()
    while text_edit_bytes(body) > BOARD_BUDGET_BYTES and len(dropped) < len(members):
        step = max(1, (len(members) - len(dropped)) // 8)
        dropped.update(order[len(dropped) : len(dropped) + step])
        kept = [line for i, line in enumerate(lines) if i not in dropped]
        body = board([*kept, voice.text("board.more_parties", count=len(dropped))], compact=True)
    return body
