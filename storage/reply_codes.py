"""Tables and queries of the reply codes that let SMS and e-mail replies acknowledge an alarm.

Only *hashes* of codes are stored (an HMAC keyed with a secret that is not in the database), so
a copy of the database does not let anyone acknowledge. The code itself is re-derived when
needed from the secret, the outbox key and the row's random ``salt`` (see
:mod:`bridges.reply_codes`), which is why a retried send finds the same code without it ever
being written down.

``reply_code_failures`` counts wrong guesses per sender for the throttle. It holds only the
sender and why the attempt failed: never the code that was tried.

The policy (what counts as a match, when to throttle) lives in :mod:`bridges.reply_codes`; this
module only reads and writes rows, inside the caller's transaction
(:meth:`storage.database.Database.write`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Index, Integer, String, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class ReplyCodeRow(Base):
    """One code, sent in one outbox message to one number or address."""

    __tablename__ = "reply_codes"
    __table_args__ = (Index("ix_reply_codes_channel_destination", "channel", "destination"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_key: Mapped[str] = mapped_column(String(255), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)  # hex HMAC of the code
    salt: Mapped[str] = mapped_column(String(32))  # hex; with the secret it derives the code
    channel: Mapped[str] = mapped_column(String(16))  # sms, email
    destination: Mapped[str] = mapped_column(String(255))  # normalised number or address
    incident_id: Mapped[str] = mapped_column(String(32), index=True)
    party_id: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    used_via: Mapped[str | None] = mapped_column(String(16))  # sms, email, link


class ReplyCodeFailureRow(Base):
    """One wrong guess (wrong code, or someone else's code) from one sender."""

    __tablename__ = "reply_code_failures"
    __table_args__ = (Index("ix_reply_code_failures_sender", "channel", "sender", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(16))


async def by_outbox_key(session: AsyncSession, outbox_key: str) -> ReplyCodeRow | None:
    query = select(ReplyCodeRow).where(ReplyCodeRow.outbox_key == outbox_key)
    return (await session.execute(query)).scalar_one_or_none()


async def recent_for(
    session: AsyncSession, *, channel: str, destination: str, expiring_after: datetime
) -> list[ReplyCodeRow]:
    """Codes sent to this number/address that expire (or expired) after ``expiring_after``,
    used or not: the candidates a reply from there is compared with."""
    query = (
        select(ReplyCodeRow)
        .where(
            ReplyCodeRow.channel == channel,
            ReplyCodeRow.destination == destination,
            ReplyCodeRow.expires_at > expiring_after,
        )
        .order_by(ReplyCodeRow.id)
    )
    return list((await session.execute(query)).scalars())


async def live_with_hash(
    session: AsyncSession, code_hash: str, *, now: datetime
) -> list[ReplyCodeRow]:
    """Unused, unexpired codes with this hash, anywhere: to tell "someone else's code" apart.

    The SQL equality compares keyed MACs the sender cannot compute, so its timing says nothing
    about the code; the comparison that accepts a code is the constant-time one in
    :mod:`bridges.reply_codes`.
    """
    query = select(ReplyCodeRow).where(
        ReplyCodeRow.code_hash == code_hash,
        ReplyCodeRow.used_at.is_(None),
        ReplyCodeRow.expires_at > now,
    )
    return list((await session.execute(query)).scalars())


async def mark_used(session: AsyncSession, code_id: int, *, at: datetime, via: str) -> bool:
    """Use the code up; False if it was already used. One conditional UPDATE, so two replies
    racing (or a reply and a link click) cannot both win, even across processes."""
    result = await session.execute(
        update(ReplyCodeRow)
        .where(ReplyCodeRow.id == code_id, ReplyCodeRow.used_at.is_(None))
        .values(used_at=at, used_via=via)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def record_failure(
    session: AsyncSession, *, channel: str, sender: str, at: datetime, reason: str
) -> None:
    session.add(ReplyCodeFailureRow(channel=channel, sender=sender, at=at, reason=reason))
    await session.flush()


async def failures_since(
    session: AsyncSession,
    *,
    channel: str,
    sender: str,
    since: datetime,
    reasons: Sequence[str] | None = None,
) -> list[datetime]:
    """When ``sender`` failed since ``since`` (with one of ``reasons``, or any), oldest first."""
    query = select(ReplyCodeFailureRow.at).where(
        ReplyCodeFailureRow.channel == channel,
        ReplyCodeFailureRow.sender == sender,
        ReplyCodeFailureRow.at > since,
    )
    if reasons is not None:
        query = query.where(ReplyCodeFailureRow.reason.in_(tuple(reasons)))
    return list((await session.execute(query.order_by(ReplyCodeFailureRow.at))).scalars())


async def purge(session: AsyncSession, *, before: datetime) -> tuple[int, int]:
    """Delete codes that expired and failures recorded before ``before``; returns both counts.

    Why keep them a while at all: a late reply to an expired code is answered "expired" (and
    not "wrong") only while its row exists, and used codes keep a reused code from being
    issued again to the same number in that time.
    """
    codes = await session.execute(delete(ReplyCodeRow).where(ReplyCodeRow.expires_at < before))
    failures = await session.execute(
        delete(ReplyCodeFailureRow).where(ReplyCodeFailureRow.at < before)
    )
    return int(codes.rowcount), int(failures.rowcount)  # type: ignore[attr-defined]
