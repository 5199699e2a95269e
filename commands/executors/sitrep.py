"""!lägesbild: the duty officer of the incident's region publishes the situation report; with
no fields, anyone allowed here sees its current version."""

from __future__ import annotations

from bot.config import PartyConfig
from bot.domain import (
    AlreadyStoodDown,
    Incident,
    InvalidSituationReport,
    NoChange,
    Problem,
    ReportTemplate,
    parse_update,
)
from commands.context import CommandContext
from commands.declaration import Call
from commands.lookup import incident_by_number, incident_of_region
from commands.outcome import AuditEntry, Outcome
from commands.render import Voice
from commands.render.situation import (
    render_situation,
    render_situation_none,
    render_situation_problems,
)
from commands.replies import (
    HANDLED,
    answered,
    boards,
    call_detail,
    refused,
    rejected,
    reply,
    voice_for,
)
from commands.situation import situation_outcome, template_for, version_detail


def _concerns(incident: Incident, region: PartyConfig) -> bool:
    """The region confirmed the incident, or its chain alarms the region."""
    return incident.region_id == region.id or (
        incident.chain is not None and incident.chain.party(region.id) is not None
    )


async def _incident_to_show(
    call: Call, ctx: CommandContext, region: PartyConfig, voice: Voice
) -> Incident | Outcome:
    number = call.args.get("incident")
    if number is not None:
        found = await incident_by_number(call, ctx, number, voice)
        if isinstance(found, Outcome) or _concerns(found, region):
            return found
        return refused(
            call,
            voice.text("sitrep.not_concerned", incident=found.id, party=region.name),
            "incident_not_concerned",
            found.id,
        )
    candidates = {i.id: i for i in await ctx.incidents.open_for_region(region.id)}
    candidates.update({i.id: i for i in await ctx.incidents.alarmed_for_party(region.id)})
    found_all = sorted(candidates.values(), key=lambda i: i.number)
    if not found_all:
        return rejected(
            call, voice.text("sitrep.nothing_open", party=region.name), "no_open_incident"
        )
    if len(found_all) > 1:
        ids = [i.id for i in found_all]
        return rejected(
            call,
            voice.text(
                "incident.ambiguous",
                region=region.name,
                incidents=voice.join(ids),
                command=call.command("sitrep"),
                example=ids[-1],
            ),
            "ambiguous_incident",
            open=ids,
        )
    return found_all[0]


async def _show(call: Call, ctx: CommandContext, region: PartyConfig, voice: Voice) -> Outcome:
    found = await _incident_to_show(call, ctx, region, voice)
    if isinstance(found, Outcome):
        return found
    report = found.situation_report
    version = report.current if report is not None else None
    if report is None or version is None:
        body = render_situation_none(
            found, template_for(ctx.config), voice, command=call.command("sitrep")
        )
    else:
        body = render_situation(found, report.template, version, voice, marked=False)
    return answered(call, body, reaction=None)


def _invalid(
    call: Call,
    incident: Incident,
    problems: tuple[Problem, ...],
    template: ReportTemplate,
    voice: Voice,
) -> Outcome:
    return rejected(
        call,
        render_situation_problems(
            incident, problems, template, voice, command=call.command("sitrep")
        ),
        "invalid_situation_report",
        incident.id,
        problems=[p.to_dict() for p in problems],
    )


async def execute_sitrep(call: Call, ctx: CommandContext) -> Outcome:
    region = ctx.config.party_for_room(call.room_id)
    assert region is not None  # the declaration only allows a region's room
    voice = voice_for(call, ctx)
    text = call.args.get("fields")
    if not text:
        return await _show(call, ctx, region, voice)
    found = await incident_of_region(call, ctx, region, voice)
    if isinstance(found, Outcome):
        return found
    incident = found
    report = incident.situation_report
    template = report.template if report is not None else template_for(ctx.config)
    parsed = parse_update(template, text)
    if not parsed.ok:
        return _invalid(call, incident, parsed.problems, template, voice)
    try:
        version = incident.update_situation_report(
            template, parsed.changes, by=call.sender, clock=ctx.clock
        )
    except InvalidSituationReport as error:
        return _invalid(call, incident, error.problems, template, voice)
    except NoChange as error:
        return rejected(
            call,
            voice.text(
                "sitrep.no_change",
                incident=incident.id,
                version=error.version,
                command=call.command("sitrep"),
            ),
            "no_change",
            incident.id,
        )
    except AlreadyStoodDown as error:
        return rejected(
            call,
            voice.text(
                "incident.already_stood_down",
                incident=incident.id,
                time=voice.time(error.at) if error.at else "?",
                person=voice.person(error.by),
            ),
            "stood_down",
            incident.id,
        )
    await ctx.incidents.save(incident)
    outcome = situation_outcome(ctx, incident, version, call.catalog)
    rooms = [p.room_id for p in outcome.posts]
    sms = sum(1 for d in outcome.deliveries if d.channel == "sms")
    email = sum(1 for d in outcome.deliveries if d.channel == "email")
    parties = len(incident.chain.parties) if incident.chain is not None else 0
    if incident.chain is None:
        head = voice.text(
            "sitrep.saved_unalarmed",
            incident=incident.id,
            version=version.number,
            command=call.command("alarm"),
        )
    else:
        head = voice.text(
            "sitrep.published", incident=incident.id, version=version.number, count=parties
        )
    outcome.posts.append(
        reply(
            call,
            voice.lines(
                head,
                voice.text("sitrep.published.bridges", sms=sms, email=email)
                if sms or email
                else None,
                render_situation(incident, template, version, voice),
            ),
        )
    )
    outcome.audit.append(
        AuditEntry(
            "sitrep.version",
            incident.id,
            call_detail(
                call,
                **version_detail(version),
                rooms=rooms,
                deliveries=[
                    {"channel": d.channel, "party": d.party_id} for d in outcome.deliveries
                ],
                alarmed=incident.chain is not None,
            ),
        )
    )
    if incident.chain is not None:
        outcome.boards.extend(boards(call, ctx, incident))
    outcome.reaction = HANDLED
    return outcome
