"""Crash campaign: a running chain with reminders, the bot SIGKILLed at randomised points.

Each trial starts the bot as a real process with a fault point armed for a random hit (the
moment after a command is stored, before it is handled, before or after a Matrix send, before
or after a due time fires), lets it run until it dies (or a few seconds), and goes on with the
next. Afterwards, with the bot run to quiet: every party was alarmed, every due reminder went
out exactly once (or is marked as a possible duplicate), and the audit log is complete and
unbroken. 20 trials in the normal suite; ``LARMKEDJA_CRASH_TRIALS=200`` for a long campaign.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

import pytest

from bot.demo.script import say
from bot.engine.faults import Faults
from tests.integration.botctl import BotProcess
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

REGIONS = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("orebro", "Region Örebro län"),
    ("vastmanland", "Region Västmanland"),
)
PARTIES = ("dalarna", "orebro", "vastmanland")
TRIALS = int(os.environ.get("LARMKEDJA_CRASH_TRIALS", "20"))


async def test_sigkill_at_random_points_loses_and_doubles_nothing(
    make_world: WorldFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = int(os.environ.get("LARMKEDJA_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    world = await make_world(regions=REGIONS)
    # Reminders for as long as the campaign runs: every ~1.2 s for the normal 20 trials,
    # spread out for a long campaign (the config allows at most 100 repeats).
    world.config["escalation"] = {
        "steps": [
            {"after_min": 0.02, "action": "remind"},
            {"after_min": 0.02, "action": "notify_initiator"},
        ],
        "repeat_every_min": 0.02 * max(1.0, TRIALS / 50),
        "max_repeats": min(100, max(10, TRIALS)),
    }
    world.write_config()
    db = BotDatabase(world)
    killed = 0
    try:
        bot = BotProcess(world.config_path)
        await bot.start()
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Tågolycka Kolbäck", "H-1", 60)
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1", timeout=60)
        assert await bot.stop() == 0

        for trial in range(TRIALS):
            point = rng.choice(Faults.POINTS)
            nth = rng.randint(1, 3)
            marker_dir = world.workdir / f"trial-{trial}"
            marker_dir.mkdir()
            bot = BotProcess(world.config_path, fault=f"{point}@{nth}", fault_dir=marker_dir)
            await bot.start()
            if rng.random() < 0.5:  # someone types meanwhile, so inbox points are reached
                party = rng.choice(("uppsala", *PARTIES))
                text = "!status" if party == "uppsala" else "!hjälp"
                await world.officer(party).send_text(world.rooms[party], text)
            try:
                code = await bot.wait(timeout=rng.uniform(2.0, 5.0))
            except TimeoutError:
                code = await bot.stop()
            killed += code == -9
        bot = BotProcess(world.config_path)
        await bot.start()
        try:
            await say(world, "orebro", "!kvittera 5", "Kvittens", timeout=90)  # one answers
            await say(world, "uppsala", "!avlarma", "H-1", timeout=90)
            await db.wait_until_quiet(timeout=120)
        finally:
            assert await bot.stop() == 0
        await asyncio.sleep(1.0)  # the people's last syncs

        alarms = await db.outbox_rows("alarm")
        reminders = await db.outbox_rows("reminder") + await db.outbox_rows("notice")
        duplicates = [
            r
            for r in await db.outbox_rows()
            if r.last_error and "possible duplicate" in r.last_error
        ]
        # Every party alarmed, and its phone shows the alarm once per row (+ marked duplicates).
        assert {r.destination for r in alarms} == {world.rooms[p] for p in PARTIES}
        assert all(r.status == "sent" for r in alarms + reminders)
        received: Counter[str] = Counter()
        for party in ("uppsala", *PARTIES):
            for m in world.officer(party).messages_from(world.bot_user_id, world.rooms[party]):
                received[m.event_id] += 1
        for row in alarms + reminders:
            assert received[row.remote_id or ""] >= 1, f"{row.idempotency_key} not received"
        # A message a phone shows that no outbox row recorded as its own would be a duplicate
        # the homeserver did not drop (a resend keeps its transaction id, so it returns the
        # same event); there may be at most as many as rows marked "possible duplicate".
        recorded = {r.remote_id for r in await db.outbox_rows() if r.remote_id}
        seen_twice = [event_id for event_id in received if event_id not in recorded]
        assert all(n == 1 for n in received.values())
        assert len(seen_twice) <= len(duplicates), seen_twice
        # Every due time that fired did so once, and has its audit entry; none left pending.
        dues = await db.due_rows()
        assert all(d.status != "pending" for d in dues)
        # (a delivery summary's due time is audited as the summary it posted)
        fired_keys = [e.detail["key"] for e in await db.audit("escalation.fired")]
        fired_keys += [e.detail["key"] for e in await db.audit("delivery.summary")]
        assert len(fired_keys) == len(set(fired_keys))
        assert set(fired_keys) == {d.key for d in dues if d.status == "fired"}
        assert await db.verify_audit_chain() is None
        actions = Counter(e.action for e in await db.audit())
        assert actions["chain.started"] == 1
        assert actions["incident.stood_down"] == 1
    finally:
        await db.close()
    with capsys.disabled():
        print(
            f"\ncrash campaign: seed {seed}, {TRIALS} trials, {killed} SIGKILLs, "
            f"{len(fired_keys)} due times fired, {len(duplicates)} possible duplicates marked, "
            f"{len(seen_twice)} seen twice by a phone"
        )
