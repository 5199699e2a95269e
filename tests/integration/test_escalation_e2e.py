"""Reminders and escalation with real Synapse and short real delays (issue: reminders).

A party that never acknowledges is reminded in its room and the initiating duty officer is
told; a party that acknowledged hears nothing more; a bot that was down across two due times
fires both at start, marked late; a restart mid-chain neither loses nor repeats a reminder.
"""

from __future__ import annotations

import asyncio

from bot.demo.script import from_bot, say
from bot.demo.world import World
from tests.integration.botctl import BotProcess, bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import FAST, BotDatabase, fast_policy

THREE = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("orebro", "Region Örebro län"),
)


async def escalation_world(make_world: WorldFactory, policy: dict) -> World:
    world = await make_world(regions=THREE)
    world.config["escalation"] = policy
    world.write_config()
    return world


def alarm_and_after(world: World, party: str) -> list[str]:
    """What the party's duty officer got from the bot in its room, alarm first."""
    return [
        m.body for m in from_bot(world, world.officer(party), world.rooms[party]) if not m.is_edit
    ]


async def test_party_that_never_acknowledges_is_reminded_and_initiator_told(
    make_world: WorldFactory,
) -> None:
    world = await escalation_world(make_world, fast_policy(max_repeats=2))
    db = BotDatabase(world)
    try:
        async with bot_in_process(world.config_path):
            await world.wait_bot_joined()
            await say(world, "uppsala", "!händelse katastrofläge Kemolycka", "H-1")
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
            await say(world, "orebro", "!kvittera 5", "Kvittens")  # Örebro answers at once
            dalarna = world.officer("dalarna")
            reminder = await dalarna.wait_for(
                lambda m: (
                    m.sender == world.bot_user_id
                    and "MASSKADELARM" not in m.body
                    and dalarna.user_id in m.content.get("m.mentions", {}).get("user_ids", [])
                ),
                timeout=30,
            )
            assert "H-1" in reminder.body
            uppsala = world.officer("uppsala")
            told = await uppsala.wait_for(
                lambda m: (
                    m.sender == world.bot_user_id
                    and "Region Dalarna" in m.body
                    and "H-1" in m.body
                    and m.reply_to is None
                    and not m.is_edit
                    and not m.body.startswith("🚨")
                ),
                timeout=30,
            )
            assert told.encrypted
            await db.wait_until_quiet(timeout=60)
            await asyncio.sleep(3 * FAST * 60)  # nothing more after the last repeat
        fired = await db.audit("escalation.fired")
        assert [e.detail["party"] for e in fired] == ["dalarna"] * 4, [e.detail for e in fired]
        assert [(e.detail["step"], e.detail["repeat"]) for e in fired] == [
            (0, 0),
            (1, 0),
            (1, 1),
            (1, 2),
        ]
        assert len(alarm_and_after(world, "dalarna")) == 2  # the alarm and one reminder
        assert len(alarm_and_after(world, "orebro")) == 2  # the alarm and the ack reply
        dues = await db.due_rows()
        assert {d.status for d in dues if d.party_id == "orebro"} <= {"cancelled"}
        assert [d.status for d in dues if d.party_id == "dalarna"] == ["fired"] * 4
    finally:
        await db.close()


async def test_acknowledgement_and_stand_down_stop_every_reminder(
    make_world: WorldFactory,
) -> None:
    world = await escalation_world(make_world, fast_policy(max_repeats=5))
    db = BotDatabase(world)
    try:
        async with bot_in_process(world.config_path):
            await world.wait_bot_joined()
            await say(world, "uppsala", "!händelse stabsläge Vattenläcka", "H-1")
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
            dalarna = world.officer("dalarna")
            await dalarna.wait_for(
                lambda m: m.sender == world.bot_user_id and "MASSKADELARM" not in m.body,
                timeout=30,
            )
            await say(world, "dalarna", "!kvittera 5", "Kvittens")
            await say(world, "uppsala", "!avlarma", "H-1")
            for party in ("dalarna", "orebro"):
                await world.officer(party).wait_for(
                    lambda m: m.sender == world.bot_user_id and "AVLARMERING" in m.body
                )
            received = {p: len(alarm_and_after(world, p)) for p in ("dalarna", "orebro")}
            await asyncio.sleep(4 * FAST * 60)  # long enough for two more steps: none comes
            assert {p: len(alarm_and_after(world, p)) for p in received} == received
        assert all(d.status != "pending" for d in await db.due_rows())
    finally:
        await db.close()


async def test_bot_down_across_two_due_times_fires_both_at_start_marked_late(
    make_world: WorldFactory,
) -> None:
    world = await escalation_world(
        make_world,
        fast_policy(
            steps=[
                {"after_min": 0.04, "action": "remind"},
                {"after_min": 0.02, "action": "notify_initiator"},
            ],
            max_repeats=0,
        ),
    )
    db = BotDatabase(world)
    bot = BotProcess(world.config_path)
    try:
        await bot.start()
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse förstärkningsläge Brand", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1", timeout=60)
        await say(world, "orebro", "!kvittera 5", "Kvittens")
        assert await bot.stop() == 0  # down before the first due time (2.4 s after the alarm)
        await asyncio.sleep(6.0)  # both due times (2.4 s and 3.6 s) pass while it is down
        await bot.start()
        await world.officer("uppsala").wait_for(
            lambda m: (
                m.sender == world.bot_user_id
                and "Region Dalarna" in m.body
                and not m.body.startswith("🚨")
                and m.reply_to is None
            ),
            timeout=60,
        )
        await db.wait_until_quiet(timeout=60)
    finally:
        await bot.stop()
        fired = await db.audit("escalation.fired")
        await db.close()
    assert [(e.detail["step"], e.detail["repeat"]) for e in fired] == [(0, 0), (1, 0)]
    assert all(e.detail["late_by_s"] >= 1.0 for e in fired), [e.detail for e in fired]
    assert len(alarm_and_after(world, "dalarna")) == 2  # alarm + exactly one reminder
    reminder = alarm_and_after(world, "dalarna")[1]
    assert "H-1" in reminder


async def test_restart_mid_chain_loses_no_reminder_and_repeats_none(
    make_world: WorldFactory,
) -> None:
    world = await escalation_world(
        make_world,
        fast_policy(
            steps=[{"after_min": FAST, "action": "remind"}], repeat_every_min=FAST, max_repeats=4
        ),
    )
    db = BotDatabase(world)
    bot = BotProcess(world.config_path)
    try:
        await bot.start()
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse stabsläge Strömavbrott", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1", timeout=60)
        dalarna = world.officer("dalarna")
        await dalarna.wait_for_count(
            lambda m: m.sender == world.bot_user_id and "MASSKADELARM" not in m.body, 2, timeout=60
        )
        assert await bot.stop() == 0  # a new process, same database
        await bot.start()
        await db.wait_until_quiet(timeout=60)
    finally:
        await bot.stop()
        fired = await db.audit("escalation.fired")
        await db.close()
    keys = [(e.detail["party"], e.detail["step"], e.detail["repeat"]) for e in fired]
    assert sorted(set(keys)) == sorted(keys)  # none twice
    assert sorted(k for k in keys if k[0] == "dalarna") == [("dalarna", 0, r) for r in range(5)]
    reminders = [b for b in alarm_and_after(world, "dalarna")[1:]]
    assert len(reminders) == 5
