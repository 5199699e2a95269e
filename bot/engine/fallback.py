"""A message that did not reach its party moves the party on to its next channel.

One entry point, :meth:`Fallback.on_problem`, called in the transaction that learnt of the
problem, so the problem and what is done about it are stored together (a crash neither loses
nor repeats the step):

- the outbox's record of a send that failed for good, or found the party unreachable
  (:mod:`bot.engine.delivery`);
- a delivery report saying "not delivered" (:mod:`bot.engine.delivery_reports`);
- a delivery deadline that passed without a "delivered" report (:mod:`bot.engine.due`).

Only alarms and escalations to a party are watched (in its room: the alarm), on every
channel: a room that cannot be reached (not encrypted, the bot not in it, the homeserver
refusing, not accepted within the deadline) is a delivery failure like a failed SMS. What the
party's next channel is, and whether anything is left to do (not for a party that acknowledged
meanwhile, not twice for one party and channel) is decided by
:func:`commands.fallback.fall_back`; the row is marked (``payload["fallback"]``) so that the
same row never falls back twice. The row itself is left alone: a queued SMS still goes out
when the gateway is back, unless the party has acknowledged by then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.engine.writer import WATCHED, OutcomeWriter
from commands.context import CommandContext
from commands.fallback import fall_back
from storage import audit
from storage.models import OutboxRow

log = logging.getLogger(__name__)

ACTOR = "larmkedja:fallback"
#: In a room, only the alarm itself: a reminder that cannot reach the room is the same room.
MATRIX_WATCHED = frozenset({"alarm"})


class Fallback:
    def __init__(
        self,
        *,
        writer: OutcomeWriter,
        make_context: Callable[[AsyncSession], CommandContext],
        channels: Collection[str] = ("matrix", "sms", "email"),
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.writer = writer
        self.make_context = make_context
        self.channels = frozenset(channels)
        self._wake = wake or (lambda: None)

    def watches(self, row: OutboxRow) -> bool:
        payload = row.payload or {}
        purposes = MATRIX_WATCHED if row.channel == "matrix" else WATCHED
        return (
            row.channel in self.channels
            and row.purpose in purposes
            and bool(payload.get("party_id"))
            and bool(row.incident_id)
            and not payload.get("fallback")
        )

    async def on_problem(
        self, session: AsyncSession, row: OutboxRow, reason: str, now: datetime
    ) -> None:
        if not self.watches(row):
            return
        payload = dict(row.payload or {})
        try:
            async with session.begin_nested():  # a failing fallback undoes only itself
                outcome = await fall_back(
                    self.make_context(session),
                    incident_id=row.incident_id or "",
                    party_id=str(payload["party_id"]),
                    failed_channel="room" if row.channel == "matrix" else row.channel,
                    reason=reason[:200],
                    kind=str(payload.get("problem") or ""),
                )
                await self.writer.write(
                    session,
                    source_id=f"fallback:{row.idempotency_key}",
                    actor=ACTOR,
                    outcome=outcome,
                    now=now,
                )
            payload["fallback"] = {"at": now.isoformat(), "reason": reason[:200]}
        except Exception as exc:  # recorded, so that it is not tried again with every retry
            log.exception("fallback of outbox row %s failed", row.id)
            payload["fallback"] = {"at": now.isoformat(), "error": type(exc).__name__}
            await audit.append(
                session,
                at=now,
                actor=ACTOR,
                action="delivery.fallback.failed",
                subject=row.incident_id,
                detail={"key": row.idempotency_key, "error": type(exc).__name__},
            )
        row.payload = payload  # a new dict: JSON columns do not track changes in place
        self._wake()
