"""!avlarma: end the incident and tell everyone who was alarmed."""

from __future__ import annotations

from bot.domain import AlreadyStoodDown
from commands.context import CommandContext
from commands.declaration import Call
from commands.lookup import incident_of_region
from commands.outcome import AuditEntry, Outcome, Post
from commands.render import render_stand_down
from commands.replies import (
    HANDLED,
    boards,
    call_detail,
    rejected,
    reply,
    voice_for,
    voice_in,
)


async def execute_stand_down(call: Call, ctx: CommandContext) -> Outcome:
    region = ctx.config.party_for_room(call.room_id)
    assert region is not None  # the declaration only allows a region's room
    voice = voice_for(call, ctx)
    found = await incident_of_region(call, ctx, region, voice)
    if isinstance(found, Outcome):
        return found
    incident = found
    try:
        stood_down = incident.stand_down(
            by=call.sender, clock=ctx.clock, remark=call.args.get("remark") or ""
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
    for member in stood_down.parties:
        party = member.party
        if party.room is None:
            continue
        posts.append(
            Post(
                room_id=party.room,
                body=render_stand_down(incident, voice_in(call, ctx, party.language)),
                key=f"standdown:{party.id}",
                purpose="standdown",
                mentions=party.duty_officers,
                incident_id=incident.id,
            )
        )
    posts.append(
        reply(
            call,
            voice.text("standdown.done", incident=incident.id, count=len(stood_down.parties))
            if stood_down.parties
            else voice.text("standdown.done_unalarmed", incident=incident.id),
        )
    )
    audit = AuditEntry(
        "incident.stood_down",
        incident.id,
        call_detail(
            call,
            remark=stood_down.remark,
            parties=[p.id for p in stood_down.parties],
            missing=[p.id for p in incident.missing()],
            cancelled_dues=[d.key for d in stood_down.cancelled],
        ),
    )
    return Outcome(
        posts=posts,
        boards=boards(call, ctx, incident) if incident.chain is not None else [],
        audit=[audit],
        reaction=HANDLED,
    )
