"""What was recorded about an incident, as the after-action report reads it.

Plain records, so the report is built (and tested) without a database: the storage layer
fills them from the hash-chained audit log (every decision, with its sequence number) and from
the outbox (when each message actually left the bot, and what its channel said about it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.incident import Incident


@dataclass(frozen=True)
class Recorded:
    """One audit entry: a decision, refusal or state change, in the chain's order."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SentMessage:
    """One outbound message of the incident on one channel to one room, number or address."""

    key: str  # the outbox idempotency key
    channel: str  # matrix, sms, email
    destination: str  # room id, number (masked: ***4567) or function address
    purpose: str  # alarm, reminder, escalation, standdown, situation-report, …
    party_id: str | None
    created_at: datetime
    sent_at: datetime | None
    status: str  # queued, sending, sent, failed, cancelled
    delivered_at: datetime | None = None  # an SMS the gateway reported delivered
    error: str | None = None


@dataclass(frozen=True)
class AuditHead:
    """The newest entry of the audit chain: what an anchor publishes."""

    seq: int
    hash: str
    at: datetime


@dataclass(frozen=True)
class IncidentHistory:
    """Everything the report needs, read in one transaction."""

    incident: Incident
    recorded: tuple[Recorded, ...]  # about the incident, or about one of its messages
    messages: tuple[SentMessage, ...]
    head: AuditHead | None  # the chain's head when this was read
