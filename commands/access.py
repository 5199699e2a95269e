"""Who may run what, and where: decided from the config and the sender, never device trust.

Returns the catalogue key of the refusal (or None when allowed), so the dispatcher can answer
politely in the caller's language and audit the refusal.
"""

from __future__ import annotations

from bot.config import Config
from bot.domain import Party
from commands.declaration import Audience, Call, Declaration, Place


def is_coordinator(config: Config, user_id: str) -> bool:
    return user_id in config.healthcare_region.coordinators


def is_duty_officer(config: Config, user_id: str) -> bool:
    return any(user_id in p.duty_officers for p in config.all_parties())


def is_staff(config: Config, user_id: str) -> bool:
    """Anyone the config names: a duty officer or member of a party, or a coordinator."""
    return is_coordinator(config, user_id) or any(
        user_id in p.duty_officers or user_id in p.members for p in config.all_parties()
    )


def place_refusal(config: Config, place: Place, room_id: str) -> str | None:
    if place is Place.ANY_ROOM:
        return None
    if place is Place.PARTY_ROOM:
        return None if config.party_for_room(room_id) else "refusal.where.party_room"
    if place is Place.COORDINATION_ROOM:
        room = config.healthcare_region.coordination_room
        return None if room is not None and room == room_id else "refusal.where.coordination_room"
    region = config.party_for_room(room_id)
    if region is None or config.region(region.id) is None:
        return "refusal.where.region_room"
    return None


def audience_refusal(config: Config, who: Audience, room_id: str, sender: str) -> str | None:
    if who is Audience.ANYONE:
        return None
    party = config.party_for_room(room_id)
    if who is Audience.PARTY_MEMBER:
        allowed = party is not None and (sender in party.duty_officers or sender in party.members)
        return None if allowed else "refusal.who.party_member"
    if who is Audience.REGION_DUTY_OFFICER:
        allowed = (
            party is not None
            and config.region(party.id) is not None
            and sender in party.duty_officers
        )
        return None if allowed else "refusal.who.region_duty_officer"
    if who is Audience.COORDINATOR:
        return None if is_coordinator(config, sender) else "refusal.who.coordinator"
    if who is Audience.STAFF:
        return None if is_staff(config, sender) else "refusal.who.staff"
    allowed = is_duty_officer(config, sender) or is_coordinator(config, sender)
    return None if allowed else "refusal.who.duty_officer_or_coordinator"


def refusal(config: Config, who: Audience, where: Place, room_id: str, sender: str) -> str | None:
    """The first reason the sender may not run a command here: the room first (the more
    useful answer for a duty officer typing in the wrong room), then the person."""
    return place_refusal(config, where, room_id) or audience_refusal(config, who, room_id, sender)


def declaration_refusal(
    config: Config, declaration: Declaration, call: Call, *, frozen: Party | None = None
) -> str | None:
    """Whether ``call``'s sender may run ``declaration`` where it was called: by the current
    config (staff change during a long incident). ``frozen`` is the party's copy in a running
    chain: if the party has left the config, or moved room, since its alarm, that copy decides
    (its duty officers and members), so that the people alarmed can still answer."""
    if frozen is not None:
        current = config.party(frozen.id)
        if current is None or current.room != call.room_id:
            return None if frozen.may_acknowledge(call.sender) else "refusal.who.party_member"
    return refusal(config, declaration.who, declaration.where, call.room_id, call.sender)
