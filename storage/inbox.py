"""The inbound event inbox: store first, handle later, exactly one effect per event.

Rows are unique by event id, so the same event delivered twice (a replayed sync, a gateway
retry) is stored once. The engine handles ``pending`` rows in arrival order and marks each
``handled`` in the same transaction as the effects of handling it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboxRow

PENDING = "pending"
HANDLED = "handled"
IGNORED = "ignored"
FAILED = "failed"
UNDECRYPTABLE = "undecryptable"  # waiting for its room key
ASKED = "asked"  # undecryptable past the grace period; the sender was asked to resend


@dataclass(frozen=True)
class InboundEvent:
    """One inbound event as the transport saw it, before anything is decided about it."""

    event_id: str
    source: str
    kind: str  # message | reaction | invite | undecryptable
    room_id: str | None
    sender: str
    origin_ts: int
    payload: dict[str, Any]


async def store(session: AsyncSession, events: list[InboundEvent], now: datetime) -> list[int]:
    """Insert events not seen before; return the ids of the new rows."""
    if not events:
        return []
    ids = [e.event_id for e in events]
    known = set(
        (
            await session.execute(select(InboxRow.event_id).where(InboxRow.event_id.in_(ids)))
        ).scalars()
    )
    new_rows = []
    for event in events:
        if event.event_id in known:
            continue
        known.add(event.event_id)
        status = UNDECRYPTABLE if event.kind == "undecryptable" else PENDING
        row = InboxRow(
            event_id=event.event_id,
            source=event.source,
            kind=event.kind,
            room_id=event.room_id,
            sender=event.sender,
            origin_ts=event.origin_ts,
            payload=event.payload,
            status=status,
            attempts=0,
            received_at=now,
        )
        session.add(row)
        new_rows.append(row)
    await session.flush()
    return [r.id for r in new_rows]


async def next_pending(session: AsyncSession, after_id: int = 0) -> InboxRow | None:
    query = (
        select(InboxRow)
        .where(InboxRow.status == PENDING, InboxRow.id > after_id)
        .order_by(InboxRow.id)
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def with_status(session: AsyncSession, status: str) -> list[InboxRow]:
    query = select(InboxRow).where(InboxRow.status == status).order_by(InboxRow.id)
    return list((await session.execute(query)).scalars())


async def by_id(session: AsyncSession, row_id: int) -> InboxRow | None:
    return await session.get(InboxRow, row_id)


def mark(row: InboxRow, status: str, now: datetime, note: str | None = None) -> None:
    row.status = status
    row.handled_at = now
    if note is not None:
        row.note = note[:2000]
