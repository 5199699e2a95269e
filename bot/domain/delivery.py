"""A channel that did not reach a party, and where the alarm went instead.

The channel outbox knows *that* an SMS failed or was never reported delivered; the incident
records *what it meant*: the party was moved on to its next channel (e-mail, then its backup
contacts), once per party and channel, so that two numbers failing do not send two fallback
alarms. The board shows it next to the party, and the after-action report can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Where a party goes when a channel fails, in order; ``none`` when nothing is left.
FALLBACK_ORDER = ("sms", "email", "backup")
NOTHING_LEFT = "none"
#: The channel name of a party's Matrix room in delivery problems.
ROOM = "room"
#: Why a party's room could not be reached (the keys the board and the reports render).
ROOM_REASONS = ("not_encrypted", "not_joined", "refused", "too_large", "not_in_time")


@dataclass(frozen=True)
class DeliveryProblem:
    party_id: str
    channel: str  # the channel that failed: room, sms, email
    #: email, backup or none; for a room, the channels the alarm went on besides it
    #: (``sms,email``) or none
    fell_back_to: str
    at: datetime
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "party_id": self.party_id,
            "channel": self.channel,
            "fell_back_to": self.fell_back_to,
            "at": self.at.isoformat(),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryProblem:
        return cls(
            party_id=data["party_id"],
            channel=data["channel"],
            fell_back_to=data["fell_back_to"],
            at=datetime.fromisoformat(data["at"]),
            reason=data.get("reason", ""),
        )


def other_channels(available: set[str]) -> str:
    """Where the alarm went besides a room that could not be reached: it goes on every
    channel at once, so a room that fails needs no new message, only the truth about it."""
    found = [c for c in ("sms", "email") if c in available]
    return ",".join(found) if found else NOTHING_LEFT


def next_channel(failed: str, available: set[str]) -> str:
    """The first channel after ``failed`` in :data:`FALLBACK_ORDER` that the party has."""
    order = FALLBACK_ORDER
    start = order.index(failed) + 1 if failed in order else 0
    for channel in order[start:]:
        if channel in available:
            return channel
    return NOTHING_LEFT
