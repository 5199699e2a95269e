"""A due-time row fires: which decision it is, by its kind.

Reminders and escalation steps of an incident (``step``, ``pledge``) are
:func:`commands.escalation.fire_due`; an exercise's start, its reminders to the coordinators
and a running exercise's deadline (``exercise_*``) are :mod:`commands.exercise.due`. The due
pass (and the unit harness) call this one function, so a row of a new kind has one place to go.
"""

from __future__ import annotations

from bot.domain.exercise import DUE_KINDS
from commands import escalation
from commands.context import CommandContext
from commands.exercise import due as exercise_due
from commands.outcome import Outcome


async def fire_due_row(
    kind: str, key: str, incident_id: str | None, schedule_id: int | None, ctx: CommandContext
) -> Outcome:
    if kind in DUE_KINDS:
        return await exercise_due.fire(kind, key, incident_id, schedule_id, ctx)
    assert incident_id is not None  # an incident's own reminders always name it
    return await escalation.fire_due(key, incident_id, ctx)
