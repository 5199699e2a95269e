"""An exercise's report in the coordination room: the figures, the trend, the chart.

Made when an exercise ends (its ``exercise.report`` due row, in a transaction of its own after
the ending) and again on ``!rapport Ö-3``. The text is
:func:`commands.report.exercise.render_exercise_report`; the chart
(:mod:`commands.report.chart`) is an encrypted ``m.image`` in the coordination room; the
coordinators' e-mail addresses get the text. The trend compares with the previous exercises of
the same kind (``exercises.trend_count``).
"""

from __future__ import annotations

from bot.domain import Incident
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import Attachment, AuditEntry, Outcome
from commands.render import Voice
from commands.render.exercise import kind_name
from commands.replies import home_server, to_coordinators
from commands.report import build_timeline
from commands.report.chart import PNG, ChartLabels, ChartRow, render_chart
from commands.report.exercise import Trend, render_exercise_report, times_to_ack, trend

_PNG_SUFFIX = ".png"


async def exercise_trend(ctx: CommandContext, incident: Incident) -> Trend:
    previous = await ctx.incidents.ended_of_kind(
        incident.kind, before=incident.number, limit=ctx.config.exercises.trend_count
    )
    return trend(incident, previous)


def chart_attachment(
    incident: Incident, found: Trend, voice: Voice, *, room_id: str, key: str, reply_to: str | None
) -> Attachment:
    current = times_to_ack(incident)
    assert incident.chain is not None
    rows = [
        ChartRow(m.party.name, current.get(m.id), found.by_party.get(m.id, ()))
        for m in incident.chain.parties
    ]
    labels = ChartLabels(
        title=voice.text(
            "exercise.chart.title",
            kind=kind_name(voice, incident.kind.value),
            incident=incident.id,
        ),
        minutes=voice.text("exercise.chart.minutes"),
        current=voice.text("exercise.chart.current", incident=incident.id),
        previous=voice.text("exercise.chart.previous", count=len(found.previous)),
        never=voice.text("exercise.chart.never"),
    )
    return Attachment(
        room_id=room_id,
        filename=voice.text("exercise.chart.file", incident=incident.id) + _PNG_SUFFIX,
        mimetype=PNG,
        data=render_chart(rows, labels),
        body=voice.text("exercise.chart.body", incident=incident.id),
        key=key,
        incident_id=incident.id,
        in_reply_to=reply_to,
    )


async def report_text(ctx: CommandContext, incident: Incident, voice: Voice) -> tuple[str, Trend]:
    """The exercise report's text and its trend, from the incident's history."""
    history = await ctx.incidents.history(incident.id)
    assert history is not None
    found = await exercise_trend(ctx, incident)
    return render_exercise_report(build_timeline(history), found, voice), found


def reported(incident: Incident, found: Trend) -> AuditEntry:
    current = found.current
    return AuditEntry(
        "exercise.reported",
        incident.id,
        {
            "median_s": None if current.median is None else current.median.total_seconds(),
            "worst_s": None if current.worst is None else current.worst.total_seconds(),
            "unanswered": current.unanswered,
            "previous": list(found.previous_ids),
        },
    )


async def report_outcome(
    ctx: CommandContext, incident: Incident, *, catalog: Catalog, key_prefix: str
) -> Outcome:
    """The report at an exercise's end: in the coordination room with its chart, and by
    e-mail to the coordinators."""
    room = ctx.config.healthcare_region.coordination_room
    if room is None or incident.chain is None:
        return Outcome()
    voice = Voice(catalog, ctx.config.room_language(room), home_server(ctx))
    body, found = await report_text(ctx, incident, voice)
    outcome = to_coordinators(ctx, body, key=f"{key_prefix}-report", incident_id=incident.id)
    outcome.attachments.append(
        chart_attachment(
            incident, found, voice, room_id=room, key=f"{key_prefix}-chart", reply_to=None
        )
    )
    outcome.audit.append(reported(incident, found))
    return outcome
