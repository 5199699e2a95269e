"""Scripted people in the rooms: real matrix-nio E2EE clients standing in for humans.

A duty officer, a coordinator or an outsider is a :class:`Person`: its own account, its own
device with its own crypto store, its own sync loop. Tests and the demo make them type, react and
read exactly as a phone would, so the bot is exercised through the same encryption, key sharing
and sync paths as in the field, never through a shortcut into its internals.

What a person sees is recorded (:attr:`Person.received`, :attr:`Person.reactions`,
:attr:`Person.undecryptable`) and can be awaited (:meth:`Person.wait_for`). What the server
stored, undecrypted, is available too (:meth:`Person.raw_timeline`), so a test can prove that
nothing readable ever reached an encrypted room.
"""

# The waits take a ``timeout`` argument on purpose: a test reads "wait up to 5 s for the alarm",
# and the error then says what did arrive, which ``asyncio.timeout`` around the call cannot.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote
from uuid import uuid4

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DownloadResponse,
    EncryptionError,
    ErrorResponse,
    InviteMemberEvent,
    JoinError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    ReactionEvent,
    RoomCreateError,
    RoomEncryptedFile,
    RoomEncryptedImage,
    RoomMessageNotice,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncError,
)
from nio.crypto import decrypt_attachment
from nio.store import SqliteStore

if TYPE_CHECKING:
    from bot.demo.homeserver import ThrowawayHomeserver

log = logging.getLogger(__name__)

T = TypeVar("T")

MEGOLM = "m.megolm.v1.aes-sha2"

#: How long one long-poll sync may wait on the server. Short enough that a stopped homeserver
#: is noticed quickly, long enough not to spin.
_SYNC_TIMEOUT_MS = 10_000


class PersonError(RuntimeError):
    """The homeserver refused something a person tried to do, or their crypto is not loaded."""


@dataclass(frozen=True)
class Received:
    """A message (text or notice) from someone else, as this person's phone would show it."""

    room_id: str
    sender: str
    event_id: str
    body: str
    msgtype: str
    #: The full decrypted content, including ``m.relates_to`` and ``m.new_content`` of edits.
    content: dict[str, Any]
    is_edit: bool
    #: For an edit (``m.replace``): the event id of the message it replaces.
    replaces: str | None
    #: For a reply: the event id replied to.
    reply_to: str | None
    server_ts: int
    #: Whether it arrived as ``m.room.encrypted``; a bot message in an encrypted room must.
    encrypted: bool
    #: Decrypted only after its room key arrived late (the key was not there at first sight).
    late: bool = False

    @property
    def new_body(self) -> str | None:
        """For an edit, the text the message now reads; ``None`` otherwise."""
        if not self.is_edit:
            return None
        new_content = self.content.get("m.new_content") or {}
        body = new_content.get("body")
        return body if isinstance(body, str) else None


@dataclass(frozen=True)
class ReceivedReaction:
    """An ``m.reaction`` (annotation) from someone else. Reactions are never encrypted."""

    room_id: str
    sender: str
    event_id: str
    relates_to: str
    key: str
    server_ts: int


@dataclass
class _Waiter:
    """Wakes everybody waiting for something new: a message, a reaction, a finished sync."""

    event: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        # Setting wakes every current waiter; a fresh Event is used for the next round so that
        # nobody has to clear (and race to clear) a shared one.
        event, self.event = self.event, asyncio.Event()
        event.set()


class Person:
    """A human in the rooms, played by a real E2EE client. Build with :meth:`create`."""

    def __init__(self, client: AsyncClient, store_dir: Path) -> None:
        self.client = client
        self.store_dir = store_dir
        self.received: list[Received] = []
        self.reactions: list[ReceivedReaction] = []
        #: Encrypted events that could not be decrypted (yet); retried after every sync.
        self.undecryptable: list[MegolmEvent] = []
        #: Rooms this person was invited to, in order of arrival.
        self.invites: list[str] = []
        #: Failed syncs so far, and the last failure, for diagnostics in timeouts.
        self.sync_failures = 0
        self.last_sync_error: str | None = None
        self._seen: set[str] = set()
        self._sync_generation = 0
        self._news = _Waiter()
        self._sync_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()
        self._sync_task: asyncio.Task[None] | None = None
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._closed = False
        client.add_event_callback(self._on_message, (RoomMessageText, RoomMessageNotice))
        client.add_event_callback(self._on_file, (RoomEncryptedFile, RoomEncryptedImage))
        client.add_event_callback(self._on_reaction, ReactionEvent)
        client.add_event_callback(self._on_undecryptable, MegolmEvent)
        client.add_event_callback(self._on_invite, InviteMemberEvent)

    # -- construction and teardown ------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        hs_url: str,
        user_id: str,
        password: str,
        store_dir: Path,
        device_id: str | None = None,
        *,
        display_name: str | None = None,
    ) -> Person:
        """Log in as a device of ``user_id``, upload its keys and do the first sync.

        Without ``device_id`` a new, unique device is made: Synapse caches identical initial
        syncs, and a device id must never be reused with a fresh crypto store (DESIGN §5.2).
        Passing the ``device_id`` and ``store_dir`` of an earlier person resumes that device.
        """
        localpart = user_id.split(":", 1)[0].lstrip("@")
        client = _new_client(
            hs_url, user_id, device_id or f"{localpart}-{uuid4().hex[:8]}", store_dir
        )
        person = cls(client, store_dir)
        try:
            response = await client.login(password, device_name=f"larmkedja person {localpart}")
            if not isinstance(response, LoginResponse):
                raise PersonError(f"{user_id} could not log in: {response}")
            if client.olm is None:
                # nio would send plaintext into encrypted rooms without a loaded store (§5.1).
                raise PersonError(f"{user_id}: the crypto store did not load")
            if client.should_upload_keys:
                _check(await client.keys_upload(), "upload device keys")
            if display_name is not None:
                _check(await client.set_displayname(display_name), "set display name")
            async with person._sync_lock:
                await person._sync_step(timeout_ms=0, full_state=True)
        except BaseException:
            await person.close()
            raise
        return person

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    async def close(self) -> None:
        """Stop syncing and release the HTTP sessions; the crypto store stays on disk."""
        if self._closed:
            return
        self._closed = True
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()
        await self._http.close()

    # -- syncing ------------------------------------------------------------------------------

    def start_syncing(self) -> None:
        """Keep syncing in the background, as a phone does, until :meth:`close`."""
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.create_task(
                self._sync_forever(), name=f"sync {self.user_id}"
            )

    @property
    def syncing(self) -> bool:
        return self._sync_task is not None and not self._sync_task.done()

    async def sync_once(self, timeout: float = 30) -> None:
        """Bring this person up to date with the server.

        With the background loop running this waits for its next completed sync (two syncs
        with the same token would deliver every event twice); otherwise it syncs itself.
        """
        if self.syncing:
            await asyncio.wait_for(self._next_sync(), timeout)
        else:
            async with self._sync_lock:
                await self._sync_step(timeout_ms=0)

    async def _next_sync(self) -> None:
        # A notification may be a message rather than a finished sync: wait for the counter.
        generation = self._sync_generation
        while self._sync_generation == generation:
            await self._news.event.wait()

    async def _sync_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with self._sync_lock:
                    await self._sync_step(timeout_ms=_SYNC_TIMEOUT_MS)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep syncing through outages, as a phone does
                self.sync_failures += 1
                self.last_sync_error = f"{type(error).__name__}: {error}"
                log.debug("%s: sync failed (%s); retrying in %.1f s", self.user_id, error, backoff)
                self._news.notify()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _sync_step(self, timeout_ms: int, full_state: bool = False) -> None:
        """One sync plus the key housekeeping nio's ``sync_forever`` would do after it."""
        client = self.client
        response = await client.sync(timeout=timeout_ms, full_state=full_state or None)
        if isinstance(response, SyncError):
            raise PersonError(f"sync failed: {response.message} ({response.status_code})")
        await client.send_to_device_messages()
        if client.should_upload_keys:
            _check(await client.keys_upload(), "upload keys")
        await self._query_keys()
        if client.should_claim_keys:
            _check(
                await client.keys_claim(client.get_users_for_key_claiming()), "claim one-time keys"
            )
        self._retry_undecryptable()
        self._sync_generation += 1
        self._news.notify()

    async def _query_keys(self) -> None:
        async with self._keys_lock:
            if self.client.should_query_keys:
                _check(await self.client.keys_query(), "query device keys")

    # -- what arrives -------------------------------------------------------------------------
    # nio callbacks: they must never raise, or nio aborts the sync (DESIGN §5.4).

    def _on_message(self, room: MatrixRoom, event: RoomMessageText | RoomMessageNotice) -> None:
        try:
            self._record_message(room.room_id, event, late=False)
        except Exception:
            log.exception("%s: could not record %s", self.user_id, event.event_id)

    def _on_file(self, room: MatrixRoom, event: RoomEncryptedFile | RoomEncryptedImage) -> None:
        """An encrypted attachment: recorded like a message (its body is its caption or
        name); :meth:`download` fetches and decrypts the file."""
        try:
            self._record_message(room.room_id, event, late=False)
        except Exception:
            log.exception("%s: could not record %s", self.user_id, event.event_id)

    async def download(self, message: Received) -> bytes:
        """The decrypted bytes of an encrypted attachment this person received."""
        file = message.content["file"]
        response = await self.client.download(mxc=file["url"])
        if not isinstance(response, DownloadResponse):
            raise PersonError(f"{self.user_id} could not download {file['url']}: {response}")
        return decrypt_attachment(
            response.body, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
        )

    def _on_reaction(self, room: MatrixRoom, event: ReactionEvent) -> None:
        if event.sender == self.user_id or event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        self.reactions.append(
            ReceivedReaction(
                room_id=room.room_id,
                sender=event.sender,
                event_id=event.event_id,
                relates_to=event.reacts_to,
                key=event.key,
                server_ts=event.server_timestamp,
            )
        )
        self._news.notify()

    def _on_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if event.sender == self.user_id or event.event_id in self._seen:
            return
        if any(e.event_id == event.event_id for e in self.undecryptable):
            return
        event.room_id = event.room_id or room.room_id
        log.debug("%s: cannot decrypt %s yet", self.user_id, event.event_id)
        self.undecryptable.append(event)

    def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if (
            event.state_key == self.user_id
            and event.membership == "invite"
            and room.room_id not in self.invites
        ):
            self.invites.append(room.room_id)
            self._news.notify()

    def _retry_undecryptable(self) -> None:
        """Decrypt what became decryptable because its room key arrived after the message."""
        for event in list(self.undecryptable):
            try:
                decrypted = self.client.decrypt_event(event)
            except EncryptionError:
                continue
            except Exception:
                log.exception("%s: retrying %s failed", self.user_id, event.event_id)
                continue
            self.undecryptable.remove(event)
            if isinstance(decrypted, RoomMessageText | RoomMessageNotice):
                self._record_message(event.room_id, decrypted, late=True)
            elif isinstance(decrypted, ReactionEvent):
                room = self.client.rooms.get(event.room_id)
                if room is not None:
                    self._on_reaction(room, decrypted)

    def _record_message(
        self,
        room_id: str,
        event: RoomMessageText | RoomMessageNotice | RoomEncryptedFile | RoomEncryptedImage,
        *,
        late: bool,
    ) -> None:
        if event.sender == self.user_id or event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        content: dict[str, Any] = dict(event.source.get("content") or {})
        relates = content.get("m.relates_to") or {}
        is_edit = relates.get("rel_type") == "m.replace"
        reply_to = (relates.get("m.in_reply_to") or {}).get("event_id")
        self.received.append(
            Received(
                room_id=room_id,
                sender=event.sender,
                event_id=event.event_id,
                body=event.body,
                msgtype=str(content.get("msgtype", "")),
                content=content,
                is_edit=is_edit,
                replaces=relates.get("event_id") if is_edit else None,
                reply_to=reply_to,
                server_ts=event.server_timestamp,
                encrypted=bool(event.decrypted),
                late=late,
            )
        )
        self._news.notify()

    # -- waiting ------------------------------------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 30
    ) -> Received:
        """The first received message matching ``predicate``, waiting up to ``timeout`` s.

        Messages already received count; nothing is consumed, so two waits may return the same
        message.
        """

        def find() -> Received | None:
            return next((m for m in self.received if predicate(m)), None)

        return await self._wait_until(find, timeout, "a matching message")

    async def wait_for_count(
        self, predicate: Callable[[Received], bool], n: int, timeout: float = 30
    ) -> list[Received]:
        """The first ``n`` received messages matching ``predicate``, once there are that many."""

        def find() -> list[Received] | None:
            found = [m for m in self.received if predicate(m)]
            return found[:n] if len(found) >= n else None

        return await self._wait_until(find, timeout, f"{n} matching messages")

    async def wait_for_reaction(
        self, predicate: Callable[[ReceivedReaction], bool], timeout: float = 30
    ) -> ReceivedReaction:
        """The first reaction from someone else matching ``predicate``."""

        def find() -> ReceivedReaction | None:
            return next((r for r in self.reactions if predicate(r)), None)

        return await self._wait_until(find, timeout, "a matching reaction")

    async def wait_for_invite(self, room_id: str | None = None, timeout: float = 30) -> str:
        """The room id of the first invite (to ``room_id``, if given) this person has seen."""

        def find() -> str | None:
            return next((r for r in self.invites if room_id in (None, r)), None)

        return await self._wait_until(find, timeout, f"an invite to {room_id or 'a room'}")

    def messages_from(self, sender: str, room_id: str | None = None) -> list[Received]:
        """Everything received from ``sender`` (in ``room_id``, if given), oldest first."""
        return [
            m
            for m in self.received
            if m.sender == sender and (room_id is None or m.room_id == room_id)
        ]

    async def _wait_until(self, find: Callable[[], T | None], timeout: float, what: str) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            news = self._news.event
            # A key may have arrived outside a sync (an import, a backup restore).
            self._retry_undecryptable()
            found = find()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.user_id} waited {timeout:g} s for {what}; {self._so_far()}"
                )
            if self.syncing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), remaining)
            else:
                async with self._sync_lock:
                    await self._sync_step(timeout_ms=int(min(remaining, 5) * 1000))

    def _so_far(self) -> str:
        recent = "; ".join(
            f"{m.sender} in {m.room_id}: {m.body[:60]!r}" for m in self.received[-5:]
        )
        return (
            f"received {len(self.received)} messages (last: {recent or 'none'}), "
            f"{len(self.reactions)} reactions, {len(self.undecryptable)} undecryptable, "
            f"{self.sync_failures} failed syncs (last error: {self.last_sync_error})"
        )

    async def _wait_for_room(self, room_id: str, timeout: float = 30) -> MatrixRoom:
        """The room as this client knows it, after the sync that brought it in."""

        def find() -> MatrixRoom | None:
            return self.client.rooms.get(room_id)

        return await self._wait_until(find, timeout, f"room {room_id} to sync")

    # -- doing things -------------------------------------------------------------------------

    async def create_encrypted_room(self, name: str, invite: Sequence[str] = ()) -> str:
        """A private room with Megolm encryption from its first event, as Element makes them."""
        encryption = {
            "type": "m.room.encryption",
            "state_key": "",
            "content": {"algorithm": MEGOLM},
        }
        return await self._create_room(name, invite, [encryption])

    async def create_plain_room(self, name: str, invite: Sequence[str] = ()) -> str:
        """An unencrypted private room, for tests where the bot must refuse to talk."""
        return await self._create_room(name, invite, [])

    async def _create_room(
        self, name: str, invite: Sequence[str], initial_state: list[dict[str, Any]]
    ) -> str:
        response = await self.client.room_create(
            name=name,
            invite=list(invite),
            initial_state=initial_state,
            preset=RoomPreset.private_chat,
        )
        if isinstance(response, RoomCreateError):
            raise PersonError(f"{self.user_id} could not create {name!r}: {response}")
        await self._wait_for_room(response.room_id)
        return str(response.room_id)

    async def join(self, room_id: str) -> None:
        """Join (accepting an invite) and wait until the room has synced, ready to send."""
        response = await self.client.join(room_id)
        if isinstance(response, JoinError):
            raise PersonError(f"{self.user_id} could not join {room_id}: {response}")
        await self._wait_for_room(room_id)

    async def invite(self, room_id: str, user_id: str) -> None:
        _check(await self.client.room_invite(room_id, user_id), f"invite {user_id}")

    async def leave(self, room_id: str) -> None:
        _check(await self.client.room_leave(room_id), f"leave {room_id}")

    async def send_text(self, room_id: str, body: str, *, notice: bool = False) -> str:
        """Type ``body`` into the room; returns the event id. Encrypted in encrypted rooms."""
        content = {"msgtype": "m.notice" if notice else "m.text", "body": body}
        return await self.send(room_id, content)

    async def send_plaintext(self, room_id: str, body: str) -> str:
        """Post ``body`` unencrypted, whatever the room's setting (through the plain API, as a
        client or bridge that does not encrypt would); returns the event id."""
        txn = secrets.token_hex(8)
        reply = await self._raw(
            "PUT",
            f"/rooms/{quote(room_id, safe='')}/send/m.room.message/{txn}",
            body={"msgtype": "m.text", "body": body},
        )
        return str(reply["event_id"])

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        """Put reaction ``key`` (e.g. "✅") on ``event_id``; returns the reaction's event id."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send(room_id, content, event_type="m.reaction")

    async def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        """Send any content (a reply, an edit, …); encrypted if the room is encrypted."""
        room = self.client.rooms.get(room_id) or await self._wait_for_room(room_id)
        if not room.encrypted and await self._server_says_encrypted(room_id):
            # Our sync is behind the room's state: sending now would leak plaintext into an
            # encrypted room, and tests that assert "no plaintext" would blame the bot.
            known = room

            def encrypted() -> MatrixRoom | None:
                return known if known.encrypted else None

            room = await self._wait_until(encrypted, 30, f"{room_id} to sync as encrypted")
        if room.encrypted:
            await self._prepare_encrypted_send(room)
        response = await self.client.room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        if not isinstance(response, RoomSendResponse):
            raise PersonError(f"{self.user_id} could not send to {room_id}: {response}")
        return str(response.event_id)

    async def _prepare_encrypted_send(self, room: MatrixRoom) -> None:
        """Make sure every current member's every device will get the room key.

        nio only learns of a new member or device from its own syncs and only then drops the
        Megolm session it shared; a person who types right after someone joined would leave the
        newcomer unable to read. So: fetch the members, query their devices, and start a new
        session if any device has not had the current one.
        """
        client = self.client
        if client.olm is None:
            raise PersonError(f"{self.user_id}: refusing to send without a loaded crypto store")
        _check(await client.joined_members(room.room_id), f"list members of {room.room_id}")
        # Ask afresh every time, not only when a sync reported a device change: the test that
        # logs in a new phone and sends at once must not depend on who synced first.
        client.olm.users_for_key_query.update(room.users)
        await self._query_keys()
        session = client.olm.outbound_group_sessions.get(room.room_id)
        if session is None or not session.shared:
            return
        covered = session.users_shared_with | session.users_ignored
        for user_id in room.users:
            for device in client.device_store.active_user_devices(user_id):
                if (user_id, device.id) not in covered:
                    client.invalidate_outbound_session(room.room_id)
                    return

    # -- what the server holds ----------------------------------------------------------------

    async def raw_timeline(self, room_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The room's last ``limit`` events exactly as the homeserver stores them, oldest first.

        Not decrypted: this is what anyone with server access would see.
        """
        events: list[dict[str, Any]] = []
        since: str | None = None
        while len(events) < limit:
            params = {"dir": "b", "limit": str(min(limit - len(events), 100))}
            if since is not None:
                params["from"] = since
            page = await self._raw("GET", f"/rooms/{quote(room_id, safe='')}/messages", params)
            events.extend(page.get("chunk", []))
            since = page.get("end")
            if not page.get("chunk") or since is None:
                break
        return list(reversed(events))

    async def raw_event(self, room_id: str, event_id: str) -> dict[str, Any]:
        """One event as the homeserver stores it (not decrypted)."""
        room, event = quote(room_id, safe=""), quote(event_id, safe="")
        return await self._raw("GET", f"/rooms/{room}/event/{event}")

    async def keys_query_raw(self, user_id: str) -> dict[str, Any]:
        """The server's ``keys/query`` answer for ``user_id``: devices and cross-signing keys."""
        return await self._raw("POST", "/keys/query", body={"device_keys": {user_id: []}})

    async def _server_says_encrypted(self, room_id: str) -> bool:
        path = f"/rooms/{quote(room_id, safe='')}/state/m.room.encryption/"
        status, _ = await self._raw_status("GET", path)
        return status == 200

    async def _raw(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        status, reply = await self._raw_status(method, path, params, body)
        if status != 200:
            raise PersonError(f"{method} {path} -> {status}: {reply}")
        return reply

    async def _raw_status(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        url = f"{self.client.homeserver}/_matrix/client/v3{path}"
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        async with self._http.request(
            method, url, params=params, json=body, headers=headers
        ) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
            return response.status, reply

    def __repr__(self) -> str:
        return f"<Person {self.user_id} device {self.device_id}>"


def _new_client(hs_url: str, user_id: str, device_id: str, store_dir: Path) -> AsyncClient:
    store_dir.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(
        encryption_enabled=True,
        store=SqliteStore,
        store_sync_tokens=True,
        # Fail (and let the sync loop back off) instead of nio's endless silent retries, so a
        # homeserver outage shows up and recovery after it is quick.
        max_timeouts=2,
        max_timeout_retry_wait_time=1,
        request_timeout=30,
    )
    return AsyncClient(
        hs_url, user_id, device_id=device_id, store_path=str(store_dir), config=config
    )


def _check(response: Any, action: str) -> None:
    """Turn nio's error responses (returned, not raised) into exceptions."""
    if isinstance(response, ErrorResponse):
        raise PersonError(f"could not {action}: {response}")


class Cast:
    """Everyone playing in one test or demo run: registers them, and closes them all at the end.

    Names become localparts; with ``unique`` (the default, for tests sharing one homeserver) a
    short random suffix keeps every run's accounts apart.
    """

    def __init__(
        self, homeserver: ThrowawayHomeserver, store_root: Path, *, unique: bool = True
    ) -> None:
        self._homeserver = homeserver
        self._store_root = store_root
        self._unique = unique
        self._passwords: dict[str, str] = {}
        self.members: list[Person] = []

    async def __call__(
        self, name: str, *, display_name: str | None = None, sync: bool = True
    ) -> Person:
        """A new account named after ``name`` with one logged-in, syncing device."""
        localpart = name.lower()
        if self._unique:
            localpart = f"{localpart}-{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(16)
        user_id = await self._homeserver.register(localpart, password)
        self._passwords[user_id] = password
        return await self._log_in(user_id, display_name or name, sync)

    async def new_device(self, person: Person, *, sync: bool = True) -> Person:
        """Another device (a new phone) of ``person``'s account, with its own crypto store."""
        return await self._log_in(person.user_id, None, sync)

    async def _log_in(self, user_id: str, display_name: str | None, sync: bool) -> Person:
        device_id = f"{user_id[1:].split(':')[0]}-{uuid4().hex[:8]}"
        person = await Person.create(
            self._homeserver.url,
            user_id,
            self._passwords[user_id],
            self._store_root / device_id,
            device_id,
            display_name=display_name,
        )
        self.members.append(person)
        if sync:
            person.start_syncing()
        return person

    async def close(self) -> None:
        members, self.members = self.members, []
        await asyncio.gather(*(person.close() for person in members))
