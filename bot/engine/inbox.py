"""The inbox pass: every stored inbound event handled exactly once, in arrival order.

Write before act: a sync's events are stored with its token in one transaction
(:meth:`InboxPass.store_batch`), an SMS or e-mail reply before its gateway gets an answer
(:meth:`InboxPass.store_external`). Handling a row decides (:mod:`bot.engine.routing`) and
writes everything decided (:mod:`bot.engine.writer`) with the row's new status in one
transaction, so a crash leaves either nothing done or all of it. An acknowledgement by link
(:meth:`InboxPass.ack_by_link`) runs the same way, as the link's POST is its only record.

A bug in a command never stops the pass: the row is retried a few times, then marked failed,
audited, and the sender gets a short apology in the room's language.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot.clock import Clock
from bot.config import Config
from bot.contracts import AckForm, AckOutcome
from bot.engine.context import ContextFactory
from bot.engine.faults import Faults
from bot.engine.replies import ChannelReplies
from bot.engine.routing import MembershipAction, Router
from bot.engine.writer import OutcomeWriter
from bot.i18n import Catalog
from bot.matrix.gateway import MatrixGateway
from bridges.signed_links import LinkClaim
from storage import audit, inbox, outbox, state
from storage.database import Database
from storage.errors import describe_failure, is_database_fault

log = logging.getLogger(__name__)

BOT = "larmkedja"
MAX_HANDLING_ATTEMPTS = 3


class InboxPass:
    name = "inbox"

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        db: Database,
        catalog: Catalog,
        gateway: MatrixGateway,
        writer: OutcomeWriter,
        make_context: ContextFactory,
        replies: ChannelReplies | None,
        faults: Faults | None = None,
        wake: Callable[[], None] | None = None,
        after_decision: Callable[[], None] | None = None,
    ) -> None:
        """``wake``: something was stored (the supervisor wakes this pass); ``after_decision``:
        something was decided (the delivery and due-time passes look again)."""
        self.config = config
        self.clock = clock
        self.db = db
        self.catalog = catalog
        self.gateway = gateway
        self.writer = writer
        self.make_context = make_context
        self.replies = replies
        self.router = Router(
            config=config,
            catalog=catalog,
            gateway=gateway,
            make_context=make_context,
            replies=replies,
        )
        self.faults = faults or Faults(None, None)
        self._wake = wake or (lambda: None)
        self._decided = after_decision or (lambda: None)
        self.handled = 0

    # -- storing ---------------------------------------------------------------------------

    async def store_batch(self, events: list[inbox.InboundEvent], token: str) -> None:
        async with self.db.write() as session:
            new_ids = await inbox.store(session, events, self.clock.now())
            await state.put(session, state.SYNC_TOKEN, token)
        if new_ids:
            if any(e.kind == "message" for e in events):
                self.faults.hit("after-inbox-store")  # a command stored, not yet handled
            self._wake()

    async def store_external(self, event: inbox.InboundEvent) -> bool:
        """Store one event from another channel (an SMS, an e-mail); True if it was new. The
        caller answers its gateway only after this returns, so nothing is acknowledged to a
        gateway that is not in the database."""
        async with self.db.write() as session:
            new_ids = await inbox.store(session, [event], self.clock.now())
        if new_ids:
            self._wake()
        return bool(new_ids)

    # -- the pass --------------------------------------------------------------------------

    async def run_once(self) -> float:
        await self.drain()
        return 5.0

    async def drain(self) -> int:
        """Handle every pending inbox row in arrival order; return how many."""
        count = 0
        last_id = 0
        while True:
            async with self.db.read() as session:
                row = await inbox.next_pending(session, after_id=last_id)
            if row is None:
                return count
            last_id = row.id
            await self.handle(row.id)
            count += 1

    async def handle(self, row_id: int) -> None:
        self.faults.hit("before-handle")
        membership: MembershipAction | None = None
        try:
            async with self.db.write() as session:
                row = await inbox.by_id(session, row_id)
                if row is None or row.status != inbox.PENDING:
                    return  # someone else handled it (replay); exactly one effect
                now = self.clock.now()  # one "now" for everything this transaction writes
                decision = await self.router.decide(session, row, now)
                membership = decision.membership
                reacts_to = row.event_id if row.kind == "message" and row.room_id else None
                await self.writer.write(
                    session,
                    source_id=row.event_id,
                    actor=row.sender if row.sender != "unknown" else BOT,
                    outcome=decision.outcome,
                    now=now,
                    reaction_room=row.room_id if reacts_to else None,
                )
                inbox.mark(row, decision.status, now)
            self.handled += 1
            self._decided()
            if membership is not None:  # the decision is recorded: now act on it
                await self._act_on_membership(membership)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_database_fault(exc):  # one line: no SQL, no parameters, what to do
                log.error("handling inbox row %s failed: %s", row_id, describe_failure(exc))
            else:  # a bug: the traceback is what a developer needs
                log.exception("handling inbox row %s failed", row_id)
            await self._record_failure(row_id, exc)
            self._decided()

    async def ack_by_link(self, claim: LinkClaim, form: AckForm) -> AckOutcome:
        """A POST to an acknowledge link: redeem, acknowledge and write it all in one go."""
        assert self.replies is not None
        async with self.db.write() as session:
            now = self.clock.now()
            outcome, answer = await self.replies.decide_link(
                session, claim, form, self.make_context(session)
            )
            await self.writer.write(
                session,
                source_id=f"link:{claim.outbox_key}:{now.timestamp():.0f}",
                actor=f"link:{claim.party_id}",
                outcome=outcome,
                now=now,
            )
        self._decided()
        return answer

    async def _act_on_membership(self, action: MembershipAction) -> None:
        if action.kind == "join":
            error = await self.gateway.join(action.room_id)
        else:
            log.warning(
                "declining an invite to %s from %s: room not in config",
                action.room_id,
                action.inviter,
            )
            error = await self.gateway.decline(action.room_id)
        if error is None:
            return
        # The room stays invited; the next full-state sync brings the invite back.
        log.warning("could not %s %s: %s", action.kind, action.room_id, error)
        async with self.db.write() as session:
            await audit.append(
                session,
                at=self.clock.now(),
                actor=BOT,
                action=f"matrix.{action.kind}.failed",
                subject=action.room_id,
                detail={"inviter": action.inviter, "error": error},
            )

    async def _record_failure(self, row_id: int, exc: Exception) -> None:
        async with self.db.write() as session:
            row = await inbox.by_id(session, row_id)
            if row is None or row.status != inbox.PENDING:
                return
            row.attempts += 1
            if row.attempts < MAX_HANDLING_ATTEMPTS:
                return
            inbox.mark(row, inbox.FAILED, self.clock.now(), note=type(exc).__name__)
            await audit.append(
                session,
                at=self.clock.now(),
                actor=BOT,
                action="command.crashed",
                subject=row.room_id,
                detail={"event_id": row.event_id, "error": type(exc).__name__},
            )
            if row.kind == "message" and row.room_id in self.config.known_rooms():
                text = self.catalog.text(
                    self.config.room_language(row.room_id or ""), "bot.internal_error"
                )
                await outbox.enqueue(
                    session,
                    key=f"{row.event_id}:crash",
                    channel="matrix",
                    destination=row.room_id or "",
                    purpose="reply",
                    now=self.clock.now(),
                    payload={"body": text, "mentions": [], "in_reply_to": row.event_id},
                )
