"""Tables of the alarm chain: incidents and who their chains alarm.

An incident is stored as its domain document (JSON) plus the few columns queries need. The
document is the truth; the columns are derived from it on every save. A separate
``incident_parties`` table makes "which open incidents alarm party X" a portable indexed query
instead of a JSON search that SQLite and PostgreSQL spell differently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
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
