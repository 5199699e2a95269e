"""What the domain needs from storage, as protocols, so the domain never imports storage.

The SQL implementations live in :mod:`storage.incidents`; tests may use in-memory ones. All
methods run inside the caller's transaction: a command reads, decides and saves atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.domain.incident import Incident


class IncidentRepository(Protocol):
    async def get(self, incident_id: str) -> Incident | None:
        """The incident with this short id (``H-7``), or None."""
        ...

    async def save(self, incident: Incident) -> None:
        """Insert or update; the incident's chain membership becomes queryable and its
        pending due times are mirrored (new ones pending, vanished ones fired or cancelled)."""
        ...

    async def settle_due(self, key: str, status: str, at: datetime) -> bool:
        """Mark the pending due time ``key`` as ``status`` (e.g. ``moot``) at ``at``; False if
        it was not pending."""
        ...

    async def next_number(self) -> int:
        """The number the next confirmed incident gets (1, 2, ...; never reused)."""
        ...

    async def open_for_region(self, region_id: str) -> list[Incident]:
        """Incidents ``region_id`` confirmed that are not stood down, oldest first."""
        ...

    async def open_incidents(self) -> list[Incident]:
        """Every incident that is not stood down, oldest first."""
        ...

    async def alarmed_for_party(self, party_id: str) -> list[Incident]:
        """Incidents whose chain alarms ``party_id`` and that are not stood down, oldest
        first."""
        ...

    async def latest_for_party(self, party_id: str) -> Incident | None:
        """The newest incident whose chain includes ``party_id``, whatever its state."""
        ...


@dataclass(frozen=True)
class AlarmRef:
    """Which incident and party an alarm message (by its Matrix event id) belongs to."""

    incident_id: str
    party_id: str | None  # None if the room no longer belongs to a configured party


class AlarmLookup(Protocol):
    async def resolve(self, room_id: str, event_id: str) -> AlarmRef | None:
        """The alarm the bot posted as ``event_id`` in ``room_id``, or None if that event is
        not one of its alarm messages."""
        ...
