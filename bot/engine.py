"""The engine: inbox rows in, command runs and domain decisions through, outbox rows out.

Data flows one way (DESIGN §4): inbound event → inbox row → command executor → outcome →
outbox rows → Matrix sender → delivery state. Each arrow is one method here, and every step
writes its result to the database before the next step acts on it:

- :meth:`store_batch` writes a sync's events and its token in one transaction;
- :meth:`handle_inbox_row` runs one command and writes its outbox rows, audit entries and the
  row's "handled" mark in one transaction, so a crash leaves either nothing done or all of it;
- :meth:`deliver_due` sends queued outbox rows with their stable transaction ids.

A bug in a command never stops the worker: the row is retried a few times, then marked failed,
audited, and the sender gets a short apology in the room's language.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.channel_replies import CHANNEL_KINDS, ChannelReplies
from bot.clock import Clock
from bot.config import Config
from bot.due_trigger import DueTrigger
from bot.http.app import AckForm, AckOutcome
from bot.i18n import Catalog
from bot.matrix.gateway import MatrixGateway
from bot.matrix.sender import (
    PLAINTEXT_WARNING,
    Refused,
    Retry,
    SendResult,
    Sent,
    build_content,
)
from bot.waiting import wait_event
from bridges.signed_links import LinkClaim
from commands import dispatch, escalation
from commands.context import CommandContext, Invocation, Reaction
from commands.outcome import AuditEntry, BoardPost, Outcome, Post
from storage import audit, inbox, outbox, state
from storage import incidents as incidents_store
from storage.database import Database
from storage.models import InboxRow, OutboxRow

log = logging.getLogger(__name__)

BOT = "larmkedja"
MAX_HANDLING_ATTEMPTS = 3
URGENT_PURPOSES = frozenset({"alarm", "standdown", "reminder"})
ContextFactory = Callable[[AsyncSession], CommandContext]
#: The content of an edit whose original will never be delivered (see ``_content_for``).
_NEVER = object()


@dataclass(frozen=True)
class _Claimed:
    """An outbox row claimed for sending, with its content built at claim time."""

    row_id: int
    key: str
    room_id: str
    purpose: str
    content: dict[str, Any]
    possible_duplicate: bool


@dataclass(frozen=True)
class MembershipAction:
    kind: str  # join | decline
    room_id: str
    inviter: str


class Faults:
    """Crash points for the crash tests (a fault a real part cannot produce on demand).

    ``LARMKEDJA_FAULT`` names a point, optionally with the hit to die at: ``before-send@3``
    SIGKILLs the process the third time it passes ``before-send``. With
    ``LARMKEDJA_FAULT_DIR`` set, a marker file makes it fire once only, so that the same
    environment after a restart runs normally.
    """

    POINTS = (
        "after-inbox-store",
        "before-handle",
        "before-send",
        "after-send",
        "before-due",
        "after-due",
        "before-channel-send",
        "after-channel-send",
    )

    def __init__(self, point: str | None, marker_dir: str | None) -> None:
        self.at_hit = 1
        if point and "@" in point:
            point, _, count = point.partition("@")
            self.at_hit = max(1, int(count))
        self.point = point
        self.marker_dir = marker_dir
        self.hits = 0

    @staticmethod
    def from_env() -> Faults:
        return Faults(os.environ.get("LARMKEDJA_FAULT"), os.environ.get("LARMKEDJA_FAULT_DIR"))

    def hit(self, point: str) -> None:
        if self.point != point:
            return
        self.hits += 1
        if self.hits < self.at_hit:
            return
        if self.marker_dir:
            marker = os.path.join(self.marker_dir, f"fault-{point}.done")
            if os.path.exists(marker):
                return
            with open(marker, "w") as handle:
                handle.write("1")
        log.critical("fault injection: SIGKILL at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)


class Engine:
    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        db: Database,
        catalog: Catalog,
        gateway: MatrixGateway,
        make_context: ContextFactory,
        faults: Faults | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.db = db
        self.catalog = catalog
        self.gateway = gateway
        self.make_context = make_context
        self.faults = faults or Faults(None, None)
        self.inbox_wakeup = asyncio.Event()
        self.outbox_wakeup = asyncio.Event()
        self.handled = 0
        self._warned_unencrypted: set[str] = set()
        # Sends under way: a stop waits for them, so that "accepted by the homeserver" is never
        # separated from "marked sent" by a shutdown (a resend from a new device would be a
        # duplicate the homeserver cannot drop: transaction ids are per device).
        self._inflight: set[asyncio.Task[None]] = set()
        self.trigger: DueTrigger | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        # Set by the composition root when SMS or e-mail is configured.
        self.channel_replies: ChannelReplies | None = None
        self.channel_wakeup: Callable[[], None] | None = None

    def wake_outboxes(self) -> None:
        """Something was queued: the Matrix outbox and the SMS/e-mail outbox look now."""
        self.outbox_wakeup.set()
        if self.channel_wakeup is not None:
            self.channel_wakeup()

    # ---- inbound ------------------------------------------------------------------------

    async def store_batch(self, events: list[inbox.InboundEvent], token: str) -> None:
        async with self.db.write() as session:
            new_ids = await inbox.store(session, events, self.clock.now())
            await state.put(session, state.SYNC_TOKEN, token)
        if new_ids:
            if any(e.kind == "message" for e in events):
                self.faults.hit("after-inbox-store")  # a command stored, not yet handled
            self.inbox_wakeup.set()

    async def store_external(self, event: inbox.InboundEvent) -> bool:
        """Store one event from another channel (an SMS, an e-mail); True if it was new. The
        caller answers its gateway only after this returns, so nothing is acknowledged to a
        gateway that is not in the database."""
        async with self.db.write() as session:
            new_ids = await inbox.store(session, [event], self.clock.now())
        if new_ids:
            self.inbox_wakeup.set()
        return bool(new_ids)

    async def ack_by_link(self, claim: LinkClaim, form: AckForm) -> AckOutcome:
        """A POST to an acknowledge link: redeem, acknowledge and write it all in one go."""
        assert self.channel_replies is not None
        async with self.db.write() as session:
            now = self.clock.now()
            outcome, answer = await self.channel_replies.decide_link(
                session, claim, form, self.make_context(session)
            )
            await self.write_outcome(
                session,
                source_id=f"link:{claim.outbox_key}:{now.timestamp():.0f}",
                actor=f"link:{claim.party_id}",
                outcome=outcome,
                now=now,
            )
        self.wake_outboxes()
        await self.rearm()
        return answer

    async def run_inbox_worker(self, ready: asyncio.Event) -> None:
        """Handle commands, but only once the first full-state sync told us what each room is
        (encrypted or not, who is in it): room state is not persisted across restarts."""
        await ready.wait()
        while True:
            self.inbox_wakeup.clear()
            await self.drain_inbox()
            await wait_event(self.inbox_wakeup, timeout=5)

    async def drain_inbox(self) -> int:
        """Handle every pending inbox row in arrival order; return how many."""
        count = 0
        last_id = 0
        while True:
            async with self.db.read() as session:
                row = await inbox.next_pending(session, after_id=last_id)
            if row is None:
                return count
            last_id = row.id
            await self.handle_inbox_row(row.id)
            count += 1

    async def handle_inbox_row(self, row_id: int) -> None:
        self.faults.hit("before-handle")
        membership: MembershipAction | None = None
        try:
            async with self.db.write() as session:
                row = await inbox.by_id(session, row_id)
                if row is None or row.status != inbox.PENDING:
                    return  # someone else handled it (replay); exactly one effect
                if row.kind == "invite":
                    outcome, membership = self._decide_invite(row)
                    status = inbox.HANDLED
                else:
                    outcome, status = await self._decide(session, row)
                now = self.clock.now()  # one "now" for everything this transaction writes
                await self._write_outcome(session, row, outcome, now)
                inbox.mark(row, status, now)
            self.handled += 1
            self.wake_outboxes()  # what it decided may go out now
            await self.rearm()  # an alarm, ack or stand-down changes what is due
            if membership is not None:  # the decision is recorded: now act on it
                await self._act_on_membership(membership)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("handling inbox row %s failed", row_id)
            await self._record_failure(row_id, exc)
        self.wake_outboxes()

    async def _decide(self, session: AsyncSession, row: InboxRow) -> tuple[Outcome, str]:
        if row.kind in CHANNEL_KINDS:
            if self.channel_replies is None:  # stored while bridges were on, now off
                return Outcome(
                    audit=[
                        AuditEntry(
                            "inbound_reply.ignored", None, {"reason": "bridge not configured"}
                        )
                    ]
                ), inbox.IGNORED
            at = datetime.fromtimestamp(row.origin_ts / 1000, tz=self.clock.now().tzinfo)
            outcome = await self.channel_replies.decide(
                session, row, self.make_context(session), at
            )
            return outcome, inbox.HANDLED
        room_id = row.room_id or ""
        if room_id not in self.config.known_rooms():
            return Outcome(
                audit=[
                    AuditEntry(
                        "matrix.event.ignored",
                        room_id,
                        {"reason": "room not in config", "kind": row.kind},
                    )
                ]
            ), inbox.IGNORED
        at = datetime.fromtimestamp(row.origin_ts / 1000, tz=self.clock.now().tzinfo)
        ctx = self.make_context(session)
        if row.kind == "message":
            body = str(row.payload.get("body", ""))
            if not self.gateway.room_facts(room_id).encrypted:
                return self._unencrypted_refusal(row, body), inbox.HANDLED
            result = await dispatch.handle_message(
                Invocation(
                    event_id=row.event_id, room_id=room_id, sender=row.sender, body=body, at=at
                ),
                ctx,
            )
        elif row.kind == "reaction":
            result = await dispatch.handle_reaction(
                Reaction(
                    event_id=row.event_id,
                    room_id=room_id,
                    sender=row.sender,
                    key=str(row.payload.get("key", "")),
                    reacts_to=str(row.payload.get("reacts_to", "")),
                    at=at,
                ),
                ctx,
            )
        else:
            return Outcome(), inbox.IGNORED
        if result is None:
            return Outcome(), inbox.IGNORED
        return result, inbox.HANDLED

    def _unencrypted_refusal(self, row: InboxRow, body: str) -> Outcome:
        outcome = Outcome(
            audit=[
                AuditEntry(
                    "command.refused",
                    row.room_id,
                    {"reason": "room not encrypted", "sender": row.sender},
                )
            ]
        )
        if body.strip().startswith("!"):
            text = self.catalog.text(
                self.config.room_language(row.room_id or ""), "bot.unencrypted_room"
            )
            outcome.posts.append(
                Post(
                    room_id=row.room_id or "",
                    body=text,
                    key="unencrypted",
                    purpose=PLAINTEXT_WARNING,
                )
            )
        return outcome

    def _decide_invite(self, row: InboxRow) -> tuple[Outcome, MembershipAction | None]:
        """Join rooms the config names, decline all others. Only the decision is made here,
        inside the transaction; the join or leave happens after it is committed."""
        room_id = row.room_id or ""
        if room_id in self.gateway.joined_rooms() or room_id not in self.gateway.invited_rooms():
            return Outcome(), None  # already done, or a stale invite seen again
        if room_id in self.config.known_rooms():
            return Outcome(
                audit=[AuditEntry("matrix.invite.accepted", room_id, {"inviter": row.sender})]
            ), MembershipAction("join", room_id, row.sender)
        log.warning("declining an invite to %s from %s: room not in config", room_id, row.sender)
        return Outcome(
            audit=[
                AuditEntry(
                    "matrix.invite.declined",
                    room_id,
                    {"inviter": row.sender, "reason": "room not in config"},
                )
            ]
        ), MembershipAction("decline", room_id, row.sender)

    async def _act_on_membership(self, action: MembershipAction) -> None:
        if action.kind == "join":
            error = await self.gateway.join(action.room_id)
        else:
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

    async def _write_outcome(
        self, session: AsyncSession, row: InboxRow, outcome: Outcome, now: datetime
    ) -> None:
        actor = row.sender if row.sender != "unknown" else BOT
        reacts_to = row.event_id if row.kind == "message" and row.room_id else None
        await self.write_outcome(
            session,
            source_id=row.event_id,
            actor=actor,
            outcome=outcome,
            reaction_room=row.room_id if reacts_to else None,
            now=now,
        )

    async def write_outcome(
        self,
        session: AsyncSession,
        *,
        source_id: str,
        actor: str,
        outcome: Outcome,
        reaction_room: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Everything an outcome decided, as rows: audit entries, outbox messages on every
        channel, board posts or edits. ``source_id`` (an inbound event id, or ``due:<key>``
        for a due time) makes every outbox key stable, so a re-run cannot post twice."""
        now = now or self.clock.now()
        for entry in outcome.audit:
            await audit.append(
                session,
                at=now,
                actor=actor,
                action=entry.action,
                subject=entry.subject,
                detail={**entry.detail, "source": source_id},
            )
        rows = [
            OutboxRow(
                idempotency_key=f"{source_id}:{post.key}",
                channel="matrix",
                destination=post.room_id,
                purpose=post.purpose,
                created_at=now,
                incident_id=post.incident_id,
                payload={
                    "body": post.body,
                    "mentions": list(post.mentions),
                    "in_reply_to": post.in_reply_to,
                },
            )
            for post in outcome.posts
        ]
        rows += [
            OutboxRow(
                idempotency_key=f"{source_id}:{d.key}",
                channel=d.channel,
                destination=d.destination,
                purpose=d.purpose,
                created_at=now,
                incident_id=d.incident_id,
                payload={
                    "body": d.body,
                    **({"party_id": d.party_id} if d.party_id else {}),
                    **({"thread": list(d.thread)} if d.thread else {}),
                },
            )
            for d in outcome.deliveries
        ]
        if outcome.reaction and reaction_room:
            rows.append(
                OutboxRow(
                    idempotency_key=f"{source_id}:reaction",
                    channel="matrix",
                    destination=reaction_room,
                    purpose="reaction",
                    created_at=now,
                    payload={"reaction": outcome.reaction, "reacts_to": source_id},
                )
            )
        await outbox.enqueue_many(session, rows)
        for board in outcome.boards:
            await self._write_board(session, source_id, board, now)

    async def _write_board(
        self, session: AsyncSession, cause: str, board: BoardPost, now: datetime
    ) -> None:
        first = f"board:{board.incident_id}:{board.room_id}"
        original = await outbox.current_board(session, first)
        base = original.idempotency_key if original is not None else first
        if original is not None and original.status in (outbox.FAILED, outbox.CANCELLED):
            original = None  # never delivered: post the board afresh, edits follow the new one
            base = f"{first}:repost:{cause}"
        if original is None:
            await outbox.enqueue(
                session,
                key=base,
                channel="matrix",
                destination=board.room_id,
                purpose="board",
                payload={"body": board.body},
                now=now,
                incident_id=board.incident_id,
            )
            return
        if original.status == outbox.QUEUED:
            original.payload = {"body": board.body}  # not out yet: just send the newest
            return
        queued_edit = await outbox.newest_queued(session, f"{base}:edit:")
        if queued_edit is not None:  # an edit not out yet: it shall say the newest
            queued_edit.payload = {"body": board.body, "replaces_key": base}
            return
        edit_key = f"{base}:edit:{cause}"
        await outbox.enqueue(
            session,
            key=edit_key,
            channel="matrix",
            destination=board.room_id,
            purpose="board-edit",
            now=now,
            incident_id=board.incident_id,
            payload={"body": board.body, "replaces_key": base},
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

    # ---- due times: reminders and escalation --------------------------------------------

    async def fire_due_now(self) -> int:
        """Fire every due time that is due by the clock's now; return how many fired.

        Each one in its own transaction with the incident's current state, so an
        acknowledgement recorded first makes the due time moot: no reminder after an ack.
        """
        fired = 0
        for _ in range(10_000):  # firing one can make the next due at once (a late catch-up)
            async with self.db.read() as session:
                rows = await incidents_store.due_now(session, self.clock.now())
            if not rows:
                break
            for row in rows:
                self.faults.hit("before-due")
                async with self.db.write() as session:
                    outcome = await escalation.fire_due(
                        row.key, row.incident_id, self.make_context(session)
                    )
                    await self.write_outcome(
                        session, source_id=f"due:{row.key}", actor=BOT, outcome=outcome
                    )
                self.faults.hit("after-due")
                fired += 1
                self.wake_outboxes()
        await self.rearm()
        return fired

    async def rearm(self) -> None:
        """Point the trigger at the earliest pending due time in the database."""
        if self.trigger is None:
            return
        async with self.db.read() as session:
            self.trigger.arm(await incidents_store.next_due_at(session))

    # ---- undecryptable commands ---------------------------------------------------------

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
                    self.inbox_wakeup.set()
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
                    self.wake_outboxes()

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
            self.wake_outboxes()

    # ---- outbound -----------------------------------------------------------------------

    async def run_outbox_worker(self, ready: asyncio.Event) -> None:
        await ready.wait()
        while True:
            self.outbox_wakeup.clear()
            wait = 5.0
            try:
                await self.deliver_due()
                async with self.db.read() as session:
                    next_due = await outbox.next_due_time(session, "matrix")
                if next_due is not None:
                    wait = max(0.05, min(wait, (next_due - self.clock.now()).total_seconds()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass failed; retrying")
            await wait_event(self.outbox_wakeup, timeout=wait)

    async def deliver_due(self) -> int:
        """Claim the due Matrix rows of every room not already being served and start one
        delivery lane per room: rooms in parallel, each room strictly in order. Returns how
        many rows were claimed. One transaction claims them all (marked ``sending`` before
        the send, so a crash leaves a trace); each lane records its results in one more."""
        now = self.clock.now()
        claimed: dict[str, list[_Claimed]] = defaultdict(list)
        async with self.db.write() as session:
            blocked: set[str] = set(self._lanes)
            for row in await outbox.pending(session, "matrix"):
                room = row.destination
                if room in blocked:
                    continue
                due = row.next_attempt_at is None or row.next_attempt_at <= now
                content = await self._content_for(session, row) if due else None
                if content is _NEVER:  # it edits a message that will never exist
                    await self._fail_orphan_edit(session, row, now)
                    continue
                if content is None:
                    if due:  # an edit of a board that is not out yet
                        row.next_attempt_at = now + timedelta(seconds=0.2)
                    blocked.add(room)  # keep the room's order: later rows wait for this one
                    continue
                assert isinstance(content, dict)
                claimed[room].append(
                    _Claimed(
                        row_id=row.id,
                        key=row.idempotency_key,
                        room_id=room,
                        purpose=row.purpose,
                        content=content,
                        possible_duplicate=row.status == outbox.SENDING,
                    )
                )
                row.status = outbox.SENDING
                row.attempts += 1
        # Alarms (and reminders, stand-downs) go first: the initiator's reply and board in the
        # same pass follow once the homeserver has accepted them, instead of competing.
        urgent = [r for r, items in claimed.items() if items[0].purpose in URGENT_PURPOSES]
        first: list[asyncio.Task[None]] = []
        for room in sorted(claimed, key=lambda r: r not in urgent):
            wait_for = [] if room in urgent else first
            lane = asyncio.create_task(
                self._run_lane(claimed[room], after=wait_for), name=f"larmkedja-lane-{room}"
            )
            if room in urgent:
                first.append(lane)
            self._lanes[room] = lane
            self._inflight.add(lane)
            lane.add_done_callback(lambda t, r=room: self._lane_done(r, t))
        return sum(len(items) for items in claimed.values())

    def _lane_done(self, room: str, task: asyncio.Task[None]) -> None:
        self._lanes.pop(room, None)
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery lane for %s failed: %r", room, task.exception())
        self.wake_outboxes()

    async def finish_inflight(self, timeout: float = 15.0) -> None:
        """Let sends under way complete and be recorded (called on stop)."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout)

    async def _run_lane(self, items: list[_Claimed], after: list[asyncio.Task[None]]) -> None:
        if after:
            await asyncio.wait(after, timeout=10)
        results: list[tuple[_Claimed, SendResult]] = []
        for item in items:
            self.faults.hit("before-send")
            event_type = "m.reaction" if item.purpose == "reaction" else "m.room.message"
            result = await self.gateway.sender.send(
                key=item.key,
                room_id=item.room_id,
                content=item.content,
                purpose=item.purpose,
                event_type=event_type,
            )
            if isinstance(result, Sent):
                self.faults.hit("after-send")
            results.append((item, result))
            if isinstance(result, Retry):
                break  # the rest of the room waits behind it
        await self._record(results, unsent=items[len(results) :])

    async def _record(
        self, results: list[tuple[_Claimed, SendResult]], unsent: list[_Claimed]
    ) -> None:
        now = self.clock.now()
        async with self.db.write() as session:
            for item, result in results:
                row = await session.get(OutboxRow, item.row_id)
                assert row is not None
                if isinstance(result, Sent):
                    row.status, row.sent_at, row.remote_id = outbox.SENT, now, result.event_id
                    row.last_error = outbox.POSSIBLE_DUPLICATE if item.possible_duplicate else None
                elif isinstance(result, Refused):
                    row.status, row.last_error = outbox.FAILED, result.reason
                    await audit.append(
                        session,
                        at=now,
                        actor=BOT,
                        action="outbox.refused",
                        subject=item.room_id,
                        detail={"key": item.key, "reason": result.reason},
                    )
                else:
                    row.status, row.last_error = outbox.QUEUED, result.reason
                    backoff = result.after_s
                    if backoff is None:
                        cap = self.config.matrix.backoff_max_s
                        backoff = min(2 ** min(row.attempts, 9), cap) * random.uniform(0.5, 1.0)
                    row.next_attempt_at = now + timedelta(seconds=backoff)
            for item in unsent:
                row = await session.get(OutboxRow, item.row_id)
                assert row is not None
                row.status = outbox.QUEUED
                row.attempts = max(0, row.attempts - 1)

    async def _fail_orphan_edit(
        self, session: AsyncSession, row: OutboxRow, now: datetime
    ) -> None:
        """An edit of a board that failed for good fails too, instead of waiting forever in
        front of the room's later messages; the next board change posts the board afresh."""
        reason = "the message it edits was not delivered"
        row.status, row.next_attempt_at, row.last_error = outbox.FAILED, None, reason
        await audit.append(
            session,
            at=now,
            actor=BOT,
            action="outbox.refused",
            subject=row.destination,
            detail={"key": row.idempotency_key, "reason": reason},
        )

    async def _content_for(
        self, session: AsyncSession, row: OutboxRow
    ) -> dict[str, Any] | None | object:
        """The event content to send for ``row``; None while it must wait (an edit of a board
        not out yet); :data:`_NEVER` if it edits a message that failed for good."""
        payload = row.payload
        if row.purpose == "reaction":
            return {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": payload["reacts_to"],
                    "key": payload["reaction"],
                }
            }
        replaces = None
        if payload.get("replaces_key"):
            original = await outbox.by_key(session, payload["replaces_key"])
            if original is None or original.status in (outbox.FAILED, outbox.CANCELLED):
                return _NEVER
            if original.remote_id is None:
                return None
            replaces = original.remote_id
        return build_content(
            payload["body"],
            mentions=payload.get("mentions") or (),
            in_reply_to=payload.get("in_reply_to"),
            replaces=replaces,
        )
