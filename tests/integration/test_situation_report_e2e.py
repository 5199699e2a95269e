"""The shared picture and the evaluation on a real Synapse with real E2EE clients: an initial
lägesbild and a second version reach every alarmed room encrypted, with the changes marked, the
log is written, ``!rapport`` answers with the summary, and the audit anchor it posts in the
coordination room is read back by ``larmkedja audit verify --anchors-from-room`` while the bot
runs (from a snapshot of its crypto store, without a sync), which then catches a database
edited behind the bot's back."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.cli import EXIT_BROKEN, main
from bot.demo.script import say, say_as
from bot.demo.world import World
from storage import audit
from storage.audit import GENESIS, _digest
from storage.database import Database
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.test_matrix_foundation import assert_no_plaintext_from_bot

THREE = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
)


async def verify(world: World, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``larmkedja audit verify --anchors-from-room``, as an operator runs it (in a thread:
    the command runs its own event loop)."""
    code = await asyncio.to_thread(
        main, ["audit", "verify", "--config", str(world.config_path), "--anchors-from-room"]
    )
    out, _ = capsys.readouterr()
    return code, out


async def test_versions_log_report_and_anchor_on_a_real_homeserver(
    make_world: WorldFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    world = await make_world(regions=THREE, coordination=True, languages={"gavleborg": "en"})
    coordinator = world.coordinator
    assert coordinator is not None
    assert world.coordination_room is not None
    async with bot_in_process(world.config_path) as app:
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Bussolycka E4 Knivsta", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1 är startad")
        v1 = await say(
            world,
            "uppsala",
            "!lägesbild plats=E4 Knivsta norrgående typ=Bussolycka antal=40",
            "Lägesbild H-1 v1 skickad",
        )
        assert "📋 INITIAL LÄGESBILD H-1 v1" in v1.body
        for party, header in (
            ("dalarna", "📋 INITIAL LÄGESBILD H-1 v1 – Katastrofläge, Region Uppsala"),
            ("gavleborg", "📋 INITIAL SITUATION REPORT H-1 v1 – Disaster, Region Uppsala"),
        ):
            got = await world.officer(party).wait_for(
                lambda m, h=header: m.sender == world.bot_user_id and m.body.startswith(h)
            )
            assert got.encrypted
        await say(world, "uppsala", "!lägesbild antal=47 risker=Brand i bussen", "v2 skickad")
        dalarna_v2 = await world.officer("dalarna").wait_for(
            lambda m: m.sender == world.bot_user_id and "LÄGESBILD H-1 v2" in m.body
        )
        assert dalarna_v2.encrypted
        assert "Ändrat sedan v1: Risker, Antal skadade" in dalarna_v2.body
        assert "Antal skadade: 47 ✏️ (var: 40)" in dalarna_v2.body
        assert "Risker: Brand i bussen 🆕" in dalarna_v2.body
        coordination_v2 = await coordinator.wait_for(
            lambda m: m.sender == world.bot_user_id and "LÄGESBILD H-1 v2" in m.body
        )
        assert coordination_v2.encrypted
        await say(world, "dalarna", "!kvittera 5", "Kvittens för Region Dalarna")
        await say(world, "dalarna", "!logg Två ambulanser på väg", "Loggat i H-1")
        await say(world, "uppsala", "!avlarma", "H-1 är avlarmad")
        summary = await say_as(
            world, coordinator, world.coordination_room, "!rapport H-1", "RAPPORT H-1"
        )
        assert summary.encrypted
        assert "Lägesbild: 2 versioner. Logg: 1 rader." in summary.body
        assert "✅ Region Dalarna:" in summary.body
        anchor = await coordinator.wait_for(
            lambda m: m.sender == world.bot_user_id and "[larmkedja-audit seq=" in m.body
        )
        assert anchor.encrypted
        # The whole report as two encrypted files: the homeserver holds only ciphertext, the
        # coordinator's phone decrypts the page and the timeline.
        files = await coordinator.wait_for_count(
            lambda m: m.sender == world.bot_user_id and m.msgtype == "m.file", 2
        )
        by_name = {f.content["filename"]: f for f in files}
        assert sorted(by_name) == ["rapport-H-1.csv", "rapport-H-1.html"], sorted(by_name)
        html_file, csv_file = by_name["rapport-H-1.html"], by_name["rapport-H-1.csv"]
        assert html_file.encrypted
        assert html_file.reply_to is not None
        assert html_file.content["info"]["mimetype"].startswith("text/html")
        page = (await coordinator.download(html_file)).decode("utf-8")
        assert "<html" in page.lower()
        assert "Region Dalarna" in page
        assert "Bussolycka E4 Knivsta" in page
        timeline = (await coordinator.download(csv_file)).decode("utf-8")
        assert timeline.startswith("seq,at,local_time,kind,party,channel,person,text")
        assert "Region Dalarna" in timeline
        stored = await coordinator.client.download(mxc=html_file.content["file"]["url"])
        assert b"Region Dalarna" not in stored.body  # ciphertext on the server

        # read back while the bot runs: a snapshot of its store, no sync of a second device
        code, out = await verify(world, capsys)
        assert code == 0, out
        assert "anchors in " in out
        assert "hash chain: intact" in out
        assert "anchors: 1 checked, 1 match" in out
        assert app.failure is None
        # the bot goes on working after the read
        await say(world, "uppsala", "!status H-1", "H-1")
    for person, room_id in (
        (coordinator, world.coordination_room),
        (world.officer("dalarna"), world.rooms["dalarna"]),
        (world.officer("gavleborg"), world.rooms["gavleborg"]),
    ):
        assert await assert_no_plaintext_from_bot(person, world, room_id) >= 3

    # someone edits an entry the anchor covers and re-hashes the chain to hide it
    db_path = world.workdir / "larmkedja.db"
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE audit_log SET actor = 'forged' WHERE seq = 2")
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    async with db.write() as session:
        prev = GENESIS
        for row in await audit.entries(session):
            row.prev_hash = prev
            row.hash = _digest(
                prev, row.seq, row.at, row.actor, row.action, row.subject, row.detail
            )
            prev = row.hash
    await db.close()
    code, out = await verify(world, capsys)
    assert code == EXIT_BROKEN
    assert "hash chain: intact" in out  # consistent in itself ...
    assert "(rewritten)" in out  # ... but not what the room saw
