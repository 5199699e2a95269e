"""Which incident a command means when the id is left out.

The rules, chosen so that the common case needs no id and the uncommon case is never guessed
silently: a region's own commands (!larma, !avlarma) need an id when the region has more than
one open incident; an acknowledgement goes to the newest open alarm and says so.
"""

from __future__ import annotations

from bot.config import PartyConfig
from bot.domain import Incident, format_incident_id
from commands.context import CommandContext
from commands.declaration import Call
from commands.outcome import Outcome
from commands.render import Voice
from commands.replies import refused, rejected


async def incident_by_number(
    call: Call, ctx: CommandContext, number: int | str, voice: Voice
) -> Incident | Outcome:
    """The incident the id typed names (``H-7``, ``Ö-3``: as parsed; a bare number is
    live), or a clear answer that there is none."""
    incident_id = number if isinstance(number, str) else format_incident_id(number)
    incident = await ctx.incidents.get(incident_id)
    if incident is None:
        return rejected(
            call,
            voice.text("incident.unknown", incident=incident_id),
            "unknown_incident",
            incident_id,
        )
    return incident


async def incident_of_region(
    call: Call, ctx: CommandContext, region: PartyConfig, voice: Voice
) -> Incident | Outcome:
    """The incident a duty officer of ``region`` means: by id (must be the region's own), or
    the region's only open incident."""
    number = call.args.get("incident")
    if number is not None:
        incident = await incident_by_number(call, ctx, number, voice)
        if isinstance(incident, Outcome):
            return incident
        if incident.region_id != region.id:
            return refused(
                call,
                voice.text(
                    "refusal.incident_region",
                    incident=incident.id,
                    region=incident.region_name,
                    command=call.command(call.declaration.key),
                ),
                "incident_of_other_region",
                incident.id,
            )
        return incident
    open_incidents = await ctx.incidents.open_for_region(region.id)
    if not open_incidents:
        return rejected(
            call,
            voice.text("incident.none_open", region=region.name, command=call.command("incident")),
            "no_open_incident",
        )
    if len(open_incidents) > 1:
        ids = [i.id for i in open_incidents]
        return rejected(
            call,
            voice.text(
                "incident.ambiguous",
                region=region.name,
                incidents=voice.join(ids),
                command=call.command(call.declaration.key),
                example=ids[-1],
            ),
            "ambiguous_incident",
            open=ids,
        )
    return open_incidents[0]
