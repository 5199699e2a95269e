"""Matrix upkeep after every sync: the room keys, late decryption, unencrypted rooms.

Run by the sync loop after each stored sync (:class:`bot.matrix.sync_loop.SyncLoop`'s
``after_sync``), not as a pass of its own: it is about the client's crypto state, which the
sync just changed.

- keys: one-time keys uploaded, device lists queried, Olm sessions claimed; room keys shared
  ahead of need in every configured room, so that an alarm goes out warm (DESIGN §5.13);
- undecryptable commands: decrypted when their key has arrived (and handled), else a key
  request, and when the grace period is over (timed, not at the next sync) the sender is
  asked to resend, by ``@localpart`` and local time like every other text
  (:class:`UndecryptablePass`, woken after every sync);
- a configured room that is not encrypted gets one content-free warning, audited;
- once at start, when the invitations are answered: every configured room the bot cannot
  deliver to (not joined, not encrypted) is logged, audited and told to the coordination room
  (:mod:`bot.matrix.room_check`), before an alarm finds out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.config import Config
from bot.i18n import Catalog
from bot.matrix.gateway import MatrixGateway
from bot.matrix.room_check import RoomTrouble, troubled_rooms
from bot.matrix.sender import PLAINTEXT_WARNING
from commands.render import Voice
from storage import audit, inbox, outbox
from storage.database import Database

log = logging.getLogger(__name__)

BOT = "larmkedja"


class MatrixUpkeep:
    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        db: Database,
        catalog: Catalog,
        gateway: MatrixGateway,
        wake_inbox: Callable[[], None],
        wake_delivery: Callable[[], None],
        wake_undecryptable: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.db = db
        self.catalog = catalog
        self.gateway = gateway
        self._wake_inbox = wake_inbox
        self._wake_delivery = wake_delivery
        self._wake_undecryptable = wake_undecryptable
        self._warned_unencrypted: set[str] = set()
        self._syncs = 0
        self._rooms_checked = False

    async def after_sync(self, _response: object = None) -> None:
        gateway = self.gateway
        await gateway.maintain_keys()
        await self.warn_unencrypted_rooms()
        await self.check_rooms_once()
        self._wake_undecryptable()
        ours = self.config.known_rooms() & gateway.joined_rooms()
        if await gateway.share_keys_ahead(ours):
            log.info("room keys shared ahead of need")
        self._wake_delivery()

    async def retry_undecryptable(self) -> float | None:
        """Decrypt what has become decryptable; after the grace period ask for a resend.
        Returns the seconds until the next grace period ends (None: nothing is waiting)."""
        grace = timedelta(seconds=self.config.matrix.undecryptable_grace_s)
        now = self.clock.now()
        next_in: float | None = None
        async with self.db.read() as session:
            waiting = await inbox.with_status(session, inbox.UNDECRYPTABLE)
        for row in waiting:
            text = self.gateway.try_decrypt(row.room_id or "", row.payload.get("source", {}))
            async with self.db.write() as session:
                fresh = await inbox.by_id(session, row.id)
                if fresh is None or fresh.status != inbox.UNDECRYPTABLE:
                    continue
                if text is not None:
                    fresh.kind = "message"
                    fresh.payload = {"body": text, "decrypted": True, "late_key": True}
                    fresh.status = inbox.PENDING
                    self._wake_inbox()
                    continue
                if fresh.attempts == 0:
                    fresh.attempts = 1
                    await self.gateway.request_key(
                        row.room_id or "", row.payload.get("source", {})
                    )
                sent_at = datetime.fromtimestamp(row.origin_ts / 1000, tz=now.tzinfo)
                if now - sent_at < grace:
                    left = (sent_at + grace - now).total_seconds()
                    next_in = left if next_in is None else min(next_in, left)
                    continue
                inbox.mark(fresh, inbox.ASKED, now)
                await audit.append(
                    session,
                    at=now,
                    actor=BOT,
                    action="matrix.undecryptable",
                    subject=row.room_id,
                    detail={"event_id": row.event_id, "sender": row.sender},
                )
                if row.room_id in self.config.known_rooms():
                    lang = self.config.room_language(row.room_id or "")
                    voice = Voice(self.catalog, lang, self.config.matrix.user_id.partition(":")[2])
                    text_ask = voice.text(
                        "bot.undecryptable_resend",
                        sender=voice.person(row.sender),
                        time=voice.time(sent_at),
                    )
                    await outbox.enqueue(
                        session,
                        key=f"{row.event_id}:resend",
                        channel="matrix",
                        destination=row.room_id or "",
                        purpose="notice",
                        now=now,
                        payload={"body": text_ask, "mentions": [row.sender], "in_reply_to": None},
                    )
                    self._wake_delivery()
        return next_in

    async def warn_unencrypted_rooms(self) -> None:
        """A configured room that is not encrypted gets one content-free warning, audited;
        once in its life (also across restarts, and not if a command there was answered with
        it first)."""
        for room_id in sorted(self.config.known_rooms() & self.gateway.joined_rooms()):
            if room_id in self._warned_unencrypted or self.gateway.room_facts(room_id).encrypted:
                continue
            self._warned_unencrypted.add(room_id)
            now = self.clock.now()
            text = self.catalog.text(self.config.room_language(room_id), "bot.unencrypted_room")
            async with self.db.write() as session:
                if await outbox.any_to(session, room_id, PLAINTEXT_WARNING):
                    continue
                row = await outbox.enqueue(
                    session,
                    key=f"unencrypted-warning:{room_id}",
                    channel="matrix",
                    destination=room_id,
                    purpose=PLAINTEXT_WARNING,
                    now=now,
                    payload={"body": text, "mentions": []},
                )
                if row is not None:
                    await audit.append(
                        session,
                        at=now,
                        actor=BOT,
                        action="matrix.room.unencrypted",
                        subject=room_id,
                        detail={"reason": "refusing to work here"},
                    )
            self._wake_delivery()

    async def check_rooms_once(self) -> None:
        """At start: which configured rooms no alarm can reach, asked once no configured room
        is on its way in any more (invitations are answered after the first syncs and the
        joins come back with later ones); at the tenth sync at the latest."""
        if self._rooms_checked:
            return
        self._syncs += 1
        config = self.config
        if self.gateway.unsettled_rooms() & config.known_rooms() and self._syncs < 10:
            return
        self._rooms_checked = True
        troubles = troubled_rooms(config, self.gateway.room_problem)
        rooms = len(config.known_rooms())
        for trouble in troubles:
            log.warning(
                "configured room %s (%s) cannot be reached: %s; alarms for it fall back to "
                "its other channels. Invite the bot / turn on encryption there",
                trouble.room_id,
                trouble.owner,
                trouble.reason,
            )
        now = self.clock.now()
        async with self.db.write() as session:
            await audit.append(
                session,
                at=now,
                actor=BOT,
                action="bot.rooms_checked",
                subject=None,
                detail={
                    "rooms": rooms,
                    "unreachable": [[t.owner, t.room_id, t.reason] for t in troubles],
                },
            )
            coordination = config.healthcare_region.coordination_room
            if not troubles or not coordination:
                return
            if any(t.room_id == coordination for t in troubles):
                return  # nowhere encrypted to say it; the log line is all there is
            lang = config.room_language(coordination)
            await outbox.enqueue(
                session,
                key=f"rooms-checked:{now.isoformat()}",
                channel="matrix",
                destination=coordination,
                purpose="notice",
                now=now,
                payload={"body": self._rooms_notice(lang, rooms, troubles), "mentions": []},
            )
        self._wake_delivery()

    def _rooms_notice(self, lang: str, rooms: int, troubles: list[RoomTrouble]) -> str:
        names = {p.id: p.name for p in self.config.all_parties()}
        reasons = {
            "not_joined": "delivery.room.not_joined",
            "not_encrypted": "delivery.room.not_encrypted",
        }
        lines = [
            self.catalog.text(
                lang,
                "bot.rooms_checked.room",
                party=names.get(t.owner, t.owner),
                reason=self.catalog.text(lang, reasons.get(t.reason, "delivery.room.refused")),
            )
            for t in troubles
        ]
        head = self.catalog.text(lang, "bot.rooms_checked", bad=len(troubles), rooms=rooms)
        return "\n".join([head, *lines])


class UndecryptablePass:
    """The undecryptable-message round as an engine pass: woken after every sync (keys may
    have come), and due again when the next grace period ends, so that the resend request
    comes on time and not at the next 30 s long-poll."""

    name = "undecryptable"

    def __init__(self, upkeep: MatrixUpkeep) -> None:
        self.upkeep = upkeep

    async def run_once(self) -> float | None:
        return await self.upkeep.retry_undecryptable()
