"""A channel did not reach a party: move the party on to its next channel.

The engine calls :func:`fall_back` when an alarm failed for good, was reported not delivered,
or was not reported delivered within its deadline (:mod:`bot.engine.fallback`), in the
transaction that learnt of it. The incident decides whether anything is left to do (not for a party
that acknowledged meanwhile, nor twice for the same party and channel); this module turns the
decision into messages: the alarm by e-mail after a failed SMS, the party's backup contacts
mentioned in its room after a failed e-mail, and the updated boards.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import (
    NOTHING_LEFT,
    ROOM,
    ChainParty,
    Incident,
    IncidentState,
    next_channel,
    other_channels,
)
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import AuditEntry, Outcome, Post, to_each
from commands.registry import build_registry
from commands.render import Voice
from commands.render.bridges import render_alarm_email
from commands.replies import home_server, incident_boards


def _moot(incident: Incident | None, party_id: str) -> str | None:
    if incident is None:
        return "unknown_incident"
    if incident.state is IncidentState.STOOD_DOWN:
        return "stood_down"
    if incident.chain is None or incident.chain.party(party_id) is None:
        return "not_in_chain"
    if incident.first_ack(party_id) is not None:
        return "acknowledged"
    return None


async def fall_back(
    ctx: CommandContext,
    *,
    incident_id: str,
    party_id: str,
    failed_channel: str,
    reason: str,
    kind: str = "",
) -> Outcome:
    """Record that ``failed_channel`` did not reach ``party_id`` and send the alarm on the
    party's next channel, once per party and channel."""
    now = ctx.clock.now()
    incident = await ctx.incidents.get(incident_id)
    detail = {"party": party_id, "channel": failed_channel, "reason": reason}
    why_not = _moot(incident, party_id)
    if why_not is not None:
        return Outcome(
            audit=[AuditEntry("delivery.fallback.moot", incident_id, {**detail, "why": why_not})]
        )
    assert incident is not None
    assert incident.chain is not None
    member = incident.chain.party(party_id)
    assert member is not None
    party = member.party
    available: set[str] = set()
    if party.email and "email" in ctx.config.bridge_channels():
        available.add("email")
    if party.backup_contacts and party.room is not None:
        available.add("backup")
    if failed_channel == ROOM:
        return await _room_unreachable(ctx, incident, member, kind or "refused", detail, now)
    target = next_channel(failed_channel, available)
    problem = incident.record_delivery_problem(party_id, failed_channel, target, now, reason)
    if problem is None:  # another number or address of this channel failed first
        return Outcome(
            audit=[AuditEntry("delivery.fallback.moot", incident.id, {**detail, "why": "done"})]
        )
    await ctx.incidents.save(incident)
    catalog = ctx.catalog if ctx.catalog is not None else Catalog.load()
    registry = build_registry()
    voice = Voice(catalog, party.language, home_server(ctx))
    ack_command = registry.display("ack", party.language)
    outcome = Outcome(
        audit=[AuditEntry("delivery.fallback", incident.id, {**detail, "to": target})]
    )
    if target == "email":
        body = render_alarm_email(
            incident,
            member,
            voice,
            ack_command=ack_command,
            with_link=ctx.config.links_enabled(),
            failed_channel=failed_channel,
        )
        outcome.deliveries += to_each(
            party,
            "email",
            body,
            key=lambda at: f"fallback-email:{party.id}:{at}",
            incident_id=incident.id,
            purpose="alarm",
        )
    elif target == "backup" and party.room is not None:
        outcome.posts.append(
            Post(
                room_id=party.room,
                body=voice.text(
                    "fallback.backup",
                    party=party.name,
                    incident=incident.id,
                    channel=voice.channel_name(failed_channel),
                    people=voice.people(party.backup_contacts),
                    command=ack_command,
                ),
                key=f"fallback-backup:{party.id}",
                purpose="reminder",
                mentions=party.backup_contacts,
                incident_id=incident.id,
                party_id=party.id,
            )
        )
    else:
        assert target == NOTHING_LEFT
    outcome.boards.extend(incident_boards(ctx, incident, catalog, registry))
    return outcome


async def _room_unreachable(
    ctx: CommandContext,
    incident: Incident,
    member: ChainParty,
    kind: str,
    detail: dict[str, str],
    now: datetime,
) -> Outcome:
    """A party's room could not be reached: the alarm went on its other channels at once
    (no new message is needed there), so the board and the initiating duty officer are told
    the truth, at once, not after the escalation delay."""
    party = member.party
    channels = ctx.config.bridge_channels()
    available = {c for c in ("sms", "email") if c in channels and getattr(party, c)}
    target = other_channels(available)
    problem = incident.record_delivery_problem(party.id, ROOM, target, now, kind)
    if problem is None:
        return Outcome(
            audit=[AuditEntry("delivery.fallback.moot", incident.id, {**detail, "why": "done"})]
        )
    await ctx.incidents.save(incident)
    catalog = ctx.catalog if ctx.catalog is not None else Catalog.load()
    registry = build_registry()
    outcome = Outcome(
        audit=[
            AuditEntry("delivery.fallback", incident.id, {**detail, "to": target, "kind": kind})
        ]
    )
    initiator = incident.chain.initiator if incident.chain is not None else None
    if initiator is not None and initiator.room:
        voice = Voice(catalog, ctx.config.room_language(initiator.room), home_server(ctx))
        outcome.posts.append(
            Post(
                room_id=initiator.room,
                body=voice.text(
                    "fallback.room" if target != NOTHING_LEFT else "fallback.room.nothing",
                    party=party.name,
                    incident=incident.id,
                    reason=voice.room_reason(kind),
                    channels=voice.join(voice.channel_name(c) for c in target.split(",")),
                ),
                key=f"room-unreachable:{party.id}",
                purpose="notice",
                mentions=initiator.duty_officers,
                incident_id=incident.id,
            )
        )
    outcome.boards.extend(incident_boards(ctx, incident, catalog, registry))
    return outcome
