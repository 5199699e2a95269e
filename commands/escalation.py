"""A due time fires: the engine's way into reminders and escalation.

The engine reads pending due-time rows (:func:`storage.incidents.due_now`) and calls
:func:`fire_due` for each, inside one write transaction per row, and writes the outcome with
``source_id = f"due:{key}"``. Like a command, it decides and never sends: the incident says
whether the due time still matters (an acknowledgement or a stand-down recorded first makes it
moot, so no reminder ever follows an acknowledgement), records it as fired with how late it is,
and makes the next step due; this module turns that into posts, deliveries, audit entries and
board updates.
"""

from __future__ import annotations

from typing import Any

from bot.domain import Action, ChainParty, FiredStep, Incident
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import AuditEntry, Delivery, Outcome, Post, to_each
from commands.registry import Registry, build_registry
from commands.render import Voice
from commands.render.escalation import (
    render_backup_notice,
    render_email,
    render_initiator_notice,
    render_pledge_reminder,
    render_reminder,
    render_resent_alarm,
    render_sms,
)
from commands.replies import home_server, incident_boards

MOOT = "moot"  # status of a due-time row that came when there was nothing left to do


def _parse_key(key: str) -> dict[str, Any]:
    parts = key.split(":")
    if len(parts) != 5:
        return {}
    return {"party": parts[1], "kind": parts[2]}


async def fire_due(key: str, incident_id: str, ctx: CommandContext) -> Outcome:
    """Fire the due time ``key`` of incident ``incident_id`` as of ``ctx.clock.now()``.

    - due and still pending: it fires (its row becomes ``fired``, with how late), the next
      step becomes due (a new pending row), and the outcome carries the reminder or escalation,
      an ``escalation.fired`` audit entry and the updated boards;
    - no longer pending (acknowledged, stood down, fired before, unknown incident): its row
      becomes ``moot`` if it was still pending, and the outcome is only an ``escalation.moot``
      audit entry;
    - pending but not due yet (a trigger that ran early): nothing happens and the row stays
      pending, with its due time as the incident has it; the outcome is empty.
    """
    now = ctx.clock.now()
    incident = await ctx.incidents.get(incident_id)
    if incident is None:
        was_pending = await ctx.incidents.settle_due(key, MOOT, now)
        return Outcome(
            audit=[
                AuditEntry(
                    "escalation.moot",
                    incident_id,
                    {
                        "key": key,
                        **_parse_key(key),
                        "reason": "unknown_incident",
                        "was_pending": was_pending,
                    },
                )
            ]
        )
    pending = incident.pending_due(key)
    if pending is not None and pending.due_at > now:
        await ctx.incidents.save(incident)  # the row keeps (or gets back) the incident's time
        return Outcome()
    fired = incident.fire_due(key, now)
    if fired is None:
        was_pending = await ctx.incidents.settle_due(key, MOOT, now)
        await ctx.incidents.save(incident)
        return Outcome(
            audit=[
                AuditEntry(
                    "escalation.moot",
                    incident.id,
                    {
                        "key": key,
                        **_parse_key(key),
                        "reason": incident.why_moot(key),
                        "was_pending": was_pending,
                    },
                )
            ]
        )
    await ctx.incidents.save(incident)
    assert incident.chain is not None
    member = incident.chain.party(fired.party_id)
    assert member is not None
    catalog = ctx.catalog if ctx.catalog is not None else Catalog.load()
    registry = build_registry()
    outcome = _decide(incident, member, fired, ctx, catalog, registry)
    outcome.boards.extend(incident_boards(ctx, incident, catalog, registry))
    return outcome


def _detail(fired: FiredStep, **extra: Any) -> dict[str, Any]:
    return {
        "key": fired.key,
        "party": fired.party_id,
        "kind": fired.kind,
        "step": fired.step,
        "repeat": fired.repeat,
        "action": fired.action.value,
        "channels": list(fired.channels),
        "due_at": fired.due_at.isoformat(),
        "fired_at": fired.fired_at.isoformat(),
        "late_by_s": fired.late_by.total_seconds(),
        "late": fired.is_late,
        **extra,
    }


def _decide(
    incident: Incident,
    member: ChainParty,
    fired: FiredStep,
    ctx: CommandContext,
    catalog: Catalog,
    registry: Registry,
) -> Outcome:
    party = member.party
    server = home_server(ctx)
    voice = Voice(catalog, party.language, server)
    ack_command = registry.display("ack", party.language)
    key = fired.key
    posts: list[Post] = []
    deliveries: list[Delivery] = []
    skipped: list[str] = []

    room = party.room
    # Actions in the party's own room need that room (a party reached on other channels only
    # has none): without it they are recorded as skipped.
    in_room = fired.action in (Action.REMIND, Action.NOTIFY_BACKUP, Action.PLEDGE_REMINDER) or (
        fired.action is Action.SEND and "room" in fired.channels
    )
    if in_room and room is None:
        skipped.append("room")
    if fired.action is Action.REMIND and room is not None:
        posts.append(
            Post(
                room_id=room,
                body=render_reminder(incident, member, fired, voice, ack_command=ack_command),
                key=f"reminder:{key}",
                purpose="reminder",
                mentions=party.duty_officers,
                incident_id=incident.id,
            )
        )
    elif fired.action is Action.NOTIFY_BACKUP and room is not None:
        if party.backup_contacts:
            posts.append(
                Post(
                    room_id=room,
                    body=render_backup_notice(
                        incident, member, fired, voice, ack_command=ack_command
                    ),
                    key=f"backup:{key}",
                    purpose="reminder",
                    mentions=party.backup_contacts,
                    incident_id=incident.id,
                )
            )
        else:
            skipped.append("backup_contacts")
    elif fired.action is Action.PLEDGE_REMINDER and room is not None:
        posts.append(
            Post(
                room_id=room,
                body=render_pledge_reminder(
                    incident, member, fired, voice, ack_command=ack_command
                ),
                key=f"pledge:{key}",
                purpose="notice",
                mentions=party.duty_officers,
                incident_id=incident.id,
            )
        )
    elif fired.action is Action.NOTIFY_INITIATOR:
        initiator = incident.chain.initiator if incident.chain is not None else None
        if initiator is not None and initiator.room:
            notice = Voice(catalog, ctx.config.room_language(initiator.room), server)
            posts.append(
                Post(
                    room_id=initiator.room,
                    body=render_initiator_notice(incident, member, fired, notice),
                    key=f"initiator:{key}",
                    purpose="notice",
                    mentions=initiator.duty_officers,
                    incident_id=incident.id,
                )
            )
        else:
            skipped.append("initiator")
    elif fired.action is Action.SEND:
        if "room" in fired.channels and room is not None:
            posts.append(
                Post(
                    room_id=room,
                    body=render_resent_alarm(
                        incident, member, fired, voice, ack_command=ack_command
                    ),
                    key=f"alarm-again:{key}",
                    purpose="reminder",
                    mentions=party.duty_officers,
                    incident_id=incident.id,
                )
            )
        channels = ctx.config.bridge_channels()
        if "sms" in fired.channels:
            sms = render_sms(incident, member, fired, voice)
            if "sms" in channels:
                deliveries += to_each(
                    party,
                    "sms",
                    sms,
                    key=lambda at: f"sms:{at}:{key}",
                    incident_id=incident.id,
                    purpose="escalation",
                )
            if not party.sms or "sms" not in channels:
                skipped.append("sms")
        if "email" in fired.channels:
            email = render_email(
                incident,
                member,
                fired,
                voice,
                ack_command=ack_command,
                with_link=ctx.config.links_enabled(),
            )
            if "email" in channels:
                deliveries += to_each(
                    party,
                    "email",
                    email,
                    key=lambda at: f"email:{at}:{key}",
                    incident_id=incident.id,
                    purpose="escalation",
                )
            if not party.email or "email" not in channels:
                skipped.append("email")
    following = incident.next_due(party.id)
    detail = _detail(
        fired,
        rooms=[p.room_id for p in posts],
        deliveries=[{"channel": d.channel, "destination": d.destination} for d in deliveries],
        skipped=skipped,
        next_key=None if following is None else following.key,
        next_due_at=None if following is None else following.due_at.isoformat(),
    )
    return Outcome(
        posts=posts,
        deliveries=deliveries,
        audit=[AuditEntry("escalation.fired", incident.id, detail)],
    )
