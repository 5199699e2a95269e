"""Tables of the alarm chain: incidents, who their chains alarm, and their due times.

An incident is stored as its domain document (JSON) plus the few columns queries need. The
document is the truth; the columns are derived from it on every save. A separate
``incident_parties`` table makes "which open incidents alarm party X" a portable indexed query
instead of a JSON search that SQLite and PostgreSQL spell differently.

``due_times`` mirrors every incident's pending reminders and escalations (one row per due
time, unique by its key), so that the scheduler is only a trigger, rebuilt from these rows at
start: a due time missed while the bot was down is still a pending row, and fires late.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "H-7"
    number: Mapped[int] = mapped_column(Integer, unique=True)
    region_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    level: Mapped[str] = mapped_column(String(32))
    confirmed_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    document: Mapped[dict[str, Any]] = mapped_column(JSON)


class IncidentPartyRow(Base):
    __tablename__ = "incident_parties"

    incident_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    party_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class DueRow(Base):
    """One reminder or escalation of one party: ``pending`` until it ``fired``, turned out
    ``moot`` when it came (acknowledged, stood down), or was ``cancelled`` before it came."""

    __tablename__ = "due_times"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)  # "H-7:dalarna:step:0:0"
    incident_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    party_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # step | pledge | delivery | summary
    step: Mapped[int] = mapped_column(Integer)
    repeat: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    fired_at: Mapped[datetime | None]
    late_by_s: Mapped[float | None] = mapped_column(Float)
    # What the engine's own kinds need to know (a delivery summary: its source and room).
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
