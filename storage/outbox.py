"""The outbox: every outbound message is a row before its first attempt.

The idempotency key doubles as the Matrix transaction id, so a resend after a crash between
"sent" and "marked sent" is dropped by the homeserver within its dedupe window; beyond that
window the row's own ``sent`` status is the record (DESIGN §5.8).

Status: ``queued`` → ``sending`` → ``sent``; ``failed`` is permanent. A board edit that is still
``queued`` when the board changes again is rewritten with the newest board (see
:func:`newest_queued`), so a burst of acknowledgements costs one edit, not one per ack.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxRow

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"  # no longer wanted when its turn came (acknowledged, stood down)

# ``last_error`` of a row that was found ``sending`` (a crash between send and record) and was
# sent again: the homeserver or gateway may have got it twice.
POSSIBLE_DUPLICATE = "resent after a crash (possible duplicate)"


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    destination: str,
    purpose: str,
    payload: dict[str, Any],
    now: datetime,
    incident_id: str | None = None,
) -> OutboxRow | None:
    """Add a message unless its key exists already; return the new row or None."""
    existing = (
        await session.execute(select(OutboxRow.id).where(OutboxRow.idempotency_key == key))
    ).scalar_one_or_none()
    if existing is not None:
        return None
    row = OutboxRow(
        idempotency_key=key,
        channel=channel,
        destination=destination,
        purpose=purpose,
        payload=payload,
        status=QUEUED,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        incident_id=incident_id,
    )
    session.add(row)
    await session.flush()
    return row


async def enqueue_many(session: AsyncSession, rows: list[OutboxRow]) -> list[OutboxRow]:
    """Add many messages at once (one look-up, one flush); rows whose key exists are skipped.

    Each row needs idempotency_key, channel, destination, purpose, payload, created_at;
    status, attempts and next_attempt_at are set here.
    """
    if not rows:
        return []
    keys = [r.idempotency_key for r in rows]
    existing = set(
        (
            await session.execute(
                select(OutboxRow.idempotency_key).where(OutboxRow.idempotency_key.in_(keys))
            )
        ).scalars()
    )
    new: list[OutboxRow] = []
    for row in rows:
        if row.idempotency_key in existing:
            continue
        existing.add(row.idempotency_key)
        row.status, row.attempts, row.next_attempt_at = QUEUED, 0, row.created_at
        new.append(row)
    session.add_all(new)
    await session.flush()
    return new


async def pending(session: AsyncSession, channel: str) -> list[OutboxRow]:
    """Every row not yet out (queued, or marked sending by a pass or a crash), oldest first."""
    query = (
        select(OutboxRow)
        .where(OutboxRow.channel == channel, OutboxRow.status.in_((QUEUED, SENDING)))
        .order_by(OutboxRow.id)
    )
    return list((await session.execute(query)).scalars())


async def newest_queued(session: AsyncSession, key_prefix: str) -> OutboxRow | None:
    query = (
        select(OutboxRow)
        .where(
            OutboxRow.idempotency_key.startswith(key_prefix, autoescape=True),
            OutboxRow.status == QUEUED,
        )
        .order_by(OutboxRow.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def current_board(session: AsyncSession, first_key: str) -> OutboxRow | None:
    """The board message that edits now replace: the first post (``first_key``), or the newest
    re-post (``<first_key>:repost:…``) made after a post failed for good."""
    query = (
        select(OutboxRow)
        .where(
            OutboxRow.purpose == "board",
            or_(
                OutboxRow.idempotency_key == first_key,
                OutboxRow.idempotency_key.startswith(f"{first_key}:repost:", autoescape=True),
            ),
        )
        .order_by(OutboxRow.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def by_key(session: AsyncSession, key: str) -> OutboxRow | None:
    query = select(OutboxRow).where(OutboxRow.idempotency_key == key)
    return (await session.execute(query)).scalar_one_or_none()


async def any_to(session: AsyncSession, destination: str, purpose: str) -> bool:
    """Whether a message with ``purpose`` was ever written for ``destination`` (whatever became
    of it): for what a room is told once only, such as the unencrypted-room notice."""
    query = (
        select(OutboxRow.id)
        .where(OutboxRow.destination == destination, OutboxRow.purpose == purpose)
        .limit(1)
    )
    return (await session.execute(query)).first() is not None


async def due(
    session: AsyncSession, channel: str, now: datetime, limit: int = 500
) -> list[OutboxRow]:
    """Queued rows whose next attempt is due, oldest first; ``sending`` rows left by a crash
    count as due again (the stable transaction id makes the retry safe)."""
    query = (
        select(OutboxRow)
        .where(
            OutboxRow.channel == channel,
            OutboxRow.status.in_((QUEUED, SENDING)),
            or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now),
        )
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def next_due_time(session: AsyncSession, channel: str) -> datetime | None:
    query = (
        select(OutboxRow.next_attempt_at)
        .where(OutboxRow.channel == channel, OutboxRow.status.in_((QUEUED, SENDING)))
        .order_by(OutboxRow.next_attempt_at)
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def all_rows(session: AsyncSession) -> list[OutboxRow]:
    return list((await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())


async def of_source(session: AsyncSession, source: str, purpose: str) -> list[OutboxRow]:
    """The messages of one decision (``<source>:…`` keys) with ``purpose``, in order."""
    query = (
        select(OutboxRow)
        .where(
            OutboxRow.idempotency_key.startswith(f"{source}:", autoescape=True),
            OutboxRow.purpose == purpose,
        )
        .order_by(OutboxRow.id)
    )
    return list((await session.execute(query)).scalars())


def settled(row: OutboxRow) -> bool:
    """Out, failed for good or cancelled: nothing more will happen to this message (a row
    whose destination is unreachable and whose party fell back counts as settled too: it is
    retried, but the party was moved on)."""
    return row.status in (SENT, FAILED, CANCELLED) or bool((row.payload or {}).get("fallback"))


async def alarm_never_reached(session: AsyncSession, incident_id: str, destination: str) -> bool:
    """Whether every alarm of ``incident_id`` to ``destination`` was cancelled or failed (so
    a stand-down there would end something nobody there heard of)."""
    statuses = set(
        (
            await session.execute(
                select(OutboxRow.status).where(
                    OutboxRow.incident_id == incident_id,
                    OutboxRow.destination == destination,
                    OutboxRow.purpose == "alarm",
                )
            )
        ).scalars()
    )
    return bool(statuses) and statuses <= {CANCELLED, FAILED}
