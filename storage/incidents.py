"""SQL repositories of the alarm chain, bound to the engine's write transaction.

:class:`SqlIncidents` implements :class:`bot.domain.IncidentRepository`; :class:`SqlAlarms`
implements :class:`bot.domain.AlarmLookup` by reading the outbox, where the engine records the
Matrix event id of every alarm it sent. Neither commits: the engine's ``Database.write()``
transaction does, together with the outbox rows and audit entries of the same decision.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from bot.domain import AlarmRef, Incident, IncidentState
from storage.incident_models import IncidentPartyRow, IncidentRow
from storage.models import OutboxRow

_STOOD_DOWN = IncidentState.STOOD_DOWN.value


def _last_change(incident: Incident) -> datetime:
    """When the last thing happened to the incident, from its own record (no clock needed)."""
    times = [incident.confirmed_at, incident.alarmed_at, incident.stood_down_at]
    times.extend(a.at for a in incident.acks)
    return max(t for t in times if t is not None)


class SqlIncidents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, incident_id: str) -> Incident | None:
        row = await self.session.get(IncidentRow, incident_id)
        return None if row is None else Incident.from_dict(row.document)

    async def save(self, incident: Incident) -> None:
        document = incident.to_dict()
        row = await self.session.get(IncidentRow, incident.id)
        if row is None:
            row = IncidentRow(id=incident.id, number=incident.number)
            self.session.add(row)
        row.region_id = incident.region_id
        row.state = incident.state.value
        row.level = incident.level.value
        row.confirmed_at = incident.confirmed_at
        row.updated_at = _last_change(incident)
        row.document = document  # a new object, so the change is always detected
        if incident.chain is not None:
            # The chain is frozen: its parties are written the first time it is saved.
            await self.session.flush()
            known = set(
                await self.session.scalars(
                    select(IncidentPartyRow.party_id).where(
                        IncidentPartyRow.incident_id == incident.id
                    )
                )
            )
            self.session.add_all(
                IncidentPartyRow(incident_id=incident.id, party_id=party_id)
                for party_id in incident.chain.party_ids
                if party_id not in known
            )
        await self.session.flush()

    async def next_number(self) -> int:
        highest = await self.session.scalar(select(func.max(IncidentRow.number)))
        return (highest or 0) + 1

    async def _documents(self, query) -> list[Incident]:  # type: ignore[no-untyped-def]
        rows = await self.session.scalars(query.order_by(IncidentRow.number))
        return [Incident.from_dict(r.document) for r in rows]

    async def open_for_region(self, region_id: str) -> list[Incident]:
        return await self._documents(
            select(IncidentRow).where(
                IncidentRow.region_id == region_id, IncidentRow.state != _STOOD_DOWN
            )
        )

    async def open_incidents(self) -> list[Incident]:
        return await self._documents(select(IncidentRow).where(IncidentRow.state != _STOOD_DOWN))

    async def alarmed_for_party(self, party_id: str) -> list[Incident]:
        return await self._documents(
            select(IncidentRow)
            .join(IncidentPartyRow, IncidentPartyRow.incident_id == IncidentRow.id)
            .where(IncidentPartyRow.party_id == party_id, IncidentRow.state != _STOOD_DOWN)
        )

    async def latest_for_party(self, party_id: str) -> Incident | None:
        row = await self.session.scalar(
            select(IncidentRow)
            .join(IncidentPartyRow, IncidentPartyRow.incident_id == IncidentRow.id)
            .where(IncidentPartyRow.party_id == party_id)
            .order_by(IncidentRow.number.desc())
            .limit(1)
        )
        return None if row is None else Incident.from_dict(row.document)


class SqlAlarms:
    """Finds the alarm a ✅ reaction annotates, from the outbox row the alarm was sent as.

    The party is the one whose room the alarm went to; without a config it is left to the
    caller, which finds it in the incident's frozen chain by room.
    """

    def __init__(self, session: AsyncSession, config: Config | None = None) -> None:
        self.session = session
        self.config = config

    async def resolve(self, room_id: str, event_id: str) -> AlarmRef | None:
        incident_id = await self.session.scalar(
            select(OutboxRow.incident_id)
            .where(
                OutboxRow.purpose == "alarm",
                OutboxRow.remote_id == event_id,
                OutboxRow.destination == room_id,
                OutboxRow.incident_id.is_not(None),
            )
            .limit(1)
        )
        if incident_id is None:
            return None
        party = self.config.party_for_room(room_id) if self.config is not None else None
        return AlarmRef(incident_id=incident_id, party_id=party.id if party else None)


def make_repositories(
    session: AsyncSession, config: Config | None = None
) -> tuple[SqlIncidents, SqlAlarms]:
    """The ``incidents`` and ``alarms`` of a :class:`commands.context.CommandContext`, bound to
    the engine's write transaction ``session``."""
    return SqlIncidents(session), SqlAlarms(session, config)
