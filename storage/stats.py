"""Counts the metrics are made of, read from the outbox and the audit log (SQL stays here)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, not_, or_, select
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


#: Subjects of exercises and test alarms (their own id series, ``Ö-3``, ``T-2``).
EXERCISE_SUBJECTS = ("Ö-%", "T-%")


async def audit_counts(
    session: AsyncSession, actions: Iterable[str], *, exercises: bool = False
) -> dict[str, int]:
    """Audit entries by action: of live incidents (and of nothing), or with ``exercises`` of
    exercises and test alarms only, so that an exercise never counts as live traffic."""
    of_exercise = or_(*(AuditRow.subject.like(p) for p in EXERCISE_SUBJECTS))
    rows = await session.execute(
        select(AuditRow.action, func.count())
        .where(
            AuditRow.action.in_(list(actions)),
            of_exercise if exercises else or_(AuditRow.subject.is_(None), not_(of_exercise)),
        )
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
