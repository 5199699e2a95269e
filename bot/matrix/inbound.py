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


def message_payload(event: RoomMessageText) -> dict[str, Any]:
    """What a command needs of a text message, in the forms Element sends:

    - an edit (``m.relates_to.rel_type = m.replace``): the new text from ``m.new_content``
      (the outer body is ``* …``), and which message it edits (``edit_of``);
    - a reply (``m.in_reply_to``): the text without the reply fallback (``> <@user> quoted``
      lines and the blank line after them, which older clients put first);
    - a thread message (``rel_type = m.thread``): the thread's root (``thread_root``), so that
      the answer goes into the thread.
    """
    content = event.source.get("content") if isinstance(event.source, dict) else None
    content = content if isinstance(content, dict) else {}
    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, dict) else {}
    body = event.body
    payload: dict[str, Any] = {}
    if relates.get("rel_type") == "m.replace":
        new_content = content.get("m.new_content")
        if isinstance(new_content, dict) and isinstance(new_content.get("body"), str):
            body = new_content["body"]
        elif body.startswith("* "):
            body = body[2:]
        payload["edit_of"] = str(relates.get("event_id") or "")
    elif relates.get("rel_type") == "m.thread" and isinstance(relates.get("event_id"), str):
        payload["thread_root"] = relates["event_id"]
    if relates.get("m.in_reply_to") is not None:
        body = strip_reply_fallback(body)
    payload["body"] = body
    return payload


def strip_reply_fallback(body: str) -> str:
    """A reply's own text: the leading ``> `` lines of the fallback and the blank line after
    them removed (the Matrix spec's rule for stripping reply fallbacks). A body that is all
    quote is left as it is."""
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index == 0 or index == len(lines):
        return body
    if lines[index].strip() == "":
        index += 1
    return "\n".join(lines[index:])


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
            payload={"decrypted": bool(event.decrypted), **message_payload(event)},
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
