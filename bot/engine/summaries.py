"""Delivery summaries owed: sent when everything they report on is settled, or at the deadline.

The alarm and the stand-down ask for one (:class:`commands.outcome.DeliverySummary`); the
writer stores it as a due-time row of kind ``summary``. :meth:`Summaries.after_record` runs in
every record transaction of the outbox, so the summary goes out as soon as the last of its
messages is out, failed or cancelled; :meth:`Summaries.at_deadline` runs from the due-time
pass when the deadline comes first: a room alarm not accepted by then is a delivery failure
(the party falls back to its other channels) and the summary says what is still not out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.engine.delivery_reports import reported_delivered
from bot.engine.recording import ProblemHandler
from bot.engine.writer import OutcomeWriter
from commands.context import CommandContext
from commands.delivery_summary import MessageState, summary_outcome
from storage import incidents as store
from storage import outbox
from storage.incident_models import DueRow
from storage.models import OutboxRow

ACTOR = "larmkedja"
SUMMARISED = frozenset({"alarm", "standdown"})


def message_state(row: OutboxRow) -> MessageState:
    payload = row.payload or {}
    channel = "room" if row.channel == "matrix" else row.channel
    if row.status == outbox.SENT:
        state = "sent"
    elif row.status == outbox.CANCELLED:
        state = "cancelled"
    elif row.status == outbox.FAILED:
        state = "failed"
    else:
        state = "pending"
    reason = str(payload.get("problem") or "") if state in ("failed", "pending") else ""
    return MessageState(
        party_id=str(payload.get("party_id") or ""),
        channel=channel,
        state=state,
        reason=reason,
        delivered=row.channel == "sms" and reported_delivered(row),
    )


class Summaries:
    def __init__(
        self,
        *,
        writer: OutcomeWriter,
        make_context: Callable[[AsyncSession], CommandContext],
        on_problem: ProblemHandler | None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.writer = writer
        self.make_context = make_context
        self.on_problem = on_problem
        self._wake = wake or (lambda: None)

    async def after_record(
        self, session: AsyncSession, rows: Iterable[OutboxRow], now: datetime
    ) -> None:
        incidents = sorted(
            {r.incident_id for r in rows if r.purpose in SUMMARISED and r.incident_id}
        )
        if not incidents:
            return
        for due in await store.pending_summaries(session, incidents):
            messages = await self._messages(session, due)
            if messages and all(outbox.settled(m) for m in messages):
                await self._send(session, due, messages, now, final=False)

    async def at_deadline(self, session: AsyncSession, due: DueRow, now: datetime) -> None:
        messages = await self._messages(session, due)
        waited = due.due_at - min((m.created_at for m in messages), default=due.due_at)
        for message in messages:
            late = message.channel == "matrix" and message.status in (
                outbox.QUEUED,
                outbox.SENDING,
            )
            if late and message.purpose == "alarm" and self.on_problem is not None:
                reason = f"not accepted within {waited.total_seconds():g} s"
                message.last_error = reason
                message.payload = {**(message.payload or {}), "problem": "not_in_time"}
                await self.on_problem(session, message, reason, now)
        await self._send(session, due, messages, now, final=True)

    async def _messages(self, session: AsyncSession, due: DueRow) -> list[OutboxRow]:
        detail = due.detail or {}
        return await outbox.of_source(session, str(detail["source"]), str(detail["purpose"]))

    async def _send(
        self,
        session: AsyncSession,
        due: DueRow,
        messages: list[OutboxRow],
        now: datetime,
        *,
        final: bool,
    ) -> None:
        detail = due.detail or {}
        ctx = self.make_context(session)
        incident = await ctx.incidents.get(due.incident_id)
        await store.settle(session, due, store.FIRED, now)
        if incident is None:
            return
        outcome = summary_outcome(
            ctx,
            incident,
            purpose=str(detail["purpose"]),
            room_id=str(detail["room"]),
            states=[message_state(m) for m in messages],
            final=final,
            key=due.key,
        )
        await self.writer.write(
            session, source_id=f"summary:{due.key}", actor=ACTOR, outcome=outcome, now=now
        )
        self._wake()
