"""Acknowledgements that arrive by SMS, e-mail or link: the answers on those channels.

The engine (:mod:`bot.engine.replies`) parses a reply and redeems its reply code in the write
transaction; this module hands the acknowledgement to the one decision every way in shares
(:func:`commands.acknowledge.acknowledge`) and renders the result for the channel the reply
came on: the answer to the sender by SMS or e-mail. Or, for a reply that cannot acknowledge,
it says why in the sender's language. It returns an :class:`Outcome` and sends nothing.

Who "acknowledged" is the number (masked to its last four digits) or the function address the
code was sent to: the code proves that reply came from there, nothing says which person held
the phone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain import Incident, Pledge
from bot.i18n import Catalog
from commands.acknowledge import AckRequest, acknowledge
from commands.context import CommandContext
from commands.outcome import AuditEntry, Delivery, Outcome, Post
from commands.registry import build_registry
from commands.render import Voice
from commands.replies import home_server

_REFUSAL_KEYS = {
    "reused": "reply.rejected.reused",
    "expired": "reply.rejected.expired",
}

#: Replies refused for too many wrong codes that are still answered; later ones in the same
#: window are audited only (a phone that keeps trying is not answered 79 times), and the
#: party's room was told at the first.
THROTTLED_ANSWERS = 2

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
    """``party_id`` acknowledges ``incident`` through a redeemed code: the one decision
    (:func:`commands.acknowledge.acknowledge`), and its answer on the reply's channel.

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
    decision = await acknowledge(
        ctx,
        incident,
        AckRequest(party_id=party_id, by=person, via=source.channel, at=at, pledge=pledge),
        catalog=catalog,
        registry=build_registry(),
    )
    if decision.recorded is None:
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
                        "reason": type(decision.error).__name__,
                    },
                )
            ],
        ), CLOSED
    recorded, member = decision.recorded, decision.member
    assert member is not None
    given = recorded.pledge.secondary_transports if recorded.pledge is not None else None
    pledge_text = "" if given is None else voice.text("reply.pledge", count=given)
    body = voice.text(
        "reply.acknowledged", incident=incident.id, party=member.party.name, pledge=pledge_text
    )
    if recorded.short_of_requirement:
        body += voice.text("reply.short", required=member.requirement.secondary_transports)
    outcome = Outcome(deliveries=answer(source, lang, body, "answer"))
    return outcome.extend(decision.outcome), ACKNOWLEDGED


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


def refuse_throttled(
    ctx: CommandContext, source: ReplySource, *, until: datetime, repeats: int
) -> Outcome:
    """A reply from a number or address locked out for too many wrong codes, refused unread.

    The first refusals are answered, saying until when and how to acknowledge instead (the
    real duty officer may be the one who mistyped); later ones only audited. At the first,
    the party's room is told, so someone there acknowledges with ``!kvittera`` and knows a
    phone of theirs is sending wrong codes (or someone is guessing)."""
    party = (
        ctx.config.party_for_destination(source.channel, source.sender)
        if source.sender is not None
        else None
    )
    answered = party is not None and repeats < THROTTLED_ANSWERS
    outcome = Outcome()
    if party is not None:
        voice = Voice(_catalog(ctx), party.language, home_server(ctx))
        ack = build_registry().display("ack", party.language)
        if answered:
            body = voice.text("reply.rejected.throttled", until=voice.time(until), ack=ack)
            outcome.deliveries.extend(answer(source, party.language, body, "answer"))
        if repeats == 0:
            outcome.posts.append(
                Post(
                    room_id=party.room,
                    body=voice.text(
                        "room.throttled_replies",
                        who=who(source.sender or ""),
                        channel=voice.channel_name(source.channel),
                        until=voice.time(until),
                        ack=ack,
                    ),
                    key="throttled",
                    purpose="notice",
                )
            )
    outcome.audit.append(
        AuditEntry(
            "inbound_reply.refused",
            None,
            {
                "channel": source.channel,
                "reason": "throttled",
                "answered": bool(outcome.deliveries),
                "repeats": repeats,
                "room_told": bool(outcome.posts),
                "until": until.isoformat(),
            },
        )
    )
    return outcome
