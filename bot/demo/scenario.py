"""``larmkedja demo``: the whole thing on one machine, printed as a readable transcript.

A throwaway Synapse, the bot on SQLite, and scripted duty officers of the seven regions of
Sjukvårdsregion Mellansverige with their encrypted rooms; a real Kannel SMS gateway whose fake
SMSC plays the duty officers' handsets, and an SMTP server that plays their function mailboxes.
What is printed is what each person's E2EE client decrypted, what each handset and mailbox
received, not what the bot meant to send. Everything is removed at the end unless ``--workdir``
is given.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from bot.app import App
from bot.config import load_config
from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.kannel import KannelBinaries, KannelNotInstalledError, SentSms
from bot.demo.mailsink import SinkMail
from bot.demo.people import Person, Received
from bot.demo.rig import SHORT_NUMBER, BridgeRig
from bot.demo.script import board_saying, say, say_as
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
#: Late and away from the screen: answers the alarm SMS, with a pledge.
BY_SMS = "sormland"
#: Answers the alarm e-mail from the function mailbox, with a pledge.
BY_EMAIL = "vastmanland"

SMS_CODE = re.compile(r"KVITTERA (\d{4})\b")
MAIL_CODE = re.compile(r"KVITTERA (\d{6})\b")
#: Longest text shown of a line of an SMS or an e-mail (the transcript fits a phone).
CLIP = 60
INDENT = " " * 9


def clip(text: str, width: int = CLIP) -> str:
    """The start of ``text``, cut with … if longer than ``width``."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def clip_left(text: str, width: int = CLIP) -> str:
    """The end of ``text`` (where a reply line has its code), cut at a word with … in front."""
    if len(text) <= width:
        return text
    tail = text[-(width - 2) :]
    return "… " + (tail.split(" ", 1)[1] if " " in tail else tail)


def code_in(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    if match is None:
        raise RuntimeError(f"no reply code in {text!r}")
    return match.group(1)


class Transcript:
    """Prints who said what, in which room, by SMS or e-mail, with the time since the demo
    started."""

    def __init__(self, world: World, rig: BridgeRig) -> None:
        self.world = world
        self.rig = rig
        self.started = time.monotonic()
        parties = (*world.config["regions"], *world.config["parties"])
        self.room_names = {str(p["room"]): str(p["name"]) for p in parties}
        self.party_names = {str(p["id"]): str(p["name"]) for p in parties}

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
            print(f"{INDENT}│ {line}", flush=True)

    def _holder(self, number: str) -> str:
        party = self.rig.party_for_number(number)
        return self.party_names.get(party or "", number)

    def _head(self, text: str, stamp: bool) -> None:
        if stamp:
            self.say(text)
        else:  # one of a block under a stamped line
            print(f"{INDENT}{text}", flush=True)

    def _lines(self, lines: list[str]) -> None:
        for line in lines:
            print(f"{INDENT}│ {line}", flush=True)

    def sms(self, sms: SentSms, *, stamp: bool = False) -> None:
        """An SMS as the handset shows it: whose phone, the first line, the reply line."""
        self._head(f"📱 SMS → {self._holder(sms.receiver)} ({sms.receiver}):", stamp)
        lines = sms.text.splitlines() or [""]
        if any("KVITTERA" in x for x in lines[1:]):  # an alarm: its gist and how to answer
            lines = [clip(lines[0])] + [clip_left(x) for x in lines[1:] if "KVITTERA" in x]
        self._lines(lines)

    def sms_sent(self, party: str, text: str) -> None:
        """An SMS a handset sends to our short number."""
        number = self.rig.number(party)
        self.say(f"📱 SMS {self.party_names[party]} ({number}) → {SHORT_NUMBER}:")
        self._lines([text])

    def mail_sent(self, sender: str, to: str, subject: str, lines: list[str]) -> None:
        """An e-mail a function mailbox sends to the bot."""
        self.say(f"✉ e-post {sender} → {to}:")
        self._lines([f"Ämne: {clip(subject, CLIP - 6)}", *lines])

    def mail(self, mail: SinkMail, *, stamp: bool = False) -> None:
        """An e-mail as the mailbox shows it: to whom, the subject, the reply line."""
        self._head(f"✉ e-post → {', '.join(mail.rcpt_tos)}:", stamp)
        lines = [x.strip() for x in mail.text.splitlines() if x.strip()]
        how = next((x for x in lines if "KVITTERA" in x), None)
        if how is not None:  # an alarm: its subject and the line with the reply code
            shown = [f"Ämne: {clip(mail.subject, CLIP - 6)}", clip_left(how)]
        else:  # an answer: all of it, it is short
            shown = [f"Ämne: {mail.subject}", *[x for x in lines if x != mail.subject]]
        self._lines(shown)

    def board_line(self, board: str, party: str) -> None:
        name = self.party_names[party]
        line = next((x for x in board.splitlines() if f" {name}:" in x), "")
        self.say("Status board in Region Uppsala's room, the line of " + name + ":")
        print(f"{INDENT}┃ {line}", flush=True)


class Narrator:
    """Plays the night: people type, the transcript shows what their phones decrypted."""

    def __init__(self, world: World, rig: BridgeRig, transcript: Transcript) -> None:
        self.world = world
        self.rig = rig
        self.t = transcript
        self.uppsala = world.officer("uppsala")

    async def says(self, party: str, text: str, expect: str = "") -> Received:
        person, room = self.world.officer(party), self.world.rooms[party]
        self.t.typed(person, room, text)
        answer = await say(self.world, party, text, expect, timeout=60)
        self.t.received(person, answer)
        return answer

    async def board(self, expect: str) -> str:
        text = await board_saying(
            self.world, self.uppsala, self.world.rooms["uppsala"], expect, timeout=60
        )
        self.t.say(f"Status board in Region Uppsala's room (edited in place), {expect}:")
        for line in text.splitlines():
            print(f"{INDENT}┃ {line}", flush=True)
        return text

    async def told_in_room(self, party: str, expect: str) -> None:
        """The bot's notice in ``party``'s own room that contains ``expect``."""
        person = self.world.officer(party)
        notice = await person.wait_for(
            lambda m: m.sender == self.world.bot_user_id and expect in m.body, timeout=60
        )
        self.t.received(person, notice)

    async def sms_to(self, party: str, needle: str) -> SentSms:
        """The first SMS at ``party``'s handset containing ``needle``, waiting for it."""
        number = self.rig.number(party)
        async with asyncio.timeout(60):
            while True:
                sent = await self.rig.kannel.wait_for_sent(receiver=number, timeout=60)
                found = next((m for m in sent if needle in m.text), None)
                if found is not None:
                    return found
                await asyncio.sleep(0.05)

    async def mail_to(self, party: str, needle: str) -> SinkMail:
        """The first e-mail in ``party``'s mailbox with ``needle`` in its subject."""
        address = self.rig.address(party)
        return await self.rig.mail.wait_for(
            lambda m: address in m.rcpt_tos and needle in m.subject, timeout=60
        )

    async def alarm_sms(self) -> dict[str, SentSms]:
        texts = {party: await self.sms_to(party, "MASSKADELARM") for party in ALARMED}
        self.t.say(f"SMS at the handsets (Kannel's fake SMSC), one per party, {len(texts)}:")
        for sms in texts.values():
            self.t.sms(sms)
        return texts

    async def alarm_mails(self) -> dict[str, SinkMail]:
        mails = {party: await self.mail_to(party, "MASSKADELARM") for party in ALARMED}
        self.t.say(f"E-post in the function mailboxes (SMTP), one per party, {len(mails)}:")
        for mail in mails.values():
            self.t.mail(mail)
        return mails

    async def stand_down_elsewhere(self) -> None:
        """The stand-down on every handset and in every mailbox: one of each shown."""
        texts = [await self.sms_to(party, "AVLARMERING") for party in ALARMED]
        mails = [await self.mail_to(party, "AVLARMERING") for party in ALARMED]
        self.t.sms(texts[0], stamp=True)
        self.t.mail(mails[0], stamp=True)
        self.t.say(f"… the same on all {len(texts)} handsets and in all {len(mails)} mailboxes.")

    async def answers_mail(self, party: str, alarm: SinkMail, pledge: int) -> None:
        """``party``'s mailbox replies to the alarm e-mail; the bot answers by e-mail and in
        the room, and the board says "via e-post"."""
        address = self.rig.address(party)
        line = f"KVITTERA {code_in(MAIL_CODE, alarm.text)} {pledge}"
        # Top-posted, the mail client's signature under "-- ", the alarm quoted below it.
        signature = f"TiB {self.t.party_names[party]}"
        sent = await self.rig.mail.reply(alarm, f"{line}\n\n-- \n{signature}", address)
        self.t.mail_sent(
            address, self.rig.bot_address, str(sent["Subject"]), [line, "-- ", signature]
        )
        print(f"{INDENT}│ > (the alarm, quoted)", flush=True)
        answer = await self.mail_to(party, "Kvitterat")
        self.t.mail(answer, stamp=True)
        await self.told_in_room(party, "via e-post")
        board = await board_saying(
            self.world, self.uppsala, self.world.rooms["uppsala"], "via e-post", timeout=60
        )
        self.t.board_line(board, party)

    async def answers_sms(self, party: str, alarm: SentSms, pledge: int) -> None:
        """``party``'s handset answers the alarm SMS; the bot answers by SMS and in the room,
        and the board says "via sms"."""
        number = self.rig.number(party)
        text = f"KVITTERA {code_in(SMS_CODE, alarm.text)} {pledge}"
        self.t.sms_sent(party, text)
        self.rig.kannel.inject_mo(number, SHORT_NUMBER, text)
        self.t.sms(await self.sms_to(party, "Kvitterat"), stamp=True)
        await self.told_in_room(party, "via sms")


async def play(world: World, rig: BridgeRig, transcript: Transcript) -> None:
    night = Narrator(world, rig, transcript)
    transcript.say("Every duty officer asks for help in their own encrypted room.")
    await night.says("uppsala", "!hjälp", expect="!händelse")
    for party in [p for p in transcript.party_names if p != "uppsala"]:
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
    texts = await night.alarm_sms()
    mails = await night.alarm_mails()
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
    transcript.say("Region Västmanland's TiB answers the alarm e-mail from the mailbox.")
    await night.answers_mail(BY_EMAIL, mails[BY_EMAIL], 6)
    for party, text in (
        ("orebro", "!kvittera 5"),
        ("socialstyrelsen", "!kvittera"),
        ("blodcentralen-uppsala", "!kvittera"),
    ):
        await night.says(party, text, expect="Kvittens")
    await night.board("kvitterat 7/8")
    transcript.say("Region Sörmland is slow to answer … its TiB is on the road, with a phone.")
    await asyncio.sleep(3)
    await night.answers_sms(BY_SMS, texts[BY_SMS], 8)
    board = await night.board("kvitterat 8/8")
    if "via sms" not in board:
        raise RuntimeError("the board does not show Sörmland's acknowledgement via sms")
    await night.says("uppsala", "!avlarma Alla skadade omhändertagna", expect="H-1")
    for party in ALARMED:
        await world.officer(party).wait_for(
            lambda m: m.sender == world.bot_user_id and "omhändertagna" in m.body, timeout=60
        )
    transcript.say(f"Stand-down decrypted in all {len(ALARMED)} alarmed rooms.")
    await night.stand_down_elsewhere()
    await night.board("Avlarmad")


async def play_exercise(world: World, rig: BridgeRig, transcript: Transcript) -> None:
    """``larmkedja demo --exercise``: the coordinator runs an exercise of the whole chain,
    marked ÖVNING on every channel; the parties acknowledge by room, ✅, SMS and e-mail; the
    last acknowledgement ends it and the coordination room gets the report and its chart."""
    night = Narrator(world, rig, transcript)
    coordinator, room = world.coordinator, world.coordination_room
    assert coordinator is not None
    assert room is not None
    transcript.room_names[room] = "Samordning"
    transcript.say("The preparedness coordinator starts an exercise of the whole chain.")
    transcript.typed(coordinator, room, "!övning Bussolycka E4 (övning)")
    started = await say_as(
        world, coordinator, room, "!övning Bussolycka E4 (övning)", "Ö-1 startad", timeout=60
    )
    transcript.received(coordinator, started)
    alarms: dict[str, Received] = {}
    for party in ALARMED:
        alarms[party] = await world.officer(party).wait_for(
            lambda m: m.sender == world.bot_user_id and "Ö-1" in m.body, timeout=60
        )
    transcript.received(world.officer("dalarna"), alarms["dalarna"])
    transcript.say(f"… marked ÖVNING in all {len(alarms)} rooms, in each party's language.")
    texts = {party: await night.sms_to(party, "Ö-1") for party in ALARMED}
    mails = {party: await night.mail_to(party, "Ö-1") for party in ALARMED}
    night.t.sms(texts[BY_SMS])
    night.t.mail(mails[BY_EMAIL])
    for party in ALARMED:
        if party == BY_SMS:
            text = f"KVITTERA {code_in(SMS_CODE, texts[party].text)} 4"
            transcript.sms_sent(party, text)
            rig.kannel.inject_mo(rig.number(party), SHORT_NUMBER, text)
        elif party == BY_EMAIL:
            line = f"KVITTERA {code_in(MAIL_CODE, mails[party].text)} 6"
            await rig.mail.reply(mails[party], line, rig.address(party))
            transcript.mail_sent(rig.address(party), rig.bot_address, "Re: Ö-1", [line])
        elif party == "varmland":
            transcript.say(f"[Region Värmland] {world.officer(party).user_id} reacts ✅")
            await world.officer(party).react(world.rooms[party], alarms[party].event_id, "✅")
        else:
            await night.says(party, "!kvittera 5", expect="Ö-1")
    report = await coordinator.wait_for(
        lambda m: m.sender == world.bot_user_id and "Rapport övning Ö-1" in m.body, timeout=90
    )
    transcript.received(coordinator, report)
    chart = await coordinator.wait_for(
        lambda m: m.sender == world.bot_user_id and m.msgtype == "m.image", timeout=60
    )
    png = await coordinator.download(chart)
    transcript.say(
        f"[Samordning] larmkedja {'🔒' if chart.encrypted else '⚠ unencrypted'} m.image "
        f"{chart.content.get('filename', '?')}: {len(png)} bytes PNG, decrypted on the phone"
    )
    if not png.startswith(b"\x89PNG"):
        raise RuntimeError("the exercise chart is no PNG")


def summary(world: World, rig: BridgeRig, transcript: Transcript) -> None:
    """What reached each party: messages its phone decrypted, SMS, e-mails."""
    sent = rig.kannel.sent_messages()
    print("\nWhat reached each party (🔒 bot messages decrypted · 📱 SMS · ✉ e-post):")
    width = max(len(n) for n in transcript.party_names.values())
    totals = [0, 0, 0, 0]
    for party in transcript.party_names:
        person = world.officer(party)
        own = person.messages_from(world.bot_user_id, world.rooms[party])
        decrypted = sum(1 for m in own if m.encrypted)
        plain = len(own) - decrypted
        sms = sum(1 for s in sent if s.receiver == rig.number(party))
        mails = sum(1 for m in rig.mail.received if rig.address(party) in m.rcpt_tos)
        for i, n in enumerate((decrypted, plain, sms, mails)):
            totals[i] += n
        warn = f"  ⚠ {plain} unencrypted" if plain else ""
        print(
            f"  {transcript.party_names[party]:<{width}} 🔒{decrypted:>3} 📱{sms:>2} ✉{mails:>2}"
            f"{warn}",
            flush=True,
        )
    print(
        f"  {'':<{width}} 🔒{totals[0]:>3} 📱{totals[2]:>2} ✉{totals[3]:>2}"
        + (f"  ⚠ {totals[1]} unencrypted" if totals[1] else ""),
        flush=True,
    )


async def _quietly(what: str, stopping: Awaitable[object]) -> None:
    try:
        await stopping
    except Exception as exc:
        print(f"  stopping {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)


async def run_demo(workdir: Path | None = None, *, exercise: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("nio").setLevel(logging.ERROR)  # key-sharing chatter is not the story
    keep = workdir is not None
    root = workdir or Path(tempfile.mkdtemp(prefix="larmkedja-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    homeserver = ThrowawayHomeserver(root / "synapse")
    rig = BridgeRig(root / "rig")
    app: App | None = None
    world: World | None = None
    try:
        KannelBinaries.from_env().check()  # before anything starts: no SMS, no demo
        print(
            "larmkedja demo: starting a throwaway Synapse, Kannel and a mailbox on loopback …",
            flush=True,
        )
        try:
            async with asyncio.TaskGroup() as starting:
                starting.create_task(homeserver.start())
                starting.create_task(rig.start())
        except ExceptionGroup as failed:  # the first failure, not a group, in one line
            raise failed.exceptions[0] from None
        print(
            f"  Synapse up at {homeserver.url} in {homeserver.startup_seconds:.1f} s\n"
            f"  Kannel (bearerbox, smsbox, fake SMSC) up in "
            f"{rig.kannel.startup_seconds or 0:.1f} s; SMTP mailbox on port {rig.mail.port}",
            flush=True,
        )
        for party in ("uppsala", *ALARMED):  # numbered in the order the transcript shows
            rig.number(party)
        world = await build_world(homeserver, root / "world", unique=False, rig=rig)
        print(
            f"  {len(world.officers)} duty officers and the coordinator registered; "
            f"{len(world.rooms) + 1} encrypted rooms created with the bot invited\n"
            f"  every party has a handset ({rig.number('uppsala')} …) and a function "
            f"mailbox ({rig.address('uppsala')} …)",
            flush=True,
        )
        app = App(load_config(world.config_path))
        await app.start()
        await app.wait_ready()
        await world.wait_bot_joined()
        device = app.session.client.device_id if app.session else "?"
        print(
            f"  bot {world.bot_user_id} (device {device}, cross-signed) joined every room;\n"
            f"  it sends SMS from {SHORT_NUMBER} and e-post from {rig.bot_address}\n",
            flush=True,
        )
        transcript = Transcript(world, rig)
        await (play_exercise if exercise else play)(world, rig, transcript)
        summary(world, rig, transcript)
        print("\nlarmkedja demo: done.", flush=True)
        return 0
    except Exception as exc:  # the demo explains failure in one line and cleans up
        print(f"larmkedja demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if isinstance(exc, KannelNotInstalledError):
            pass  # nothing was started, the message says what to do
        elif keep:
            print(f"  homeserver log: {homeserver.log_path}", file=sys.stderr)
            print(f"  Kannel's logs: {rig.workdir / 'kannel'}", file=sys.stderr)
        else:
            print("  rerun with --workdir DIR to keep the logs", file=sys.stderr)
        return 1
    finally:  # also on Ctrl-C; each part is stopped even if another one fails to stop
        if app is not None:
            await _quietly("the bot", app.stop())
        if world is not None:
            await _quietly("the people", world.cast.close())
        else:  # cut short while it was built: its clients cannot be closed, only forgotten
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        await _quietly("Kannel and the mailbox", rig.close())
        await _quietly("Synapse", homeserver.stop() if keep else homeserver.aclose())
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"  files kept in {root}")
        await asyncio.sleep(0)
