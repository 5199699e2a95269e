"""``larmkedja demo``: the whole thing on one machine, printed as a readable transcript.

A throwaway Synapse, the bot on SQLite, and scripted duty officers of the seven regions of
Sjukvårdsregion Mellansverige with their encrypted rooms. What is printed is what each person's
E2EE client decrypted, not what the bot meant to send. Everything is removed at the end unless
``--workdir`` is given.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bot.app import App
from bot.config import load_config
from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.people import Person, Received
from bot.demo.script import board_saying, say
from bot.demo.world import World, build_world

ALARMED = (
    "dalarna",
    "gavleborg",
    "varmland",
    "vastmanland",
    "orebro",
    "sormland",
    "socialstyrelsen",
    "blodcentralen-uppsala",
)


class Transcript:
    """Prints who said what, in which room, with the time since the demo started."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.started = time.monotonic()
        self.room_names = {
            room: str(p["name"])
            for p in (*world.config["regions"], *world.config["parties"])
            for room in [p["room"]]
        }

    def _stamp(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def say(self, text: str) -> None:
        print(f"{self._stamp()}  {text}", flush=True)

    def typed(self, person: Person, room_id: str, text: str) -> None:
        self.say(f"[{self.room_names.get(room_id, room_id)}] {person.user_id}: {text}")

    def received(self, person: Person, message: Received) -> None:
        lock = "🔒" if message.encrypted else "⚠ unencrypted"
        head = (
            f"[{self.room_names.get(message.room_id, message.room_id)}] larmkedja {lock} "
            f"→ {person.user_id}:"
        )
        body = message.new_body if message.is_edit else message.body
        lines = (body or "").splitlines() or [""]
        self.say(head)
        for line in lines:
            print(f"{'':9}│ {line}", flush=True)


class Narrator:
    """Plays the night: people type, the transcript shows what their phones decrypted."""

    def __init__(self, world: World, transcript: Transcript) -> None:
        self.world = world
        self.t = transcript
        self.uppsala = world.officer("uppsala")

    async def says(self, party: str, text: str, expect: str = "") -> Received:
        person, room = self.world.officer(party), self.world.rooms[party]
        self.t.typed(person, room, text)
        answer = await say(self.world, party, text, expect, timeout=60)
        self.t.received(person, answer)
        return answer

    async def board(self, expect: str) -> None:
        text = await board_saying(
            self.world, self.uppsala, self.world.rooms["uppsala"], expect, timeout=60
        )
        self.t.say(f"Status board in Region Uppsala's room (edited in place), {expect}:")
        for line in text.splitlines():
            print(f"{'':9}┃ {line}", flush=True)


async def play(world: World, transcript: Transcript) -> None:
    night = Narrator(world, transcript)
    transcript.say("Every duty officer asks for help in their own encrypted room.")
    await night.says("uppsala", "!hjälp", expect="!händelse")
    for party in [p for p in world.rooms if p != "uppsala"]:
        answer = await say(world, party, "!hjälp", timeout=60)
        transcript.say(
            f"[{transcript.room_names[world.rooms[party]]}] !hjälp → help decrypted "
            f"({len(answer.body.splitlines())} lines, "
            f"{'encrypted' if answer.encrypted else 'NOT ENCRYPTED'})"
        )

    transcript.say("A bus has crashed on the E4. Uppsala's TiB confirms a särskild händelse.")
    await night.says(
        "uppsala", "!händelse katastrofläge Bussolycka E4 Knivsta, 40 skadade", expect="H-1"
    )
    await night.says("uppsala", "!larma", expect="Larmkedjan för H-1")
    alarms: dict[str, Received] = {}
    for party in ALARMED:
        person = world.officer(party)
        alarms[party] = await person.wait_for(
            lambda m: m.sender == world.bot_user_id and "MASSKADELARM H-1" in m.body, timeout=60
        )
    transcript.received(world.officer("dalarna"), alarms["dalarna"])
    transcript.say(
        f"… and the same alarm, in each party's words, decrypted in all {len(alarms)} rooms."
    )
    await night.board("kvitterat 0/8")

    await night.says("dalarna", "!kvittera 5", expect="Kvittens")
    await night.board("kvitterat 1/8")
    await night.says("gavleborg", "!kvittera 3 fler efter kl 05", expect="Kvittens")
    await night.board("kvitterat 2/8")
    transcript.say(f"[Region Värmland] {world.officer('varmland').user_id} reacts ✅ on the alarm")
    await world.officer("varmland").react(
        world.rooms["varmland"], alarms["varmland"].event_id, "✅"
    )
    await night.board("kvitterat 3/8")
    for party, text in (
        ("vastmanland", "!kvittera 6"),
        ("orebro", "!kvittera 5"),
        ("socialstyrelsen", "!kvittera"),
        ("blodcentralen-uppsala", "!kvittera"),
    ):
        await night.says(party, text, expect="Kvittens")
    await night.board("kvitterat 7/8")
    transcript.say("Region Sörmland is slow to answer …")
    await asyncio.sleep(3)
    await night.says("sormland", "!kvittera 8", expect="Kvittens")
    await night.board("kvitterat 8/8")
    await night.says("uppsala", "!avlarma Alla skadade omhändertagna", expect="H-1")
    for party in ALARMED:
        await world.officer(party).wait_for(
            lambda m: m.sender == world.bot_user_id and "omhändertagna" in m.body, timeout=60
        )
    transcript.say(f"Stand-down decrypted in all {len(ALARMED)} alarmed rooms.")
    await night.board("Avlarmad")


async def run_demo(workdir: Path | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("nio").setLevel(logging.ERROR)  # key-sharing chatter is not the story
    keep = workdir is not None
    root = workdir or Path(tempfile.mkdtemp(prefix="larmkedja-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    print("larmkedja demo: starting a throwaway Synapse on loopback …", flush=True)
    homeserver = ThrowawayHomeserver(root / "synapse")
    app: App | None = None
    world: World | None = None
    try:
        await homeserver.start()
        print(
            f"  Synapse up at {homeserver.url} in {homeserver.startup_seconds:.1f} s", flush=True
        )
        world = await build_world(homeserver, root / "world", unique=False)
        print(
            f"  {len(world.officers)} duty officers and the coordinator registered; "
            f"{len(world.rooms) + 1} encrypted rooms created with the bot invited",
            flush=True,
        )
        app = App(load_config(world.config_path))
        await app.start()
        await app.wait_ready()
        await world.wait_bot_joined()
        device = app.session.client.device_id if app.session else "?"
        print(
            f"  bot {world.bot_user_id} (device {device}, cross-signed) joined every room\n",
            flush=True,
        )
        transcript = Transcript(world)
        await play(world, transcript)
        print("\nlarmkedja demo: done.", flush=True)
        return 0
    except Exception as exc:  # the demo explains failure in one line and cleans up
        print(f"larmkedja demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if homeserver.running:
            print(f"  homeserver log: {homeserver.log_path}", file=sys.stderr)
        return 1
    finally:
        if app is not None:
            await app.stop()
        if world is not None:
            await world.cast.close()
        await homeserver.aclose() if not keep else await homeserver.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"  files kept in {root}")
        await asyncio.sleep(0)
