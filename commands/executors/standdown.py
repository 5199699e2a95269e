"""!avlarma: end the incident and tell everyone who was alarmed."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain import AlreadyStoodDown, ChainParty, Incident
from bot.domain.exercise import EndReason
from commands.context import CommandContext
from commands.declaration import Call
from commands.executors.alarm import started_room
from commands.exercise.ending import end_exercise
from commands.lookup import incident_of_region
from commands.outcome import AuditEntry, Delivery, DeliverySummary, Outcome, Post, to_each
from commands.render import render_stand_down
from commands.render.bridges import render_stand_down_sms
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
                party_id=party.id,
            )
        )
    deliveries = stand_down_deliveries(incident, stood_down.parties, call, ctx)
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
    outcome = Outcome(
        posts=posts,
        boards=boards(call, ctx, incident) if incident.chain is not None else [],
        audit=[audit],
        deliveries=deliveries,
        reaction=HANDLED,
        summaries=[DeliverySummary(incident.id, "standdown", started_room(incident, call))]
        if stood_down.parties
        else [],
    )
    if incident.is_exercise:
        # An exercise stood down by its region's duty officer ends, and is reported.
        outcome.extend(
            await end_exercise(
                ctx,
                incident,
                EndReason.STOOD_DOWN,
                call.sender,
                catalog=call.catalog,
                registry=call.registry,
                with_boards=False,
            )
        )
    return outcome


def stand_down_deliveries(
    incident: Incident, members: Sequence[ChainParty], call: Call, ctx: CommandContext
) -> list[Delivery]:
    """The stand-down on every channel the alarm went out on: whoever was woken by SMS or
    e-mail must hear that it is over the same way. Pending alarm SMS and e-mail are not sent
    any more (the channel outbox cancels them)."""
    channels = ctx.config.bridge_channels()
    out: list[Delivery] = []
    for member in members:
        party = member.party
        party_voice = voice_in(call, ctx, party.language)
        if "sms" in channels and party.sms:
            out += to_each(
                party,
                "sms",
                render_stand_down_sms(incident, party_voice),
                key=lambda at, p=party.id: f"standdown-sms:{p}:{at}",
                incident_id=incident.id,
                purpose="standdown",
            )
        if "email" in channels and party.email:
            out += to_each(
                party,
                "email",
                render_stand_down(incident, party_voice),
                key=lambda at, p=party.id: f"standdown-email:{p}:{at}",
                incident_id=incident.id,
                purpose="standdown",
            )
    return out
