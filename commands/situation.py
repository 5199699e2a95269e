"""The situation report between config, domain and outcome.

The template is copied out of the config like the chain's parties (see
:mod:`commands.parties`): the domain freezes the copy into the incident with the first
version, so a config edit never changes the fields of a report already begun. A published
version becomes the posts and deliveries of :func:`situation_outcome`, shared by
``!lägesbild`` and by ``!larma`` (an alarm carries the version written before it).
"""

from __future__ import annotations

from typing import Any

from bot.config import Config
from bot.domain import METHANE, Incident, ReportField, ReportTemplate, SituationReportVersion
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import Outcome, Post, to_each
from commands.render.situation import render_situation, render_situation_sms
from commands.render.voice import Voice
from commands.replies import home_server

#: Outbox purpose of a version (room, e-mail and SMS): informs, asks for no acknowledgement.
PURPOSE = "situation-report"


def template_for(config: Config) -> ReportTemplate:
    """The template a new situation report gets under the current config (METHANE unless
    ``[situation_report].fields`` says otherwise)."""
    section = config.situation_report
    fields = METHANE.fields
    if section.fields is not None:
        fields = tuple(
            ReportField(
                key=f.key,
                aliases=tuple(f.aliases),
                required=f.required,
                names=tuple(sorted(f.names.items())),
            )
            for f in section.fields
        )
    return ReportTemplate(
        fields=fields,
        max_field_length=section.max_field_length,
        max_report_length=section.max_report_length,
    )


def situation_outcome(
    ctx: CommandContext,
    incident: Incident,
    version: SituationReportVersion,
    catalog: Catalog,
    *,
    coordination: bool = True,
) -> Outcome:
    """A version to everyone alarmed: the whole text (changes marked) in each party's room and
    to its function addresses, a short notice to its numbers, and (``coordination``) the
    coordination room's copy.

    Nothing for parties before the chain has started: the alarm carries the current version
    (without a second copy for the coordination room, which had it when it was written).
    """
    report = incident.situation_report
    assert report is not None
    template = report.template
    n = version.number
    outcome = Outcome()
    members = incident.chain.parties if incident.chain is not None else ()
    channels = ctx.config.bridge_channels()
    for member in members:
        party = member.party
        voice = Voice(catalog, party.language, home_server(ctx))
        full = render_situation(incident, template, version, voice)
        if party.room is not None:
            outcome.posts.append(
                Post(
                    room_id=party.room,
                    body=full,
                    key=f"sitrep:{party.id}:v{n}",
                    purpose=PURPOSE,
                    incident_id=incident.id,
                )
            )
        if "email" in channels and party.email:
            outcome.deliveries += to_each(
                party,
                "email",
                full,
                key=lambda at, p=party.id: f"sitrep-email:{p}:v{n}:{at}",
                incident_id=incident.id,
                purpose=PURPOSE,
            )
        if "sms" in channels and party.sms:
            outcome.deliveries += to_each(
                party,
                "sms",
                render_situation_sms(incident, template, version, voice),
                key=lambda at, p=party.id: f"sitrep-sms:{p}:v{n}:{at}",
                incident_id=incident.id,
                purpose=PURPOSE,
            )
    room = ctx.config.healthcare_region.coordination_room
    if coordination and room is not None:
        voice = Voice(catalog, ctx.config.room_language(room), home_server(ctx))
        outcome.posts.append(
            Post(
                room_id=room,
                body=render_situation(incident, template, version, voice),
                key=f"sitrep:coordination:v{n}",
                purpose=PURPOSE,
                incident_id=incident.id,
            )
        )
    return outcome


def version_detail(version: SituationReportVersion) -> dict[str, Any]:
    """A version as the audit log keeps it: whole, so the log alone tells the story."""
    return {
        "version": version.number,
        "at": version.at.isoformat(),
        "by": version.by,
        "values": dict(version.values),
        "changes": [c.to_dict() for c in version.changes],
    }
