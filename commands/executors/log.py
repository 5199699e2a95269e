"""!logg: a timed entry in the incident's log, by anyone involved, so that the evaluation
starts during the incident (decisions, observations, lessons) instead of afterwards."""

from __future__ import annotations

from bot.config import Config
from bot.domain import Incident
from commands.access import is_coordinator
from commands.context import CommandContext
from commands.declaration import Call
from commands.lookup import incident_by_number
from commands.outcome import AuditEntry, Outcome
from commands.render import Voice
from commands.replies import answered, call_detail, refused, rejected, voice_for


def _concerns(config: Config, incident: Incident, user_id: str) -> bool:
    """A coordinator writes in any incident's log; anyone else in those of their own
    parties: the incident's region, or a party its chain alarms."""
    if is_coordinator(config, user_id):
        return True
    involved = {incident.region_id}
    if incident.chain is not None:
        involved.update(incident.chain.party_ids)
    return any(
        user_id in p.duty_officers or user_id in p.members
        for p in config.all_parties()
        if p.id in involved
    )


async def _candidates(call: Call, ctx: CommandContext) -> list[Incident]:
    """Open incidents this room and person can mean: in a party's room those of the party
    (its own and those it is alarmed for), elsewhere every open one the person is part of."""
    party = ctx.config.party_for_room(call.room_id)
    if party is None:
        found = await ctx.incidents.open_incidents()
    else:
        by_id = {i.id: i for i in await ctx.incidents.open_for_region(party.id)}
        by_id.update({i.id: i for i in await ctx.incidents.alarmed_for_party(party.id)})
        found = sorted(by_id.values(), key=lambda i: i.number)
    return [i for i in found if _concerns(ctx.config, i, call.sender)]


async def _incident(call: Call, ctx: CommandContext, voice: Voice) -> Incident | Outcome:
    number = call.args.get("incident")
    if number is not None:
        found = await incident_by_number(call, ctx, number, voice)
        if isinstance(found, Outcome) or _concerns(ctx.config, found, call.sender):
            return found
        return refused(
            call,
            voice.text("logbook.not_concerned", incident=found.id),
            "incident_not_concerned",
            found.id,
        )
    candidates = await _candidates(call, ctx)
    if not candidates:
        # Lessons come after the stand-down too: the room's newest incident, if it is over.
        party = ctx.config.party_for_room(call.room_id)
        region = ctx.config.region(party.id) if party is not None else None
        latest = await ctx.incidents.latest(region.id if region is not None else None)
        if latest is not None and _concerns(ctx.config, latest, call.sender):
            return latest
        return rejected(call, voice.text("logbook.nothing_open"), "no_open_incident")
    if len(candidates) > 1:
        ids = [i.id for i in candidates]
        return rejected(
            call,
            voice.text(
                "logbook.ambiguous",
                incidents=voice.join(ids),
                command=call.command("log"),
                example=ids[-1],
            ),
            "ambiguous_incident",
            open=ids,
        )
    return candidates[0]


async def execute_log(call: Call, ctx: CommandContext) -> Outcome:
    voice = voice_for(call, ctx)
    found = await _incident(call, ctx, voice)
    if isinstance(found, Outcome):
        return found
    incident = found
    party = ctx.config.party_for_room(call.room_id)
    entry = incident.add_log_entry(
        call.args["text"],
        by=call.sender,
        clock=ctx.clock,
        party_id=party.id if party is not None else None,
    )
    await ctx.incidents.save(incident)
    audit = AuditEntry(
        "log.entry",
        incident.id,
        call_detail(
            call,
            number=entry.number,
            at=entry.at.isoformat(),
            text=entry.text,
            party=entry.party_id,
        ),
    )
    body = voice.text(
        "logbook.recorded" if incident.is_open else "logbook.recorded_closed",
        incident=incident.id,
        number=entry.number,
        time=voice.time(entry.at),
    )
    return answered(call, body, audit)
