"""The small interfaces where channels meet the engine: what goes out, what comes back.

Every channel (Matrix, SMS through Kannel, e-mail through SMTP) implements :class:`Sender`;
the engine's one outbox (:mod:`bot.engine.delivery`) claims rows, hands each to the sender of
its channel as an :class:`Outgoing` and records the :data:`SendResult`. The HTTP endpoints hand
an acknowledgement by link to the engine as a :class:`LinkAck` and show the :class:`AckOutcome`.

This module imports nothing of the project's but the standard library, so the engine, the
channels and the HTTP layer can all depend on it without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

# -- outbound ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One claimed outbox row, ready to send: its content prepared at claim time (reply code
    and link filled in, the event id of an edited message looked up)."""

    row_id: int
    key: str  # the idempotency key: Matrix transaction id, e-mail Message-ID, SMS reference
    channel: str
    destination: str  # a room id, a phone number, an address
    purpose: str
    payload: dict[str, Any]
    incident_id: str | None
    possible_duplicate: bool  # found in ``sending``: a crash may have sent it already


@dataclass(frozen=True)
class Sent:
    remote_id: str | None  # the Matrix event id, the SMS reference, the Message-ID


@dataclass(frozen=True)
class Retry:
    """Not now; try again. ``after_s`` is the other side's wish (a 429), else the outbox's
    backoff. ``unreachable`` says the recipient cannot be reached for now (the bot is not in
    the room): a delivery problem to show and fall back from, even while it is retried."""

    reason: str
    after_s: float | None = None
    unreachable: bool = False
    kind: str = ""  # why, as a word a renderer knows (a room: ``not_joined``)


@dataclass(frozen=True)
class Refused:
    """A permanent refusal: retrying cannot make this send safe or possible."""

    reason: str
    kind: str = ""  # why, as a word a renderer knows (a room: ``not_encrypted``, ``too_large``)


SendResult = Sent | Retry | Refused


class Sender(Protocol):
    """One channel's way out. ``send`` never raises for a failure of the other side: it says
    what happened, with a reason free of secrets and full phone numbers."""

    channel: str

    async def send(self, message: Outgoing) -> SendResult: ...


# -- acknowledge links -----------------------------------------------------------------------


class AckOutcome(StrEnum):
    """What the acknowledgement by link did, as the confirm page tells it."""

    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already"  # this link or reply code was used before (or the party has acked)
    CLOSED = "closed"  # the incident is over or stood down
    EXPIRED = "expired"  # the message's reply code has expired


@dataclass(frozen=True)
class AckForm:
    """What the person entered on the confirm page, already validated."""

    pledge: int | None
    remark: str


@dataclass(frozen=True)
class LinkAck:
    """A verified link POST: which message's link, for whom, and what was entered."""

    outbox_key: str
    incident_id: str
    party_id: str
    form: AckForm
