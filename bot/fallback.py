"""The fallback watch: SMS and e-mail alarms that did not get through move the party on.

An alarm row of channel ``sms`` or ``email`` needs a fallback when it

- failed for good (a permanent refusal, attempts used up, or a "not delivered" report), or
- is an SMS not reported delivered within ``sms_timeout_s`` of being written (the gateway is
  down and the row is still being retried, or the phone is off and the report never comes).

For each such row, once, :func:`commands.fallback.fall_back` runs in its own write transaction
(the row is marked in the same one, so a crash neither loses nor repeats the step). The row
itself is left alone: a queued SMS still goes out when the gateway is back, unless the party
has acknowledged by then (the channel outbox cancels it).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.clock import Clock
from bot.waiting import wait_event
from bridges.outbox_worker import reported_delivered
from commands.fallback import fall_back
from storage import audit, outbox
from storage.database import Database
from storage.models import OutboxRow

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

ACTOR = "larmkedja:fallback"
WATCHED_PURPOSES = ("alarm", "escalation")
LOOK_BACK = timedelta(days=2)


def _needs_fallback(row: OutboxRow, now: datetime, sms_timeout_s: float | None) -> str | None:
    """Why ``row`` needs a fallback, or None."""
    payload = row.payload or {}
    if payload.get("fallback") or not payload.get("party_id") or not row.incident_id:
        return None
    if row.status == outbox.FAILED:
        return (row.last_error or "failed")[:200]
    if row.channel != "sms" or sms_timeout_s is None or row.status == outbox.CANCELLED:
        return None
    if reported_delivered(row) or now - row.created_at < timedelta(seconds=sms_timeout_s):
        return None
    return f"not reported delivered within {sms_timeout_s:g} s"


class FallbackWatch:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        engine: Engine,
        *,
        sms_timeout_s: float | None,
        interval_s: float = 1.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.engine = engine
        self.sms_timeout_s = sms_timeout_s
        self.interval_s = interval_s
        self._wakeup = asyncio.Event()

    def wakeup(self) -> None:
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wakeup.clear()
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fallback check failed; retrying")
            await wait_event(self._wakeup, timeout=self.interval_s)

    async def candidates(self, now: datetime) -> list[OutboxRow]:
        query = (
            select(OutboxRow)
            .where(
                OutboxRow.channel.in_(("sms", "email")),
                OutboxRow.purpose.in_(WATCHED_PURPOSES),
                OutboxRow.status != outbox.SENT,
                OutboxRow.created_at >= now - LOOK_BACK,
            )
            .order_by(OutboxRow.id)
        )
        async with self.db.read() as session:
            rows = list((await session.execute(query)).scalars())
            if self.sms_timeout_s is not None:  # sent SMS only once their time is up
                sent_sms = (
                    select(OutboxRow)
                    .where(
                        OutboxRow.channel == "sms",
                        OutboxRow.purpose.in_(WATCHED_PURPOSES),
                        OutboxRow.status == outbox.SENT,
                        OutboxRow.created_at >= now - LOOK_BACK,
                        OutboxRow.created_at <= now - timedelta(seconds=self.sms_timeout_s),
                    )
                    .order_by(OutboxRow.id)
                )
                rows += list((await session.execute(sent_sms)).scalars())
        return [r for r in rows if _needs_fallback(r, now, self.sms_timeout_s) is not None]

    async def check(self) -> int:
        """Run the fallback of every row that needs one; return how many ran."""
        now = self.clock.now()
        done = 0
        for candidate in await self.candidates(now):
            try:
                done += await self._fall_back(candidate.id, now)
            except Exception as exc:  # one row must not hold up the others' fallbacks
                log.exception("fallback of outbox row %s failed", candidate.id)
                await self._give_up(candidate.id, now, exc)
        if done:
            self.engine.wake_outboxes()
        return done

    async def _give_up(self, row_id: int, now: datetime, exc: Exception) -> None:
        """Mark the row so that the watch does not retry it every second, and audit it."""
        async with self.db.write() as session:
            row = await session.get(OutboxRow, row_id)
            if row is None:
                return
            payload = dict(row.payload or {})
            payload["fallback"] = {"at": now.isoformat(), "error": type(exc).__name__}
            row.payload = payload
            await audit.append(
                session,
                at=now,
                actor=ACTOR,
                action="delivery.fallback.failed",
                subject=row.incident_id,
                detail={"key": row.idempotency_key, "error": type(exc).__name__},
            )

    async def _fall_back(self, row_id: int, now: datetime) -> int:
        """One row's fallback and its mark, in one transaction; 1 if it ran."""
        async with self.db.write() as session:
            row = await session.get(OutboxRow, row_id)
            if row is None:
                return 0
            reason = _needs_fallback(row, now, self.sms_timeout_s)
            if reason is None:
                return 0
            payload = dict(row.payload or {})
            outcome = await fall_back(
                self.engine.make_context(session),
                incident_id=row.incident_id or "",
                party_id=str(payload["party_id"]),
                failed_channel=row.channel,
                reason=reason,
            )
            payload["fallback"] = {"at": now.isoformat(), "reason": reason}
            row.payload = payload
            await self.engine.write_outcome(
                session,
                source_id=f"fallback:{row.idempotency_key}",
                actor=ACTOR,
                outcome=outcome,
                now=now,
            )
        return 1
