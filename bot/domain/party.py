"""Parties: whoever the chain alarms, with the channels they are reached on.

A :class:`Party` is a frozen copy of a party's configuration taken when the chain starts, so an
edit of the config file during an incident can neither drop a party from a running alarm nor
redirect its acknowledgements.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class PartyKind(StrEnum):
    REGION = "region"
    NATIONAL_DUTY_OFFICER = "national_duty_officer"
    BLOOD_CENTRE = "blood_centre"


@dataclass(frozen=True)
class Party:
    id: str
    name: str
    kind: PartyKind
    language: str
    room: str | None
    duty_officers: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    sms: tuple[str, ...] = ()
    region: str | None = None  # the region a blood centre belongs to
    backup_contacts: tuple[str, ...] = ()  # Matrix ids alerted by a notify_backup step

    def may_acknowledge(self, user_id: str) -> bool:
        """Duty officers and members may acknowledge for their party; nobody else may."""
        return user_id in self.duty_officers or user_id in self.members

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "language": self.language,
            "room": self.room,
            "duty_officers": list(self.duty_officers),
            "members": list(self.members),
            "email": list(self.email),
            "sms": list(self.sms),
            "region": self.region,
            "backup_contacts": list(self.backup_contacts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Party:
        return cls(
            id=data["id"],
            name=data["name"],
            kind=PartyKind(data["kind"]),
            language=data["language"],
            room=data.get("room"),
            duty_officers=tuple(data.get("duty_officers", ())),
            members=tuple(data.get("members", ())),
            email=tuple(data.get("email", ())),
            sms=tuple(data.get("sms", ())),
            region=data.get("region"),
            backup_contacts=tuple(data.get("backup_contacts", ())),
        )
