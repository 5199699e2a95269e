"""!kvittera and ✅: the chat ways in to the one acknowledgement decision.

Both translate what was typed (or reacted) into an :class:`commands.acknowledge.AckRequest`
and answer in the room; SMS, e-mail and links do the same in :mod:`commands.channel_ack`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.domain import Incident, IncidentState, Pledge
from bot.i18n import Catalog
from commands.access import declaration_refusal
from commands.acknowledge import NOT_ALARMED, NOT_IN_CHAIN, STOOD_DOWN, AckRequest, acknowledge
from commands.context import CommandContext, Reaction
from commands.declaration import Call
from commands.lookup import incident_by_number
from commands.outcome import Outcome
from commands.render import Voice, render_ack_reply
from commands.replies import HANDLED, call_detail, refused, rejected, reply, voice_for

if TYPE_CHECKING:
    from commands.registry import Registry

# Reaction keys that mean "acknowledged"; clients add or drop the emoji variation selector.
ACK_REACTIONS = frozenset({"✅", "✔️", "✔", "☑️", "☑"})


def _stood_down(call: Call, voice: Voice, incident: Incident) -> Outcome:
    return rejected(
        call,
        voice.text(
            "ack.stood_down",
            incident=incident.id,
            time=voice.time(incident.stood_down_at) if incident.stood_down_at else "?",
        ),
        "stood_down",
        incident.id,
    )


async def _acknowledge(
    call: Call,
    ctx: CommandContext,
    incident: Incident,
    party_id: str,
    *,
    via: str,
    pledge: Pledge | None = None,
    open_ids: Sequence[str] = (),
) -> Outcome:
    """The one decision (:func:`commands.acknowledge.acknowledge`), answered in the room."""
    voice = voice_for(call, ctx)
    decision = await acknowledge(
        ctx,
        incident,
        AckRequest(
            party_id=party_id,
            by=call.sender,
            via=via,
            at=call.at,
            pledge=pledge,
            context=call_detail(call),
        ),
        catalog=call.catalog,
        registry=call.registry,
    )
    if decision.refusal == STOOD_DOWN:
        return _stood_down(call, voice, incident)
    if decision.refusal == NOT_ALARMED:
        return rejected(
            call, voice.text("ack.not_alarmed", incident=incident.id), "not_alarmed", incident.id
        )
    if decision.refusal == NOT_IN_CHAIN:
        party = ctx.config.party(party_id)
        return rejected(
            call,
            voice.text(
                "ack.not_in_chain",
                party=party.name if party else party_id,
                incident=incident.id,
            ),
            "not_in_chain",
            incident.id,
        )
    assert decision.recorded is not None
    assert decision.member is not None
    body = render_ack_reply(
        incident,
        decision.recorded,
        decision.member,
        voice,
        ack_command=call.command("ack"),
        open_ids=open_ids,
    )
    outcome = Outcome(posts=[reply(call, body)], reaction=HANDLED)
    return outcome.extend(decision.outcome)


async def acknowledge_by_reaction(
    reaction: Reaction, ctx: CommandContext, registry: Registry
) -> Outcome | None:
    """A ✅ on one of the bot's alarm messages acknowledges for that room's party.

    Anything else (another emoji, a reaction on a reply or a board, the bot's own reaction)
    is not a command and yields None. Who may react is who may run ``!kvittera`` there (the
    ack declaration's audience); a party that has left the config since its alarm is judged by
    the copy frozen into the chain.
    """
    if reaction.key not in ACK_REACTIONS or reaction.sender == ctx.config.matrix.user_id:
        return None
    if ctx.alarms is None:
        return None
    ref = await ctx.alarms.resolve(reaction.room_id, reaction.reacts_to)
    if ref is None:
        return None
    incident = await ctx.incidents.get(ref.incident_id)
    if incident is None or incident.chain is None:
        return None
    member = incident.chain.party_by_room(reaction.room_id)
    if member is None and ref.party_id is not None:
        member = incident.chain.party(ref.party_id)
    if member is None:
        return None
    catalog = ctx.catalog if ctx.catalog is not None else Catalog.load()
    declaration = registry.get("ack")
    call = Call(
        declaration=declaration,
        room_id=reaction.room_id,
        sender=reaction.sender,
        event_id=reaction.event_id,
        at=reaction.at,
        lang=ctx.config.room_language(reaction.room_id),
        args={},
        catalog=catalog,
        registry=registry,
        reply_to=reaction.reacts_to,
    )
    if declaration_refusal(ctx.config, declaration, call, frozen=member.party) is not None:
        voice = voice_for(call, ctx)
        return refused(
            call,
            voice.text("refusal.reaction", party=member.party.name, incident=incident.id),
            "refusal.reaction",
            incident.id,
        )
    return await _acknowledge(call, ctx, incident, member.id, via="reaction")


async def execute_ack(call: Call, ctx: CommandContext) -> Outcome:
    party = ctx.config.party_for_room(call.room_id)
    assert party is not None  # the declaration only allows a party's room
    voice = voice_for(call, ctx)
    count = call.args.get("count")
    remark = call.args.get("remark") or ""
    pledge = Pledge(count, remark) if count is not None or remark else None
    number = call.args.get("incident")
    open_ids: list[str] = []
    if number is not None:
        found = await incident_by_number(call, ctx, number, voice)
        if isinstance(found, Outcome):
            return found
        incident = found
    else:
        alarmed = await ctx.incidents.alarmed_for_party(party.id)
        if not alarmed:
            latest = await ctx.incidents.latest_for_party(party.id)
            if latest is not None and latest.state is IncidentState.STOOD_DOWN:
                return _stood_down(call, voice, latest)
            return rejected(
                call, voice.text("ack.nothing", party=party.name), "nothing_to_acknowledge"
            )
        incident = alarmed[-1]
        open_ids = [i.id for i in alarmed]
    return await _acknowledge(
        call, ctx, incident, party.id, via="room", pledge=pledge, open_ids=open_ids
    )
