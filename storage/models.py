"""Tables. Portable SQL only (SQLite by default, PostgreSQL supported): no SQLite-only types.

Each table has one job in the write-before-act flow:

- ``inbox``: every inbound event, stored (unique by its Matrix event id or gateway id) before it
  is handled, so that a crash between "stored" and "handled" neither loses nor doubles it;
- ``outbox``: every outbound message, stored with a stable idempotency key (the Matrix
  transaction id) before its first attempt;
- ``audit_log``: append-only, hash-chained record of every decision, refusal and state change;
- ``bot_state``: small named values such as the sync token, written in the same transaction as
  the inbox rows of that sync.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use the injected clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime}


class InboxRow(Base):
    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # matrix, sms, email, http
    kind: Mapped[str] = mapped_column(String(32))  # message, reaction, invite, undecryptable
    room_id: Mapped[str | None] = mapped_column(String(255), index=True)
    sender: Mapped[str] = mapped_column(String(255))
    origin_ts: Mapped[int] = mapped_column(BigInteger)  # server timestamp, ms
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending -> handled | ignored | failed; undecryptable -> pending (key arrived) | asked
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime]
    handled_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # matrix (sms, email: bridges)
    destination: Mapped[str] = mapped_column(String(255), index=True)  # room id, number, address
    purpose: Mapped[str] = mapped_column(String(32))  # reply, alarm, board, board-edit, notice
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # queued -> sending -> sent | failed(permanent)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    remote_id: Mapped[str | None] = mapped_column(String(255))  # Matrix event id
    last_error: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[str | None] = mapped_column(String(32), index=True)


class AuditRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class BotStateRow(Base):
    __tablename__ = "bot_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
