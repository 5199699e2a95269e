"""The due-time pass: reminders, escalation steps and delivery deadlines fire when they are due.

Every pending due time is a row (:mod:`storage.incidents`); APScheduler only wakes this pass at
the earliest one (:mod:`bot.due_trigger`), and the pass itself looks again within a minute in
case a wake-up was missed. Each row fires in its own write transaction against the incident's
current state, so an acknowledgement recorded first makes a reminder moot, and a crash leaves
each row either fired with its outcome or still pending:

- a reminder or escalation step (kinds ``step``, ``pledge``): :func:`commands.escalation.
  fire_due` decides, the outcome is written like a command's (``due:<key>``);
- a delivery deadline (kind ``delivery``): the alarm it watches was not reported delivered in
  time, so the party moves on to its next channel (:mod:`bot.engine.fallback`); moot if it was
  delivered, cancelled or fell back already;
- a delivery summary still owed at its deadline (kind ``summary``, :mod:`bot.engine.summaries`).
- an exercise's start, a reminder of it to the coordinators, or a running exercise's deadline
  (kinds ``exercise_*``, rows of a planned exercise that has no incident yet):
  :mod:`commands.exercise.due` decides, written like the reminders.

Besides the rows, the pass asks each *due source* for what should be a row by now: the
config's recurring exercise schedules (:func:`commands.exercise.recurring.plan_next`) have
their next occurrence made a planned exercise with its due rows, before the rows are read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.due_trigger import DueTrigger
from bot.engine.delivery_reports import reported_delivered
from bot.engine.fallback import Fallback
from bot.engine.faults import Faults
from bot.engine.summaries import Summaries
from bot.engine.writer import OutcomeWriter
from commands.context import CommandContext
from commands.due import fire_due_row
from commands.exercise.recurring import plan_next
from commands.outcome import Outcome
from storage import incidents as store
from storage import outbox
from storage.database import Database
from storage.incident_models import DueRow
from storage.models import OutboxRow

BOT = "larmkedja"
#: However the trigger behaves, the pass looks at least this often.
SAFETY_POLL_S = 60.0


class DuePass:
    name = "due-times"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        writer: OutcomeWriter,
        make_context: Callable[[AsyncSession], CommandContext],
        fallback: Fallback | None,
        summaries: Summaries | None = None,
        trigger: DueTrigger | None = None,
        faults: Faults | None = None,
        wake_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.writer = writer
        self.make_context = make_context
        self.fallback = fallback
        self.summaries = summaries
        self.trigger = trigger
        self.faults = faults or Faults(None, None)
        self._wake_delivery = wake_delivery or (lambda: None)
        self.fired = 0

    async def run_once(self) -> float:
        await self.plan_recurring()
        await self.fire_due_now()
        return SAFETY_POLL_S

    async def plan_recurring(self) -> None:
        """The due sources: each recurring exercise schedule of the config has its next
        occurrence planned (idempotent; one write transaction, written like a decision)."""
        async with self.db.write() as session:
            outcome = await plan_next(self.make_context(session))
            if outcome is not None:
                await self.writer.write(
                    session,
                    source_id="schedules",
                    actor=BOT,
                    outcome=outcome,
                    now=self.clock.now(),
                )

    async def fire_due_now(self) -> int:
        """Fire every due time that is due by the clock's now; return how many fired."""
        fired = 0
        for _ in range(10_000):  # firing one can make the next due at once (a late catch-up)
            async with self.db.read() as session:
                rows = [(r.id, r.kind) for r in await store.due_now(session, self.clock.now())]
            if not rows:
                break
            for row_id, _kind in rows:
                await self.fire(row_id)
                fired += 1
        self.fired += fired
        await self.rearm()
        return fired

    async def fire(self, row_id: int) -> Outcome | None:
        """Fire one due-time row in its own transaction; the outcome of a reminder or
        escalation step (None for the engine's own kinds, or a row fired meanwhile)."""
        self.faults.hit("before-due")
        async with self.db.write() as session:
            outcome = await self._fire(session, row_id)
        self.faults.hit("after-due")
        self._wake_delivery()
        return outcome

    async def _fire(self, session: AsyncSession, row_id: int) -> Outcome | None:
        row = await session.get(DueRow, row_id)
        if row is None or row.status != store.PENDING:
            return None  # fired by someone else meanwhile: exactly one effect
        now = self.clock.now()
        if row.kind == store.DELIVERY:
            await self._deadline(session, row)
            return None
        if row.kind == store.SUMMARY:
            if self.summaries is not None:
                await self.summaries.at_deadline(session, row, now)
            else:
                await store.settle(session, row, store.MOOT, now)
            return None
        outcome = await fire_due_row(
            row.kind, row.key, row.incident_id, row.schedule_id, self.make_context(session)
        )
        outcome = self.writer.marking(outcome)  # returned as written
        await self.writer.write(
            session, source_id=f"due:{row.key}", actor=BOT, outcome=outcome, now=now
        )
        return outcome

    async def _deadline(self, session: AsyncSession, due: DueRow) -> None:
        now = self.clock.now()
        message = await session.get(OutboxRow, due.step)
        late = (
            message is not None
            and message.status != outbox.CANCELLED
            and not reported_delivered(message)
            and not (message.payload or {}).get("fallback")
        )
        await store.settle(session, due, store.FIRED if late else store.MOOT, now)
        if late and message is not None and self.fallback is not None:
            waited = (due.due_at - message.created_at).total_seconds()
            await self.fallback.on_problem(
                session, message, f"not reported delivered within {waited:g} s", now
            )

    async def rearm(self) -> None:
        """Point the trigger at the earliest pending due time in the database."""
        if self.trigger is None:
            return
        async with self.db.read() as session:
            self.trigger.arm(await store.next_due_at(session))

    def retry_soon(self) -> None:
        """After a failed pass: try again in 5 s rather than at the next due time."""
        if self.trigger is not None:
            self.trigger.arm(self.clock.now() + timedelta(seconds=5))
