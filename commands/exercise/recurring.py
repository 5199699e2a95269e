"""The config's recurring exercises (``[[exercises.schedules]]``) become planned exercises.

The rule is python-dateutil's RFC 5545 ``rrule`` (:class:`bot.domain.exercise.Recurrence`), not
a parser of our own. Each schedule's next occurrence after now is made a planned exercise with
its due rows (start, reminders), keyed by ``<schedule id>@<time>`` so that it is made once,
whatever restarts: the due pass calls :func:`plan_next` before it reads the due rows. As soon as
an occurrence has passed, the next one is planned, so its reminders (a day before) exist in
time; an occurrence whose time passed while the bot was down fires late as a ``missed`` plan
and asks the coordinators instead of starting (:mod:`.due`).
"""

from __future__ import annotations

from datetime import timedelta

from bot.domain.exercise import PlannedExercise
from commands.context import CommandContext
from commands.outcome import AuditEntry, Outcome

SOURCE = "schedules"


def occurrence_key(schedule_id: str, at_iso: str) -> str:
    return f"{schedule_id}@{at_iso}"


async def plan_next(ctx: CommandContext) -> Outcome | None:
    """Plan the next occurrence of every recurring schedule that has none yet; the audit says
    what was planned. None when there was nothing to do."""
    config = ctx.config
    if not config.exercises.schedules or ctx.schedules is None:
        return None
    now = ctx.clock.now()
    zone = config.exercises.time_zone
    outcome = Outcome()
    for schedule in config.exercises.schedules:
        at = schedule.recurrence(zone).next_after(now)
        if at is None:
            continue
        key = occurrence_key(schedule.id, at.isoformat())
        if await ctx.schedules.occurrence(key) is not None:
            continue
        plan = await ctx.schedules.add(
            PlannedExercise(
                number=0,
                kind=schedule.kind,
                at=at,
                region_id=config.exercise_region(schedule.region),
                created_by=f"{SOURCE}:{schedule.id}",
                scenario=schedule.scenario,
                parties=tuple(schedule.parties),
                announced=schedule.announced,
                reminders=tuple(
                    timedelta(minutes=m) for m in config.exercises.reminders_before_min
                ),
                source=schedule.id,
            ),
            now=now,
            occurrence_key=key,
        )
        outcome.audit.append(
            AuditEntry(
                "exercise.planned",
                plan.id,
                {"source": schedule.id, "kind": plan.kind, "at": at.isoformat()},
            )
        )
    return outcome if outcome.audit else None
