"""A phone that keeps sending wrong codes: answered a few times, then quiet, the room told.

Before (issue 10 §3): the throttle answered every try (79 SMS to one phone in the campaign)
and locked the real duty officer out for an hour without anyone knowing. Now, on a real Kannel:
five wrong codes are answered as wrong; the sixth and seventh tries are answered with until
when replies are refused and how to acknowledge instead; later tries are audited only; the
party's room is told once, and acknowledging there works at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.demo.rig import SHORT_NUMBER, BridgeRig
from bot.demo.script import board_saying, from_bot, say
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

TWO = (("uppsala", "Region Uppsala"), ("dalarna", "Region Dalarna"))
SMS_CODE = re.compile(r"KVITTERA (\d{4}) ")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    async with BridgeRig(tmp_path / "rig") as started:
        yield started


async def test_wrong_codes_are_answered_a_few_times_then_the_room_is_told_and_quiet_follows(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await make_world(regions=TWO, rig=rig)
    world.config["escalation"] = {"steps": []}
    world.write_config()
    phone = rig.number("dalarna")
    dalarna, room = world.officer("dalarna"), world.rooms["dalarna"]
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Brand i vårdbyggnad", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
        alarm = (await rig.kannel.wait_for_sent(receiver=phone, timeout=30))[-1].text
        match = SMS_CODE.search(alarm)
        assert match is not None, alarm
        code = match.group(1)
        wrong = f"{(int(code) + 1) % 10_000:04d}"
        db = BotDatabase(world)
        try:
            for n in range(1, 11):
                rig.kannel.inject_mo(phone, SHORT_NUMBER, f"KVITTERA {wrong} 5")
                await until_refused(db, n)
            rig.kannel.inject_mo(phone, SHORT_NUMBER, f"KVITTERA {code} 5")  # right, too late
            await until_refused(db, 11)
            refused = await db.audit("inbound_reply.refused")
            await db.wait_until_sent()
        finally:
            await db.close()
        told = await dalarna.wait_for(
            lambda m: m.sender == world.bot_user_id and "felaktiga koder" in m.body, timeout=30
        )
        assert f"…{phone[-4:]} (sms)" in told.body
        assert "Kvittera här med !kvittera" in told.body
        # The room is where the duty officer acknowledges now, at once.
        await say(world, "dalarna", "!kvittera 5", "Kvittens för Region Dalarna")
        await board_saying(world, world.officer("uppsala"), world.rooms["uppsala"], "1/1")
        answers = await rig.kannel.wait_for_sent(7, receiver=phone, after=0, timeout=30)
    texts = [m.text for m in answers if "MASSKADELARM" not in m.text]
    assert len(texts) == 7, texts  # five "wrong", two "not until", then nothing
    assert all("Koden stämmer inte" in t for t in texts[:5])
    assert all(re.search(r"tas inte emot förrän \d\d:\d\d", t) for t in texts[5:])
    assert [d["reason"] for d in (e.detail for e in refused)] == ["wrong"] * 5 + ["throttled"] * 6
    throttled = [e.detail for e in refused][5:]
    assert [d["answered"] for d in throttled] == [True, True, False, False, False, False]
    assert [d["room_told"] for d in throttled] == [True] + [False] * 5
    notices = [m for m in from_bot(world, dalarna, room) if "felaktiga koder" in m.body]
    assert len(notices) == 1


async def until_refused(db: BotDatabase, count: int, timeout: float = 30) -> None:
    """Until ``count`` replies have been refused (each reply stored and decided in turn)."""
    async with asyncio.timeout(timeout):
        while True:
            if len(await db.audit("inbound_reply.refused")) >= count:
                return
            await asyncio.sleep(0.1)
