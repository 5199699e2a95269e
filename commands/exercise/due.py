"""The due rows of exercises fire: a plan's start and reminders, a running exercise's end and
its report.

- ``exercise_start`` of a plan: the exercise starts now, unless its time passed more than
  ``exercises.start_grace_min`` ago (the bot was down): then it is **not** started late and
  unannounced, the coordinators are asked instead (plan ``missed``, "start it now with
  !övning or plan a new one"); a live incident open at its time means it is skipped (live
  wins), and the coordinators are told;
- ``exercise_remind`` of a plan: the coordinators get what will run, when, and how to cancel,
  in the coordination room and by e-mail; an announced exercise is announced to its parties at
  the first (earliest) reminder;
- ``exercise_end`` of an exercise: its deadline passed, it ends (:mod:`.ending`);
- ``exercise_report`` of an exercise that ended: its report and chart (:mod:`.report`).

Every row is settled here (fired or moot) in the same transaction as its outcome.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bot.domain import IncidentKind
from bot.domain.exercise import (
    END,
    REMIND,
    REPORT,
    START,
    EndReason,
    PlannedExercise,
    PlanStatus,
)
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.exercise.ending import end_exercise
from commands.exercise.marking import ExerciseMarking
from commands.exercise.report import report_outcome
from commands.exercise.start import Blocked, ExercisePlan, start_exercise
from commands.outcome import AuditEntry, Outcome, Post
from commands.render import Voice
from commands.render.exercise import (
    render_announcement,
    render_exercise_started,
    render_missed,
    render_reminder,
    render_skipped,
)
from commands.replies import home_server, to_coordinators

if TYPE_CHECKING:
    from commands.registry import Registry

FIRED = "fired"
MOOT = "moot"


def coordinator_voice(ctx: CommandContext, catalog: Catalog) -> Voice:
    return Voice(catalog, ctx.config.healthcare_region.language, home_server(ctx))


def party_names(ctx: CommandContext, plan: PlannedExercise) -> list[str]:
    names = []
    for party_id in plan.parties:
        party = ctx.config.party(party_id)
        names.append(party.name if party is not None else party_id)
    return names


def region_name(ctx: CommandContext, region_id: str) -> str:
    region = ctx.config.region(region_id)
    return region.name if region is not None else region_id


async def fire(
    kind: str, key: str, incident_id: str | None, schedule_id: int | None, ctx: CommandContext
) -> Outcome:
    catalog = ctx.catalog if ctx.catalog is not None else Catalog.load()
    from commands.registry import build_registry  # the registry declares the commands here

    registry = build_registry()
    now = ctx.clock.now()
    if kind in (START, REMIND):
        plan = None if schedule_id is None else await ctx.schedules.get(schedule_id)
        if plan is None or plan.status is not PlanStatus.PLANNED:
            await ctx.schedules.settle_due(key, MOOT, now)
            return Outcome(audit=[AuditEntry("exercise.due_moot", None, {"key": key})])
        if kind == REMIND and _stale_reminder(ctx, plan, key):
            # The bot was down at its time: a reminder of what is about to happen (or just
            # did) says nothing any more; the start itself decides what to ask.
            await ctx.schedules.settle_due(key, MOOT, now)
            return Outcome(audit=[AuditEntry("exercise.reminder_late", plan.id, {"key": key})])
        await ctx.schedules.settle_due(key, FIRED, now)
        if kind == REMIND:
            return _remind(ctx, plan, key, catalog, registry)
        return await _start(ctx, plan, catalog, registry)
    assert incident_id is not None
    incident = await ctx.incidents.get(incident_id)
    if kind == END:
        if incident is None or not incident.is_open:
            await ctx.schedules.settle_due(key, MOOT, now)
            return Outcome()
        await ctx.schedules.settle_due(key, FIRED, now)
        return await end_exercise(
            ctx, incident, EndReason.DEADLINE, None, catalog=catalog, registry=registry
        )
    assert kind == REPORT
    await ctx.schedules.settle_due(key, FIRED, now)
    if incident is None:
        return Outcome()
    return await report_outcome(ctx, incident, catalog=catalog, key_prefix="ended")


def _stale_reminder(ctx: CommandContext, plan: PlannedExercise, key: str) -> bool:
    """A reminder later than the start's grace, or due when its exercise is."""
    before = timedelta(seconds=int(key.rsplit(":", 1)[1]))
    late = ctx.clock.now() - (plan.at - before)
    grace = timedelta(minutes=ctx.config.exercises.start_grace_min)
    return late > grace or ctx.clock.now() >= plan.at


def _remind(
    ctx: CommandContext, plan: PlannedExercise, key: str, catalog: Catalog, registry: Registry
) -> Outcome:
    voice = coordinator_voice(ctx, catalog)
    marking = ExerciseMarking(ctx.config, catalog)
    zone = ctx.config.exercises.time_zone
    now = ctx.clock.now()
    body = marking.render_marked(
        render_reminder(
            plan,
            voice,
            now=now,
            zone=zone,
            region=region_name(ctx, plan.region_id),
            party_names=party_names(ctx, plan),
            cancel_command=registry.display("exercise", voice.lang),
        ),
        voice.lang,
    )
    outcome = to_coordinators(ctx, body, key=f"remind:{plan.id}")
    outcome.audit.append(
        AuditEntry(
            "exercise.reminded",
            plan.id,
            {"at": plan.at.isoformat(), "left_s": (plan.at - now).total_seconds()},
        )
    )
    first = plan.reminder_times()
    if plan.announced and first and key.endswith(f":{int(first[0][0].total_seconds())}"):
        outcome.extend(_announce(ctx, plan, catalog, marking))
    return outcome


def _announce(
    ctx: CommandContext, plan: PlannedExercise, catalog: Catalog, marking: ExerciseMarking
) -> Outcome:
    """An announced exercise: its parties are told in advance, in their rooms."""
    outcome = Outcome()
    for party in ctx.config.all_parties():
        if party.id == plan.region_id or party.room is None:
            continue
        if plan.parties and party.id not in plan.parties:
            continue
        voice = Voice(catalog, party.language, home_server(ctx))
        body = render_announcement(
            plan,
            voice,
            zone=ctx.config.exercises.time_zone,
            region=region_name(ctx, plan.region_id),
        )
        outcome.posts.append(
            Post(
                room_id=party.room,
                body=marking.render_marked(body, party.language),
                key=f"announce:{plan.id}:{party.id}",
                purpose="notice",
            )
        )
    return outcome


async def _start(
    ctx: CommandContext, plan: PlannedExercise, catalog: Catalog, registry: Registry
) -> Outcome:
    now = ctx.clock.now()
    voice = coordinator_voice(ctx, catalog)
    marking = ExerciseMarking(ctx.config, catalog)
    zone = ctx.config.exercises.time_zone
    late = now - plan.at
    if late > timedelta(minutes=ctx.config.exercises.start_grace_min):
        await ctx.schedules.settle(plan.number, PlanStatus.MISSED, at=now)
        body = render_missed(
            plan,
            voice,
            zone=zone,
            late=late,
            command=registry.display(
                "exercise" if plan.kind == IncidentKind.EXERCISE.value else "testalarm",
                voice.lang,
            ),
        )
        outcome = to_coordinators(
            ctx, marking.render_marked(body, voice.lang), key=f"missed:{plan.id}"
        )
        outcome.audit.append(
            AuditEntry(
                "exercise.missed",
                plan.id,
                {"at": plan.at.isoformat(), "late_s": late.total_seconds()},
            )
        )
        return outcome
    result = await start_exercise(
        ctx,
        ExercisePlan(
            kind=IncidentKind(plan.kind),
            region_id=plan.region_id,
            by=plan.created_by,
            scenario=plan.scenario,
            parties=plan.parties,
            announced=plan.announced,
            schedule_id=plan.id,
        ),
        catalog=catalog,
        registry=registry,
    )
    if isinstance(result, Blocked):
        await ctx.schedules.settle(plan.number, PlanStatus.SKIPPED, at=now)
        body = render_skipped(plan, voice, zone=zone, blocking=voice.join(result.incidents) or "-")
        outcome = to_coordinators(
            ctx, marking.render_marked(body, voice.lang), key=f"skipped:{plan.id}"
        )
        outcome.audit.append(
            AuditEntry(
                "exercise.skipped",
                plan.id,
                {"reason": result.reason, "incidents": list(result.incidents)},
            )
        )
        return outcome
    incident, _started, outcome = result
    await ctx.schedules.settle(plan.number, PlanStatus.STARTED, at=now, incident_id=incident.id)
    assert incident.exercise is not None
    assert incident.exercise.deadline_at is not None
    notice = render_exercise_started(
        incident,
        voice,
        deadline=incident.exercise.deadline_at,
        end_command=registry.display("exercise", voice.lang),
    )
    outcome.extend(to_coordinators(ctx, notice, key="started", incident_id=incident.id))
    return outcome
