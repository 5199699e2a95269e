"""!övning and !larmprov in the coordination room: start now, schedule, list, cancel, end.

``!övning [region] [scenario…]`` starts an exercise now; ``!larmprov [region]`` a test alarm.
Their sub-commands (the first word, in any of the three languages):

- ``schemalägg``/``schedule``/``planlegg`` ``<när> [region] [scenario…]``: a planned exercise
  (``S-4``), a due row with its reminders; a bad time gets the reason (``igår``, ``31
  februari``, in the past);
- ``lista``/``list``/``liste``: what is planned;
- ``avboka``/``cancel``/``avbestill`` ``<S-4>``: cancelled, its reminders with it;
- ``avsluta``/``end``/``avslutt`` ``[Ö-3]``: a running exercise ends now (and is reported).

Only coordinators named in the config, only in the coordination room (the declarations say so;
the dispatcher refuses anyone else politely and audits it).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.domain import EXERCISE_KINDS, IncidentKind, parse_incident_id
from bot.domain.exercise import (
    EndReason,
    PlannedExercise,
    PlanStatus,
    When,
    WhenRejected,
    format_schedule_id,
    parse_schedule_id,
    read_when,
)
from commands.context import CommandContext
from commands.declaration import Call
from commands.exercise.due import party_names, region_name
from commands.exercise.ending import end_exercise
from commands.exercise.start import Blocked, ExercisePlan, start_exercise
from commands.outcome import AuditEntry, Outcome
from commands.render import Voice
from commands.render.exercise import (
    EXAMPLE_TIME,
    WHEN_KEYS,
    render_exercise_started,
    render_plan,
    render_plan_list,
    render_scheduled,
)
from commands.replies import answered, call_detail, rejected, voice_for
from commands.text import ECHO, excerpt, fold

MAX_SCENARIO = 200

#: Why an exercise cannot start: its answer and its audit reason.
_BLOCKED = {
    "live": ("exercise.blocked.live", "exercise_blocked_live"),
    "running": ("exercise.blocked.running", "exercise_blocked_running"),
    "no_parties": ("exercise.blocked.no_parties", "exercise_blocked_no_parties"),
}

_SUBCOMMANDS = {
    "schemalagg": "schedule",
    "schedule": "schedule",
    "planlegg": "schedule",
    "lista": "list",
    "list": "list",
    "liste": "list",
    "avboka": "cancel",
    "cancel": "cancel",
    "avbestill": "cancel",
    "avsluta": "end",
    "end": "end",
    "avslutt": "end",
}


def _words(call: Call) -> list[str]:
    text = call.args.get("words") or ""
    return text.split()


def _region_and_scenario(ctx: CommandContext, words: list[str]) -> tuple[str, str]:
    """An optional region id or name first, then the scenario."""
    if words:
        first = fold(words[0])
        for region in ctx.config.regions:
            if first in (fold(region.id), fold(region.name.split()[-1])):
                return region.id, " ".join(words[1:])
    return ctx.config.exercise_region(), " ".join(words)


def _blocked_answer(call: Call, voice: Voice, blocked: Blocked) -> Outcome:
    key, reason = _BLOCKED[blocked.reason]
    return rejected(
        call,
        voice.text(key, incidents=voice.join(blocked.incidents), command=call.command("exercise")),
        reason,
        incidents=list(blocked.incidents),
    )


async def _start_now(
    call: Call, ctx: CommandContext, kind: IncidentKind, words: list[str]
) -> Outcome:
    voice = voice_for(call, ctx)
    region_id, scenario = _region_and_scenario(ctx, words)
    if len(scenario) > MAX_SCENARIO:
        return rejected(
            call,
            voice.text("arg.headline.too_long", length=len(scenario), max=MAX_SCENARIO),
            "scenario_too_long",
        )
    result = await start_exercise(
        ctx,
        ExercisePlan(kind=kind, region_id=region_id, by=call.sender, scenario=scenario),
        catalog=call.catalog,
        registry=call.registry,
    )
    if isinstance(result, Blocked):
        return _blocked_answer(call, voice, result)
    incident, started, outcome = result
    assert incident.exercise is not None
    assert incident.exercise.deadline_at is not None
    body = voice.lines(
        render_exercise_started(
            incident,
            voice,
            deadline=incident.exercise.deadline_at,
            end_command=call.command("exercise"),
        ),
        voice.text(
            "exercise.started.parties",
            parties=voice.join(m.party.name for m in started.parties),
        ),
    )
    answer = answered(call, body, AuditEntry("exercise.command", incident.id, call_detail(call)))
    answer.posts[0] = replace(answer.posts[0], incident_id=incident.id)  # marked
    return answer.extend(outcome)


def _when_problem(
    call: Call, voice: Voice, words: list[str], problem: WhenRejected, zone: str
) -> Outcome:
    typed = " ".join(words[: max(problem.words, 1)]) if words else ""
    return rejected(
        call,
        voice.text(
            WHEN_KEYS[problem.problem],
            value=excerpt(typed, ECHO["value"]),
            example=EXAMPLE_TIME,
            zone=zone,
            command=call.command(call.declaration.key),
        ),
        problem.problem.value,
    )


async def _schedule(
    call: Call, ctx: CommandContext, kind: IncidentKind, words: list[str]
) -> Outcome:
    voice = voice_for(call, ctx)
    zone = ctx.config.exercises.time_zone
    now = ctx.clock.now()
    found = read_when(words, now=now, zone=zone)
    if not isinstance(found, When):
        return _when_problem(call, voice, words, found, zone)
    region_id, scenario = _region_and_scenario(ctx, words[found.words :])
    if len(scenario) > MAX_SCENARIO:
        return rejected(
            call,
            voice.text("arg.headline.too_long", length=len(scenario), max=MAX_SCENARIO),
            "scenario_too_long",
        )
    plan = await ctx.schedules.add(
        PlannedExercise(
            number=0,
            kind=kind.value,
            at=found.at,
            region_id=region_id,
            created_by=call.sender,
            scenario=scenario,
            reminders=tuple(
                timedelta(minutes=m) for m in ctx.config.exercises.reminders_before_min
            ),
        ),
        now=now,
    )
    body = render_scheduled(
        plan,
        voice,
        zone=zone,
        region=region_name(ctx, plan.region_id),
        party_names=party_names(ctx, plan),
        cancel_command=call.command(call.declaration.key),
    )
    return answered(
        call,
        body,
        AuditEntry(
            "exercise.planned",
            plan.id,
            call_detail(call, kind=kind.value, at=plan.at.isoformat(), region=region_id),
        ),
    )


async def _list(call: Call, ctx: CommandContext) -> Outcome:
    voice = voice_for(call, ctx)
    zone = ctx.config.exercises.time_zone
    plans = await ctx.schedules.planned()
    lines = [
        render_plan(
            p,
            voice,
            zone=zone,
            region=region_name(ctx, p.region_id),
            party_names=party_names(ctx, p),
        )
        for p in plans
    ]
    return answered(call, render_plan_list(lines, voice), reaction=None)


async def _cancel(call: Call, ctx: CommandContext, words: list[str]) -> Outcome:
    voice = voice_for(call, ctx)
    number = parse_schedule_id(words[0]) if words else None
    if number is None:
        return rejected(
            call,
            voice.text(
                "exercise.cancel.which",
                value=excerpt(" ".join(words), ECHO["value"]),
                command=call.command(call.declaration.key),
            ),
            "no_schedule_id",
        )
    plan = await ctx.schedules.get(number)
    if plan is None:
        return rejected(
            call,
            voice.text("exercise.cancel.unknown", schedule=format_schedule_id(number)),
            "unknown_schedule",
        )
    now = ctx.clock.now()
    if not await ctx.schedules.settle(number, PlanStatus.CANCELLED, at=now):
        return rejected(
            call,
            voice.text("exercise.cancel.not_planned", schedule=plan.id),
            "schedule_not_planned",
            plan.id,
        )
    return answered(
        call,
        voice.text(
            "exercise.cancelled",
            schedule=plan.id,
            when=render_plan(
                plan,
                voice,
                zone=ctx.config.exercises.time_zone,
                region=region_name(ctx, plan.region_id),
                party_names=party_names(ctx, plan),
            ),
        ),
        AuditEntry("exercise.cancelled", plan.id, call_detail(call, at=plan.at.isoformat())),
    )


async def _end(call: Call, ctx: CommandContext, words: list[str]) -> Outcome:
    voice = voice_for(call, ctx)
    running = await ctx.incidents.open_of_kind(*EXERCISE_KINDS)
    if words:
        wanted = parse_incident_id(words[0])
        running = [i for i in running if i.id == wanted]
    if not running:
        return rejected(call, voice.text("exercise.end.none"), "no_running_exercise")
    outcome = Outcome()
    for incident in running:
        outcome.extend(
            await end_exercise(
                ctx,
                incident,
                EndReason.ENDED,
                call.sender,
                catalog=call.catalog,
                registry=call.registry,
            )
        )
    answer = answered(
        call,
        voice.text("exercise.end.done", incidents=voice.join(i.id for i in running)),
        AuditEntry("exercise.command", running[0].id, call_detail(call, sub="end")),
    )
    return answer.extend(outcome)


async def _execute(call: Call, ctx: CommandContext, kind: IncidentKind) -> Outcome:
    words = _words(call)
    sub = _SUBCOMMANDS.get(fold(words[0])) if words else None
    if sub == "schedule":
        return await _schedule(call, ctx, kind, words[1:])
    if sub == "list":
        return await _list(call, ctx)
    if sub == "cancel":
        return await _cancel(call, ctx, words[1:])
    if sub == "end":
        return await _end(call, ctx, words[1:])
    return await _start_now(call, ctx, kind, words)


async def execute_exercise(call: Call, ctx: CommandContext) -> Outcome:
    return await _execute(call, ctx, IncidentKind.EXERCISE)


async def execute_testalarm(call: Call, ctx: CommandContext) -> Outcome:
    return await _execute(call, ctx, IncidentKind.TEST)
