"""The situation report in words: a version with what changed marked, its SMS notice, the
answer to a wrong ``!lägesbild``, and the greeting of someone who joins mid-incident.

A version is shown whole (a party that missed v1 still gets the full picture from v2), with
each field that changed since the previous version marked and, where it is short, what it said
before; a cleared field is shown as cleared. Field names come from the template frozen into the
incident: the catalogue's for METHANE, the config's for a template of the healthcare region's
own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain import (
    ChangeKind,
    Incident,
    Problem,
    ProblemKind,
    ReportField,
    ReportTemplate,
    SituationReportVersion,
)
from commands.render.voice import Voice

# The names and the shortest input spelling of the METHANE fields, in each language.
_NAMES = {
    "major_incident": "sitrep.field.major_incident",
    "location": "sitrep.field.location",
    "type": "sitrep.field.type",
    "hazards": "sitrep.field.hazards",
    "access": "sitrep.field.access",
    "casualties": "sitrep.field.casualties",
    "services": "sitrep.field.services",
    "note": "sitrep.field.note",
}
_SPELLINGS = {
    "major_incident": "sitrep.alias.major_incident",
    "location": "sitrep.alias.location",
    "type": "sitrep.alias.type",
    "hazards": "sitrep.alias.hazards",
    "access": "sitrep.alias.access",
    "casualties": "sitrep.alias.casualties",
    "services": "sitrep.alias.services",
    "note": "sitrep.alias.note",
}
_MARKS = {
    ChangeKind.ADDED: "sitrep.mark.added",
    ChangeKind.CHANGED: "sitrep.mark.changed",
}
_PROBLEMS = {
    ProblemKind.TEXT_BEFORE_FIELD: "sitrep.problem.text_before_field",
    ProblemKind.UNKNOWN_FIELD: "sitrep.problem.unknown_field",
    ProblemKind.EMPTY_VALUE: "sitrep.problem.empty_value",
    ProblemKind.REPEATED_FIELD: "sitrep.problem.repeated_field",
    ProblemKind.TOO_LONG: "sitrep.problem.too_long",
    ProblemKind.REPORT_TOO_LONG: "sitrep.problem.report_too_long",
    ProblemKind.NOTHING_GIVEN: "sitrep.problem.nothing_given",
    ProblemKind.REQUIRED_CLEARED: "sitrep.problem.required_cleared",
}
#: Longest earlier value shown next to a changed field ("was: …"); longer ones are left out.
WAS_LIMIT = 60
#: Changed fields an SMS notice names; more are counted.
SMS_FIELDS = 3


def field_name(field: ReportField, voice: Voice) -> str:
    """``Exakt plats``: the configured name in the voice's language, else the catalogue's."""
    configured = field.name(voice.lang)
    if configured is not None:
        return configured
    key = _NAMES.get(field.key)
    return voice.text(key) if key else field.key


def field_spelling(field: ReportField, voice: Voice) -> str:
    """``plats``: what to type for the field in the voice's language (one of its spellings)."""
    key = _SPELLINGS.get(field.key)
    if key is not None and field.name(voice.lang) is None:
        return voice.text(key)
    return field.aliases[0] if field.aliases else field.key


def _name(template: ReportTemplate, key: str, voice: Voice) -> str:
    found = template.field(key)
    return field_name(found, voice) if found is not None else key


def _field_line(
    template: ReportTemplate, version: SituationReportVersion, key: str, voice: Voice, marked: bool
) -> str | None:
    name = _name(template, key, voice)
    value = version.value(key)
    change = version.change(key) if marked and version.number > 1 else None
    if value is None:
        if change is not None and change.kind == ChangeKind.CLEARED:
            return voice.text("sitrep.line.cleared", name=name, before=change.before or "")
        return None
    line = voice.text("sitrep.line", name=name, value=value)
    if change is None:
        return line
    line += voice.text(_MARKS[change.kind])
    if change.kind == ChangeKind.CHANGED and change.before and len(change.before) <= WAS_LIMIT:
        line += voice.text("sitrep.was", before=change.before)
    return line


def render_situation(
    incident: Incident,
    template: ReportTemplate,
    version: SituationReportVersion,
    voice: Voice,
    *,
    marked: bool = True,
) -> str:
    """The whole version, every set field in the template's order; ``marked``: what changed
    since the previous version is marked (for the parties), else the plain picture."""
    header_key = "sitrep.header.initial" if version.number == 1 else "sitrep.header"
    changed = [_name(template, c.key, voice) for c in version.changes]
    return voice.lines(
        voice.text(
            header_key,
            incident=incident.id,
            version=version.number,
            level=voice.level(incident.level),
            region=incident.region_name,
        ),
        voice.text("sitrep.meta", time=voice.time(version.at), person=voice.person(version.by)),
        voice.text("sitrep.changed", previous=version.number - 1, fields=voice.join(changed))
        if marked and version.number > 1
        else None,
        *(_field_line(template, version, f.key, voice, marked) for f in template.fields),
    )


def render_situation_sms(
    incident: Incident,
    template: ReportTemplate,
    version: SituationReportVersion,
    voice: Voice,
) -> str:
    """Only that a new version exists and which fields changed: the text is on Matrix and in
    the e-mail. GSM-7 when the field names are (METHANE's are, in all three languages)."""
    names = [_name(template, c.key, voice) for c in version.changes]
    shown = voice.join(names[:SMS_FIELDS])
    if len(names) > SMS_FIELDS:
        shown += voice.text("sms.sitrep.more", count=len(names) - SMS_FIELDS)
    return voice.text(
        "sms.sitrep.initial" if version.number == 1 else "sms.sitrep",
        incident=incident.id,
        version=version.number,
        region=incident.region_name,
        fields=shown,
    )


def render_fields(template: ReportTemplate, voice: Voice) -> str:
    """``Fält: plats= (Exakt plats, krävs), …``: what ``!lägesbild`` accepts."""
    entries = [
        voice.text(
            "sitrep.fields.required" if f.required else "sitrep.fields.entry",
            spelling=field_spelling(f, voice),
            name=field_name(f, voice),
        )
        for f in template.fields
    ]
    return voice.text("sitrep.fields", fields=voice.join(entries))


def _problem_line(problem: Problem, template: ReportTemplate, voice: Voice) -> str | None:
    key = _PROBLEMS.get(problem.kind)
    if key is None:
        return None
    name = _name(template, problem.field, voice) if problem.field is not None else ""
    return voice.text(
        key,
        text=problem.name,
        name=name,
        typed=problem.name,
        length=problem.length,
        limit=problem.limit,
    )


def render_situation_problems(
    incident: Incident,
    problems: Sequence[Problem],
    template: ReportTemplate,
    voice: Voice,
    *,
    command: str,
) -> str:
    """Everything wrong with a ``!lägesbild``, then the valid fields and an example."""
    missing = [
        _name(template, p.field, voice)
        for p in problems
        if p.kind == ProblemKind.MISSING_REQUIRED and p.field is not None
    ]
    example_fields = template.required or template.fields[:2]
    return voice.lines(
        voice.text("sitrep.problem.header", incident=incident.id),
        *(_problem_line(p, template, voice) for p in problems),
        voice.text("sitrep.problem.missing_required", fields=voice.join(missing))
        if missing
        else None,
        render_fields(template, voice),
        voice.text(
            "sitrep.example",
            command=command,
            fields=" ".join(
                voice.text("sitrep.example.field", spelling=field_spelling(f, voice))
                for f in example_fields
            ),
        ),
    )


def render_situation_none(
    incident: Incident, template: ReportTemplate, voice: Voice, *, command: str
) -> str:
    """``!lägesbild`` before there is a first version."""
    return voice.lines(
        voice.text("sitrep.none", incident=incident.id),
        render_fields(template, voice),
        voice.text(
            "sitrep.example",
            command=command,
            fields=" ".join(
                voice.text("sitrep.example.field", spelling=field_spelling(f, voice))
                for f in (template.required or template.fields[:2])
            ),
        ),
    )


def render_board_situation(incident: Incident, voice: Voice, command: str | None) -> str | None:
    """The board's line about the report: which version is current, since when, how to see it."""
    version = incident.situation
    if version is None:
        return None
    if command is None:
        return voice.text(
            "board.situation.plain", version=version.number, time=voice.time(version.at)
        )
    return voice.text(
        "board.situation", version=version.number, time=voice.time(version.at), command=command
    )


def render_situation_greeting(
    incident: Incident,
    voice: Voice,
    *,
    now: datetime,
    party_id: str | None,
) -> str:
    """For someone who joins a room mid-incident (and cannot read its encrypted history): what
    is going on, whether this room's party has acknowledged, and the current situation report.

    Prepared for the engine's member events; see the report of the situation-report work.
    """
    total = len(incident.chain.parties) if incident.chain is not None else 0
    acknowledged = total - len(incident.missing())
    own = None
    if party_id is not None and incident.chain is not None and incident.chain.party(party_id):
        first = incident.first_ack(party_id)
        own = (
            voice.text(
                "greeting.party.acknowledged",
                time=voice.time(first.at),
                person=voice.person(first.person),
            )
            if first is not None
            else voice.text("greeting.party.missing")
        )
    report = incident.situation_report
    version = report.current if report is not None else None
    return voice.lines(
        voice.text(
            "greeting.header",
            incident=incident.id,
            level=voice.level(incident.level),
            region=incident.region_name,
            headline=incident.headline,
        ),
        voice.text(
            "greeting.status",
            time=voice.time(incident.alarmed_at),
            elapsed=voice.duration(now - incident.alarmed_at),
            acknowledged=acknowledged,
            total=total,
        )
        if incident.alarmed_at is not None
        else None,
        own,
        render_situation(incident, report.template, version, voice, marked=False)
        if report is not None and version is not None
        else voice.text("greeting.no_situation"),
    )
