"""Recording what happened to each claimed outbox row: sent, retried, cancelled or failed.

Part of the one outbox (:mod:`bot.engine.delivery`), kept apart because it is where the rules
of the outcome live: when a retry is given up (:mod:`bot.engine.retry`), what is audited (with
the destination masked), and that a message which leaves its party unreached is handed to the
fallback in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.contracts import Outgoing, Refused, Retry, SendResult, Sent
from bot.engine.retry import ChannelPolicy
from bridges.destinations import mask_destination
from storage import audit, outbox
from storage.database import Database
from storage.models import OutboxRow

log = logging.getLogger(__name__)

ACTOR = "larmkedja:outbox"

#: Called in a record transaction when a message leaves its party unreached (failed for
#: good, or its destination unreachable): the fallback.
ProblemHandler = Callable[[AsyncSession, OutboxRow, str, datetime], Awaitable[None]]
#: Called at the end of every record transaction with the rows it recorded (the delivery
#: summaries look whether everything they wait for is settled now).
AfterRecord = Callable[[AsyncSession, list[OutboxRow], datetime], Awaitable[None]]


def subject_of(channel: str, destination: str) -> str:
    """How a destination is named in the audit log: a room by its id, a number or address
    masked (they are personal, room ids are not)."""
    return destination if channel == "matrix" else mask_destination(destination)


class Recorder:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        policies: Mapping[str, ChannelPolicy],
        on_problem: ProblemHandler | None,
        after_record: AfterRecord | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.policies = policies
        self.on_problem = on_problem
        self.after_record = after_record

    async def cancel(
        self, session: AsyncSession, row: OutboxRow, reason: str, now: datetime
    ) -> None:
        row.status, row.next_attempt_at, row.last_error = outbox.CANCELLED, None, reason
        masked = subject_of(row.channel, row.destination)
        log.info(
            "outbox %s: %s to %s not sent: %s", row.idempotency_key, row.channel, masked, reason
        )
        await audit.append(
            session,
            at=now,
            actor=ACTOR,
            action="outbox.cancelled",
            subject=masked,
            detail={"key": row.idempotency_key, "channel": row.channel, "reason": reason},
        )

    async def fail(
        self, session: AsyncSession, row: OutboxRow, reason: str, now: datetime, action: str
    ) -> None:
        row.status, row.next_attempt_at, row.last_error = outbox.FAILED, None, reason
        await audit.append(
            session,
            at=now,
            actor=ACTOR,
            action=action,
            subject=subject_of(row.channel, row.destination),
            detail={"key": row.idempotency_key, "channel": row.channel, "reason": reason},
        )
        await self.problem(session, row, reason, now)

    async def problem(
        self, session: AsyncSession, row: OutboxRow, reason: str, now: datetime
    ) -> None:
        if self.on_problem is not None:
            await self.on_problem(session, row, reason, now)

    # -- record --------------------------------------------------------------------------

    async def record(
        self, results: list[tuple[Outgoing, SendResult]], unsent: tuple[Outgoing, ...]
    ) -> None:
        now = self.clock.now()
        async with self.db.write() as session:
            recorded: list[OutboxRow] = []
            for item, result in results:
                row = await session.get(OutboxRow, item.row_id)
                if row is None:
                    continue
                if isinstance(result, Sent):
                    self._sent(row, item, result, now)
                else:
                    await self._not_sent(session, row, item, result, now)
                recorded.append(row)
            for item in unsent:  # never tried: back in the queue, no attempt used up
                row = await session.get(OutboxRow, item.row_id)
                if row is not None:
                    row.status = outbox.QUEUED
                    row.attempts = max(0, row.attempts - 1)
            if self.after_record is not None and recorded:
                await self.after_record(session, recorded, now)

    def _sent(self, row: OutboxRow, item: Outgoing, result: Sent, now: datetime) -> None:
        delivery = (row.payload or {}).get("delivery") or {}
        if delivery.get("status") != "failed":  # a failed delivery report overtook the record
            row.status = outbox.SENT
        row.sent_at, row.next_attempt_at = now, None
        row.remote_id = (result.remote_id or "")[:255] or None
        row.last_error = outbox.POSSIBLE_DUPLICATE if item.possible_duplicate else None
        if item.channel != "matrix" or item.possible_duplicate:
            log.log(
                logging.WARNING if item.possible_duplicate else logging.INFO,
                "outbox %s: %s to %s sent%s",
                item.key,
                item.channel,
                mask_destination(item.destination),
                " (possible duplicate after a crash)" if item.possible_duplicate else "",
            )

    async def _not_sent(
        self,
        session: AsyncSession,
        row: OutboxRow,
        item: Outgoing,
        result: Refused | Retry,
        now: datetime,
    ) -> None:
        policy = self.policies[item.channel]
        reason = result.reason
        if item.possible_duplicate:
            reason = f"{reason} ({outbox.POSSIBLE_DUPLICATE})"
        final = isinstance(result, Refused) or policy.gives_up(
            row.purpose, row.attempts, row.created_at, now
        )
        masked = subject_of(item.channel, item.destination)
        detail: dict[str, object] = {
            "key": item.key,
            "channel": item.channel,
            "kind": "permanent" if isinstance(result, Refused) else "temporary",
            "attempts": row.attempts,
            "reason": reason,
        }
        if result.kind:
            row.payload = {**(row.payload or {}), "problem": result.kind}
        if final:
            log.warning("outbox %s: %s to %s failed: %s", item.key, item.channel, masked, reason)
            refused = isinstance(result, Refused) and item.channel == "matrix"
            action = "outbox.refused" if refused else "outbox.failed"
            row.status, row.next_attempt_at, row.last_error = outbox.FAILED, None, reason
            await audit.append(
                session, at=now, actor=ACTOR, action=action, subject=masked, detail=detail
            )
            await self.problem(session, row, reason, now)
            return
        assert isinstance(result, Retry)
        backoff = result.after_s if result.after_s is not None else policy.backoff(row.attempts)
        row.status, row.last_error = outbox.QUEUED, reason
        row.next_attempt_at = now + timedelta(seconds=backoff)
        if item.channel != "matrix":  # a Matrix retry is routine (the sender logs it)
            log.warning(
                "outbox %s: %s to %s will be retried (attempt %d): %s",
                item.key,
                item.channel,
                masked,
                row.attempts,
                reason,
            )
            detail["next_attempt_at"] = row.next_attempt_at.isoformat()
            await audit.append(
                session, at=now, actor=ACTOR, action="outbox.retry", subject=masked, detail=detail
            )
        if result.unreachable:
            await self.problem(session, row, reason, now)
