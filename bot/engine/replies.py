"""The ways in by SMS, e-mail and link: parse, redeem the reply code, decide. One transaction.

The inbox pass calls :meth:`ChannelReplies.decide` for an inbox row of kind ``sms`` or
``email`` inside the write transaction that also marks the row handled, so a reply's code is
used up if and only if its acknowledgement (or refusal) is stored, with the code's audit entry.
:meth:`ChannelReplies.decide_link` does the same for a POST to an acknowledge link. What an
acknowledgement *means* is the one decision every way in shares
(:func:`commands.acknowledge.acknowledge`, through :mod:`commands.channel_ack`); this module
only turns channel input into that call.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts import AckForm, AckOutcome
from bot.domain import Pledge
from bridges.reply_codes import Redeemed, Rejected, RejectReason, ReplyCodes
from bridges.reply_parser import ParseProblem, parse_reply
from bridges.signed_links import LinkClaim
from commands.channel_ack import (
    ACKNOWLEDGED,
    ReplySource,
    acknowledge_by_reply,
    refuse_reply,
    refuse_throttled,
)
from commands.context import CommandContext
from commands.outcome import AuditEntry, Outcome
from storage.models import InboxRow


def _code_audit(result: Redeemed | Rejected) -> AuditEntry | None:
    """The reply code's own audit entry (``reply_code.redeemed`` / ``.rejected``), which the
    reply codes return rather than write: it goes into the same outcome."""
    note = result.audit
    return None if note is None else AuditEntry(note.action, note.subject, note.detail)


def _with_code_audit(outcome: Outcome, result: Redeemed | Rejected) -> Outcome:
    entry = _code_audit(result)
    if entry is not None:
        outcome.audit.insert(0, entry)
    return outcome


CHANNEL_KINDS = ("sms", "email")

_LINK_REFUSAL = {
    RejectReason.REUSED: AckOutcome.ALREADY,
    RejectReason.EXPIRED: AckOutcome.EXPIRED,
}


def _thread(payload: dict[str, object]) -> tuple[str, ...]:
    """The Message-IDs an answer to this e-mail follows up: its references, then itself."""
    ids = [str(i) for i in payload.get("references") or () if i]  # type: ignore[attr-defined]
    own = payload.get("message_id")
    if own:
        ids.append(str(own))
    return tuple(dict.fromkeys(i for i in ids if i.startswith("<") and len(i) < 255))[-10:]


def _pledge(count: int | None, remark: str) -> Pledge | None:
    return Pledge(count, remark) if count is not None or remark else None


class ChannelReplies:
    """Holds the reply codes (their keys); one per bot."""

    def __init__(self, codes: ReplyCodes) -> None:
        self.codes = codes

    async def decide(
        self, session: AsyncSession, row: InboxRow, ctx: CommandContext, at: datetime
    ) -> Outcome:
        channel = row.kind
        payload = row.payload or {}
        source = ReplySource(channel, row.sender, row.event_id, _thread(payload))
        if payload.get("automatic"):  # an out-of-office or a bounce: never an answer
            return Outcome(
                audit=[
                    AuditEntry(
                        "inbound_reply.ignored",
                        None,
                        {
                            "channel": channel,
                            "reason": "automatic",
                            "why": str(payload.get("automatic_reason") or "")[:100],
                            "subject": payload.get("subject", "")[:200],
                        },
                    )
                ]
            )
        parsed = parse_reply(payload.get("text", ""), channel=channel)
        if isinstance(parsed, ParseProblem):
            return refuse_reply(
                ctx,
                source,
                reason="unparsed",
                audit_action="inbound_reply.unparsed",
                problem=parsed.kind,
                problem_key=parsed.key,
                problem_params=parsed.params,
            )
        now = ctx.clock.now()
        result = await self.codes.redeem(
            session, channel=channel, sender=row.sender, code=parsed.code, now=now
        )
        if isinstance(result, Rejected) and result.reason is RejectReason.THROTTLED:
            return _with_code_audit(
                refuse_throttled(ctx, source, until=result.until or now, repeats=result.repeats),
                result,
            )
        if not isinstance(result, Redeemed):
            return _with_code_audit(
                refuse_reply(
                    ctx,
                    source,
                    reason=result.public_reason.value,
                    audit_action="inbound_reply.refused",
                    incident_id=result.incident_id,
                ),
                result,
            )
        incident = await ctx.incidents.get(result.incident_id)
        if incident is None:
            return _with_code_audit(
                refuse_reply(
                    ctx,
                    source,
                    reason="closed",
                    audit_action="inbound_reply.refused",
                    answer_sender=False,
                ),
                result,
            )
        outcome, _status = await acknowledge_by_reply(
            ctx,
            incident,
            party_id=result.party_id,
            destination=result.destination,
            source=source,
            pledge=_pledge(parsed.pledge, parsed.remark),
            at=at,
        )
        return _with_code_audit(outcome, result)

    async def decide_link(
        self, session: AsyncSession, claim: LinkClaim, form: AckForm, ctx: CommandContext
    ) -> tuple[Outcome, AckOutcome]:
        now = ctx.clock.now()
        result = await self.codes.redeem_link(
            session,
            outbox_key=claim.outbox_key,
            incident_id=claim.incident_id,
            party_id=claim.party_id,
            now=now,
        )
        source = ReplySource("link", None, f"link:{claim.outbox_key}")
        if not isinstance(result, Redeemed):
            answer = _LINK_REFUSAL.get(result.reason, AckOutcome.CLOSED)
            refusal = Outcome(
                audit=[
                    AuditEntry(
                        "inbound_reply.refused",
                        claim.incident_id,
                        {
                            "channel": "link",
                            "reason": result.reason.value,
                            "party": claim.party_id,
                        },
                    )
                ]
            )
            return _with_code_audit(refusal, result), answer
        incident = await ctx.incidents.get(result.incident_id)
        if incident is None:
            return _with_code_audit(Outcome(), result), AckOutcome.CLOSED
        outcome, status = await acknowledge_by_reply(
            ctx,
            incident,
            party_id=result.party_id,
            destination=result.destination,
            source=source,
            pledge=_pledge(form.pledge, form.remark),
            at=now,
        )
        acknowledged = AckOutcome.ACKNOWLEDGED if status == ACKNOWLEDGED else AckOutcome.CLOSED
        return _with_code_audit(outcome, result), acknowledged
