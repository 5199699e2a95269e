"""!rapport: the after-action report of an incident, for its region's duty officers and the
coordinators: a short summary in the room, the whole report as files (a printable HTML page
and the timeline as CSV), and an anchor of the audit chain in the coordination room."""

from __future__ import annotations

from dataclasses import replace

from bot.domain import Incident
from commands.access import is_coordinator
from commands.anchor import anchor_outcome
from commands.context import CommandContext
from commands.declaration import Call
from commands.exercise.report import chart_attachment, exercise_trend
from commands.lookup import incident_by_number
from commands.outcome import Attachment, AuditEntry, Outcome
from commands.render import Voice
from commands.replies import answered, call_detail, refused, rejected, reply, voice_for
from commands.report import (
    build_timeline,
    render_report_csv,
    render_report_html,
    render_report_summary,
)
from commands.report.exercise import render_exercise_report

HTML = "text/html; charset=utf-8"
CSV = "text/csv; charset=utf-8"
_HTML_SUFFIX = ".html"
_CSV_SUFFIX = ".csv"


def may_report(ctx: CommandContext, incident: Incident, user_id: str) -> bool:
    """Coordinators, and the duty officers of the region that confirmed the incident."""
    if is_coordinator(ctx.config, user_id):
        return True
    region = ctx.config.region(incident.region_id)
    return region is not None and user_id in region.duty_officers


async def _incident(call: Call, ctx: CommandContext, voice: Voice) -> Incident | Outcome:
    number = call.args.get("incident")
    if number is not None:
        return await incident_by_number(call, ctx, number, voice)
    party = ctx.config.party_for_room(call.room_id)
    region = ctx.config.region(party.id) if party is not None else None
    latest = await ctx.incidents.latest(region.id if region is not None else None)
    if latest is None:
        return rejected(call, voice.text("report.nothing"), "no_incident")
    return latest


def report_files(
    incident: Incident, html: str, csv: str, voice: Voice, *, room_id: str, reply_to: str | None
) -> list[Attachment]:
    """The two files of a report for ``room_id``: the HTML page and the timeline's CSV."""
    base = voice.text("report.file", incident=incident.id)
    return [
        Attachment(
            room_id=room_id,
            filename=base + _HTML_SUFFIX,
            mimetype=HTML,
            data=html.encode("utf-8"),
            body=voice.text("report.file.html", incident=incident.id),
            key="report-html",
            incident_id=incident.id,
            in_reply_to=reply_to,
        ),
        Attachment(
            room_id=room_id,
            filename=base + _CSV_SUFFIX,
            mimetype=CSV,
            data=csv.encode("utf-8"),
            body=voice.text("report.file.csv", incident=incident.id),
            key="report-csv",
            incident_id=incident.id,
            in_reply_to=reply_to,
        ),
    ]


async def execute_report(call: Call, ctx: CommandContext) -> Outcome:
    voice = voice_for(call, ctx)
    found = await _incident(call, ctx, voice)
    if isinstance(found, Outcome):
        return found
    incident = found
    if not may_report(ctx, incident, call.sender):
        return refused(
            call,
            voice.text(
                "report.refused",
                incident=incident.id,
                region=incident.region_name,
                command=call.command("report"),
            ),
            "not_region_duty_officer",
            incident.id,
        )
    history = await ctx.incidents.history(incident.id)
    assert history is not None  # the incident was just read in this transaction
    timeline = build_timeline(history)
    html = render_report_html(timeline, voice, generated_at=ctx.clock.now())
    csv = render_report_csv(timeline, voice)
    head = history.head
    outcome = answered(
        call,
        render_report_summary(timeline, voice),
        AuditEntry(
            "report.created",
            incident.id,
            call_detail(
                call,
                audit_seq=head.seq if head is not None else None,
                audit_hash=head.hash if head is not None else None,
                events=len(timeline.events),
                files=["html", "csv"],
                lang=voice.lang,
            ),
        ),
        reaction=None,
    )
    outcome.attachments.extend(
        report_files(incident, html, csv, voice, room_id=call.room_id, reply_to=call.event_id)
    )
    if incident.is_exercise and incident.chain is not None:
        # An exercise: the time-to-acknowledge report, its trend and chart, shown again.
        found = await exercise_trend(ctx, incident)
        outcome.posts.append(
            replace(
                reply(call, render_exercise_report(timeline, found, voice), key="exercise-report"),
                incident_id=incident.id,
            )
        )
        outcome.attachments.append(
            chart_attachment(
                incident,
                found,
                voice,
                room_id=call.room_id,
                key="exercise-chart",
                reply_to=call.event_id,
            )
        )
    outcome.extend(anchor_outcome(ctx, head, call.catalog, reason="report"))
    return outcome
