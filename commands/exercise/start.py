"""Starting an exercise or test alarm: the real chain of the healthcare region, marked.

Shared by ``!övning``/``!larmprov`` (started now) and by a planned exercise whose time has come
(:mod:`commands.exercise.due`). An exercise is an incident of its own kind and id series,
"confirmed" by the coordinator and alarmed at once: every party of the chain (or those the plan
names) gets the alarm in its room, by SMS and by e-mail with its own reply codes, with the
chain's reminders and escalation. A test alarm asks only for an acknowledgement (no pledge):
the same chain with nothing required, and its own short texts. Every message is marked by the
writer (:mod:`commands.exercise.marking`).

Refused, with the reason, while a live incident is open (a live alarm always wins) or another
exercise runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.domain import (
    EXERCISE_KINDS,
    AlarmChain,
    ChainParty,
    ChainStarted,
    Incident,
    IncidentKind,
    ReadinessLevel,
    Requirement,
)
from bot.domain.exercise import ExerciseRecord
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import AuditEntry, Delivery, Outcome, Post, to_each
from commands.parties import chain_for
from commands.render import Voice, render_alarm
from commands.render.bridges import render_alarm_email, render_alarm_sms
from commands.render.exercise import (
    render_test_alarm,
    render_test_alarm_email,
    render_test_alarm_sms,
)
from commands.replies import home_server, incident_boards

if TYPE_CHECKING:
    from commands.registry import Registry

_HEADLINE_KEYS = {
    IncidentKind.EXERCISE: "exercise.default_scenario",
    IncidentKind.TEST: "testalarm.headline",
}


@dataclass(frozen=True)
class ExercisePlan:
    """What to start: who asked, which kind, where, with whom."""

    kind: IncidentKind
    region_id: str
    by: str
    scenario: str = ""
    parties: tuple[str, ...] = ()
    announced: bool = False
    schedule_id: str | None = None


@dataclass(frozen=True)
class Blocked:
    """Why an exercise cannot start now: ``live`` (incidents open), ``running`` (another
    exercise), or ``no_parties`` (the plan's parties are not in the chain)."""

    reason: str
    incidents: tuple[str, ...] = ()


async def blocked(ctx: CommandContext) -> Blocked | None:
    """Live first: a live incident open means no exercise (and says which)."""
    live = await ctx.incidents.open_of_kind(IncidentKind.LIVE)
    if live:
        return Blocked("live", tuple(i.id for i in live))
    running = await ctx.incidents.open_of_kind(*EXERCISE_KINDS)
    if running:
        return Blocked("running", tuple(i.id for i in running))
    return None


def exercise_chain(ctx: CommandContext, plan: ExercisePlan) -> AlarmChain:
    """The region's real chain, limited to the plan's parties; a test alarm asks nothing but
    the acknowledgement."""
    chain = chain_for(ctx.config, plan.region_id)
    members = chain.parties
    if plan.parties:
        members = tuple(m for m in members if m.id in plan.parties)
    if plan.kind is IncidentKind.TEST:
        members = tuple(replace(m, requirement=Requirement()) for m in members)
    return AlarmChain(chain.initiator, members)


def _voice(catalog: Catalog, ctx: CommandContext, lang: str) -> Voice:
    return Voice(catalog, lang, home_server(ctx))


def alarm_outcome(
    ctx: CommandContext,
    incident: Incident,
    started: ChainStarted,
    *,
    catalog: Catalog,
    registry: Registry,
) -> Outcome:
    """The alarm to every party of an exercise, on every channel it has."""
    test = incident.kind is IncidentKind.TEST
    channels = ctx.config.bridge_channels()
    links = ctx.config.links_enabled()
    outcome = Outcome()
    for member in started.parties:
        party = member.party
        voice = _voice(catalog, ctx, party.language)
        ack = registry.display("ack", party.language)
        if party.room is not None:
            body = (
                render_test_alarm(incident, member, voice, ack_command=ack)
                if test
                else render_alarm(incident, member, voice, ack_command=ack)
            )
            outcome.posts.append(
                Post(
                    room_id=party.room,
                    body=body,
                    key=f"alarm:{party.id}",
                    purpose="alarm",
                    mentions=party.duty_officers,
                    incident_id=incident.id,
                )
            )
        outcome.deliveries += _deliveries(incident, member, voice, ack, channels, links, test)
    return outcome


def _deliveries(
    incident: Incident,
    member: ChainParty,
    voice: Voice,
    ack: str,
    channels: tuple[str, ...],
    links: bool,
    test: bool,
) -> list[Delivery]:
    party = member.party
    out: list[Delivery] = []
    if "sms" in channels and party.sms:
        sms = (
            render_test_alarm_sms(incident, member, voice)
            if test
            else render_alarm_sms(incident, member, voice)
        )
        out += to_each(
            party,
            "sms",
            sms,
            key=lambda at, p=party.id: f"alarm-sms:{p}:{at}",
            incident_id=incident.id,
            purpose="alarm",
        )
    if "email" in channels and party.email:
        mail = (
            render_test_alarm_email(incident, member, voice, ack_command=ack, with_link=links)
            if test
            else render_alarm_email(incident, member, voice, ack_command=ack, with_link=links)
        )
        out += to_each(
            party,
            "email",
            mail,
            key=lambda at, p=party.id: f"alarm-email:{p}:{at}",
            incident_id=incident.id,
            purpose="alarm",
        )
    return out


async def start_exercise(
    ctx: CommandContext, plan: ExercisePlan, *, catalog: Catalog, registry: Registry
) -> tuple[Incident, ChainStarted, Outcome] | Blocked:
    """Confirm and alarm the exercise of ``plan`` now, or say why not."""
    why_not = await blocked(ctx)
    if why_not is not None:
        return why_not
    config = ctx.config
    chain = exercise_chain(ctx, plan)
    if not chain.parties:
        return Blocked("no_parties")
    region = config.region(plan.region_id)
    assert region is not None  # the plan's region was checked against the config
    now = ctx.clock.now()
    lang = config.healthcare_region.language
    deadline = now + timedelta(minutes=config.exercises.deadline_min)
    record = ExerciseRecord(
        started_by=plan.by,
        scenario=plan.scenario,
        schedule_id=plan.schedule_id,
        announced=plan.announced,
        parties=tuple(chain.party_ids) if plan.parties else (),
        deadline_at=deadline,
    )
    incident = Incident.confirm(
        number=await ctx.incidents.next_number(plan.kind),
        region_id=region.id,
        region_name=region.name,
        level=ReadinessLevel(config.exercises.level),
        headline=plan.scenario or catalog.text(lang, _HEADLINE_KEYS[plan.kind]),
        by=plan.by,
        clock=ctx.clock,
        kind=plan.kind,
        exercise=record,
    )
    started = incident.start_alarm(chain, by=plan.by, clock=ctx.clock)
    await ctx.incidents.save(incident)
    await ctx.schedules.add_deadline(incident.id, deadline)
    outcome = alarm_outcome(ctx, incident, started, catalog=catalog, registry=registry)
    outcome.audit += [
        AuditEntry(
            "exercise.started",
            incident.id,
            {
                "kind": plan.kind.value,
                "by": plan.by,
                "region": region.id,
                "schedule": plan.schedule_id,
                "announced": plan.announced,
                "scenario": plan.scenario,
                "deadline_at": deadline.isoformat(),
            },
        ),
        AuditEntry(
            "chain.started",
            incident.id,
            {
                "by": plan.by,
                "parties": [p.id for p in started.parties],
                "rooms": {p.id: p.party.room for p in started.parties},
                "deliveries": [
                    {"channel": d.channel, "party": d.party_id} for d in outcome.deliveries
                ],
            },
        ),
    ]
    outcome.boards += incident_boards(ctx, incident, catalog, registry)
    return incident, started, outcome
