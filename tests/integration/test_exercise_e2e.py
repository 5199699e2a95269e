"""Exercises end to end on real parts: Synapse with E2EE phones, Kannel for SMS both ways, an
SMTP mailbox that replies into the bot's listener (issue 13).

A coordinator schedules an exercise for the next minute, the bot is restarted between the
schedule and its time, the exercise fires by itself, every channel carries ÖVNING, parties
acknowledge by room, ✅, SMS and e-mail, the last acknowledgement ends it and the report and its
chart arrive decrypted in the coordination room. Then a live alarm during a second exercise:
the exercise is stopped, the live alarm carries no marker, and the exercise's SMS code does not
acknowledge the live incident.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.demo.rig import SHORT_NUMBER, BridgeRig
from bot.demo.script import say, say_as
from bot.demo.world import World
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

FIVE = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
    ("varmland", "Region Värmland"),
    ("vastmanland", "Region Västmanland"),
)
ALARMED = ("dalarna", "gavleborg", "varmland", "vastmanland")
SMS_CODE = re.compile(r"KVITTERA (\d{4}) ")
MAIL_CODE = re.compile(r"KVITTERA (\d{6}) ")
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/ack/[A-Za-z0-9._~-]+)")
COORDINATORS_MAIL = "beredskap@samordning.example"
ZONE = ZoneInfo("Europe/Stockholm")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    async with BridgeRig(tmp_path / "rig") as started:
        yield started


def code_in(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    assert match is not None, text
    return match.group(1)


async def sms_with(rig: BridgeRig, party: str, needle: str, after: int = 0) -> str:
    """The first SMS to ``party`` (after the first ``after`` sent) that contains ``needle``."""
    async with asyncio.timeout(30):
        while True:
            for sent in rig.kannel.sent_messages()[after:]:
                if sent.receiver == rig.number(party) and needle in sent.text:
                    return sent.text
            await asyncio.sleep(0.1)


def from_bot(world: World, text: str):  # type: ignore[no-untyped-def]
    return lambda m: m.sender == world.bot_user_id and text in m.body


async def test_a_scheduled_exercise_fires_after_a_restart_and_is_reported(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await make_world(regions=FIVE, coordination=True, rig=rig)
    world.config["exercises"] = {"email": [COORDINATORS_MAIL], "reminders_before_min": [1440]}
    world.write_config()
    coordinator = world.coordinator
    assert coordinator is not None
    assert world.coordination_room is not None
    db = BotDatabase(world)
    try:
        async with bot_in_process(world.config_path):
            await world.wait_bot_joined()
            now = datetime.now(ZONE)
            if now.second > 45:  # leave the bot time to plan it before its minute comes
                await asyncio.sleep(61 - now.second)
                now = datetime.now(ZONE)
            at = (now + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")
            planned = await say_as(
                world,
                coordinator,
                world.coordination_room,
                f"!övning schemalägg {at} Strömavbrott Akademiska",
                "Planerad som S-1",
            )
            assert planned.encrypted
            refused = await say(world, "dalarna", "!övning", "samordningsrummet")
            assert refused.body == "!övning fungerar bara i samordningsrummet."

        # restarted between the schedule and its time: the plan is a row, it fires by itself
        async with bot_in_process(world.config_path) as app:
            alarms = {}
            for party in ALARMED:
                alarms[party] = await world.officer(party).wait_for(
                    from_bot(world, "Ö-1"), timeout=120
                )
                assert alarms[party].encrypted
                assert alarms[party].body.startswith("ÖVNING: "), alarms[party].body
            texts = {}
            mails = {}
            for party in ALARMED:
                sent = await rig.kannel.wait_for_sent(receiver=rig.number(party), timeout=30)
                texts[party] = sent[-1].text
                assert texts[party].startswith("ÖVNING: "), texts[party]
                mails[party] = await rig.mail.wait_for(
                    lambda m, p=party: rig.address(p) in m.rcpt_tos and "Ö-1" in m.subject,
                    timeout=30,
                )
                assert mails[party].subject.startswith("ÖVNING: "), mails[party].subject
                assert mails[party].text.startswith("ÖVNING: "), mails[party].text
            # the link page of the exercise is marked too (GET shows, acknowledges nothing)
            link = code_in(LINK, mails["dalarna"].text)
            async with aiohttp.ClientSession() as http, http.get(link) as page:
                assert page.status == 200
                html = await page.text()
            assert "<h1>ÖVNING: " in html, html
            started = await coordinator.wait_for(from_bot(world, "övning Ö-1 startad"))
            assert started.body.startswith("ÖVNING: ")
            board = await coordinator.wait_for(from_bot(world, "Ö-1 ·"))
            assert board.body.startswith("ÖVNING: "), board.body

            # acknowledgements by room, ✅, SMS and e-mail
            await say(world, "dalarna", "!kvittera Ö-1 5", "Region Dalarna")
            await world.officer("gavleborg").react(
                world.rooms["gavleborg"], alarms["gavleborg"].event_id, "✅"
            )
            code = code_in(SMS_CODE, texts["varmland"])
            rig.kannel.inject_mo(rig.number("varmland"), SHORT_NUMBER, f"kvittera {code} 5")
            code = code_in(MAIL_CODE, mails["vastmanland"].text)
            await rig.mail.reply(
                mails["vastmanland"], f"KVITTERA {code} 5", rig.address("vastmanland")
            )

            # the last one ends it: the stand-down on every channel, the report and chart
            report = await coordinator.wait_for(from_bot(world, "Rapport övning Ö-1"), timeout=60)
            assert report.encrypted
            assert report.body.startswith("ÖVNING: Rapport övning Ö-1")
            assert "Avslutad: alla kvitterade." in report.body
            assert "Alla 4 av 4 kvitterade" in report.body
            for party, via in (
                ("dalarna", "i rummet"),
                ("gavleborg", "med ✅"),
                ("varmland", "via sms"),
                ("vastmanland", "via e-post"),
            ):
                line = next(x for x in report.body.splitlines() if x.startswith(REGION[party]))
                assert via in line, line
            chart = await coordinator.wait_for(
                lambda m: m.sender == world.bot_user_id and m.msgtype == "m.image"
            )
            assert chart.encrypted
            assert chart.body.startswith("ÖVNING: ")
            png = await coordinator.download(chart)
            assert png.startswith(b"\x89PNG")
            stored = await coordinator.client.download(mxc=chart.content["file"]["url"])
            assert not stored.body.startswith(b"\x89PNG")  # ciphertext on the server
            for party in ALARMED:
                ended = await world.officer(party).wait_for(from_bot(world, "Ö-1 från"))
                assert ended.body.startswith("ÖVNING: övning Ö-1 från Region Uppsala är avslutad")
            mail = await rig.mail.wait_for(
                lambda m: COORDINATORS_MAIL in m.rcpt_tos and "Rapport" in m.text, timeout=30
            )
            assert mail.subject.startswith("ÖVNING: ")

            # a live alarm during the next exercise wins
            before = len(rig.kannel.sent_messages())
            await say_as(world, coordinator, world.coordination_room, "!övning", "Ö-2 startad")
            second = await world.officer("dalarna").wait_for(from_bot(world, "Ö-2"))
            exercise_sms = await sms_with(rig, "dalarna", "Ö-2", before)
            assert "Ö-2" in exercise_sms
            assert second.body.startswith("ÖVNING: ")
            await say(world, "uppsala", "!händelse katastrofläge Tågurspårning", "H-1")
            stopped = await coordinator.wait_for(from_bot(world, "Ö-2 är avbruten"))
            assert "skarp händelse H-1" in stopped.body
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
            live = await world.officer("dalarna").wait_for(from_bot(world, "MASSKADELARM H-1"))
            assert not live.body.startswith("ÖVNING")
            live_sms = await sms_with(rig, "dalarna", "MASSKADELARM H-1", before)
            assert live_sms.startswith("MASSKADELARM H-1"), live_sms
            before = len(rig.kannel.sent_messages())
            # Dalarna answers the exercise's SMS after the live alarm: no live acknowledgement
            code = code_in(SMS_CODE, exercise_sms)
            rig.kannel.inject_mo(rig.number("dalarna"), SHORT_NUMBER, f"kvittera {code} 5")
            answer = await sms_with(rig, "dalarna", "Ö-2", before)
            assert not answer.startswith("Kvitterat"), answer
            acks = [e for e in await db.audit("ack.recorded") if e.subject == "H-1"]
            assert acks == []
            assert app.failure is None
        ended = await db.audit("exercise.ended")
        assert [(e.subject, e.detail["reason"]) for e in ended] == [
            ("Ö-1", "completed"),
            ("Ö-2", "live_incident"),
        ]
        assert await db.verify_audit_chain() is None
    finally:
        await db.close()


REGION = dict(FIVE)
