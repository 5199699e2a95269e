"""!status: the board of an incident, as a reply, for any duty officer or coordinator.

Who sees which board where: a board shows every party's answer, pledge and remark, so it is
shown only in rooms that take part in that incident: the coordination room (every incident),
the initiating region's room, and the rooms of the parties its chain alarmed (the shared
picture of one response). In the room of a party the incident does not concern, ``!status
H-7`` is refused and audited, whoever asks; without an id it shows only what concerns the room.
"""

from __future__ import annotations

from bot.domain import Incident
from commands.context import CommandContext
from commands.declaration import Call
from commands.lookup import incident_by_number
from commands.outcome import Outcome
from commands.render import Voice, render_board
from commands.replies import answered, refused, voice_for


async def _relevant_open(call: Call, ctx: CommandContext) -> list[Incident]:
    """Open incidents that concern this room: a party's own and those it is alarmed for; in
    any other room (the coordination room) every open incident."""
    party = ctx.config.party_for_room(call.room_id)
    if party is None:
        return await ctx.incidents.open_incidents()
    found = {i.id: i for i in await ctx.incidents.open_for_region(party.id)}
    found.update({i.id: i for i in await ctx.incidents.alarmed_for_party(party.id)})
    return sorted(found.values(), key=lambda i: i.number)


def _concerns_room(call: Call, ctx: CommandContext, incident: Incident) -> bool:
    """Whether ``incident``'s board may be shown in the call's room (see the module doc)."""
    party = ctx.config.party_for_room(call.room_id)
    if party is None:  # the coordination room (commands reach no other room)
        return True
    if incident.region_id == party.id:
        return True
    return incident.chain is not None and incident.chain.party(party.id) is not None


def _render_board(call: Call, ctx: CommandContext, incident: Incident, voice: Voice) -> str:
    return render_board(
        incident,
        voice,
        now=ctx.clock.now(),
        alarm_command=call.command("alarm"),
        situation_command=call.command("sitrep"),
    )


async def execute_status(call: Call, ctx: CommandContext) -> Outcome:
    voice = voice_for(call, ctx)
    number = call.args.get("incident")
    if number is not None:
        incident = await incident_by_number(call, ctx, number, voice)
        if isinstance(incident, Outcome):
            return incident
        if not _concerns_room(call, ctx, incident):
            body = voice.text("status.not_here", incident=incident.id)
            return refused(call, body, "board_not_for_room", subject=incident.id)
        return answered(call, _render_board(call, ctx, incident, voice), reaction=None)
    candidates = await _relevant_open(call, ctx)
    if not candidates:
        return answered(call, voice.text("status.none"), reaction=None)
    newest = candidates[-1]
    others = [i.id for i in candidates[:-1]]
    body = voice.lines(
        _render_board(call, ctx, newest, voice),
        voice.text("status.others", incidents=voice.join(others), command=call.command("status"))
        if others
        else None,
    )
    return answered(call, body, reaction=None)
