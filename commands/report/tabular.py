"""The after-action report as data: the timeline as CSV (for a spreadsheet at the evaluation
meeting) and the whole report as JSON (for whoever compares exercises over the years).

Column names and JSON keys are stable identifiers, not words for people; each event also
carries its sentence in the report's language, the same the HTML page shows.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from commands.render.voice import LOCAL_TIME_ZONE, Voice
from commands.report.timeline import PartyFigures, Timeline
from commands.report.wording import describe

CSV_COLUMNS = ("seq", "at", "local_time", "kind", "party", "channel", "person", "text")
_LOCAL = "%Y-%m-%d %H:%M:%S"


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def render_report_csv(timeline: Timeline, voice: Voice) -> str:
    """One row per event, in time order; ``at`` in UTC (ISO 8601), ``local_time`` as the
    duty officers' clocks showed it."""
    zone = voice.zone or ZoneInfo(LOCAL_TIME_ZONE)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for event in timeline.events:
        writer.writerow(
            (
                "" if event.seq is None else event.seq,
                event.at.isoformat(),
                event.at.astimezone(zone).strftime(_LOCAL),
                event.kind,
                event.party_id or "",
                event.channel or "",
                event.person or "",
                describe(event, timeline, voice),
            )
        )
    return out.getvalue()


def _party(p: PartyFigures) -> dict[str, Any]:
    return {
        "party": p.party_id,
        "name": p.name,
        "required_transports": p.required,
        "pledged_transports": p.pledged,
        "short_of_requirement": p.short,
        "acknowledged_at": _iso(p.acknowledged_at),
        "acknowledged_by": p.acknowledged_by,
        "acknowledged_via": p.acknowledged_via,
        "time_to_ack_s": _seconds(p.time_to_ack),
        "acknowledgements": p.acknowledgements,
        "reminders": p.reminders,
        "problems": p.problems,
        "channels": [
            {
                "channel": c.channel,
                "alarm_sent_at": _iso(c.alarm_sent_at),
                "acknowledged_at": _iso(c.acknowledged_at),
                "acknowledged_as": c.acknowledged_as,
                "time_to_ack_s": _seconds(c.time_to_ack),
            }
            for c in p.channels
        ],
    }


def report_data(timeline: Timeline, voice: Voice) -> dict[str, Any]:
    """The whole report as JSON-safe data."""
    incident = timeline.incident
    f = timeline.figures
    head = timeline.history.head
    report = incident.situation_report
    return {
        "incident": {
            "id": incident.id,
            "region": incident.region_id,
            "region_name": incident.region_name,
            "level": incident.level.value,
            "headline": incident.headline,
            "state": incident.state.value,
            "confirmed_at": _iso(incident.confirmed_at),
            "confirmed_by": incident.confirmed_by,
            "alarmed_at": _iso(incident.alarmed_at),
            "alarmed_by": incident.alarmed_by,
            "stood_down_at": _iso(incident.stood_down_at),
            "stood_down_by": incident.stood_down_by,
            "stand_down_remark": incident.stand_down_remark,
        },
        "figures": {
            "parties": f.parties,
            "acknowledged": f.acknowledged,
            "completed_at": _iso(f.completed_at),
            "time_to_complete_s": _seconds(f.time_to_complete),
            "median_time_to_ack_s": _seconds(f.median_time_to_ack),
            "slowest": None if f.slowest is None else f.slowest.party_id,
            "pledged_transports": f.pledged,
            "required_transports": f.required,
            "problems": f.problems,
            "fallbacks": f.fallbacks,
            "reminders": f.reminders,
            "situation_versions": f.situation_versions,
            "log_entries": f.log_entries,
        },
        "parties": [_party(p) for p in timeline.parties],
        "situation_report": None if report is None else report.to_dict(),
        "log": [e.to_dict() for e in incident.log],
        "timeline": [
            {**e.to_dict(), "text": describe(e, timeline, voice)} for e in timeline.events
        ],
        "audit_head": None
        if head is None
        else {"seq": head.seq, "hash": head.hash, "at": _iso(head.at)},
        "language": voice.lang,
    }


def render_report_json(timeline: Timeline, voice: Voice) -> str:
    return json.dumps(report_data(timeline, voice), ensure_ascii=False, indent=2) + "\n"
