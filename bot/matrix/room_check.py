"""Which configured rooms the bot cannot deliver to: checked at start and by ``check-config``.

An alarm room the bot is not in, or one that is not encrypted, is a delivery failure waiting to
happen (issue 10 §1): the alarm falls back to SMS and e-mail when it comes, but the operator
should hear of it before the incident does. The same question is asked in two places with
different means: the running bot asks its synced client (:func:`troubled_rooms` with
``MatrixGateway.room_problem``), ``check-config`` asks the homeserver with the device's stored
access token (:func:`check_online`; it never logs in, which would make a new device).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp

from bot.config import Config
from bot.matrix.raw_api import RawApi, RawApiError

COORDINATION = "coordination"


@dataclass(frozen=True)
class RoomTrouble:
    """A configured room no message can go to: whose it is and why (``not_joined`` or
    ``not_encrypted``, the kinds of :data:`bot.domain.ROOM_REASONS`)."""

    room_id: str
    owner: str  # a party id, or COORDINATION
    reason: str


def configured_rooms(config: Config) -> dict[str, str]:
    """Every room the config names, with whose it is (party id or the coordination room)."""
    rooms = {party.room: party.id for party in config.all_parties()}
    coordination = config.healthcare_region.coordination_room
    if coordination:
        rooms[coordination] = COORDINATION
    return rooms


def troubled_rooms(config: Config, problem: Callable[[str], str | None]) -> list[RoomTrouble]:
    """The configured rooms for which ``problem`` names a reason, in config order."""
    troubles = []
    for room_id, owner in configured_rooms(config).items():
        reason = problem(room_id)
        if reason is not None:
            troubles.append(RoomTrouble(room_id, owner, reason))
    return troubles


def stored_access_token(credentials_file: Path) -> str:
    """The access token of the bot's stored device; :class:`RoomCheckUnavailable` if there is
    none yet (the bot has not logged in from this state_dir)."""
    try:
        creds = json.loads(credentials_file.read_text(encoding="utf-8"))
        return str(creds["access_token"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RoomCheckUnavailable(
            "no stored device (the bot has not logged in yet from this state_dir)"
        ) from None


async def check_online(config: Config, token: str) -> list[RoomTrouble]:
    """Ask the homeserver, as the bot's stored device (``token``), which configured rooms it
    has joined and which of those are encrypted. Raises :class:`RoomCheckUnavailable` when it
    cannot ask (homeserver unreachable, token no longer valid)."""
    api = RawApi(config.matrix.homeserver, token)
    try:
        _, data = await api.call("GET", "/_matrix/client/v3/joined_rooms")
        joined = set(data.get("joined_rooms", []))
        encrypted: dict[str, bool] = {}
        for room_id in configured_rooms(config):
            if room_id not in joined:
                continue
            path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state/m.room.encryption"
            status, _ = await api.call("GET", path, ok=(200, 404))
            encrypted[room_id] = status == 200
    except RawApiError as exc:
        raise RoomCheckUnavailable(f"the homeserver refused: {exc}") from None
    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
        raise RoomCheckUnavailable(
            f"the homeserver cannot be reached ({type(exc).__name__})"
        ) from None

    def problem(room_id: str) -> str | None:
        if room_id not in joined:
            return "not_joined"
        return None if encrypted.get(room_id) else "not_encrypted"

    return troubled_rooms(config, problem)


class RoomCheckUnavailable(Exception):
    """The rooms could not be checked; the message says why (never a token)."""
