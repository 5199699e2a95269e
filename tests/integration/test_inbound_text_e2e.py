"""Hostile e-mail through the real bot: what a reply only quotes never acknowledges (issue 10).

One night, the real wired bot (Synapse, E2EE phones, Kannel, the SMTP listener, the relay):
Uppsala alarms; then, each with the real reply code of its own alarm e-mail,

- Värmland answers from Outlook on the web, HTML only, "Received, we will confirm" above the
  quoted alarm (``divRplyFwdMsg`` with the original as its sibling): no acknowledgement, and the
  bot says it could not read a code;
- Gävleborg's Exchange out-of-office answers, subject "Automatiskt svar:", quoting the alarm
  unprefixed: no acknowledgement, audited, and *no answer* (answering auto-replies is how mail
  loops start);
- a forger sends Värmland's code with ``From: =?utf-8?q?tib=40varmland=2Eexample?=
  <attacker@evil.example>``: bound to the forger's address, refused, not answered;
- Värmland then writes "KVITTERA <code> inte än": refused as a no, and told so;
- Dalarna answers from Outlook on the web with its code on top: acknowledged, pledge 6 (so the
  path works and the refusals above are the rule, not a broken listener).

It ends by checking that nobody got mail they should not have.
"""

from __future__ import annotations

import asyncio
import quopri
import re
from collections.abc import AsyncIterator
from email import message_from_bytes
from email import policy as email_policy
from email.utils import formataddr, parseaddr
from pathlib import Path

import aiosmtplib
import pytest

from bot.demo.rig import BridgeRig
from bot.demo.script import board_saying, board_text, say
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

FOUR = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
    ("varmland", "Region Värmland"),
)
MAIL_CODE = re.compile(r"KVITTERA (\d{6}) ")
FIXTURES = Path(__file__).resolve().parents[1] / "bridges" / "fixtures" / "replies"
FIXTURE_CODE = "482193"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    async with BridgeRig(tmp_path / "rig") as started:
        yield started


def layout(name: str, code: str, address: str, fixture_address: str) -> bytes:
    """A real reply layout from the fixtures, written by ``address`` with ``code`` (decoded,
    replaced and encoded again: quoted-printable may break a line inside the code)."""
    msg = message_from_bytes((FIXTURES / name).read_bytes(), policy=email_policy.compat32)
    replaced = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        replaced += text.count(FIXTURE_CODE)
        text = text.replace(FIXTURE_CODE, code).replace(fixture_address, address)
        part.set_payload(quopri.encodestring(text.encode()).decode("ascii"))
    assert replaced, name
    # The fixture's From: is raw UTF-8; write it back as a well-formed header (an encoded-word
    # display name, the address outside it), as a real mail client does.
    display, _ = parseaddr(_raw_from(FIXTURES / name))
    msg.replace_header("From", formataddr((display, address), charset="utf-8"))
    return msg.as_bytes()


def _raw_from(path: Path) -> str:
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        if line.lower().startswith("from:"):
            return line[5:].strip()
    raise AssertionError(f"{path.name} has no From: line")


OUT_OF_OFFICE = """From: TiB Region Gävleborg <{address}>
To: Larmkedja <{bot}>
Subject: Automatiskt svar: [H-1] MASSKADELARM – Katastrofläge
Date: Wed, 26 Nov 2026 04:13:02 +0100
Message-ID: <OOF.gavleborg.1@gavleborg.example>
Thread-Topic: [H-1] MASSKADELARM – Katastrofläge
X-MS-Exchange-Organization-AutoReply: OOF
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Jag är tjänstledig till och med 30 november. Vid brådskande ärenden, ring 026-15 50 00.

Från: Larmkedja <{bot}>
Skickat: den 26 november 2026 04:12
Ämne: [H-1] MASSKADELARM – Katastrofläge
Kvittera genom att svara på detta mejl med raden överst: KVITTERA {code} <antal>
"""

FORGED = """From: =?utf-8?q?tib=40varmland=2Eexample?= <attacker@evil.example>
To: {bot}
Subject: Re: [H-1] MASSKADELARM
Message-ID: <forged.1@evil.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

KVITTERA {code} 9
"""

NEGATED = """From: TiB Region Värmland <{address}>
To: {bot}
Subject: Re: [H-1] MASSKADELARM
Message-ID: <negated.1@varmland.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

KVITTERA {code} inte än

Den 26 nov. 2026 kl. 04:12 skrev Larmkedja <{bot}>:
> Kvittera genom att svara på detta mejl med raden överst: KVITTERA {code} <antal>
"""


async def deliver(rig: BridgeRig, raw: bytes | str, envelope_from: str) -> None:
    """As the organisation's mail server relays a reply to the bot's listener."""
    data = raw.encode() if isinstance(raw, str) else raw
    await aiosmtplib.send(
        data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
        hostname="127.0.0.1",
        port=rig.mail_port,
        sender=envelope_from,
        recipients=[rig.bot_address],
        start_tls=False,
        timeout=15,
    )


async def handled(db: BotDatabase, count: int, timeout: float = 30) -> list[object]:
    """Until ``count`` e-mail replies have been decided (acknowledged, refused or ignored)."""
    async with asyncio.timeout(timeout):
        while True:
            entries = [
                e
                for e in await db.audit()
                if e.action.startswith("inbound_reply.")
                or (e.action == "ack.recorded" and e.detail.get("channel") == "email")
            ]
            if len(entries) >= count:
                return entries
            await asyncio.sleep(0.1)


async def test_quoted_codes_auto_replies_and_forged_senders_acknowledge_nothing(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await make_world(rig=rig, regions=FOUR)
    db = BotDatabase(world)
    try:
        async with bot_in_process(world.config_path):
            await world.wait_bot_joined()
            await say(world, "uppsala", "!händelse katastrofläge Tågurspårning Märsta", "H-1")
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
            codes = {}
            for party in ("dalarna", "gavleborg", "varmland"):
                mail = await rig.mail.wait_for(
                    lambda m, p=party: (
                        rig.address(p) in m.rcpt_tos and "MASSKADELARM" in m.subject
                    ),
                    timeout=30,
                )
                match = MAIL_CODE.search(mail.text)
                assert match is not None, mail.text
                codes[party] = match.group(1)
            alarms_seen = len(rig.mail.received)
            varmland, gavleborg, dalarna = (
                rig.address(p) for p in ("varmland", "gavleborg", "dalarna")
            )
            bot = rig.bot_address

            await deliver(
                rig,
                layout(
                    "owa-en-html-only-quote-only.eml",
                    codes["varmland"],
                    varmland,
                    "vakt@helse-sorost.example",
                ),
                varmland,
            )
            await deliver(
                rig,
                OUT_OF_OFFICE.format(address=gavleborg, bot=bot, code=codes["gavleborg"]),
                gavleborg,
            )
            await deliver(
                rig, FORGED.format(bot=bot, code=codes["varmland"]), "attacker@evil.example"
            )
            await deliver(
                rig, NEGATED.format(address=varmland, bot=bot, code=codes["varmland"]), varmland
            )
            await deliver(
                rig,
                layout("owa-sv.eml", codes["dalarna"], dalarna, "tib@gavleborg.example"),
                dalarna,
            )
            entries = await handled(db, 5)

            uppsala = world.officer("uppsala")
            board = await board_saying(world, uppsala, world.rooms["uppsala"], "via e-post")
            lines = {p: next(x for x in board.splitlines() if name in x) for p, name in FOUR}
            assert lines["dalarna"].startswith("✅"), board
            assert "sekundärtransporter: 6" in lines["dalarna"], board
            for party in ("gavleborg", "varmland"):
                assert lines[party].startswith("⏳"), board

            # The answers: Värmland twice (no code read; a no), Dalarna once (acknowledged).
            unparsed = await rig.mail.wait_for(
                lambda m: varmland in m.rcpt_tos and "gick inte att läsa" in m.text, timeout=30
            )
            negated = await rig.mail.wait_for(
                lambda m: varmland in m.rcpt_tos and "låter som ett nej" in m.text, timeout=30
            )
            thanks = await rig.mail.wait_for(
                lambda m: dalarna in m.rcpt_tos and "Kvitterat" in m.text, timeout=30
            )
            assert codes["varmland"] not in unparsed.text + negated.text
            assert "6 sekundärtransporter" in thanks.text

            acks = [e.detail for e in await db.audit("ack.recorded")]
            assert [(a["party"], a["channel"]) for a in acks] == [("dalarna", "email")]
            ignored = await db.audit("inbound_reply.ignored")
            assert [e.detail["reason"] for e in ignored] == ["automatic"]
            assert "Automatiskt svar" in ignored[0].detail["subject"]
            refused = [e.detail for e in await db.audit("inbound_reply.refused")]
            assert [(r["reason"], r["answered"]) for r in refused] == [("wrong", False)]
            rejected = [e.detail for e in await db.audit("reply_code.rejected")]
            assert [r["reason"] for r in rejected] == ["foreign"]  # bound to the forger
            unread = sorted(e.detail["problem"] for e in await db.audit("inbound_reply.unparsed"))
            assert unread == ["negated", "no_code"]
            assert len(entries) == 5

            # Nobody got mail they should not have: nothing to Gävleborg's auto-reply, nothing
            # to the forger, and nothing else to anyone. The answers were decided in the same
            # transactions as the refusals and acknowledgement above, so the outbox says it all.
            answers = [r for r in await db.outbox_rows() if r.channel == "email"]
            answers = [r.destination for r in answers if r.purpose == "reply"]
            assert sorted(answers) == sorted([varmland, varmland, dalarna]), answers
            later = rig.mail.received[alarms_seen:]
            recipients = sorted(r for m in later for r in m.rcpt_tos)
            assert recipients == sorted([varmland, varmland, dalarna]), [
                (m.rcpt_tos, m.subject) for m in later
            ]
            text = board_text(world, uppsala, world.rooms["uppsala"], "H-1") or ""
            assert "attacker" not in text
        assert await db.verify_audit_chain() is None
    finally:
        await db.close()
