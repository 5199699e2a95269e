"""Matrix upkeep after every sync: the room keys, late decryption, unencrypted rooms.

Run by the sync loop after each stored sync (:class:`bot.matrix.sync_loop.SyncLoop`'s
``after_sync``), not as a pass of its own: it is about the client's crypto state, which the
sync just changed.

- keys: one-time keys uploaded, device lists queried, Olm sessions claimed; room keys shared
  ahead of need in every configured room, so that an alarm goes out warm (DESIGN §5.13);
- undecryptable commands: decrypted when their key has arrived (and handled), else a key
  request, and after the grace period the sender is asked to resend;
- a configured room that is not encrypted gets one content-free warning, audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.config import Config
from bot.i18n import Catalog
from bot.matrix.gateway import MatrixGateway
from bot.matrix.sender import PLAINTEXT_WARNING
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
    ) -> None:
        self.config = config
        self.clock = clock
        self.db = db
        self.catalog = catalog
        self.gateway = gateway
        self._wake_inbox = wake_inbox
        self._wake_delivery = wake_delivery
        self._warned_unencrypted: set[str] = set()

    async def after_sync(self, _response: object = None) -> None:
        gateway = self.gateway
        await gateway.maintain_keys()
        await self.warn_unencrypted_rooms()
        await self.retry_undecryptable()
        ours = self.config.known_rooms() & gateway.joined_rooms()
        if await gateway.share_keys_ahead(ours):
            log.info("room keys shared ahead of need")
        self._wake_delivery()

    async def retry_undecryptable(self) -> None:
        """Decrypt what has become decryptable; after the grace period ask for a resend."""
        grace = timedelta(seconds=self.config.matrix.undecryptable_grace_s)
        now = self.clock.now()
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
                    text_ask = self.catalog.text(
                        lang,
                        "bot.undecryptable_resend",
                        sender=row.sender,
                        time=sent_at.strftime("%H:%M:%S UTC"),
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

    async def warn_unencrypted_rooms(self) -> None:
        """A configured room that is not encrypted gets one content-free warning, audited."""
        for room_id in sorted(self.config.known_rooms() & self.gateway.joined_rooms()):
            if room_id in self._warned_unencrypted or self.gateway.room_facts(room_id).encrypted:
                continue
            self._warned_unencrypted.add(room_id)
            now = self.clock.now()
            text = self.catalog.text(self.config.room_language(room_id), "bot.unencrypted_room")
            async with self.db.write() as session:
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
