"""!larma: start the alarm chain of an incident, once."""

from __future__ import annotations

from bot.domain import AlreadyAlarmed, AlreadyStoodDown
from commands.context import CommandContext
from commands.declaration import Call
from commands.lookup import incident_of_region
from commands.outcome import AuditEntry, Outcome, Post
from commands.parties import chain_for
from commands.render import render_alarm, render_chain_started
from commands.replies import (
    HANDLED,
    boards,
    call_detail,
    rejected,
    reply,
    voice_for,
    voice_in,
)


async def execute_alarm(call: Call, ctx: CommandContext) -> Outcome:
    region = ctx.config.party_for_room(call.room_id)
    assert region is not None  # the declaration only allows a region's room
    voice = voice_for(call, ctx)
    found = await incident_of_region(call, ctx, region, voice)
    if isinstance(found, Outcome):
        return found
    incident = found
    try:
        started = incident.start_alarm(
            chain_for(ctx.config, region.id), by=call.sender, clock=ctx.clock
        )
    except AlreadyAlarmed as error:
        return rejected(
            call,
            voice.text(
                "alarm.already",
                incident=incident.id,
                time=voice.time(error.at) if error.at else "?",
                person=voice.person(error.by),
                command=call.command("status"),
            ),
            "already_alarmed",
            incident.id,
        )
    except AlreadyStoodDown as error:
        return rejected(
            call,
            voice.text(
                "incident.already_stood_down",
                incident=incident.id,
                time=voice.time(error.at) if error.at else "?",
                person=voice.person(error.by),
            ),
            "stood_down",
            incident.id,
        )
    await ctx.incidents.save(incident)

    posts = []
    for member in started.parties:
        party = member.party
        if party.room is None:
            continue  # reached on other channels only
        posts.append(
            Post(
                room_id=party.room,
                body=render_alarm(
                    incident,
                    member,
                    voice_in(call, ctx, party.language),
                    ack_command=call.registry.display("ack", party.language),
                ),
                key=f"alarm:{party.id}",
                purpose="alarm",
                mentions=party.duty_officers,
                incident_id=incident.id,
            )
        )
    posts.append(reply(call, render_chain_started(incident, started, voice)))
    audit = [
        AuditEntry(
            "chain.started",
            incident.id,
            call_detail(
                call,
                parties=[p.id for p in started.parties],
                rooms={p.id: p.party.room for p in started.parties},
            ),
        )
    ]
    if started.completed:
        audit.append(AuditEntry("chain.completed", incident.id, {"parties": []}))
    return Outcome(posts=posts, boards=boards(call, ctx, incident), audit=audit, reaction=HANDLED)
