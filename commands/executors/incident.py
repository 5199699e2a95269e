"""!händelse: a duty officer confirms a särskild händelse at a readiness level."""

from __future__ import annotations

from bot.domain import Incident
from commands.context import CommandContext
from commands.declaration import Call
from commands.exercise.ending import live_wins
from commands.outcome import AuditEntry, Outcome
from commands.replies import answered, call_detail, voice_for


async def execute_incident(call: Call, ctx: CommandContext) -> Outcome:
    region = ctx.config.party_for_room(call.room_id)
    assert region is not None  # the declaration only allows a region's room
    voice = voice_for(call, ctx)
    incident = Incident.confirm(
        number=await ctx.incidents.next_number(),
        region_id=region.id,
        region_name=region.name,
        level=call.args["level"],
        headline=call.args["headline"],
        by=call.sender,
        clock=ctx.clock,
    )
    await ctx.incidents.save(incident)
    audit = AuditEntry(
        "incident.confirmed",
        incident.id,
        call_detail(
            call, region=region.id, level=incident.level.value, headline=incident.headline
        ),
    )
    body = voice.text(
        "incident.confirmed",
        incident=incident.id,
        level=voice.level(incident.level),
        headline=incident.headline,
        command=call.command("alarm"),
    )
    outcome = answered(call, body, audit)
    # A live incident always wins: a running exercise ends now (commands.exercise.ending).
    return outcome.extend(
        await live_wins(ctx, incident, catalog=call.catalog, registry=call.registry)
    )
