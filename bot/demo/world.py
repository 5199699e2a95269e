"""A whole healthcare region on a throwaway homeserver: people, encrypted rooms, bot config.

The demo and the tests build the same world: a bot account (exempt from rate limits, as an
operator would set it up), one duty officer per region, each with their region's encrypted room
with the bot invited, the national duty officer, the blood centre, a coordinator with the
coordination room, and the bot's config file pointing at all of it.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.people import Cast, Person
from bot.demo.rig import BridgeRig

# Sjukvårdsregion Mellansverige: (id, name).
MELLANSVERIGE: tuple[tuple[str, str], ...] = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
    ("varmland", "Region Värmland"),
    ("vastmanland", "Region Västmanland"),
    ("orebro", "Region Örebro län"),
    ("sormland", "Region Sörmland"),
)


@dataclass
class World:
    homeserver: ThrowawayHomeserver
    workdir: Path
    cast: Cast
    bot_user_id: str
    config_path: Path
    # party id -> the duty officer playing it, and its room
    officers: dict[str, Person] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)
    coordinator: Person | None = None
    coordination_room: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def officer(self, party_id: str) -> Person:
        return self.officers[party_id]

    def write_config(self) -> None:
        self.config_path.write_text(tomli_w.dumps(self.config), encoding="utf-8")

    async def wait_bot_joined(self, timeout: float = 60) -> None:
        """Until the bot is a joined member of every room of the world."""
        rooms = dict(self.rooms)
        if self.coordination_room and self.coordinator:
            rooms["coordination"] = self.coordination_room

        async def joined(person: Person, room_id: str) -> None:
            while True:
                resp = await person.client.joined_members(room_id)
                if self.bot_user_id in {m.user_id for m in getattr(resp, "members", [])}:
                    return
                await asyncio.sleep(0.1)

        async with asyncio.timeout(timeout):
            await asyncio.gather(
                *(
                    joined(self.coordinator if key == "coordination" else self.officers[key], room)
                    for key, room in rooms.items()  # type: ignore[arg-type]
                )
            )


async def build_world(
    homeserver: ThrowawayHomeserver,
    workdir: Path,
    *,
    regions: tuple[tuple[str, str], ...] = MELLANSVERIGE,
    languages: dict[str, str] | None = None,
    national: bool = True,
    blood_centre_of: str | None = "uppsala",
    coordination: bool = True,
    unique: bool = True,
    extra_matrix: dict[str, Any] | None = None,
    rig: BridgeRig | None = None,
) -> World:
    """Register everyone, create the rooms with the bot invited and write the bot's config.
    With ``rig`` every party also has a phone number and a function mailbox on it, and the
    config gets the ``[bridges]`` table."""
    workdir.mkdir(parents=True, exist_ok=True)
    cast = Cast(homeserver, workdir / "people", unique=unique)
    suffix = f"-{secrets.token_hex(3)}" if unique else ""
    bot_password = secrets.token_urlsafe(24)
    bot_user_id = await homeserver.register(f"larmkedja{suffix}", bot_password)
    await homeserver.exempt_from_ratelimit(bot_user_id)
    password_file = workdir / "bot-password"
    password_file.write_text(bot_password + "\n", encoding="utf-8")
    password_file.chmod(0o600)

    languages = languages or {}
    world = World(
        homeserver=homeserver,
        workdir=workdir,
        cast=cast,
        bot_user_id=bot_user_id,
        config_path=workdir / "larmkedja.toml",
    )

    async def party(party_id: str, name: str) -> dict[str, Any]:
        person = await cast(f"tib-{party_id}", display_name=f"TiB {name}")
        room = await person.create_encrypted_room(name, invite=[bot_user_id])
        world.officers[party_id] = person
        world.rooms[party_id] = room
        entry: dict[str, Any] = {
            "id": party_id,
            "name": name,
            "language": languages.get(party_id, "sv"),
            "room": room,
            "duty_officers": [person.user_id],
        }
        if rig is not None:  # reached by SMS and e-mail too
            entry.update(sms=[rig.number(party_id)], email=[rig.address(party_id)])
        return entry

    region_entries = await asyncio.gather(*(party(pid, name) for pid, name in regions))
    others: list[dict[str, Any]] = []
    if national:
        entry = await party("socialstyrelsen", "Socialstyrelsen, nationell TiB")
        others.append({**entry, "kind": "national_duty_officer"})
    if blood_centre_of:
        entry = await party(f"blodcentralen-{blood_centre_of}", "Blodcentralen")
        others.append({**entry, "kind": "blood_centre", "region": blood_centre_of})

    healthcare: dict[str, Any] = {"id": "mellansverige", "name": "Sjukvårdsregion Mellansverige"}
    if coordination:
        world.coordinator = await cast("samordnare", display_name="Beredskapssamordnare")
        world.coordination_room = await world.coordinator.create_encrypted_room(
            "Samordning", invite=[bot_user_id]
        )
        healthcare.update(
            coordination_room=world.coordination_room, coordinators=[world.coordinator.user_id]
        )

    world.config = {
        "log_level": "INFO",
        "matrix": {
            "homeserver": homeserver.url,
            "user_id": bot_user_id,
            "password": {"file": str(password_file)},
            "device_name": "larmkedja",
            "sync_timeout_ms": 5000,
            "backoff_initial_s": 0.2,
            "backoff_max_s": 2.0,
            **(extra_matrix or {}),
        },
        "storage": {"database_url": "sqlite+aiosqlite:///larmkedja.db", "state_dir": "state"},
        "healthcare_region": healthcare,
        "regions": list(region_entries),
        "parties": others,
    }
    if rig is not None:
        world.config["bridges"] = rig.bridges_table()
    world.write_config()
    return world
