"""When a channel is down: the SMS gateway, the homeserver, the bot itself (issue: bridges).

- Kannel's bearerbox and smsbox gone: the alarm SMS is retried, the party falls back to
  e-mail (audited, on the board), and when the gateway is back the SMS goes out to a party
  that still has not acknowledged, and not to one that has.
- Synapse stopped for 60 s during a chain: SMS and e-mail carry the alarm meanwhile, and the
  Matrix messages written during the outage arrive once it is back, each exactly once.
- The bot SIGKILLed after its SMS/e-mail rows are claimed and before they are sent, and after
  they are sent and before that is recorded: after a restart every message is out, and a
  message is at most duplicated once, with the duplicate marked.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.people import Person
from bot.demo.rig import SHORT_NUMBER, BridgeRig
from bot.demo.script import board_saying, say
from bot.demo.world import World
from storage import outbox
from tests.integration.botctl import BotProcess, bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

THREE = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
)
ALARMED = ("dalarna", "gavleborg")
MAIL_CODE = re.compile(r"KVITTERA (\d{6}) ")
SMS_CODE = re.compile(r"KVITTERA (\d{4}) ")
OUTAGE_S = float(os.environ.get("LARMKEDJA_SYNAPSE_OUTAGE_S", "60"))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    async with BridgeRig(tmp_path / "rig") as started:
        yield started


async def quiet_world(make_world: WorldFactory, rig: BridgeRig, **bridges: object) -> World:
    """Three regions on every channel, no reminders (these tests are about delivery)."""
    world = await make_world(regions=THREE, rig=rig)
    world.config["escalation"] = {"steps": []}
    for key, value in bridges.items():
        table = world.config["bridges"]
        table[key] = {**table[key], **value} if isinstance(value, dict) else value
    world.write_config()
    return world


async def wait_for(check, timeout: float = 30, step: float = 0.1):  # noqa: ANN001, ANN201
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(step)


async def test_gateway_down_retries_falls_back_to_email_and_sends_sms_when_back(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await quiet_world(make_world, rig, max_attempts=100, sms={"delivery_timeout_s": 3.0})
    db = BotDatabase(world)
    await rig.kannel.stop_bearerbox_and_smsbox()
    try:
        async with bot_in_process(world.config_path):
            await world.wait_bot_joined()
            await say(world, "uppsala", "!händelse katastrofläge Kemolycka Borlänge", "H-1")
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")

            async def retried() -> bool:
                entries = await db.audit("outbox.retry")
                return len([e for e in entries if e.detail["channel"] == "sms"]) >= 4

            await wait_for(retried)
            # The delivery timeout passes: each party falls back to e-mail, once.
            fallback = await wait_for(lambda: db.audit("delivery.fallback"), timeout=20)
            await wait_for(lambda: _count(db, "delivery.fallback", len(ALARMED)), timeout=20)
            fallback = await db.audit("delivery.fallback")
            assert sorted((e.detail["party"], e.detail["to"]) for e in fallback) == [
                ("dalarna", "email"),
                ("gavleborg", "email"),
            ]
            fallback_mails = {}
            for party in ALARMED:
                fallback_mails[party] = await rig.mail.wait_for(
                    lambda m, p=party: rig.address(p) in m.rcpt_tos and "har inte nått" in m.text,
                    timeout=15,
                )
            assert "inte nått Region Dalarna via sms" in fallback_mails["dalarna"].text
            uppsala = world.officer("uppsala")
            board = await board_saying(world, uppsala, world.rooms["uppsala"], "sms ej levererat")
            line = next(x for x in board.splitlines() if "Region Dalarna" in x)
            assert line.startswith("⏳"), line
            assert "⚠️ sms ej levererat" in line, line
            assert "→ e-post" in line, line

            # Gävleborg answers the fallback e-mail while the gateway is still down.
            code = MAIL_CODE.search(fallback_mails["gavleborg"].text)
            assert code is not None
            await rig.mail.reply(
                fallback_mails["gavleborg"],
                f"KVITTERA {code.group(1)} 5",
                rig.address("gavleborg"),
            )
            await board_saying(world, uppsala, world.rooms["uppsala"], "via e-post")
            sent_before = len(rig.kannel.sent_messages())

            # The gateway is back: Dalarna (still silent) gets its SMS, Gävleborg does not.
            await rig.kannel.start()
            got = await rig.kannel.wait_for_sent(
                after=sent_before, receiver=rig.number("dalarna"), timeout=30
            )
            assert got[0].text.startswith("MASSKADELARM H-1"), got
            sms_code = SMS_CODE.search(got[0].text)
            assert sms_code is not None

            async def cancelled() -> list:
                rows = [r for r in await db.outbox_rows("alarm") if r.channel == "sms"]
                return [r for r in rows if r.status == outbox.CANCELLED]

            gone = await wait_for(cancelled, timeout=15)
            assert [r.destination for r in gone] == [rig.number("gavleborg")]
            await asyncio.sleep(1)
            later = rig.kannel.sent_messages()[sent_before:]
            assert rig.number("gavleborg").lstrip("+") not in {
                m.receiver.lstrip("+") for m in later
            }, later
            # And the SMS acknowledges: the fallback did not spoil the SMS code.
            rig.kannel.inject_mo(
                rig.number("dalarna"), SHORT_NUMBER, f"KVITTERA {sms_code.group(1)} 6"
            )
            board = await board_saying(world, uppsala, world.rooms["uppsala"], "via sms")
        cancelled_audit = await db.audit("outbox.cancelled")
        assert [e.detail["reason"] for e in cancelled_audit] == ["acknowledged"]
        assert await db.verify_audit_chain() is None
    finally:
        await db.close()
        await rig.kannel.start()


async def bot_events(
    homeserver: ThrowawayHomeserver, person: Person, room: str, world: World
) -> list[str]:
    """The ids of the bot's events in ``room``'s timeline, as the homeserver serves them."""
    url = f"{homeserver.url}/_matrix/client/v3/rooms/{quote(room, safe='')}/messages"
    headers = {"Authorization": f"Bearer {person.client.access_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, params={"dir": "b", "limit": "500"}, headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
        chunk = (await r.json())["chunk"]
    return [
        e["event_id"]
        for e in chunk
        if e.get("sender") == world.bot_user_id and e.get("type") != "m.room.member"
    ]


async def _count(db: BotDatabase, action: str, at_least: int) -> bool:
    return len(await db.audit(action)) >= at_least


async def test_homeserver_down_for_a_minute_sms_and_mail_carry_the_alarm(
    make_world: WorldFactory, rig: BridgeRig, homeserver: ThrowawayHomeserver
) -> None:
    world = await make_world(regions=THREE, rig=rig)
    # One step: 6 s after the alarm (Synapse is down by then), the alarm again everywhere.
    world.config["escalation"] = {
        "steps": [{"after_min": 0.1, "action": "send", "channels": ["room", "sms", "email"]}]
    }
    world.write_config()
    db = BotDatabase(world)
    try:
        async with bot_in_process(world.config_path):
            await world.wait_bot_joined()
            await say(world, "uppsala", "!händelse katastrofläge Brand i vårdbyggnad", "H-1")
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
            dalarna = world.officer("dalarna")
            await dalarna.wait_for(
                lambda m: m.sender == world.bot_user_id and "MASSKADELARM H-1" in m.body
            )
            first_sms = await rig.kannel.wait_for_sent(receiver=rig.number("dalarna"))
            sent_before = len(rig.kannel.sent_messages())
            mails_before = len(rig.mail.received)

            await homeserver.stop()
            down_since = asyncio.get_running_loop().time()
            try:
                # The step fires while Synapse is down: SMS and e-mail still go out.
                again = await rig.kannel.wait_for_sent(
                    after=sent_before, receiver=rig.number("dalarna"), timeout=30
                )
                assert "har inte kvitterat sedan" in again[0].text, again
                await rig.mail.wait_for(
                    lambda m: (
                        rig.address("dalarna") in m.rcpt_tos
                        and rig.mail.received.index(m) >= mails_before
                    ),
                    timeout=30,
                )
                # Gävleborg acknowledges by SMS during the outage.
                code = SMS_CODE.search(
                    (await rig.kannel.wait_for_sent(receiver=rig.number("gavleborg")))[0].text
                )
                assert code is not None
                rig.kannel.inject_mo(
                    rig.number("gavleborg"), SHORT_NUMBER, f"KVITTERA {code.group(1)} 5"
                )
                await wait_for(lambda: _count(db, "ack.recorded", 1), timeout=30)
                pending = [
                    r
                    for r in await db.outbox_rows()
                    if r.channel == "matrix" and r.status != outbox.SENT
                ]
                assert pending, "the Matrix messages of the outage should be waiting"
                waiting_keys = {r.idempotency_key for r in pending}
                elapsed = asyncio.get_running_loop().time() - down_since
                await asyncio.sleep(max(0.0, OUTAGE_S - elapsed))
            finally:
                await homeserver.start()

            async def all_out() -> bool:
                rows = await db.outbox_rows()
                return all(
                    r.status in (outbox.SENT, outbox.CANCELLED)
                    for r in rows
                    if r.idempotency_key in waiting_keys
                )

            await wait_for(all_out, timeout=90)
            await asyncio.sleep(3)  # anything sent twice would reach the timeline by now
            # Exactly once, as the homeserver has it: every Matrix row the bot marked sent is
            # one event in its room's timeline, and the bot sent no event beyond those rows.
            matrix = [r for r in await db.outbox_rows() if r.channel == "matrix"]
            # Gävleborg acknowledged by SMS while its alarm-again waited for Synapse: it is
            # moot and was cancelled, not sent (an alarm after the answer only confuses).
            cancelled = [r for r in matrix if r.status == outbox.CANCELLED]
            assert [(r.destination, r.purpose, r.last_error) for r in cancelled] == [
                (world.rooms["gavleborg"], "reminder", "acknowledged")
            ]
            sent = [r for r in matrix if r.status != outbox.CANCELLED]
            assert all(r.status == outbox.SENT for r in sent), [
                (r.idempotency_key, r.status) for r in sent if r.status != outbox.SENT
            ]
            for party in ("uppsala", "dalarna", "gavleborg"):
                room = world.rooms[party]
                timeline = await bot_events(homeserver, world.officer(party), room, world)
                rows = {r.remote_id for r in sent if r.destination == room}
                assert len(timeline) == len(set(timeline)), f"an event twice in {party}'s room"
                assert set(timeline) == rows, (party, set(timeline) ^ rows)
            # And the bot hears commands again: a !status typed now is stored and answered.
            status_id = await world.officer("uppsala").send_text(world.rooms["uppsala"], "!status")

            async def answered() -> bool:
                rows = await db.outbox_rows("reply")
                return any(
                    r.idempotency_key.startswith(status_id) and r.status == outbox.SENT
                    for r in rows
                )

            await wait_for(answered, timeout=60)
            outage_rows = [r for r in sent if r.idempotency_key in waiting_keys]
            purposes = Counter(r.purpose for r in outage_rows)
            # The step's alarm again in Dalarna's room, the SMS ack's notice, the board.
            assert purposes["reminder"] == 1, purposes
            assert purposes["notice"] >= 1, purposes
            assert purposes["board"] + purposes["board-edit"] >= 1, purposes
        assert first_sms
        assert await db.verify_audit_chain() is None
    finally:
        await db.close()
        if not homeserver.running:
            await homeserver.start()


@pytest.mark.parametrize("fault", ["before-channel-send", "after-channel-send"])
async def test_killed_around_a_channel_send_every_message_goes_out_at_most_twice(
    make_world: WorldFactory, rig: BridgeRig, tmp_path: Path, fault: str
) -> None:
    world = await quiet_world(make_world, rig)
    db = BotDatabase(world)
    bot = BotProcess(world.config_path, fault=fault, fault_dir=tmp_path)
    try:
        await bot.start()
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Tågolycka", "H-1")
        # The answer may or may not get out before the bot dies at the fault point.
        await world.officer("uppsala").send_text(world.rooms["uppsala"], "!larma")
        assert await bot.wait(60) == -9, bot.log()  # SIGKILLed at the fault point
        claimed = [r for r in await db.outbox_rows("alarm") if r.channel in ("sms", "email")]
        assert {r.status for r in claimed} == {outbox.SENDING}, [r.status for r in claimed]
        restarted = BotProcess(world.config_path, fault=fault, fault_dir=tmp_path)
        await restarted.start()
        try:
            for party in ALARMED:
                await rig.kannel.wait_for_sent(receiver=rig.number(party), timeout=30)
                await rig.mail.wait_for(lambda m, p=party: rig.address(p) in m.rcpt_tos)

            async def recorded() -> bool:
                rows = [r for r in await db.outbox_rows("alarm") if r.channel != "matrix"]
                return bool(rows) and all(r.status == outbox.SENT for r in rows)

            await wait_for(recorded, timeout=30)
            await asyncio.sleep(1.5)
        finally:
            await restarted.stop()
        rows = [r for r in await db.outbox_rows("alarm") if r.channel != "matrix"]
        assert all(r.last_error == outbox.POSSIBLE_DUPLICATE for r in rows), [
            r.last_error for r in rows
        ]
        texts = Counter(
            m.receiver.lstrip("+") for m in rig.kannel.sent_messages() if "MASSKADELARM" in m.text
        )
        mails = Counter(m.message_id for m in rig.mail.received if "MASSKADELARM" in m.subject)
        # Killed before the first send: each exactly once. Killed right after a send, before it
        # was recorded: what was out by then (that one, and any lane that finished its send in
        # the same moment) goes out once more, never a third time; nothing is lost.
        counts = [*texts.values(), *mails.values()]
        assert len(texts) == len(mails) == len(ALARMED), (texts, mails)
        if fault == "before-channel-send":
            assert set(counts) == {1}, (texts, mails)
        else:
            assert set(counts) <= {1, 2}, (texts, mails)
            assert 2 in counts, (texts, mails)
        # The resend carried the same code: either copy acknowledges, once.
        sms = next(m for m in rig.kannel.sent_messages() if "MASSKADELARM" in m.text)
        party = rig.party_for_number(sms.receiver)
        assert party is not None
        codes = {
            SMS_CODE.search(m.text).group(1)  # type: ignore[union-attr]
            for m in rig.kannel.sent_messages()
            if m.receiver.lstrip("+") == sms.receiver.lstrip("+") and "MASSKADELARM" in m.text
        }
        assert len(codes) == 1, codes
    finally:
        await bot.stop()
        await db.close()
