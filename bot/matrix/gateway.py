"""What the engine may ask of Matrix, as plain methods: join, decline, decrypt later, keep keys.

The engine imports no nio; it holds a :class:`MatrixGateway`. Key upkeep lives here because it
is about one client's crypto state:

- upload one-time keys, query changed device lists and claim Olm sessions after every sync, as
  ``sync_forever`` would;
- share room keys ahead of need (at start, and after a member or device change invalidated the
  outbound session), so that an alarm goes out "warm" (DESIGN §5.13) and a duty officer's new
  phone gets the key for the next message;
- retry undecryptable commands when their key arrives.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from nio import AsyncClient, JoinResponse, MegolmEvent, RoomMessageText

from bot.matrix.sender import MatrixSender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoomFacts:
    joined: bool
    encrypted: bool
    member_count: int


class MatrixGateway:
    def __init__(
        self, client: AsyncClient, sender: MatrixSender, *, trust_all_devices: bool
    ) -> None:
        self.client = client
        self.sender = sender
        self._trust_all = trust_all_devices
        self._sharing_lock = asyncio.Lock()
        self.key_shares = 0
        self._joining: set[str] = set()

    @property
    def user_id(self) -> str:
        return self.client.user_id

    @property
    def device_id(self) -> str:
        return self.client.device_id

    def room_facts(self, room_id: str) -> RoomFacts:
        room = self.client.rooms.get(room_id)
        if room is None:
            return RoomFacts(False, False, 0)
        return RoomFacts(True, bool(room.encrypted), len(room.users))

    def room_problem(self, room_id: str) -> str | None:
        """Why no message can go to ``room_id`` now (``not_joined``, ``not_encrypted``), or
        None (what the sender would refuse or hold back, known before anything is sent)."""
        room = self.client.rooms.get(room_id)
        if room is None:
            return "not_joined"
        if not room.encrypted:
            return "not_encrypted"
        return None

    def invited_rooms(self) -> set[str]:
        return set(self.client.invited_rooms)

    def joined_rooms(self) -> set[str]:
        return set(self.client.rooms)

    async def join(self, room_id: str) -> str | None:
        """Join; None on success, else the homeserver's reason."""
        resp = await self.client.join(room_id)
        if isinstance(resp, JoinResponse):
            self._joining.add(room_id)
            return None
        return str(getattr(resp, "message", resp))

    def unsettled_rooms(self) -> set[str]:
        """Rooms still on their way in: invitations not answered yet, and joins the homeserver
        accepted that no sync has brought yet (nio forgets the invitation at the join answer,
        and knows the room only from the next sync)."""
        self._joining -= set(self.client.rooms)
        return set(self.client.invited_rooms) | self._joining

    async def decline(self, room_id: str) -> str | None:
        resp = await self.client.room_leave(room_id)
        return (
            None
            if type(resp).__name__ == "RoomLeaveResponse"
            else str(getattr(resp, "message", resp))
        )

    async def maintain_keys(self) -> None:
        client = self.client
        if client.olm is None:
            return
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    async def share_keys_ahead(self, room_ids: set[str]) -> int:
        """Share an outbound room key with every device in these rooms, concurrently, where
        none is shared yet. Returns how many rooms got a key."""
        client = self.client
        if client.olm is None:
            return 0
        async with self._sharing_lock:
            needed = [
                r
                for r in room_ids
                if r in client.rooms
                and client.rooms[r].encrypted
                and client.olm.should_share_group_session(r)
                and r not in client.sharing_session
            ]
            if not needed:
                return 0
            for room_id in needed:
                if not client.rooms[room_id].members_synced:
                    await client.joined_members(room_id)
            if client.should_query_keys:
                await client.keys_query()
            results = await asyncio.gather(
                *(
                    client.share_group_session(r, ignore_unverified_devices=self._trust_all)
                    for r in needed
                ),
                return_exceptions=True,
            )
            shared = 0
            for room_id, result in zip(needed, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning(
                        "could not share the room key in %s ahead of need: %s",
                        room_id,
                        type(result).__name__,
                    )
                    client.olm.outbound_group_sessions.pop(room_id, None)
                else:
                    shared += 1
            self.key_shares += shared
            return shared

    def try_decrypt(self, room_id: str, source: dict[str, Any]) -> str | None:
        """The text of an earlier undecryptable message, if its key has arrived meanwhile."""
        if self.client.olm is None:
            return None
        try:
            event = MegolmEvent.from_dict(source)
            if not isinstance(event, MegolmEvent):
                return None
            event.room_id = room_id
            decrypted = self.client.decrypt_event(event)
        except Exception as exc:  # still no key, or not decryptable at all
            log.debug("still undecryptable in %s: %s", room_id, exc)
            return None
        if isinstance(decrypted, RoomMessageText):
            return decrypted.body
        return None

    async def request_key(self, room_id: str, source: dict[str, Any]) -> None:
        try:
            event = MegolmEvent.from_dict(source)
            if isinstance(event, MegolmEvent):
                event.room_id = room_id
                await self.client.request_room_key(event)
        except Exception:  # a key request that fails is retried by the sender's resend
            log.info("room key request for an undecryptable event in %s failed", room_id)
