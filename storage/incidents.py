"""SQL repositories of the alarm chain, bound to the engine's write transaction.

:class:`SqlIncidents` implements :class:`bot.domain.IncidentRepository`; :class:`SqlAlarms`
implements :class:`bot.domain.AlarmLookup` by reading the outbox, where the engine records the
Matrix event id of every alarm it sent. Neither commits: the engine's ``Database.write()``
transaction does, together with the outbox rows and audit entries of the same decision.

Due times: every save mirrors the incident's pending dues into ``due_times`` (new ones
inserted as ``pending``; pending rows the incident no longer has become ``fired`` if the
incident recorded them as fired, else ``cancelled``), in the same transaction as the incident.
The engine reads them with :func:`due_now` and :func:`all_pending`; nothing else is needed to
rebuild the scheduler after a restart.

Besides the incident's own reminders (kinds ``step`` and ``pledge``, mirrored from the domain),
``due_times`` holds *delivery deadlines* (kind ``delivery``): an alarm on a channel with a
deadline must be reported delivered by then, or the party is moved on to its next channel.
They belong to the engine, not to the incident document, so the mirror leaves them alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import (
    PLEDGE,
    STEP,
    AlarmRef,
    AuditHead,
    Incident,
    IncidentHistory,
    IncidentKind,
    IncidentState,
)
from storage.history import audit_head, latest_incident, load_history
from storage.incident_models import DueRow, IncidentPartyRow, IncidentRow
from storage.models import OutboxRow

_STOOD_DOWN = IncidentState.STOOD_DOWN.value

# Status of a due-time row.
PENDING = "pending"  # waiting for its time
FIRED = "fired"  # it came and its reminder or escalation was decided
MOOT = "moot"  # it came, but there was nothing left to do (acknowledged, stood down)
CANCELLED = "cancelled"  # made moot before it came (an acknowledgement, a stand-down)

#: Kind of a due-time row that is a delivery deadline (see the module docstring).
DELIVERY = "delivery"
#: Kind of a due-time row that is a delivery summary still owed (its detail: the source whose
#: messages it reports on, their purpose, the room it goes to).
SUMMARY = "summary"
_INCIDENT_KINDS = (STEP, PLEDGE)

# Bot messages a ✅ reaction acknowledges: the alarm, and the reminders and repeated alarms
# in the party's room.
ACKNOWLEDGEABLE = ("alarm", "reminder")


def _last_change(incident: Incident) -> datetime:
    """When the last thing happened to the incident, from its own record (no clock needed)."""
    times = [incident.confirmed_at, incident.alarmed_at, incident.stood_down_at]
    times.extend(a.at for a in incident.acks)
    times.extend(f.fired_at for f in incident.fired)
    times.extend(e.at for e in incident.log)
    if incident.situation_report is not None:
        times.extend(v.at for v in incident.situation_report.versions)
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
            row = IncidentRow(id=incident.id, number=incident.number, kind=incident.kind.value)
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
        await self._mirror_dues(incident)

    async def _mirror_dues(self, incident: Incident) -> None:
        pending = {d.key: d for d in incident.pending_dues()}
        rows = list(
            await self.session.scalars(
                select(DueRow).where(
                    DueRow.incident_id == incident.id,
                    DueRow.kind.in_(_INCIDENT_KINDS),
                    or_(DueRow.status == PENDING, DueRow.key.in_(list(pending))),
                )
            )
        )
        by_key = {r.key: r for r in rows}
        for key, due in pending.items():
            row = by_key.get(key)
            if row is None:
                self.session.add(
                    DueRow(
                        key=key,
                        incident_id=incident.id,
                        party_id=due.party_id,
                        kind=due.kind,
                        step=due.step,
                        repeat=due.repeat,
                        due_at=due.due_at,
                        status=PENDING,
                    )
                )
            elif row.status == PENDING:
                row.due_at = due.due_at
            # A key that fired or was settled never becomes pending again (the domain never
            # reuses a key), so a settled row is left as it is.
        if any(r.status == PENDING and r.key not in pending for r in rows):
            fired = {f.key: f for f in incident.fired}
            for row in rows:
                if row.status != PENDING or row.key in pending:
                    continue
                record = fired.get(row.key)
                if record is None:
                    row.status = CANCELLED
                else:
                    row.status = FIRED
                    row.fired_at = record.fired_at
                    row.late_by_s = record.late_by.total_seconds()
        await self.session.flush()

    async def settle_due(self, key: str, status: str, at: datetime) -> bool:
        """Mark the pending due time ``key`` as ``status`` (``moot``) at ``at``; False if it
        is not pending (already fired, cancelled or unknown)."""
        row = await self.session.scalar(select(DueRow).where(DueRow.key == key))
        if row is None or row.status != PENDING:
            return False
        row.status = status
        row.fired_at = at
        await self.session.flush()
        return True

    async def next_number(self, kind: IncidentKind = IncidentKind.LIVE) -> int:
        """The next number of ``kind``'s own series (live H-, exercise Ö-, test alarm T-)."""
        highest = await self.session.scalar(
            select(func.max(IncidentRow.number)).where(IncidentRow.kind == kind.value)
        )
        return (highest or 0) + 1

    async def open_of_kind(self, *kinds: IncidentKind) -> list[Incident]:
        """Open incidents of these kinds, oldest first (live wins: is one open?)."""
        return await self._documents(
            select(IncidentRow).where(
                IncidentRow.state != _STOOD_DOWN, IncidentRow.kind.in_([k.value for k in kinds])
            )
        )

    async def ended_of_kind(
        self, kind: IncidentKind, *, before: int, limit: int
    ) -> list[Incident]:
        """The ``limit`` newest stood-down incidents of ``kind`` numbered below ``before``,
        newest first: the previous exercises an exercise's trend compares with."""
        rows = await self.session.scalars(
            select(IncidentRow)
            .where(
                IncidentRow.kind == kind.value,
                IncidentRow.state == _STOOD_DOWN,
                IncidentRow.number < before,
            )
            .order_by(IncidentRow.number.desc())
            .limit(limit)
        )
        return [Incident.from_dict(r.document) for r in rows]

    async def _documents(self, query) -> list[Incident]:  # type: ignore[no-untyped-def]
        rows = await self.session.scalars(
            query.order_by(IncidentRow.confirmed_at, IncidentRow.number)
        )
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
            .order_by(IncidentRow.confirmed_at.desc(), IncidentRow.number.desc())
            .limit(1)
        )
        return None if row is None else Incident.from_dict(row.document)

    # -- what the after-action report reads (see storage.history) --------------------------

    async def history(self, incident_id: str) -> IncidentHistory | None:
        """The incident with its audit entries and messages, and the audit chain's head."""
        return await load_history(self.session, incident_id)

    async def audit_head(self) -> AuditHead | None:
        """The newest audit entry's sequence number and hash (what an anchor publishes)."""
        return await audit_head(self.session)

    async def latest(self, region_id: str | None = None) -> Incident | None:
        """The newest incident (of ``region_id``, if given), whatever its state."""
        incident_id = await latest_incident(self.session, region_id)
        return None if incident_id is None else await self.get(incident_id)


def delivery_deadline_key(incident_id: str, party_id: str, outbox_row_id: int) -> str:
    return f"{incident_id}:{party_id}:{DELIVERY}:{outbox_row_id}:0"


async def add_delivery_deadline(
    session: AsyncSession,
    *,
    incident_id: str,
    party_id: str,
    outbox_row_id: int,
    due_at: datetime,
) -> None:
    """Outbox row ``outbox_row_id`` (an alarm to ``party_id``) must be reported delivered by
    ``due_at``; the due pass checks it then."""
    session.add(
        DueRow(
            key=delivery_deadline_key(incident_id, party_id, outbox_row_id),
            incident_id=incident_id,
            party_id=party_id,
            kind=DELIVERY,
            step=outbox_row_id,
            repeat=0,
            due_at=due_at,
            status=PENDING,
        )
    )
    await session.flush()


async def add_summary(
    session: AsyncSession,
    *,
    incident_id: str,
    source: str,
    purpose: str,
    room_id: str,
    due_at: datetime,
) -> None:
    """A delivery summary owed for the ``purpose`` messages of ``source``, at ``due_at`` at
    the latest."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    key = f"{incident_id}:-:{SUMMARY}:{purpose}:{digest}"
    if await session.scalar(select(DueRow.id).where(DueRow.key == key)) is not None:
        return
    session.add(
        DueRow(
            key=key,
            incident_id=incident_id,
            party_id="-",
            kind=SUMMARY,
            step=0,
            repeat=0,
            due_at=due_at,
            status=PENDING,
            detail={"source": source, "purpose": purpose, "room": room_id},
        )
    )
    await session.flush()


async def pending_summaries(session: AsyncSession, incident_ids: list[str]) -> list[DueRow]:
    """The delivery summaries still owed for these incidents."""
    return list(
        await session.scalars(
            select(DueRow).where(
                DueRow.kind == SUMMARY,
                DueRow.status == PENDING,
                DueRow.incident_id.in_(incident_ids),
            )
        )
    )


async def settle(session: AsyncSession, row: DueRow, status: str, at: datetime) -> None:
    """Mark a pending due-time row ``fired`` or ``moot`` (the engine's own kinds)."""
    row.status = status
    row.fired_at = at
    row.late_by_s = max(0.0, (at - row.due_at).total_seconds())
    await session.flush()


async def due_now(session: AsyncSession, now: datetime) -> list[DueRow]:
    """Pending due times whose time has come by ``now``, soonest first.

    Firing one may make the party's next step due at once (a late catch-up, or a zero
    delay): call again until it returns nothing.
    """
    return list(
        await session.scalars(
            select(DueRow)
            .where(DueRow.status == PENDING, DueRow.due_at <= now)
            .order_by(DueRow.due_at, DueRow.id)
        )
    )


async def all_pending(session: AsyncSession) -> list[DueRow]:
    """Every pending due time, soonest first: what the scheduler is rebuilt from at start."""
    return list(
        await session.scalars(
            select(DueRow).where(DueRow.status == PENDING).order_by(DueRow.due_at, DueRow.id)
        )
    )


async def next_due_at(session: AsyncSession) -> datetime | None:
    """When the soonest pending due time is due, or None if nothing is pending."""
    return await session.scalar(select(func.min(DueRow.due_at)).where(DueRow.status == PENDING))


async def dues_of(
    session: AsyncSession, incident_id: str, kinds: tuple[str, ...] = _INCIDENT_KINDS
) -> list[DueRow]:
    """Every due-time row of an incident of ``kinds`` (by default its reminders and
    escalation steps), whatever its status, in order of due time."""
    return list(
        await session.scalars(
            select(DueRow)
            .where(DueRow.incident_id == incident_id, DueRow.kind.in_(kinds))
            .order_by(DueRow.due_at, DueRow.id)
        )
    )


class SqlAlarms:
    """Finds the alarm a ✅ reaction annotates, from the outbox row the alarm was sent as
    (a reminder or repeated alarm in the party's room counts as the alarm).

    The party is the one whose room the alarm went to, as ``party_for_room`` (the config's
    look-up, injected so that storage knows nothing of the config) says; without it the party
    is left to the caller, which finds it in the incident's frozen chain by room.
    """

    def __init__(
        self,
        session: AsyncSession,
        party_for_room: Callable[[str], str | None] | None = None,
    ) -> None:
        self.session = session
        self.party_for_room = party_for_room

    async def resolve(self, room_id: str, event_id: str) -> AlarmRef | None:
        incident_id = await self.session.scalar(
            select(OutboxRow.incident_id)
            .where(
                OutboxRow.purpose.in_(ACKNOWLEDGEABLE),
                OutboxRow.remote_id == event_id,
                OutboxRow.destination == room_id,
                OutboxRow.incident_id.is_not(None),
            )
            .limit(1)
        )
        if incident_id is None:
            return None
        party = self.party_for_room(room_id) if self.party_for_room is not None else None
        return AlarmRef(incident_id=incident_id, party_id=party)


def make_repositories(
    session: AsyncSession, party_for_room: Callable[[str], str | None] | None = None
) -> tuple[SqlIncidents, SqlAlarms]:
    """The ``incidents`` and ``alarms`` of a :class:`commands.context.CommandContext`, bound to
    the engine's write transaction ``session``."""
    return SqlIncidents(session), SqlAlarms(session, party_for_room)
