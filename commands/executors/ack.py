"""!kvittera and ✅: a party acknowledges an alarm, optionally pledging transports."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain import (
    AlreadyStoodDown,
    Incident,
    IncidentState,
    NotAlarmed,
    NotInChain,
    Pledge,
)
from commands.context import CommandContext
from commands.declaration import Call
from commands.lookup import incident_by_number
from commands.outcome import AuditEntry, Outcome
from commands.render import Voice, render_ack_reply
from commands.replies import (
    HANDLED,
    answered,
    boards,
    call_detail,
    chain_completed,
    rejected,
    voice_for,
)


def _stood_down(call: Call, voice: Voice, incident: Incident) -> Outcome:
    return rejected(
        call,
        voice.text(
            "ack.stood_down",
            incident=incident.id,
            time=voice.time(incident.stood_down_at) if incident.stood_down_at else "?",
        ),
        "stood_down",
        incident.id,
    )


async def acknowledge(
    call: Call,
    ctx: CommandContext,
    incident: Incident,
    party_id: str,
    *,
    via: str,
    pledge: Pledge | None = None,
    open_ids: Sequence[str] = (),
) -> Outcome:
    """Record the acknowledgement and answer; shared by !kvittera and the ✅ reaction."""
    voice = voice_for(call, ctx)
    try:
        recorded = incident.acknowledge(
            party_id, by=call.sender, via=via, clock=ctx.clock, pledge=pledge, at=call.at
        )
    except AlreadyStoodDown:
        return _stood_down(call, voice, incident)
    except NotAlarmed:
        return rejected(
            call, voice.text("ack.not_alarmed", incident=incident.id), "not_alarmed", incident.id
        )
    except NotInChain:
        party = ctx.config.party(party_id)
        return rejected(
            call,
            voice.text(
                "ack.not_in_chain",
                party=party.name if party else party_id,
                incident=incident.id,
            ),
            "not_in_chain",
            incident.id,
        )
    await ctx.incidents.save(incident)
    assert incident.chain is not None
    member = incident.chain.party(party_id)
    assert member is not None
    body = render_ack_reply(
        incident,
        recorded,
        member,
        voice,
        ack_command=call.command("ack"),
        open_ids=open_ids,
    )
    ack = recorded.ack
    audit = [
        AuditEntry(
            "ack.recorded",
            incident.id,
            call_detail(
                call,
                party=party_id,
                by=ack.person,
                channel=ack.channel,
                at=ack.at.isoformat(),
                first=recorded.is_first,
                pledge=None if ack.pledge is None else ack.pledge.to_dict(),
                short_of_requirement=recorded.short_of_requirement,
                cancelled_dues=[d.key for d in recorded.cancelled],
                pledge_reminder_due=None
                if recorded.armed is None
                else recorded.armed.due_at.isoformat(),
            ),
        )
    ]
    outcome = answered(call, body, *audit)
    if recorded.chain_completed:
        outcome.extend(chain_completed(ctx, incident, call.catalog, ack.at))
    outcome.boards.extend(boards(call, ctx, incident))
    outcome.reaction = HANDLED
    return outcome


async def execute_ack(call: Call, ctx: CommandContext) -> Outcome:
    party = ctx.config.party_for_room(call.room_id)
    assert party is not None  # the declaration only allows a party's room
    voice = voice_for(call, ctx)
    count = call.args.get("count")
    remark = call.args.get("remark") or ""
    pledge = Pledge(count, remark) if count is not None or remark else None
    number = call.args.get("incident")
    open_ids: list[str] = []
    if number is not None:
        found = await incident_by_number(call, ctx, number, voice)
        if isinstance(found, Outcome):
            return found
        incident = found
    else:
        alarmed = await ctx.incidents.alarmed_for_party(party.id)
        if not alarmed:
            latest = await ctx.incidents.latest_for_party(party.id)
            if latest is not None and latest.state is IncidentState.STOOD_DOWN:
                return _stood_down(call, voice, latest)
            return rejected(
                call, voice.text("ack.nothing", party=party.name), "nothing_to_acknowledge"
            )
        incident = alarmed[-1]
        open_ids = [i.id for i in alarmed]
    return await acknowledge(
        call, ctx, incident, party.id, via="room", pledge=pledge, open_ids=open_ids
    )
