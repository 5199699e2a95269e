"""!larma: start the alarm chain of an incident, once."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain import AlreadyAlarmed, AlreadyStoodDown, ChainParty, Incident
from commands.context import CommandContext
from commands.declaration import Call
from commands.lookup import incident_of_region
from commands.outcome import AuditEntry, Delivery, DeliverySummary, Outcome, Post, to_each
from commands.parties import chain_for
from commands.render import render_alarm, render_chain_started
from commands.render.bridges import render_alarm_email, render_alarm_sms
from commands.replies import (
    HANDLED,
    boards,
    call_detail,
    rejected,
    reply,
    voice_for,
    voice_in,
)
from commands.situation import situation_outcome


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
        party_voice = voice_in(call, ctx, party.language)
        posts.append(
            Post(
                room_id=party.room,
                body=render_alarm(
                    incident,
                    member,
                    party_voice,
                    ack_command=call.registry.display("ack", party.language),
                ),
                key=f"alarm:{party.id}",
                purpose="alarm",
                mentions=party.duty_officers,
                incident_id=incident.id,
                party_id=party.id,
                late_note=party_voice.text(
                    "alarm.late", incident=incident.id, time=party_voice.time(started.at)
                ),
            )
        )
    deliveries = alarm_deliveries(incident, started.parties, call, ctx)
    unreachable = {
        p.id: problem
        for p in started.parties
        if p.party.room is not None
        and (problem := ctx.room_problem(p.party.room) if ctx.room_problem else None)
    }
    # A situation report written before the alarm follows it to every party.
    situation = incident.situation
    carried = (
        situation_outcome(ctx, incident, situation, call.catalog, coordination=False)
        if situation is not None
        else None
    )
    counts = {c: sum(1 for d in deliveries if d.channel == c) for c in ("sms", "email")}
    posts.append(
        reply(
            call,
            render_chain_started(
                incident,
                started,
                voice,
                sms=counts["sms"],
                email=counts["email"],
                unreachable=unreachable,
            ),
        )
    )
    audit = [
        AuditEntry(
            "chain.started",
            incident.id,
            call_detail(
                call,
                parties=[p.id for p in started.parties],
                rooms={p.id: p.party.room for p in started.parties},
                deliveries=[{"channel": d.channel, "party": d.party_id} for d in deliveries],
                unreachable_rooms=unreachable,
                situation_version=situation.number if situation is not None else None,
            ),
        )
    ]
    if started.completed:
        audit.append(AuditEntry("chain.completed", incident.id, {"parties": []}))
    initiator_room = started_room(incident, call)
    outcome = Outcome(
        posts=posts,
        boards=boards(call, ctx, incident),
        audit=audit,
        deliveries=deliveries,
        reaction=HANDLED,
        summaries=[DeliverySummary(incident.id, "alarm", initiator_room)]
        if started.parties
        else [],
    )
    if carried is not None:
        outcome.posts.extend(carried.posts)
        outcome.deliveries.extend(carried.deliveries)
    return outcome


def started_room(incident: Incident, call: Call) -> str:
    """Where the delivery report goes: the initiating region's room (where ``!larma`` was
    typed)."""
    initiator = incident.chain.initiator.room if incident.chain is not None else None
    return initiator or call.room_id


def alarm_deliveries(
    incident: Incident, members: Sequence[ChainParty], call: Call, ctx: CommandContext
) -> list[Delivery]:
    """The alarm on every other channel a party has: no single channel is trusted, so each
    number and function address gets it at once, with its own reply code."""
    channels = ctx.config.bridge_channels()
    out: list[Delivery] = []
    for member in members:
        party = member.party
        voice = voice_in(call, ctx, party.language)
        if "sms" in channels and party.sms:
            out += to_each(
                party,
                "sms",
                render_alarm_sms(incident, member, voice),
                key=lambda at, p=party.id: f"alarm-sms:{p}:{at}",
                incident_id=incident.id,
                purpose="alarm",
            )
        if "email" in channels and party.email:
            mail = render_alarm_email(
                incident,
                member,
                voice,
                ack_command=call.registry.display("ack", party.language),
                with_link=ctx.config.links_enabled(),
            )
            out += to_each(
                party,
                "email",
                mail,
                key=lambda at, p=party.id: f"alarm-email:{p}:{at}",
                incident_id=incident.id,
                purpose="alarm",
            )
    return out
