"""The one acknowledgement decision, whichever way it came in.

``!kvittera`` in the party's room, a ✅ on the alarm, an SMS reply, an e-mail reply and a POST
to an acknowledge link each translate their input into the same :class:`AckRequest` (which
party, who, by which channel, what pledge, when) and call :func:`acknowledge`. It records the
acknowledgement on the incident and decides everything that follows from it, the same for every
channel: the ``ack.recorded`` audit entry, "chain completed" when it was the last one missing,
the boards, and, when it did not come in the party's room, a notice there so the room knows.
What the acknowledging person is *answered* is left to the way in (a reply in the room, an SMS
or e-mail answer, the link's page), which renders the :class:`AckDecision` for its channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain import (
    AckRecorded,
    AlreadyStoodDown,
    ChainParty,
    Incident,
    NotAlarmed,
    NotInChain,
    Pledge,
)
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.exercise.ending import after_acknowledgement
from commands.outcome import AuditEntry, Outcome, Post
from commands.render import Voice
from commands.replies import chain_completed, home_server, incident_boards

if TYPE_CHECKING:
    from commands.registry import Registry

#: Channels whose acknowledgement the party's room hears of by a notice (in the room itself,
#: the acknowledging person got the answer there).
_ELSEWHERE = frozenset({"sms", "email", "link"})

STOOD_DOWN = "stood_down"
NOT_ALARMED = "not_alarmed"
NOT_IN_CHAIN = "not_in_chain"


@dataclass(frozen=True)
class AckRequest:
    party_id: str
    by: str  # a Matrix user id; a number masked to its last digits; a function address
    via: str  # room | reaction | sms | email | link
    at: datetime  # when the person acknowledged (the homeserver's or gateway's time)
    pledge: Pledge | None = None
    #: Audit context of the way in (the command, room and sender of a chat command).
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class AckDecision:
    """``recorded`` on success; otherwise ``refusal`` (``stood_down``, ``not_alarmed``,
    ``not_in_chain``) and ``error`` with the facts for the answer. ``outcome`` holds what
    follows from the acknowledgement; the way in adds its answer to it."""

    outcome: Outcome
    recorded: AckRecorded | None = None
    member: ChainParty | None = None
    refusal: str | None = None
    error: Exception | None = None


async def acknowledge(
    ctx: CommandContext,
    incident: Incident,
    request: AckRequest,
    *,
    catalog: Catalog,
    registry: Registry,
) -> AckDecision:
    try:
        recorded = incident.acknowledge(
            request.party_id,
            by=request.by,
            via=request.via,
            clock=ctx.clock,
            pledge=request.pledge,
            at=request.at,
        )
    except AlreadyStoodDown as error:
        return AckDecision(Outcome(), refusal=STOOD_DOWN, error=error)
    except NotAlarmed as error:
        return AckDecision(Outcome(), refusal=NOT_ALARMED, error=error)
    except NotInChain as error:
        return AckDecision(Outcome(), refusal=NOT_IN_CHAIN, error=error)
    await ctx.incidents.save(incident)
    assert incident.chain is not None
    member = incident.chain.party(request.party_id)
    assert member is not None
    ack = recorded.ack
    outcome = Outcome(
        audit=[
            AuditEntry(
                "ack.recorded",
                incident.id,
                {
                    **request.context,
                    "party": request.party_id,
                    "by": ack.person,
                    "channel": ack.channel,
                    "at": ack.at.isoformat(),
                    "first": recorded.is_first,
                    "pledge": None if ack.pledge is None else ack.pledge.to_dict(),
                    "short_of_requirement": recorded.short_of_requirement,
                    "cancelled_dues": [d.key for d in recorded.cancelled],
                    "pledge_reminder_due": None
                    if recorded.armed is None
                    else recorded.armed.due_at.isoformat(),
                },
            )
        ]
    )
    if request.via in _ELSEWHERE and member.party.room is not None:
        outcome.posts.append(_room_notice(ctx, incident, member, recorded, catalog))
    if recorded.chain_completed:
        outcome.extend(chain_completed(ctx, incident, catalog, ack.at))
    if incident.is_exercise:
        # The exercise's last acknowledgement (and pledge) ends it, and it is reported.
        outcome.extend(
            await after_acknowledgement(ctx, incident, catalog=catalog, registry=registry)
        )
    outcome.boards.extend(incident_boards(ctx, incident, catalog, registry))
    return AckDecision(outcome, recorded=recorded, member=member)


def _room_notice(
    ctx: CommandContext,
    incident: Incident,
    member: ChainParty,
    recorded: AckRecorded,
    catalog: Catalog,
) -> Post:
    """ "✅ Region Dalarna har kvitterat H-1 via sms (…0002) 11:47": the party's room hears
    that someone of theirs acknowledged on another channel."""
    party = member.party
    assert party.room is not None
    voice = Voice(catalog, party.language, home_server(ctx))
    ack = recorded.ack
    given = recorded.pledge.secondary_transports if recorded.pledge is not None else None
    return Post(
        room_id=party.room,
        body=voice.text(
            "ack.by_bridge",
            party=party.name,
            incident=incident.id,
            channel=voice.channel(ack.channel),
            who=ack.person,
            time=voice.time(ack.at),
            pledge="" if given is None else voice.text("reply.pledge", count=given),
        ),
        key="acknowledged",
        purpose="notice",
        incident_id=incident.id,
    )
