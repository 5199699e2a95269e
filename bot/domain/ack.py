"""Acknowledgements and pledges.

Every acknowledgement is kept, duplicates included: the after-action report wants to see that a
party answered twice, and on which channels. What *counts* is decided by the incident (the first
acknowledgement sets the party's acknowledgement time; the latest pledge is the party's pledge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.errors import InvalidPledge


@dataclass(frozen=True)
class Pledge:
    """Resources offered with an acknowledgement.

    ``secondary_transports`` is None when the acknowledgement only carries a remark: a remark
    alone must not be read as "zero transports" and wipe out an earlier pledge.
    """

    secondary_transports: int | None = None
    remark: str = ""

    def __post_init__(self) -> None:
        if self.secondary_transports is not None and self.secondary_transports < 0:
            raise InvalidPledge("secondary transports cannot be negative")

    @property
    def counts(self) -> bool:
        return self.secondary_transports is not None

    def to_dict(self) -> dict[str, Any]:
        return {"secondary_transports": self.secondary_transports, "remark": self.remark}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pledge:
        return cls(data.get("secondary_transports"), data.get("remark", ""))


@dataclass(frozen=True)
class Ack:
    """One acknowledgement: who, for which party, on which channel, when, offering what."""

    party_id: str
    person: str
    channel: str  # "room", "reaction"; later "sms", "email"
    at: datetime
    pledge: Pledge | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "party_id": self.party_id,
            "person": self.person,
            "channel": self.channel,
            "at": self.at.isoformat(),
            "pledge": None if self.pledge is None else self.pledge.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ack:
        pledge = data.get("pledge")
        return cls(
            party_id=data["party_id"],
            person=data["person"],
            channel=data["channel"],
            at=datetime.fromisoformat(data["at"]),
            pledge=None if pledge is None else Pledge.from_dict(pledge),
        )
