"""The alarm on every channel, and acknowledgements by SMS, e-mail and link (issue: bridges).

Real parts throughout: Synapse and E2EE phones for the rooms, Kannel (bearerbox, smsbox,
fakesmsc) for SMS both ways, an SMTP mailbox that replies into the bot's own listener, and the
bot's HTTP endpoint for the link.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.demo.mailsink import SinkMail
from bot.demo.rig import SHORT_NUMBER, BridgeRig
from bot.demo.script import board_saying, board_text, say
from bot.demo.world import World
from bot.matrix.session import StartupRefused
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

FOUR = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
    ("varmland", "Region Värmland"),
)
SMS_CODE = re.compile(r"KVITTERA (\d{4}) ")
MAIL_CODE = re.compile(r"KVITTERA (\d{6}) ")
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/ack/[A-Za-z0-9._~-]+)")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    async with BridgeRig(tmp_path / "rig") as started:
        yield started


async def bridged_world(make_world: WorldFactory, rig: BridgeRig, **kwargs: object) -> World:
    kwargs.setdefault("regions", FOUR)
    return await make_world(rig=rig, **kwargs)


async def alarm_sms(rig: BridgeRig, party: str, timeout: float = 30) -> str:
    sent = await rig.kannel.wait_for_sent(receiver=rig.number(party), timeout=timeout)
    return sent[-1].text


async def alarm_mail(rig: BridgeRig, party: str, timeout: float = 30) -> SinkMail:
    return await rig.mail.wait_for(
        lambda m: rig.address(party) in m.rcpt_tos and "MASSKADELARM" in m.subject,
        timeout=timeout,
    )


def code_in(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    assert match is not None, text
    return match.group(1)


async def test_alarm_reaches_every_channel_and_each_channel_acknowledges(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await bridged_world(make_world, rig)
    db = BotDatabase(world)
    try:
        async with bot_in_process(world.config_path) as app:
            await world.wait_bot_joined()
            await say(world, "uppsala", "!händelse katastrofläge Tågurspårning Märsta", "H-1")
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")

            # Every other region: the alarm in its room, by SMS and by e-mail.
            for party in ("dalarna", "gavleborg", "varmland"):
                officer = world.officer(party)
                in_room = await officer.wait_for(
                    lambda m: m.sender == world.bot_user_id and "MASSKADELARM H-1" in m.body
                )
                assert in_room.encrypted
            texts = {p: await alarm_sms(rig, p) for p in ("dalarna", "gavleborg", "varmland")}
            mails = {p: await alarm_mail(rig, p) for p in ("dalarna", "gavleborg", "varmland")}
            for text in texts.values():
                assert text.startswith("MASSKADELARM H-1 Katastrofläge: Tågurspårning Märsta")
                assert re.search(r"\nSvara: KVITTERA \d{4} <antal>$", text), text
                assert "{code}" not in text
            for mail in mails.values():
                assert "H-1" in mail.subject
                assert MAIL_CODE.search(mail.text), mail.text
                assert LINK.search(mail.text), mail.text
            uppsala = world.officer("uppsala")

            # Dalarna answers the SMS, with a pledge.
            code = code_in(SMS_CODE, texts["dalarna"])
            before = len(rig.kannel.sent_messages())
            rig.kannel.inject_mo(rig.number("dalarna"), SHORT_NUMBER, f"kvittera {code} 6")
            board = await board_saying(world, uppsala, world.rooms["uppsala"], "Region Dalarna")
            board = await board_saying(
                world, uppsala, world.rooms["uppsala"], "…" + rig.number("dalarna")[-4:]
            )
            line = next(x for x in board.splitlines() if "Region Dalarna" in x)
            assert line.startswith("✅"), line
            assert "via sms" in line, line
            assert "sekundärtransporter: 6" in line, line
            answer = await rig.kannel.wait_for_sent(
                after=before, receiver=rig.number("dalarna"), timeout=15
            )
            assert answer[0].text.startswith("Kvitterat: H-1 för Region Dalarna, 6 sek"), answer
            told = await world.officer("dalarna").wait_for(
                lambda m: m.sender == world.bot_user_id and "via sms" in m.body
            )
            assert "Region Dalarna har kvitterat H-1 via sms" in told.body

            # Gävleborg replies to the e-mail, top-posted, quoting the alarm.
            code = code_in(MAIL_CODE, mails["gavleborg"].text)
            reply = await rig.mail.reply(
                mails["gavleborg"], f"KVITTERA {code} 5\n\nMvh TiB", rig.address("gavleborg")
            )
            board = await board_saying(world, uppsala, world.rooms["uppsala"], "via e-post")
            line = next(x for x in board.splitlines() if "Region Gävleborg" in x)
            assert line.startswith("✅"), line
            assert "tib@gavleborg.example" in line, line
            answer_mail = await rig.mail.wait_for(
                lambda m: rig.address("gavleborg") in m.rcpt_tos and "Kvitterat" in m.text
            )
            assert "H-1 för Region Gävleborg, 5 sekundärtransporter" in answer_mail.text
            assert answer_mail.header("In-Reply-To") == str(reply["Message-ID"])  # one thread
            assert "Mvh" not in line  # the greeting under the code is not a remark

            # Värmland opens the link (GET: a page, no acknowledgement), then confirms (POST).
            link = code_in(LINK, mails["varmland"].text)
            async with aiohttp.ClientSession() as http:
                async with http.get(link) as page:
                    assert page.status == 200
                    html = await page.text()
                assert "H-1" in html
                token = link.rpartition("/")[2]
                text = board_text(world, uppsala, world.rooms["uppsala"], "H-1") or ""
                line = next(x for x in text.splitlines() if "Region Värmland" in x)
                assert line.startswith("⏳"), line
                assert not [
                    e
                    for e in await db.audit("ack.recorded")
                    if e.detail.get("party") == "varmland"
                ]
                async with http.post(link, data={"token": token, "count": "7"}) as done:
                    assert done.status == 200
                async with http.post(link, data={"token": token, "count": "7"}) as again:
                    assert again.status == 200  # "already acknowledged", not a second ack
            board = await board_saying(world, uppsala, world.rooms["uppsala"], "via länk")
            line = next(x for x in board.splitlines() if "Region Värmland" in x)
            assert line.startswith("✅"), line
            assert "sekundärtransporter: 7" in line, line
            assert "Alla har kvitterat" in board or "⏳" not in board, board

            # The metrics say the same, read from the database.
            assert app.metrics is not None
            await app.metrics.refresh()
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{rig.http_port}/metrics") as response,
            ):
                metrics = await response.text()
            assert 'larmkedja_decisions{action="ack.recorded"} 3.0' in metrics, metrics
            assert 'larmkedja_decisions{action="chain.started"} 1.0' in metrics
            assert 'larmkedja_outbox_messages{channel="sms",status="sent"}' in metrics
        acks = [e.detail for e in await db.audit("ack.recorded")]
        assert sorted((a["party"], a["channel"]) for a in acks) == [
            ("dalarna", "sms"),
            ("gavleborg", "email"),
            ("varmland", "link"),
        ]
        assert await db.verify_audit_chain() is None
    finally:
        await db.close()


async def test_a_taken_http_port_refuses_the_start_with_a_clear_message(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await bridged_world(make_world, rig, regions=FOUR[:2])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", rig.http_port))
        squatter.listen()
        with pytest.raises(StartupRefused, match=r"bridges\.http: cannot listen on 127\.0\.0\.1:"):
            async with bot_in_process(world.config_path):
                pass
