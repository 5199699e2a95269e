"""How an exercise or test alarm ends, whichever way: one function.

An exercise ends when every party has acknowledged, when its deadline passes, when the
initiating region's duty officer stands it down (``!avlarma Ö-3``), when a coordinator ends it
(``!övning avsluta``), or when a live incident is confirmed or alarmed: **a live alarm always
wins, and ends the exercise** (not pauses it: a paused exercise would come back at a moment
nobody chose, on top of the live incident's aftermath; the coordinators plan a new one). After
a live incident nothing more of the exercise goes to the parties: its pending reminders become
moot, its unsent alarms are cancelled at their send, and no exercise stand-down is sent on top
of the live alarm; the coordination room is told. Otherwise the parties get the exercise's
stand-down on every channel.

Either way the exercise's report follows in a transaction of its own (a due row of kind
``exercise_report``), so that it reads everything the ending wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain import EXERCISE_KINDS, Incident, IncidentState
from bot.domain.exercise import END, EndReason, exercise_due_key
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import AuditEntry, Outcome, Post, to_each
from commands.render import Voice
from commands.render.exercise import (
    render_exercise_ended,
    render_exercise_ended_sms,
    render_live_ended,
)
from commands.replies import home_server, incident_boards

if TYPE_CHECKING:
    from commands.registry import Registry

BOT = "larmkedja"


def complete(incident: Incident) -> bool:
    """Every party acknowledged (a pledge short of what was asked is in the report; waiting
    for it would keep an exercise running that has measured what it measures)."""
    return incident.chain is not None and bool(incident.chain.parties) and not incident.missing()


def _stand_down_to_parties(ctx: CommandContext, incident: Incident, catalog: Catalog) -> Outcome:
    """The exercise's end on every channel the alarm went out on."""
    outcome = Outcome()
    if incident.chain is None:
        return outcome
    channels = ctx.config.bridge_channels()
    for member in incident.chain.parties:
        party = member.party
        voice = Voice(catalog, party.language, home_server(ctx))
        if party.room is not None:
            outcome.posts.append(
                Post(
                    room_id=party.room,
                    body=render_exercise_ended(incident, voice),
                    key=f"standdown:{party.id}",
                    purpose="standdown",
                    mentions=party.duty_officers,
                    incident_id=incident.id,
                )
            )
        if "sms" in channels and party.sms:
            outcome.deliveries += to_each(
                party,
                "sms",
                render_exercise_ended_sms(incident, voice),
                key=lambda at, p=party.id: f"standdown-sms:{p}:{at}",
                incident_id=incident.id,
                purpose="standdown",
            )
        if "email" in channels and party.email:
            outcome.deliveries += to_each(
                party,
                "email",
                render_exercise_ended(incident, voice),
                key=lambda at, p=party.id: f"standdown-email:{p}:{at}",
                incident_id=incident.id,
                purpose="standdown",
            )
    return outcome


async def end_exercise(
    ctx: CommandContext,
    incident: Incident,
    reason: EndReason,
    by: str | None,
    *,
    catalog: Catalog,
    registry: Registry,
    with_boards: bool = True,
) -> Outcome:
    """End ``incident`` (an exercise) for ``reason``; ``by`` is who, or the live incident's id.

    An exercise already stood down by ``!avlarma`` is only recorded as ended (the stand-down
    went out with that command). Returns what follows: audit, the parties' stand-down (not
    after a live incident), the coordination room's notice, boards, and the report's due row.
    """
    assert incident.exercise is not None
    now = ctx.clock.now()
    outcome = Outcome()
    stood_down_here = incident.state is not IncidentState.STOOD_DOWN
    if stood_down_here:
        stood = incident.stand_down(
            by=by if reason is not EndReason.LIVE_INCIDENT else BOT, clock=ctx.clock
        )
        outcome.audit.append(
            AuditEntry(
                "incident.stood_down",
                incident.id,
                {
                    "reason": reason.value,
                    "parties": [p.id for p in stood.parties],
                    "missing": [p.id for p in incident.missing()],
                    "cancelled_dues": [d.key for d in stood.cancelled],
                },
            )
        )
    incident.exercise = incident.exercise.ended(reason, by)
    await ctx.incidents.save(incident)
    await ctx.schedules.settle_due(exercise_due_key(incident.id, END), "cancelled", now)
    outcome.audit.append(
        AuditEntry("exercise.ended", incident.id, {"reason": reason.value, "by": by})
    )
    if reason is EndReason.LIVE_INCIDENT:
        room = ctx.config.healthcare_region.coordination_room
        if room:
            voice = Voice(catalog, ctx.config.room_language(room), home_server(ctx))
            outcome.posts.append(
                Post(
                    room_id=room,
                    body=render_live_ended(incident, voice, live_id=by or "?"),
                    key=f"live-ended:{incident.id}",
                    purpose="notice",
                    incident_id=incident.id,
                )
            )
    elif stood_down_here:
        outcome.extend(_stand_down_to_parties(ctx, incident, catalog))
    if with_boards:  # not when the caller adds the boards itself
        outcome.boards += incident_boards(ctx, incident, catalog, registry)
    await ctx.schedules.add_report(incident.id, now)
    return outcome


async def after_acknowledgement(
    ctx: CommandContext, incident: Incident, *, catalog: Catalog, registry: Registry
) -> Outcome:
    """Called by the one acknowledgement decision after every acknowledgement: an exercise
    whose last party has now acknowledged (and pledged) ends; nothing for a live incident."""
    if not incident.is_exercise or not incident.is_open or not complete(incident):
        return Outcome()
    return await end_exercise(
        ctx,
        incident,
        EndReason.COMPLETED,
        None,
        catalog=catalog,
        registry=registry,
        with_boards=False,
    )


async def live_wins(
    ctx: CommandContext, live: Incident, *, catalog: Catalog, registry: Registry
) -> Outcome:
    """A live incident was confirmed or alarmed: every running exercise ends now."""
    outcome = Outcome()
    if live.is_exercise:
        return outcome
    for running in await ctx.incidents.open_of_kind(*EXERCISE_KINDS):
        outcome.extend(
            await end_exercise(
                ctx, running, EndReason.LIVE_INCIDENT, live.id, catalog=catalog, registry=registry
            )
        )
    return outcome
