"""Counts the metrics are made of, read from the outbox and the audit log (SQL stays here)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import outbox
from storage.models import AuditRow, OutboxRow


async def outbox_by_status(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(channel, status, count) of every outbox row."""
    rows = await session.execute(
        select(OutboxRow.channel, OutboxRow.status, func.count()).group_by(
            OutboxRow.channel, OutboxRow.status
        )
    )
    return [(channel, status, int(count)) for channel, status, count in rows]


async def oldest_waiting(session: AsyncSession) -> dict[str, datetime]:
    """When the oldest message not yet out was written, by channel."""
    rows = await session.execute(
        select(OutboxRow.channel, func.min(OutboxRow.created_at))
        .where(OutboxRow.status.in_((outbox.QUEUED, outbox.SENDING)))
        .group_by(OutboxRow.channel)
    )
    return {channel: since for channel, since in rows if since is not None}


async def audit_counts(session: AsyncSession, actions: Iterable[str]) -> dict[str, int]:
    rows = await session.execute(
        select(AuditRow.action, func.count())
        .where(AuditRow.action.in_(list(actions)))
        .group_by(AuditRow.action)
    )
    return {action: int(count) for action, count in rows}


async def pending_by_channel(session: AsyncSession, channels: Iterable[str]) -> dict[str, int]:
    """How many messages are not yet out, per channel (health)."""
    rows = await session.execute(
        select(OutboxRow.channel, func.count())
        .where(OutboxRow.status.in_((outbox.QUEUED, outbox.SENDING)))
        .group_by(OutboxRow.channel)
    )
    counted = {channel: int(count) for channel, count in rows}
    return {channel: counted.get(channel, 0) for channel in channels}
