"""What the after-action report reads: an incident's audit entries, its messages, the head.

Read-only, in the caller's transaction. The audit entries are those whose subject is the
incident, and the outbox's entries about one of the incident's messages (retries, failures,
cancellations, undelivered SMS: their subject is the masked destination, so they are found by
the message's key). Messages are the outbox rows that carry the alarm chain to people (alarms,
reminders, escalations, stand-downs, situation reports), with the time each actually left.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import AuditHead, Incident, IncidentHistory, Recorded, SentMessage
from storage.incident_models import IncidentRow
from storage.models import AuditRow, OutboxRow

#: Outbox purposes that reach the parties (replies, boards and reactions are left out).
REPORTED_PURPOSES = ("alarm", "reminder", "escalation", "standdown", "situation-report")


def mask_number(destination: str) -> str:
    """A phone number as ``***4567`` (as the logs show it); an address is left whole: it is a
    function address from the config, not a person's."""
    if "@" in destination or destination.startswith("!"):
        return destination
    return "***" + destination[-4:] if len(destination) > 4 else "***"


async def audit_head(session: AsyncSession) -> AuditHead | None:
    row = await session.scalar(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1))
    return None if row is None else AuditHead(row.seq, row.hash, row.at)


def _delivered_at(payload: dict[str, Any]) -> datetime | None:
    delivery = payload.get("delivery") or {}
    if delivery.get("status") != "delivered" or not delivery.get("at"):
        return None
    return datetime.fromisoformat(delivery["at"])


def _message(row: OutboxRow, incident: Incident) -> SentMessage:
    payload = row.payload or {}
    party_id = payload.get("party_id")
    if party_id is None and row.channel == "matrix" and incident.chain is not None:
        member = incident.chain.party_by_room(row.destination)
        party_id = member.id if member is not None else None
    return SentMessage(
        key=row.idempotency_key,
        channel=row.channel,
        destination=mask_number(row.destination),
        purpose=row.purpose,
        party_id=party_id,
        created_at=row.created_at,
        sent_at=row.sent_at,
        status=row.status,
        delivered_at=_delivered_at(payload),
        error=row.last_error,
    )


def _recorded(row: AuditRow) -> Recorded:
    return Recorded(row.seq, row.at, row.actor, row.action, row.subject, dict(row.detail or {}))


async def load_history(session: AsyncSession, incident_id: str) -> IncidentHistory | None:
    """Everything recorded about ``incident_id``, or None if there is no such incident."""
    row = await session.get(IncidentRow, incident_id)
    if row is None:
        return None
    incident = Incident.from_dict(row.document)
    outbox_rows = list(
        await session.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.incident_id == incident_id,
                OutboxRow.purpose.in_(REPORTED_PURPOSES),
            )
            .order_by(OutboxRow.id)
        )
    )
    keys = {r.idempotency_key for r in outbox_rows}
    entries = await session.scalars(
        select(AuditRow)
        .where((AuditRow.subject == incident_id) | AuditRow.action.startswith("outbox."))
        .order_by(AuditRow.seq)
    )
    recorded = tuple(
        _recorded(e)
        for e in entries
        if e.subject == incident_id or (e.detail or {}).get("key") in keys
    )
    return IncidentHistory(
        incident=incident,
        recorded=recorded,
        messages=tuple(_message(r, incident) for r in outbox_rows),
        head=await audit_head(session),
    )


async def latest_incident(session: AsyncSession, region_id: str | None = None) -> str | None:
    """The id of the newest incident (of ``region_id``, if given), whatever its state."""
    # Newest by confirmation: each kind (live, exercise, test alarm) numbers on its own.
    query = (
        select(IncidentRow.id)
        .order_by(IncidentRow.confirmed_at.desc(), IncidentRow.number.desc())
        .limit(1)
    )
    if region_id is not None:
        query = query.where(IncidentRow.region_id == region_id)
    return await session.scalar(query)
