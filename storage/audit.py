"""The append-only, hash-chained audit log.

Every entry's hash covers its own content and the previous entry's hash, so that an edited,
removed or reordered entry is detected by :func:`verify_chain`. Appends happen inside the
caller's write transaction (see :meth:`storage.database.Database.write`), so an entry exists if
and only if the decision it records was committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditRow

GENESIS = "0" * 64


def _digest(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    detail: dict[str, Any],
) -> str:
    body = json.dumps(
        [seq, at.astimezone(UTC).isoformat(), actor, action, subject, detail],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


async def append(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRow:
    """Append one entry. Never put a secret in ``detail``."""
    detail = detail or {}
    last = (
        await session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1))
    ).scalar_one_or_none()
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS if last is None else last.hash
    # Round-trip through JSON so the stored detail is exactly what was hashed.
    detail = json.loads(json.dumps(detail, default=str))
    row = AuditRow(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        detail=detail,
        prev_hash=prev,
        hash=_digest(prev, seq, at, actor, action, subject, detail),
    )
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True)
class AuditNote:
    """An entry a lower layer decided on but does not write itself (the reply codes): the
    caller appends it in its transaction with :func:`append_note`."""

    actor: str
    action: str
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


async def append_note(session: AsyncSession, at: datetime, note: AuditNote) -> AuditRow:
    return await append(
        session,
        at=at,
        actor=note.actor,
        action=note.action,
        subject=note.subject,
        detail=note.detail,
    )


async def entries(session: AsyncSession, action: str | None = None) -> list[AuditRow]:
    query = select(AuditRow).order_by(AuditRow.seq)
    if action is not None:
        query = query.where(AuditRow.action == action)
    return list((await session.execute(query)).scalars())


async def verify_chain(session: AsyncSession) -> int | None:
    """Return the seq of the first entry that breaks the chain, or None if it is intact."""
    prev = GENESIS
    expected_seq = 1
    for row in await entries(session):
        at = row.at
        if row.seq != expected_seq or row.prev_hash != prev:
            return row.seq
        if row.hash != _digest(prev, row.seq, at, row.actor, row.action, row.subject, row.detail):
            return row.seq
        prev = row.hash
        expected_seq += 1
    return None
