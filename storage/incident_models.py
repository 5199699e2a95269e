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

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class IncidentRow(Base):
    __tablename__ = "incidents"
    # Each kind (live, exercise, test alarm) numbers on its own: H-7, Ö-3 and T-2 may coexist.
    __table_args__ = (UniqueConstraint("kind", "number", name="uq_incidents_kind_number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "H-7", "Ö-3"
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="live", server_default="live")
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
    ``moot`` when it came (acknowledged, stood down), or was ``cancelled`` before it came.

    A planned exercise has no incident yet: its start and its reminders to the coordinators
    are rows of its schedule (``schedule_id``, ``incident_id`` None; see
    :mod:`storage.exercises`)."""

    __tablename__ = "due_times"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)  # "H-7:dalarna:step:0:0"
    incident_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    schedule_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("exercise_schedules.id", ondelete="CASCADE"), index=True
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


class ScheduleRow(Base):
    """A planned exercise or test alarm (``S-4``): when, what, who, and what became of it."""

    __tablename__ = "exercise_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # exercise | test
    at: Mapped[datetime] = mapped_column(index=True)
    region_id: Mapped[str] = mapped_column(String(64))
    scenario: Mapped[str] = mapped_column(String(500))
    parties: Mapped[list[str]] = mapped_column(JSON)
    announced: Mapped[bool] = mapped_column(Boolean)
    reminders: Mapped[list[float]] = mapped_column(JSON)  # seconds before ``at``
    source: Mapped[str] = mapped_column(String(64))  # "command" or a config schedule's id
    # "<config schedule id>@<iso time>" for an occurrence of a recurring schedule: never twice.
    occurrence_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
    incident_id: Mapped[str | None] = mapped_column(String(32))
