"""Planned exercises and their due times, bound to the engine's write transaction.

A planned exercise (``S-4``) is a row of ``exercise_schedules``; what must happen for it is a
row of the one ``due_times`` table the due-time pass reads, with ``schedule_id`` set and no
incident (it has none yet): its start (kind ``exercise_start``) and each reminder to the
coordinators (``exercise_remind``). So a planned exercise survives restarts like any reminder,
and the scheduler is rebuilt from the same rows. A running exercise's deadline is an incident's
due row (``exercise_end``). Cancelling or settling a plan settles its pending due rows in the
same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.exercise import (
    END,
    REMIND,
    REPORT,
    START,
    PlannedExercise,
    PlanStatus,
    exercise_due_key,
    format_schedule_id,
)
from storage.incident_models import DueRow, ScheduleRow

_PENDING = "pending"
_CANCELLED = "cancelled"
_NOBODY = ""  # due rows of a plan are no party's


def _plan(row: ScheduleRow) -> PlannedExercise:
    return PlannedExercise(
        number=row.id,
        kind=row.kind,
        at=row.at,
        region_id=row.region_id,
        created_by=row.created_by,
        scenario=row.scenario,
        parties=tuple(row.parties or ()),
        announced=row.announced,
        reminders=tuple(timedelta(seconds=s) for s in row.reminders or ()),
        source=row.source,
        status=PlanStatus(row.status),
        incident_id=row.incident_id,
    )


def start_key(number: int) -> str:
    return f"{format_schedule_id(number)}:start"


def remind_key(number: int, before: timedelta) -> str:
    return f"{format_schedule_id(number)}:remind:{int(before.total_seconds())}"


class SqlSchedules:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, plan: PlannedExercise, *, now: datetime, occurrence_key: str | None = None
    ) -> PlannedExercise:
        """Insert ``plan`` (its number is given here) with its start and the reminders still
        to come as pending due rows."""
        row = ScheduleRow(
            kind=plan.kind,
            at=plan.at,
            region_id=plan.region_id,
            scenario=plan.scenario,
            parties=list(plan.parties),
            announced=plan.announced,
            reminders=[r.total_seconds() for r in plan.reminders],
            source=plan.source,
            occurrence_key=occurrence_key,
            status=PlanStatus.PLANNED.value,
            created_by=plan.created_by,
            created_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        saved = _plan(row)
        dues = [(start_key(row.id), START, plan.at)]
        dues += [
            (remind_key(row.id, before), REMIND, when)
            for before, when in saved.reminder_times()
            if when > now
        ]
        self.session.add_all(
            DueRow(
                key=key,
                incident_id=None,
                schedule_id=row.id,
                party_id=_NOBODY,
                kind=kind,
                step=0,
                repeat=0,
                due_at=when,
                status=_PENDING,
            )
            for key, kind, when in dues
        )
        await self.session.flush()
        return saved

    async def get(self, number: int) -> PlannedExercise | None:
        row = await self.session.get(ScheduleRow, number)
        return None if row is None else _plan(row)

    async def planned(self) -> list[PlannedExercise]:
        """Every plan still to run, soonest first."""
        rows = await self.session.scalars(
            select(ScheduleRow)
            .where(ScheduleRow.status == PlanStatus.PLANNED.value)
            .order_by(ScheduleRow.at, ScheduleRow.id)
        )
        return [_plan(r) for r in rows]

    async def occurrence(self, key: str) -> PlannedExercise | None:
        """The plan made for an occurrence of a recurring schedule, whatever became of it."""
        row = await self.session.scalar(
            select(ScheduleRow).where(ScheduleRow.occurrence_key == key)
        )
        return None if row is None else _plan(row)

    async def settle(
        self, number: int, status: PlanStatus, *, at: datetime, incident_id: str | None = None
    ) -> bool:
        """Mark a planned plan ``status`` (started, cancelled, missed, skipped); its pending
        due rows are cancelled (the start row is settled by the due pass that fires it).
        False if it was not planned any more."""
        row = await self.session.get(ScheduleRow, number)
        if row is None or row.status != PlanStatus.PLANNED.value:
            return False
        row.status = status.value
        row.settled_at = at
        row.incident_id = incident_id
        pending = await self.session.scalars(
            select(DueRow).where(DueRow.schedule_id == number, DueRow.status == _PENDING)
        )
        for due in pending:
            due.status = _CANCELLED
            due.fired_at = at
        await self.session.flush()
        return True

    async def add_deadline(self, incident_id: str, due_at: datetime) -> None:
        """A running exercise ends at ``due_at`` if it has not ended before."""
        await self._incident_due(incident_id, END, due_at)

    async def add_report(self, incident_id: str, due_at: datetime) -> None:
        """The report of an exercise that just ended, made in a transaction of its own (so
        that it reads everything the ending wrote)."""
        await self._incident_due(incident_id, REPORT, due_at)

    async def _incident_due(self, incident_id: str, kind: str, due_at: datetime) -> None:
        key = exercise_due_key(incident_id, kind)
        if await self.session.scalar(select(DueRow.id).where(DueRow.key == key)) is not None:
            return  # once per exercise
        self.session.add(
            DueRow(
                key=key,
                incident_id=incident_id,
                schedule_id=None,
                party_id=_NOBODY,
                kind=kind,
                step=0,
                repeat=0,
                due_at=due_at,
                status=_PENDING,
            )
        )
        await self.session.flush()

    async def settle_due(self, key: str, status: str, at: datetime) -> bool:
        """Mark the pending due row ``key`` ``status`` (fired, moot, cancelled) at ``at``;
        False if it was not pending."""
        row = await self.session.scalar(select(DueRow).where(DueRow.key == key))
        if row is None or row.status != _PENDING:
            return False
        row.status = status
        row.fired_at = at
        row.late_by_s = max(0.0, (at - row.due_at).total_seconds())
        await self.session.flush()
        return True
