"""Everything an outcome decided, written as rows in the caller's transaction.

The only place an :class:`commands.outcome.Outcome` becomes database rows: audit entries,
outbox rows on every channel (room posts, files, SMS and e-mail deliveries, the ✅ on the
command),
the status board posted once and then edited in place, and the delivery deadline of every alarm
that must be reported delivered in time. Every way in (a command, a reply, a link, a due time,
a fallback) writes through here, so an outbox key is always ``<source id>:<key>`` and a re-run
of the same source can never post twice.

Boards coalesce: a board edit not yet sent is rewritten with the newest board instead of
queuing another, so a burst of acknowledgements costs one edit per room, not one per ack. A
board whose post failed for good is posted afresh (its edits would edit nothing).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from commands.outcome import BoardPost, Outcome
from storage import audit, outbox
from storage import incidents as incidents_store
from storage.models import OutboxRow

#: Purposes whose delivery is watched: an alarm or escalation not reported delivered within
#: its channel's deadline falls back to the party's next channel.
WATCHED = frozenset({"alarm", "escalation"})


class OutcomeWriter:
    def __init__(
        self,
        *,
        marking: Callable[[Outcome], Outcome],
        delivery_deadlines: Mapping[str, float] | None = None,
        summary_after_s: float = 90.0,
    ) -> None:
        """``marking`` marks everything of an exercise (ÖVNING…) before it is written
        (:class:`commands.exercise.marking.ExerciseMarking`); required, so that no way of
        writing can leave it out. ``delivery_deadlines``: seconds per channel within which an
        alarm must be reported delivered (``{"sms": 120}`` when delivery reports are on); none
        for other channels. ``summary_after_s``: a delivery summary comes when everything it
        reports on has gone out, failed or was cancelled, and at the latest this long after it
        was asked for (what has not reached its room by then counts as not delivered: the
        Matrix deadline)."""
        self.marking = marking
        self.deadlines = dict(delivery_deadlines or {})
        self.summary_after_s = summary_after_s

    async def write(
        self,
        session: AsyncSession,
        *,
        source_id: str,
        actor: str,
        outcome: Outcome,
        now: datetime,
        reaction_room: str | None = None,
    ) -> list[OutboxRow]:
        """Write ``outcome``; returns the new outbox rows (boards not included)."""
        outcome = self.marking(outcome)
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
                    **({"thread_root": post.thread_root} if post.thread_root else {}),
                    **({"party_id": post.party_id} if post.party_id else {}),
                    **({"late_note": post.late_note} if post.late_note else {}),
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
                    **({"exercise_marker": d.marker} if d.marker else {}),
                },
            )
            for d in outcome.deliveries
        ]
        rows += [
            OutboxRow(
                idempotency_key=f"{source_id}:{a.key}",
                channel="matrix",
                destination=a.room_id,
                purpose="attachment",
                created_at=now,
                incident_id=a.incident_id,
                payload={
                    "body": a.body,
                    "filename": a.filename,
                    "mimetype": a.mimetype,
                    "data": base64.b64encode(a.data).decode("ascii"),
                    "in_reply_to": a.in_reply_to,
                },
            )
            for a in outcome.attachments
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
        new = await outbox.enqueue_many(session, rows)
        await self._deadlines(session, new, now)
        for summary in outcome.summaries:
            await incidents_store.add_summary(
                session,
                incident_id=summary.incident_id,
                source=source_id,
                purpose=summary.purpose,
                room_id=summary.room_id,
                due_at=now + timedelta(seconds=self.summary_after_s),
            )
        for board in outcome.boards:
            await self._write_board(session, source_id, board, now)
        return new

    async def _deadlines(
        self, session: AsyncSession, rows: list[OutboxRow], now: datetime
    ) -> None:
        """A due time per watched alarm: if it is not reported delivered by then, the due pass
        moves the party on to its next channel (:mod:`bot.engine.fallback`)."""
        for row in rows:
            seconds = self.deadlines.get(row.channel)
            party_id = (row.payload or {}).get("party_id")
            if (
                seconds is None
                or row.purpose not in WATCHED
                or not party_id
                or not row.incident_id
            ):
                continue
            await incidents_store.add_delivery_deadline(
                session,
                incident_id=row.incident_id,
                party_id=str(party_id),
                outbox_row_id=row.id,
                due_at=now + timedelta(seconds=seconds),
            )

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
        await outbox.enqueue(
            session,
            key=f"{base}:edit:{cause}",
            channel="matrix",
            destination=board.room_id,
            purpose="board-edit",
            now=now,
            incident_id=board.incident_id,
            payload={"body": board.body, "replaces_key": base},
        )
