"""The after-action report (``!rapport``, ``larmkedja report``): what happened to an incident,
from its audit log and outbox, as a room summary, a printable HTML page, CSV and JSON."""

from commands.report.html import render_report_html
from commands.report.tabular import render_report_csv, render_report_json, report_data
from commands.report.timeline import Event, Figures, Kind, PartyFigures, Timeline, build_timeline
from commands.report.wording import describe, render_report_summary

__all__ = [
    "Event",
    "Figures",
    "Kind",
    "PartyFigures",
    "Timeline",
    "build_timeline",
    "describe",
    "render_report_csv",
    "render_report_html",
    "render_report_json",
    "render_report_summary",
    "report_data",
]
