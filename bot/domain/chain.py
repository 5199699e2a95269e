"""The alarm chain (masskadelarm): who is alarmed for an incident and what is asked of each.

The template is the decided routine of the healthcare region: the initiating region alarms
every other region (each to provide at least N secondary transports), the national duty officer
and its own blood centre (to alarm the nation's blood centres). The chain is computed once, when
the alarm starts, and then frozen into the incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.domain.escalation import NO_ESCALATION, EscalationPolicy
from bot.domain.party import Party, PartyKind


@dataclass(frozen=True)
class Requirement:
    """What the chain asks of one party besides acknowledging."""

    secondary_transports: int = 0
    alarm_blood_centres: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "secondary_transports": self.secondary_transports,
            "alarm_blood_centres": self.alarm_blood_centres,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Requirement:
        return cls(data.get("secondary_transports", 0), data.get("alarm_blood_centres", False))


@dataclass(frozen=True)
class ChainParty:
    """One alarmed party as frozen into the chain: who, what is asked, how it is escalated."""

    party: Party
    requirement: Requirement
    escalation: EscalationPolicy = NO_ESCALATION

    @property
    def id(self) -> str:
        return self.party.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "party": self.party.to_dict(),
            "requirement": self.requirement.to_dict(),
            "escalation": self.escalation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChainParty:
        # Chains frozen before escalation existed have none, and keep having none.
        escalation = data.get("escalation")
        return cls(
            Party.from_dict(data["party"]),
            Requirement.from_dict(data["requirement"]),
            NO_ESCALATION if escalation is None else EscalationPolicy.from_dict(escalation),
        )


@dataclass(frozen=True)
class AlarmChain:
    """The frozen chain of one incident: its initiator and the parties it alarms, in order."""

    initiator: Party
    parties: tuple[ChainParty, ...]

    def party(self, party_id: str) -> ChainParty | None:
        return next((p for p in self.parties if p.id == party_id), None)

    def party_by_room(self, room_id: str) -> ChainParty | None:
        return next((p for p in self.parties if p.party.room == room_id), None)

    @property
    def party_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.parties)

    @property
    def required_transports(self) -> int:
        return sum(p.requirement.secondary_transports for p in self.parties)

    def to_dict(self) -> dict[str, Any]:
        return {
            "initiator": self.initiator.to_dict(),
            "parties": [p.to_dict() for p in self.parties],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlarmChain:
        return cls(
            Party.from_dict(data["initiator"]),
            tuple(ChainParty.from_dict(p) for p in data["parties"]),
        )


def chain_template(
    initiator_id: str,
    parties: Iterable[Party],
    required_transports: int,
    policies: Mapping[str, EscalationPolicy] | None = None,
) -> AlarmChain:
    """The chain for an incident of ``initiator_id``: every other region, the national duty
    officer, and the initiator's own blood centre (other regions' blood centres are not
    alarmed: the initiator's blood centre alarms the nation's blood centres itself).

    ``policies`` gives each party's escalation policy by party id (none if left out); the
    chain keeps a copy, so it is frozen with the chain.

    Raises ``ValueError`` if ``initiator_id`` is not one of the regions: that is a bug in the
    caller, which has checked that the sender is a duty officer of that region.
    """
    parties = list(parties)
    initiator = next(
        (p for p in parties if p.id == initiator_id and p.kind is PartyKind.REGION), None
    )
    if initiator is None:
        raise ValueError(f"{initiator_id!r} is not a region")
    policies = policies or {}

    def member(party: Party, requirement: Requirement) -> ChainParty:
        return ChainParty(party, requirement, policies.get(party.id, NO_ESCALATION))

    chain: list[ChainParty] = []
    for party in parties:
        if party.kind is PartyKind.REGION and party.id != initiator_id:
            chain.append(member(party, Requirement(secondary_transports=required_transports)))
    for party in parties:
        if party.kind is PartyKind.NATIONAL_DUTY_OFFICER:
            chain.append(member(party, Requirement()))
    for party in parties:
        if party.kind is PartyKind.BLOOD_CENTRE and party.region == initiator_id:
            chain.append(member(party, Requirement(alarm_blood_centres=True)))
    return AlarmChain(initiator, tuple(chain))
