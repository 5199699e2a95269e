"""Building outcomes: replies, rejections and boards.

The helpers here take a ready ``body``; every caller passes a catalogue text or a renderer's
result, never text of its own (the i18n tests check every call site).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain import Incident
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.declaration import Call
from commands.outcome import AuditEntry, BoardPost, Delivery, Outcome, Post
from commands.render import Voice, render_board

if TYPE_CHECKING:
    from commands.registry import Registry

HANDLED = "✅"
NOT_HANDLED = "❌"


def home_server(ctx: CommandContext) -> str:
    return ctx.config.matrix.user_id.partition(":")[2]


def voice_for(call: Call, ctx: CommandContext) -> Voice:
    """How to speak in the room the command came from."""
    return Voice(call.catalog, call.lang, home_server(ctx))


def voice_in(call: Call, ctx: CommandContext, lang: str) -> Voice:
    """How to speak in another room (an alarmed party's, the coordination room)."""
    return Voice(call.catalog, lang, home_server(ctx))


def reply(call: Call, body: str, *, key: str = "reply") -> Post:
    return Post(
        room_id=call.room_id, body=body, key=key, in_reply_to=call.reply_to or call.event_id
    )


def answered(call: Call, body: str, *audit: AuditEntry, reaction: str | None = HANDLED) -> Outcome:
    return Outcome(posts=[reply(call, body)], audit=list(audit), reaction=reaction)


def call_detail(call: Call, **extra: Any) -> dict[str, Any]:
    """Audit detail every entry of a command run carries: what, who, where."""
    return {
        "command": call.declaration.key,
        "room": call.room_id,
        "sender": call.sender,
        **extra,
    }


def rejected(
    call: Call, body: str, reason: str, subject: str | None = None, **extra: Any
) -> Outcome:
    """The command was understood and allowed but cannot be done (already alarmed, unknown
    incident, already stood down...): answer why, and audit the decision."""
    entry = AuditEntry("command.rejected", subject, call_detail(call, reason=reason, **extra))
    return answered(call, body, entry, reaction=NOT_HANDLED)


def refused(
    call: Call, body: str, reason: str, subject: str | None = None, **extra: Any
) -> Outcome:
    """The sender may not do this: a polite answer and an audit entry, never silence."""
    entry = AuditEntry("command.refused", subject, call_detail(call, reason=reason, **extra))
    return answered(call, body, entry, reaction=NOT_HANDLED)


def board_rooms(incident: Incident, ctx: CommandContext) -> list[str]:
    """The initiating region's room and the coordination room, if there is one."""
    rooms: list[str] = []
    initiator = incident.chain.initiator.room if incident.chain is not None else None
    if initiator is None:
        region = ctx.config.region(incident.region_id)
        initiator = region.room if region is not None else None
    if initiator:
        rooms.append(initiator)
    coordination = ctx.config.healthcare_region.coordination_room
    if coordination and coordination not in rooms:
        rooms.append(coordination)
    return rooms


def boards(call: Call, ctx: CommandContext, incident: Incident) -> list[BoardPost]:
    """The incident's board for every room that shows it, each in that room's language."""
    return incident_boards(ctx, incident, call.catalog, call.registry)


def incident_boards(
    ctx: CommandContext, incident: Incident, catalog: Catalog, registry: Registry
) -> list[BoardPost]:
    """:func:`boards` for a decision that no command call made (a due time firing)."""
    now = ctx.clock.now()
    posts = []
    for room in board_rooms(incident, ctx):
        lang = ctx.config.room_language(room)
        posts.append(
            BoardPost(
                incident_id=incident.id,
                room_id=room,
                body=render_board(
                    incident,
                    Voice(catalog, lang, home_server(ctx)),
                    now=now,
                    alarm_command=registry.display("alarm", lang),
                    situation_command=registry.display("sitrep", lang),
                ),
            )
        )
    return posts


def chain_completed(
    ctx: CommandContext, incident: Incident, catalog: Catalog, at: datetime
) -> Outcome:
    """The last party has acknowledged (at ``at``): audited, and the initiating room is told
    how long the chain took. Whatever channel the last acknowledgement came by."""
    assert incident.chain is not None
    outcome = Outcome(
        audit=[
            AuditEntry("chain.completed", incident.id, {"parties": list(incident.chain.party_ids)})
        ]
    )
    initiator = incident.chain.initiator
    if initiator.room and incident.alarmed_at is not None:
        notice = Voice(catalog, ctx.config.room_language(initiator.room), home_server(ctx))
        outcome.posts.append(
            Post(
                room_id=initiator.room,
                body=notice.text(
                    "chain.completed",
                    incident=incident.id,
                    count=len(incident.chain.parties),
                    elapsed=notice.duration(at - incident.alarmed_at),
                ),
                key="chain-completed",
                purpose="notice",
                incident_id=incident.id,
            )
        )
    return outcome


def to_coordinators(
    ctx: CommandContext,
    body: str,
    *,
    key: str,
    subject: str | None = None,
    incident_id: str | None = None,
) -> Outcome:
    """``body`` in the coordination room and to the coordinators' e-mail addresses."""
    outcome = Outcome()
    room = ctx.config.healthcare_region.coordination_room
    if room:
        outcome.posts.append(
            Post(room_id=room, body=body, key=key, purpose="notice", incident_id=incident_id)
        )
    if "email" in ctx.config.bridge_channels():
        for i, address in enumerate(ctx.config.exercises.email):
            outcome.deliveries.append(
                Delivery(
                    channel="email",
                    destination=address,
                    body=body,
                    key=f"{key}-email:{i}",
                    incident_id=incident_id,
                    purpose="notice",
                )
            )
    return outcome
