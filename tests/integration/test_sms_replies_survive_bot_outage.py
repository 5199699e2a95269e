"""SMS replies sent while the bot is down, or while it cannot store them, are not lost.

The real gateway (Kannel 1.4.5: bearerbox, smsbox, fakesmsc) runs with the production settings
of ``deploy/kannel/kannel.conf.template``: smsbox retries an MO callback that is not answered
200/202 every ``http-queue-delay`` (5 s) with the same URL, so with the same Kannel id, and the
bot stores an MO once per id. The story:

1. an alarm reaches Dalarna and Gävleborg by SMS;
2. the bot is SIGKILLed; Dalarna answers the SMS while it is down (smsbox's callback is
   refused; Kannel logs "Couldn't fetch" and queues it);
3. the bot starts again: Dalarna's reply is delivered, acknowledged and answered, once;
4. the bot's database is locked by another writer (a real SQLite write lock, as a busy
   PostgreSQL or a full disk would do): Gävleborg's reply gets a 503 after the callback's 5 s,
   the store fails when SQLite's busy timeout (10 s) runs out, Kannel retries (503 again while
   the lock lasts), and once the lock is gone a retry is stored and answered 200;
5. the same MO replayed once more (same Kannel id): 200, nothing new.

Every reply acknowledged exactly once, one answer SMS per reply, and Kannel has nothing left to
retry (each reply's last callback answered 200).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from sqlalchemy import select
from yarl import URL

from bot.config import load_config
from bot.demo.rig import SHORT_NUMBER, BridgeRig
from bot.demo.script import board_text, say
from bot.demo.world import World
from storage import outbox
from storage.models import InboxRow
from tests.integration.botctl import BotProcess
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

THREE = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
)
ALARMED = ("dalarna", "gavleborg")
SMS_CODE = re.compile(r"KVITTERA (\d{4}) ")
MO_ACCESS = re.compile(r"bot\.http\.app\.access: GET /sms/inbound (\d{3}) ")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    async with BridgeRig(tmp_path / "rig") as started:
        yield started


async def wait_for(check, timeout: float = 60, step: float = 0.1):  # noqa: ANN001, ANN201
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(step)


def mo_answers(bot: BotProcess) -> Counter[str]:
    """How the bot answered MO callbacks, by status, over all its runs (one log file)."""
    return Counter(MO_ACCESS.findall(bot.log()))


class WriteLock:
    """Another writer holding SQLite's write lock on the bot's database (a real fault)."""

    def __init__(self, world: World) -> None:
        url = load_config(world.config_path).database_url
        self.path = url.removeprefix("sqlite+aiosqlite:///")
        self._conn: sqlite3.Connection | None = None

    async def take(self) -> None:
        def begin() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("BEGIN IMMEDIATE")
            return conn

        self._conn = await asyncio.to_thread(begin)

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(lambda: (conn.execute("ROLLBACK"), conn.close()))


async def sms_inbox(db: BotDatabase) -> list[InboxRow]:
    async with db.db.read() as session:
        query = select(InboxRow).where(InboxRow.source == "sms").order_by(InboxRow.id)
        return list((await session.execute(query)).scalars())


async def test_sms_replies_while_the_bot_is_killed_or_failing_are_stored_and_acked_once(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await make_world(regions=THREE, rig=rig)
    world.config["escalation"] = {"steps": []}  # this test is about replies, not reminders
    world.write_config()
    db = BotDatabase(world)
    first = BotProcess(world.config_path)
    second = BotProcess(world.config_path)
    lock = WriteLock(world)
    smsbox_log = rig.kannel.workdir / "smsbox.log"
    try:
        await first.start()
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Kemolycka Borlänge", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
        codes = {}
        for party in ALARMED:
            alarm = (await rig.kannel.wait_for_sent(receiver=rig.number(party), timeout=30))[-1]
            match = SMS_CODE.search(alarm.text)
            assert match is not None, alarm.text
            codes[party] = match.group(1)
        # Every alarm recorded as sent first: a kill between Kannel's 202 and that record
        # sends it again after the restart (the outbox's known at-most-twice), not this test.
        await wait_for(lambda: _all_sent(db, "alarm"), timeout=30)
        sent_before = len(rig.kannel.sent_messages())

        # 2. SIGKILL; Dalarna answers while nobody listens.
        assert first.process is not None
        first.process.kill()
        assert await first.wait(30) == -9
        refused_before = smsbox_log.read_text(errors="replace").count("Couldn't fetch")
        rig.kannel.inject_mo(rig.number("dalarna"), SHORT_NUMBER, f"KVITTERA {codes['dalarna']} 5")
        await wait_for(
            lambda: (
                smsbox_log.read_text(errors="replace").count("Couldn't fetch") > refused_before
            ),
            timeout=10,
        )
        assert await db.audit("ack.recorded") == []

        # 3. The bot is back: Kannel's next retry delivers the reply.
        restarted_at = time.monotonic()
        await second.start()
        await wait_for(lambda: _acks(db, 1), timeout=90)
        recovered_s = time.monotonic() - restarted_at
        await world.wait_bot_joined()
        # Dalarna's answer out and recorded before the lock: a database outage between
        # Kannel's 202 and the "sent" mark makes the outbox send an SMS twice (marked a
        # possible duplicate; seen in this test before this wait), a known limit of
        # send-then-record that this test does not measure.
        await wait_for(lambda: _answer_sent(db, rig.number("dalarna")), timeout=30)

        # 4. A database another writer holds: 503, nothing stored, retried until it is.
        await lock.take()
        try:
            rig.kannel.inject_mo(
                rig.number("gavleborg"), SHORT_NUMBER, f"KVITTERA {codes['gavleborg']} 6"
            )
            # Held past SQLite's busy timeout (10 s): the first store fails; Kannel's retry
            # 5 s after the first 503 gets a 503 too; nothing is stored meanwhile.
            await wait_for(lambda: mo_answers(second)["503"] >= 2, timeout=40)
            assert len(await sms_inbox(db)) == 1
        finally:
            await lock.release()
        await wait_for(lambda: _acks(db, 2), timeout=60)
        await wait_for(lambda: mo_answers(second)["200"] >= 2, timeout=30)

        # 5. The same MO again, by hand, with the id Kannel gave it: 200 and nothing new.
        rows = await sms_inbox(db)
        assert len(rows) == 2, [(r.event_id, r.sender) for r in rows]
        assert len({r.event_id for r in rows}) == 2
        replayed = rows[0]
        query = (
            f"secret={rig.gateway_secret}&from={quote(replayed.sender, safe='')}"
            f"&to={SHORT_NUMBER}&text={quote(replayed.payload['text'], safe='')}"
            f"&id={replayed.event_id.removeprefix('sms:')}&ts=1"
        )
        url = URL(f"http://127.0.0.1:{rig.http_port}/sms/inbound?{query}", encoded=True)
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
        assert [r.id for r in await sms_inbox(db)] == [r.id for r in rows]

        # Exactly once: two acknowledgements by SMS, one answer SMS to each sender.
        uppsala = world.officer("uppsala")

        def both_via_sms() -> str | None:
            text = board_text(world, uppsala, world.rooms["uppsala"], "H-1") or ""
            lines = [x for x in text.splitlines() if "Region Dalarna" in x or "Gävleborg" in x]
            return text if len(lines) == 2 and all("via sms" in x for x in lines) else None

        await wait_for(both_via_sms, timeout=30)
        acks = await db.audit("ack.recorded")
        assert sorted((a.detail["party"], a.detail["channel"]) for a in acks) == [
            ("dalarna", "sms"),
            ("gavleborg", "sms"),
        ]
        replies = [r for r in await db.outbox_rows("reply") if r.channel == "sms"]
        assert sorted(r.destination for r in replies) == sorted(rig.number(p) for p in ALARMED)
        for party in ALARMED:
            answers = await rig.kannel.wait_for_sent(
                after=sent_before, receiver=rig.number(party), timeout=30
            )
            assert len(answers) == 1, answers
            assert answers[0].text.startswith("Kvitterat: H-1"), answers
        assert first.log_path == second.log_path
        answered = mo_answers(second)
        refused = smsbox_log.read_text(errors="replace").count("Couldn't fetch") - refused_before
        print(
            f"\nbot restarted → Dalarna's reply acknowledged in {recovered_s:.1f} s; "
            f"refused callbacks while down: {refused}; MO answers: {dict(answered)}"
        )
        # Kannel is done with both: each reply's last callback got its 200 (plus the replay).
        assert answered["200"] == 3, answered
        assert await db.verify_audit_chain() is None

        # Kannel's logs (production settings): the gateway secret shows only where Kannel
        # 1.4.5 cannot be kept from writing it, the URL of a callback whose connection was
        # refused (gwlib's "Couldn't fetch <url>", at ERROR; deploy/kannel/README.md).
        for path in rig.kannel.log_files():
            for line in path.read_text(errors="replace").splitlines():
                if rig.gateway_secret in line:
                    assert "ERROR: Couldn't fetch <http://127.0.0.1:" in line, (path.name, line)
    finally:
        await lock.release()
        await first.stop()
        await second.stop()
        await db.close()


async def _all_sent(db: BotDatabase, purpose: str) -> bool:
    rows = [r for r in await db.outbox_rows(purpose) if r.channel != "matrix"]
    return bool(rows) and all(r.status == outbox.SENT for r in rows)


async def _answer_sent(db: BotDatabase, number: str) -> bool:
    rows = [r for r in await db.outbox_rows("reply") if r.destination == number]
    return bool(rows) and all(r.status == outbox.SENT for r in rows)


async def _acks(db: BotDatabase, count: int) -> bool:
    return len(await db.audit("ack.recorded")) >= count
