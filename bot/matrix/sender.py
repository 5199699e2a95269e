"""The one way a Matrix message leaves the bot (the send choke point).

Every outbound room message passes here, so the safety rules live in one place:

- refuse unless the crypto store is loaded and the room is encrypted (nio would otherwise send
  plaintext; DESIGN §5.1). The only exception is the fixed, content-free warning that tells
  people in an unencrypted room that the bot will not work there;
- messages are ``m.notice`` (bots do not trigger other bots), user text is escaped in the HTML
  form, mentions are explicit (``m.mentions``) and rendered as pills;
- the transaction id is derived from the outbox row's idempotency key, which was persisted
  before this call, so a retry after a crash is deduplicated by the homeserver;
- one lock per room keeps a room's messages in order;
- a 429 is counted and turned into a retry with the server's delay, never an endless nio loop;
- what the homeserver will never accept is a permanent :class:`Refused`, never a retry: a
  message over the event size limit is refused before it is sent (:mod:`bot.event_size`), and
  a 4xx answer (``413 M_TOO_LARGE``, ``403 M_FORBIDDEN`` after a kick, ``400 M_BAD_JSON``…)
  ends the row. Retrying those forever would hold up every later message of the room, alarms
  included. Only what may pass (429, 5xx, the network, the bot's own login) is retried.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from nio import AsyncClient, RoomSendResponse, UploadResponse
from nio.exceptions import OlmTrustError

from bot.contracts import Outgoing, Refused, Retry, SendResult, Sent
from bot.event_size import MAX_EVENT_BYTES, encrypted_event_bytes, plaintext_event_bytes

log = logging.getLogger(__name__)

PLAINTEXT_WARNING = "plaintext-warning"
#: Outbox purpose of a file (payload: filename, mimetype, body, data in base64).
ATTACHMENT = "attachment"


#: Answers that say the bot's own login is gone: no message can fix that, but the message is
#: fine, so it waits (and the operator is told by the log) instead of failing for good.
_LOGIN_ERRCODES = frozenset({"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"})
#: 4xx answers that may pass by themselves.
_TRANSIENT_HTTP = frozenset({408, 425, 429})


def classify_error(errcode: str | None, http_status: int | None) -> SendResult:
    """What a homeserver's error answer to a send means: retry later, or never.

    429 is a retry with the server's delay (handled by the caller, which counts it); the bot's
    login gone is a retry; any other 4xx is permanent (the same request gets the same answer);
    5xx and unknown answers are retries.
    """
    label = " ".join(str(p) for p in (errcode, http_status) if p) or "an error"
    if errcode in _LOGIN_ERRCODES or http_status == 401:
        return Retry(f"the bot's login was refused ({label})", 30.0)
    kind = "too_large" if errcode == "M_TOO_LARGE" or http_status == 413 else "refused"
    if http_status is not None and 400 <= http_status < 500 and http_status not in _TRANSIENT_HTTP:
        return Refused(f"homeserver refused it: {label}", kind=kind)
    if errcode in ("M_TOO_LARGE", "M_FORBIDDEN", "M_BAD_JSON", "M_NOT_JSON", "M_NOT_FOUND"):
        return Refused(f"homeserver refused it: {label}", kind=kind)
    return Retry(f"homeserver answered {label}")


@dataclass
class SendStats:
    sent: int = 0
    rate_limited: int = 0  # every 429 the bot met (DESIGN §5.12)
    refused: int = 0
    errors: int = 0
    per_room_429: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def transaction_id(idempotency_key: str) -> str:
    """A URL-safe, stable Matrix transaction id for an outbox row."""
    return "lk" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]


def render_html(body: str, mentions: tuple[str, ...] | list[str]) -> str:
    """Escape user text and turn mentioned user ids into pills."""
    escaped = html.escape(body, quote=False)
    for user_id in sorted(set(mentions), key=len, reverse=True):
        pill = f'<a href="https://matrix.to/#/{html.escape(user_id)}">{html.escape(user_id)}</a>'
        escaped = escaped.replace(html.escape(user_id, quote=False), pill)
    return escaped.replace("\n", "<br>")


def build_content(
    body: str,
    *,
    mentions: tuple[str, ...] | list[str] = (),
    in_reply_to: str | None = None,
    replaces: str | None = None,
    thread_root: str | None = None,
) -> dict[str, Any]:
    """The event content of a notice: plain and HTML body, mentions; an edit of an earlier
    message, a reply, or a reply inside a thread (``m.thread`` with the reply as its
    fallback, the way Element threads answers)."""
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": render_html(body, mentions),
        "m.mentions": {"user_ids": sorted(set(mentions))} if mentions else {},
    }
    if replaces is not None:
        new_content = dict(content)
        content = {
            "msgtype": "m.notice",
            "body": "* " + body,
            "format": "org.matrix.custom.html",
            "formatted_body": "* " + new_content["formatted_body"],
            "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": replaces},
            "m.mentions": {},  # an edit must not ping everyone again
        }
    elif thread_root is not None:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_root,
            "is_falling_back": in_reply_to is None,
            "m.in_reply_to": {"event_id": in_reply_to or thread_root},
        }
    elif in_reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": in_reply_to}}
    return content


def content_of(purpose: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The event content of an outbox row's payload. An edit's ``replaces`` (the event id of
    the message it edits) was looked up when the row was claimed."""
    if purpose == "reaction":
        return {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": payload["reacts_to"],
                "key": payload["reaction"],
            }
        }
    return build_content(
        payload["body"],
        mentions=payload.get("mentions") or (),
        in_reply_to=payload.get("in_reply_to"),
        replaces=payload.get("replaces"),
        thread_root=payload.get("thread_root"),
    )


class MatrixSender:
    """The Matrix channel's :class:`bot.contracts.Sender`."""

    channel = "matrix"

    def __init__(self, client: AsyncClient, *, trust_all_devices: bool) -> None:
        self._client = client
        self._trust_all_devices = trust_all_devices
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.stats = SendStats()

    async def send(self, message: Outgoing) -> SendResult:
        if message.purpose == ATTACHMENT:
            return await self._send_attachment(message)
        return await self.send_content(
            key=message.key,
            room_id=message.destination,
            content=content_of(message.purpose, message.payload),
            purpose=message.purpose,
            event_type="m.reaction" if message.purpose == "reaction" else "m.room.message",
        )

    def can_send_to(self, room_id: str) -> str | None:
        """None if a normal message may go to this room now, else why not."""
        if self._client.olm is None:
            return "crypto store not loaded"
        room = self._client.rooms.get(room_id)
        if room is None:
            return "room not joined or not synced yet"
        if not room.encrypted:
            return "room is not encrypted"
        return None

    async def _send_attachment(self, message: Outgoing) -> SendResult:
        """A file, encrypted on this side before it is uploaded (the homeserver stores only
        ciphertext), then an ``m.file``/``m.image`` event with its key inside the room's
        Megolm encryption. Only into an encrypted room: the upload waits for the same checks
        as any message. A retry uploads again (a new, unused copy) and sends with the same
        transaction id."""
        room_id = message.destination
        why_not = self.can_send_to(room_id)
        if why_not is not None:
            if why_not == "room is not encrypted":
                self.stats.refused += 1
                return Refused(why_not, kind="not_encrypted")
            joined = not why_not.startswith("room not joined")
            return Retry(why_not, unreachable=not joined, kind="" if joined else "not_joined")
        payload = message.payload
        data = base64.b64decode(payload["data"])
        try:
            uploaded, keys = await self._client.upload(
                lambda *_: data,
                content_type=payload["mimetype"],
                filename=payload["filename"],
                encrypt=True,
                filesize=len(data),
            )
        except (OSError, TimeoutError) as exc:
            return Retry(f"homeserver unreachable for the upload ({type(exc).__name__})")
        if not isinstance(uploaded, UploadResponse) or keys is None:
            status = getattr(uploaded, "status_code", None)
            transport = getattr(uploaded, "transport_response", None)
            return classify_error(
                status if isinstance(status, str) else None,
                getattr(transport, "status", None) if transport is not None else None,
            )
        mimetype = payload["mimetype"]
        content: dict[str, Any] = {
            "msgtype": "m.image" if mimetype.startswith("image/") else "m.file",
            "body": payload.get("body") or payload["filename"],
            "filename": payload["filename"],
            "info": {"mimetype": mimetype, "size": len(data)},
            "file": {**keys, "url": uploaded.content_uri},
            "m.mentions": {},
        }
        if payload.get("in_reply_to"):
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": payload["in_reply_to"]}}
        return await self.send_content(
            key=message.key, room_id=room_id, content=content, purpose=message.purpose
        )

    async def send_content(
        self,
        *,
        key: str,
        room_id: str,
        content: dict[str, Any],
        purpose: str,
        event_type: str = "m.room.message",
    ) -> SendResult:
        why_not = self.can_send_to(room_id)
        if why_not == "room is not encrypted" and purpose == PLAINTEXT_WARNING:
            why_not = None
        if why_not is not None:
            if why_not == "room is not encrypted":
                self.stats.refused += 1
                return Refused(why_not, kind="not_encrypted")
            # The bot is not in the room: the party cannot be reached here for now (a delivery
            # problem to show and fall back from), but an invite may still come.
            joined = not why_not.startswith("room not joined")
            return Retry(why_not, unreachable=not joined, kind="" if joined else "not_joined")
        room = self._client.rooms[room_id]
        size = (
            encrypted_event_bytes(event_type, content, room_id)
            if room.encrypted
            else plaintext_event_bytes(content)
        )
        if size > MAX_EVENT_BYTES:
            self.stats.refused += 1
            log.error(
                "not sending %s to %s: about %d bytes, over the homeserver's limit of %d",
                key,
                room_id,
                size,
                MAX_EVENT_BYTES,
            )
            return Refused(
                f"too large for the homeserver (about {size} of {MAX_EVENT_BYTES} bytes)",
                kind="too_large",
            )
        async with self._locks[room_id]:
            return await self._send_locked(key, room_id, content, event_type)

    async def _send_locked(
        self, key: str, room_id: str, content: dict[str, Any], event_type: str
    ) -> SendResult:
        client = self._client
        try:
            room = client.rooms[room_id]
            if room.encrypted and not room.members_synced:
                await client.joined_members(room_id)
            if room.encrypted and client.should_query_keys:
                await client.keys_query()
            if room.encrypted:
                _renew_if_a_device_lacks_the_key(client, room_id)
            resp = await client.room_send(
                room_id,
                event_type,
                content,
                tx_id=transaction_id(key),
                ignore_unverified_devices=self._trust_all_devices,
            )
        except OlmTrustError as exc:
            self.stats.errors += 1
            log.warning("not sending to %s: %s (trust_policy=verified-only)", room_id, exc)
            return Retry("room has unverified devices and trust_policy is verified-only", 60.0)
        except (OSError, TimeoutError) as exc:
            self.stats.errors += 1
            # A key share may have half-failed with the connection: start a fresh session so
            # that every device gets the key with the retry.
            _invalidate(client, room_id)
            return Retry(f"homeserver unreachable ({type(exc).__name__})")
        except Exception as exc:  # nio raises a zoo of errors; none may kill the worker
            self.stats.errors += 1
            _invalidate(client, room_id)
            log.exception("unexpected error sending to %s", room_id)
            return Retry(f"unexpected {type(exc).__name__}")
        if isinstance(resp, RoomSendResponse):
            self.stats.sent += 1
            return Sent(resp.event_id)
        status = getattr(resp, "status_code", None)
        if status in ("M_LIMIT_EXCEEDED", 429, "429"):
            self.stats.rate_limited += 1
            self.stats.per_room_429[room_id] += 1
            retry_ms = getattr(resp, "retry_after_ms", None) or 1000
            log.warning(
                "rate limited by the homeserver in %s (429 #%d); retry in %d ms",
                room_id,
                self.stats.rate_limited,
                retry_ms,
            )
            return Retry("rate limited (429)", retry_ms / 1000)
        self.stats.errors += 1
        transport = getattr(resp, "transport_response", None)
        verdict = classify_error(
            status if isinstance(status, str) else None,
            getattr(transport, "status", None) if transport is not None else None,
        )
        if isinstance(verdict, Refused):
            self.stats.refused += 1
            log.error("the homeserver refused a message to %s: %s", room_id, verdict.reason)
        else:
            log.warning("sending to %s failed, will retry: %s", room_id, verdict.reason)
        return verdict


def _renew_if_a_device_lacks_the_key(client: AsyncClient, room_id: str) -> None:
    """nio drops a shared room key only on its own sync's member events or a key query's
    device changes; a member whose device nio learnt of some other way would not get the key.
    An in-memory check before each send closes that gap (the next send shares a new key)."""
    olm = client.olm
    session = olm.outbound_group_sessions.get(room_id) if olm is not None else None
    if session is None or not session.shared:
        return
    covered = session.users_shared_with | session.users_ignored
    for user_id in client.rooms[room_id].users:
        for device in client.device_store.active_user_devices(user_id):
            if device.id == client.device_id and user_id == client.user_id:
                continue
            if (user_id, device.id) not in covered:
                client.invalidate_outbound_session(room_id)
                return


def _invalidate(client: AsyncClient, room_id: str) -> None:
    try:
        if client.olm is not None:
            client.olm.outbound_group_sessions.pop(room_id, None)
    except Exception:  # pragma: no cover - best effort
        log.debug("could not invalidate outbound session for %s", room_id)
