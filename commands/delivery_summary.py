"""The delivery summary: which parties an alarm (or a stand-down) reached on which channel.

The ``!larma`` and ``!avlarma`` answers can only say what is being sent; what reached whom is
known once the messages have gone out. The engine asks for this summary when every message of
the decision has gone out, failed or was cancelled, or at the latest at the Matrix deadline,
and hands it the state of each message as plain records. It says only what is true on each
channel: a room message *accepted by the homeserver*, an SMS *handed to the gateway* (and how
many were reported delivered to the handset), an e-mail *accepted by the mail server*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import ROOM_REASONS, Incident
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import AuditEntry, Outcome, Post
from commands.render import Voice
from commands.replies import home_server

SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"
PENDING = "pending"
SMS = "sms"
CHANNELS = ("room", SMS, "email")
_HEADERS = {"alarm": "summary.alarm.header", "standdown": "summary.standdown.header"}
_CHANNEL_LINES = {
    "room": "summary.channel.room",
    "sms": "summary.channel.sms",
    "email": "summary.channel.email",
}


@dataclass(frozen=True)
class MessageState:
    party_id: str
    channel: str  # room | sms | email
    state: str  # sent | failed | cancelled | pending
    reason: str = ""  # for a room that failed: one of ROOM_REASONS
    delivered: bool = False  # an SMS a delivery report said reached the handset


def summary_outcome(
    ctx: CommandContext,
    incident: Incident,
    *,
    purpose: str,
    room_id: str,
    states: Sequence[MessageState],
    final: bool,
    key: str = "",
) -> Outcome:
    """The summary as a notice in ``room_id`` (the initiating region's room) and an audit
    entry. ``final``: the deadline has come, what is not out yet is said to be so. ``key``: the
    due time that asked for it, named in the audit entry (every fired due time is audited)."""
    catalog = ctx.catalog if ctx.catalog is not None else Catalog.load()
    voice = Voice(catalog, ctx.config.room_language(room_id), home_server(ctx))
    failed = [s for s in states if s.state == FAILED]
    waiting = [s for s in states if s.state == PENDING]
    counts = {
        channel: {
            "sent": sum(1 for s in states if s.channel == channel and s.state == SENT),
            "total": sum(1 for s in states if s.channel == channel),
            "cancelled": sum(1 for s in states if s.channel == channel and s.state == CANCELLED),
        }
        for channel in CHANNELS
        if any(s.channel == channel for s in states)
    }
    return Outcome(
        posts=[
            Post(
                room_id=room_id,
                body=render_delivery_summary(incident, voice, purpose, states, final=final),
                key=f"summary:{purpose}",
                purpose="notice",
                incident_id=incident.id,
            )
        ],
        audit=[
            AuditEntry(
                "delivery.summary",
                incident.id,
                {
                    "purpose": purpose,
                    "counts": counts,
                    "failed": [[s.party_id, s.channel, s.reason] for s in failed],
                    "pending": [[s.party_id, s.channel] for s in waiting],
                    "final": final,
                    "key": key,
                },
            )
        ],
    )


def render_delivery_summary(
    incident: Incident,
    voice: Voice,
    purpose: str,
    states: Sequence[MessageState],
    *,
    final: bool,
) -> str:
    names = {p.id: p.party.name for p in incident.chain.parties} if incident.chain else {}
    lines = [voice.text(_HEADERS[purpose], incident=incident.id)]
    for channel in CHANNELS:
        mine = [s for s in states if s.channel == channel]
        if not mine:
            continue
        done = sum(1 for s in mine if s.state == SENT)
        cancelled = sum(1 for s in mine if s.state == CANCELLED)
        line = voice.text(_CHANNEL_LINES[channel], done=done, total=len(mine) - cancelled)
        if channel == SMS and done:
            line += voice.text("summary.sms.delivered", count=sum(s.delivered for s in mine))
        if cancelled:
            line += voice.text("summary.cancelled", count=cancelled)
        lines.append(line)
    failed = [s for s in states if s.state == FAILED]
    if failed:
        lines.append(
            voice.text("summary.failed", items=voice.join(_item(voice, names, s) for s in failed))
        )
    waiting = [s for s in states if s.state == PENDING]
    if waiting:
        lines.append(
            voice.text(
                "summary.pending" if final else "summary.pending.unreachable",
                items=voice.join(_item(voice, names, s) for s in waiting),
            )
        )
    if not failed and not waiting:
        lines.append(voice.text("summary.all"))
    return voice.lines(*lines)


def _item(voice: Voice, names: dict[str, str], state: MessageState) -> str:
    reason = voice.room_reason(state.reason) if state.reason in ROOM_REASONS else ""
    return voice.text(
        "summary.item",
        party=names.get(state.party_id, state.party_id),
        channel=voice.channel_name(state.channel),
        reason=f" ({reason})" if reason else "",
    )
