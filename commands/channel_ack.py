"""Acknowledgements that arrive by SMS, e-mail or link, and the answers to them.

The bot layer (:mod:`bot.channel_replies`) parses a reply and redeems its reply code in the
write transaction; this module decides what that means, like a command executor does: record
the acknowledgement on the incident, answer the sender on the channel it wrote on, tell the
party's room and update the boards. Or, for a reply that cannot acknowledge, say why in the
sender's language. It returns an :class:`Outcome` and sends nothing.

Who "acknowledged" is the number (masked to its last four digits) or the function address the
code was sent to: the code proves that reply came from there, nothing says which person held
the phone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain import AlreadyStoodDown, Incident, NotAlarmed, NotInChain, Pledge
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import AuditEntry, Delivery, Outcome, Post
from commands.registry import build_registry
from commands.render import Voice
from commands.replies import chain_completed, home_server, incident_boards

_REFUSAL_KEYS = {
    "reused": "reply.rejected.reused",
    "expired": "reply.rejected.expired",
    "throttled": "reply.rejected.throttled",
}

ACKNOWLEDGED = "acknowledged"
CLOSED = "closed"


@dataclass(frozen=True)
class ReplySource:
    """Where a reply came from: the channel (``sms``, ``email``, ``link``), the number or
    address it was sent from (for the answer; ``None`` for a link), its inbound id, and for
    e-mail the thread the answer joins (the reply's references and Message-ID)."""

    channel: str
    sender: str | None
    source_id: str
    thread: tuple[str, ...] = ()


def who(destination: str) -> str:
    """A number as ``…4567``, an address as it is (function addresses are not personal)."""
    if "@" in destination:
        return destination
    return "…" + destination[-4:] if len(destination) > 4 else destination


def _catalog(ctx: CommandContext) -> Catalog:
    return ctx.catalog if ctx.catalog is not None else Catalog.load()


def answer(source: ReplySource, lang: str, body: str, key: str) -> list[Delivery]:
    """The answer on the channel the reply came on (a link answers with its page)."""
    if source.sender is None or source.channel not in ("sms", "email"):
        return []
    return [
        Delivery(
            source.channel, source.sender, body, key=key, purpose="reply", thread=source.thread
        )
    ]


async def acknowledge_by_reply(
    ctx: CommandContext,
    incident: Incident,
    *,
    party_id: str,
    destination: str,
    source: ReplySource,
    pledge: Pledge | None,
    at: datetime,
) -> tuple[Outcome, str]:
    """Record ``party_id``'s acknowledgement of ``incident`` through a redeemed code.

    Returns the outcome and ``acknowledged`` or ``closed`` (stood down, or never alarmed: the
    code outlived its purpose).
    """
    catalog = _catalog(ctx)
    config_party = ctx.config.party(party_id)
    lang = (
        config_party.language
        if config_party is not None
        else ctx.config.healthcare_region.language
    )
    voice = Voice(catalog, lang, home_server(ctx))
    person = who(destination)
    try:
        recorded = incident.acknowledge(
            party_id, by=person, via=source.channel, clock=ctx.clock, pledge=pledge, at=at
        )
    except (AlreadyStoodDown, NotAlarmed, NotInChain) as error:
        body = voice.text("reply.closed", incident=incident.id)
        return Outcome(
            deliveries=answer(source, lang, body, "answer"),
            audit=[
                AuditEntry(
                    "ack.rejected",
                    incident.id,
                    {
                        "party": party_id,
                        "channel": source.channel,
                        "by": person,
                        "reason": type(error).__name__,
                    },
                )
            ],
        ), CLOSED
    await ctx.incidents.save(incident)
    assert incident.chain is not None
    member = incident.chain.party(party_id)
    assert member is not None
    ack = recorded.ack
    given = recorded.pledge.secondary_transports if recorded.pledge is not None else None
    pledge_text = "" if given is None else voice.text("reply.pledge", count=given)
    body = voice.text(
        "reply.acknowledged", incident=incident.id, party=member.party.name, pledge=pledge_text
    )
    if recorded.short_of_requirement:
        body += voice.text("reply.short", required=member.requirement.secondary_transports)
    outcome = Outcome(deliveries=answer(source, lang, body, "answer"))
    outcome.audit.append(
        AuditEntry(
            "ack.recorded",
            incident.id,
            {
                "party": party_id,
                "by": person,
                "channel": source.channel,
                "at": ack.at.isoformat(),
                "first": recorded.is_first,
                "pledge": None if ack.pledge is None else ack.pledge.to_dict(),
                "short_of_requirement": recorded.short_of_requirement,
                "cancelled_dues": [d.key for d in recorded.cancelled],
            },
        )
    )
    room = member.party.room
    if room is not None:
        room_voice = Voice(catalog, member.party.language, home_server(ctx))
        outcome.posts.append(
            Post(
                room_id=room,
                body=room_voice.text(
                    "ack.by_bridge",
                    party=member.party.name,
                    incident=incident.id,
                    channel=room_voice.channel(source.channel),
                    who=person,
                    time=room_voice.time(ack.at),
                    pledge="" if given is None else room_voice.text("reply.pledge", count=given),
                ),
                key="acknowledged",
                purpose="notice",
                incident_id=incident.id,
            )
        )
    if recorded.chain_completed:
        outcome.extend(chain_completed(ctx, incident, catalog, ack.at))
    outcome.boards.extend(incident_boards(ctx, incident, catalog, build_registry()))
    return outcome, ACKNOWLEDGED


def refuse_reply(
    ctx: CommandContext,
    source: ReplySource,
    *,
    reason: str,
    audit_action: str,
    incident_id: str | None = None,
    problem: str | None = None,
    problem_key: str | None = None,
    problem_params: dict[str, object] | None = None,
    answer_sender: bool = True,
) -> Outcome:
    """A reply that acknowledges nothing: audited, and answered in the language of the party
    the number or address belongs to. Only numbers and addresses in the config are answered:
    answering anyone would let a forger make the bot send SMS to arbitrary numbers and mail to
    forged senders (backscatter)."""
    party = (
        ctx.config.party_for_destination(source.channel, source.sender)
        if source.sender is not None
        else None
    )
    detail: dict[str, object] = {"channel": source.channel, "reason": reason, "answered": False}
    if problem is not None:
        detail["problem"] = problem
    outcome = Outcome()
    if party is not None and answer_sender:
        voice = Voice(_catalog(ctx), party.language, home_server(ctx))
        if reason == "unparsed" and problem == "negated":
            body = voice.text("reply.negated")
        elif reason == "unparsed" and problem_key and problem_key.startswith("arg.count."):
            body = voice.text(problem_key, **(problem_params or {}))
            body += " " + voice.text("reply.unparsed")
        elif reason == "unparsed":
            body = voice.text("reply.unparsed")
        elif reason in _REFUSAL_KEYS:
            body = voice.text(_REFUSAL_KEYS[reason], incident=incident_id or "?")
        else:
            body = voice.text("reply.rejected.wrong")
        outcome.deliveries.extend(answer(source, party.language, body, "answer"))
        detail["answered"] = bool(outcome.deliveries)
    outcome.audit.append(AuditEntry(audit_action, incident_id, detail))
    return outcome
