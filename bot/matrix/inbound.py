"""Turn one sync response into inbox rows. Pure: no I/O, never raises on odd events.

nio has already decrypted what it could by the time we look (``receive_response`` replaces
Megolm events in the timeline with decrypted ones); what is still a ``MegolmEvent`` is kept as
"undecryptable" with its raw source, to be retried when the room key arrives.

History the bot never saw is not work: on the very first sync (no token) timelines are skipped,
and in a room the bot has just joined everything before its own join event is skipped
(DESIGN §5.11). Everything after a stored token is kept, so nothing that arrived while the bot
was down is lost.
"""

from __future__ import annotations

import logging
from typing import Any

from nio import (
    InviteMemberEvent,
    MegolmEvent,
    ReactionEvent,
    RoomMemberEvent,
    RoomMessageText,
    SyncResponse,
)

from storage.inbox import InboundEvent

log = logging.getLogger(__name__)


def events_from_sync(
    resp: SyncResponse, bot_user_id: str, *, first_sync: bool
) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    for room_id, info in resp.rooms.invite.items():
        inviter = _inviter(info.invite_state, bot_user_id)
        events.append(
            InboundEvent(
                event_id=f"invite:{room_id}:{resp.next_batch}",
                source="matrix",
                kind="invite",
                room_id=room_id,
                sender=inviter or "unknown",
                origin_ts=0,
                payload={},
            )
        )
    if first_sync:
        return events
    for room_id, info in resp.rooms.join.items():
        timeline = list(info.timeline.events)
        start = 0
        for index, event in enumerate(timeline):
            if (
                isinstance(event, RoomMemberEvent)
                and event.state_key == bot_user_id
                and event.membership == "join"
                and (event.prev_membership or "leave") != "join"
            ):
                start = index + 1  # we joined here: what came before is history
        for event in timeline[start:]:
            try:
                converted = _convert(event, room_id, bot_user_id)
            except Exception:  # a malformed event must never stop the sync (DESIGN §5.4)
                log.exception("skipping an event that could not be read in %s", room_id)
                continue
            if converted is not None:
                events.append(converted)
    return events


def _inviter(invite_state: list[Any], bot_user_id: str) -> str | None:
    for event in invite_state:
        if isinstance(event, InviteMemberEvent) and event.state_key == bot_user_id:
            return event.sender
    return None


def _convert(event: Any, room_id: str, bot_user_id: str) -> InboundEvent | None:
    sender = getattr(event, "sender", None)
    if sender is None or sender == bot_user_id:
        return None
    ts = int(getattr(event, "server_timestamp", 0) or 0)
    if isinstance(event, RoomMessageText):
        return InboundEvent(
            event_id=event.event_id,
            source="matrix",
            kind="message",
            room_id=room_id,
            sender=sender,
            origin_ts=ts,
            payload={"body": event.body, "decrypted": bool(event.decrypted)},
        )
    if isinstance(event, ReactionEvent):
        return InboundEvent(
            event_id=event.event_id,
            source="matrix",
            kind="reaction",
            room_id=room_id,
            sender=sender,
            origin_ts=ts,
            payload={"key": event.key, "reacts_to": event.reacts_to},
        )
    if isinstance(event, MegolmEvent):
        return InboundEvent(
            event_id=event.event_id,
            source="matrix",
            kind="undecryptable",
            room_id=room_id,
            sender=sender,
            origin_ts=ts,
            payload={"source": event.source, "session_id": event.session_id},
        )
    return None
