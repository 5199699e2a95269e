"""No secret in any log line or error message (acceptance criterion of the bridges issue).

The whole bot runs in this process with every log record captured at DEBUG, through a
scenario that walks the failure paths where secrets like to slip into text:

- the first SMS gateway has a wrong Kannel password (Kannel answers ``403 Authorization
  failed``; the client logs it and fails over to the second, right one);
- the SMTP relay demands AUTH; the first relay entry has a wrong password (535, logged, next
  relay), the second the right one;
- Kannel callbacks with a forged or missing secret, and one whose request line is too long
  for the HTTP server (its error is logged by aiohttp, quoting the request line);
- a tampered acknowledge link, a genuine one opened and confirmed;
- an alarm, a wrong code and an acknowledgement by SMS, a reply by e-mail that quotes the
  alarm (link and all).

The secrets: both Kannel passwords, both SMTP passwords (also as AUTH would encode them), the
gateway secret, the bridge secret, the bot's Matrix password, every link token issued, and the
forged callback secret. None may appear in a log record (message and traceback), the
process's stdout/stderr, an outbox row's ``last_error``, an audit entry, or any of Kannel's
own logs (which must not have the SMS texts, their codes or the numbers either). The HTTP
access log names routes, never paths or queries.

The same scenario then runs against the bot as a real process with ``log_level = "DEBUG"``,
its output written through ``bot.log_safety`` as an operator's journal would get it: besides
the secrets, no reply code, no link token, no unmasked phone number, no command body typed in
a room and no text of an SMS or e-mail (alarm or reply) may appear in any line of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from pydantic import SecretStr
from yarl import URL

from bot.demo.mailsink import MailSink, SinkMail
from bot.demo.rig import SHORT_NUMBER, BridgeRig
from bot.demo.script import board_saying, say
from bot.demo.world import World
from bot.http.app import build_app, serve
from bridges.sms.kannel import InboundSms
from tests.integration.botctl import BotProcess, bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

FOUR = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
    ("varmland", "Region Värmland"),
)
ALARMED = ("dalarna", "gavleborg", "varmland")
SMS_CODE = re.compile(r"KVITTERA (\d{4}) ")
MAIL_CODE = re.compile(r"KVITTERA (\d{6}) ")
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/ack/[A-Za-z0-9._~-]+)")
SMTP_USER = "larmkedja-relay"
ROUTES = {"/healthz", "/sms/inbound", "/sms/dlr", "/ack/{token}", "<unmatched>"}
ACCESS_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<route>\S+) (?P<status>\d{3}) \d+\.\d{3}s$")


class Recorder(logging.Handler):
    """Every record, formatted with its traceback, as the operator's log would show it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[tuple[str, str]] = []  # (logger name, formatted text)
        self.access: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:  # a record that cannot be formatted is itself a finding
            text = f"<unformattable record {record.name}: {exc!r}> {record.msg!r} {record.args!r}"
        self.lines.append((record.name, text))
        if record.name == "bot.http.app.access":
            self.access.append(record.getMessage())


@contextmanager
def everything_logged() -> Iterator[Recorder]:
    root = logging.getLogger()
    recorder = Recorder()
    level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)
        root.setLevel(level)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    """The rig, its mailbox an SMTP relay that wants a login (in clear: loopback only)."""
    rig = BridgeRig(tmp_path / "rig")
    rig.smtp_password = "smtp-" + secrets.token_urlsafe(18)  # type: ignore[attr-defined]
    rig.mail = MailSink(
        listener=("127.0.0.1", rig.mail_port),
        credentials={SMTP_USER: rig.smtp_password},  # type: ignore[attr-defined]
    )
    async with rig:
        yield rig


def forms(secret: str) -> set[str]:
    """The ways a secret can show up in text: as is, URL-encoded, base64 (as AUTH sends it)."""
    raw = secret.encode()
    found = {secret, quote(secret, safe=""), quote_plus(secret)}
    found |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return {f for f in found if len(f) >= 8}


def windows(mac: str, size: int = 16) -> set[str]:
    """Every ``size``-character piece of a link token's signature: a mail body logged line by
    line (quoted-printable, soft line breaks every 76 characters) splits the token, but it is
    still there to be copied. 16 random base64url characters never occur by chance."""
    return {mac[i : i + size] for i in range(len(mac) - size + 1)}


def auth_forms(user: str, password: str) -> set[str]:
    """AUTH PLAIN's initial response, in base64."""
    return {base64.b64encode(f"\0{user}\0{password}".encode()).decode()}


@dataclass
class Hostile:
    """A world whose first SMS gateway and first SMTP relay have wrong passwords."""

    world: World
    wrong_kannel: str
    wrong_smtp: str
    forged_gateway_secret: str
    matrix_password: str


def secret_file(world: World, name: str, value: str) -> dict[str, str]:
    path = world.workdir / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return {"file": str(path)}


async def hostile_world(make_world: WorldFactory, rig: BridgeRig) -> Hostile:
    wrong_kannel = "wrong-" + secrets.token_urlsafe(14)
    wrong_smtp = "wrong-smtp-" + secrets.token_urlsafe(14)
    smtp_password: str = rig.smtp_password  # type: ignore[attr-defined]
    world = await make_world(rig=rig, regions=FOUR)
    bridges = world.config["bridges"]
    right = dict(bridges["sms"]["gateways"][0], name="backup")
    bridges["sms"]["gateways"] = [
        dict(right, password=secret_file(world, "wrong-kannel", wrong_kannel), name="primary"),
        right,
    ]
    relay = {"host": "127.0.0.1", "port": rig.mail.port, "starttls": False}
    bridges["email"]["relays"] = [
        dict(relay, username=SMTP_USER, password=secret_file(world, "wrong-smtp", wrong_smtp)),
        dict(relay, username=SMTP_USER, password=secret_file(world, "smtp", smtp_password)),
    ]
    world.config["log_level"] = "DEBUG"
    world.write_config()
    return Hostile(
        world,
        wrong_kannel,
        wrong_smtp,
        "forged-" + secrets.token_urlsafe(20),
        (world.workdir / "bot-password").read_text(encoding="utf-8").strip(),
    )


async def test_no_secret_in_any_log_line_error_or_record(
    make_world: WorldFactory, rig: BridgeRig, capfd: pytest.CaptureFixture[str]
) -> None:
    hostile = await hostile_world(make_world, rig)
    world = hostile.world
    wrong_kannel, wrong_smtp = hostile.wrong_kannel, hostile.wrong_smtp
    forged_gateway_secret = hostile.forged_gateway_secret
    matrix_password = hostile.matrix_password

    db = BotDatabase(world)
    try:
        with everything_logged() as log:
            async with (
                bot_in_process(world.config_path),
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            ):
                tokens = await scenario(world, rig, http, db, forged_gateway_secret)
            await asyncio.sleep(0.1)  # the shutdown's last words
        out, err = capfd.readouterr()

        secret_forms = all_secret_forms(
            rig, tokens, wrong_kannel, wrong_smtp, forged_gateway_secret, matrix_password
        )

        texts: list[tuple[str, str]] = [(f"log {name}", text) for name, text in log.lines]
        texts += [("stdout", out), ("stderr", err)]
        texts += kannel_logs(rig)
        for row in await db.outbox_rows():
            texts.append((f"outbox {row.idempotency_key} last_error", row.last_error or ""))
        for entry in await db.audit():
            texts.append(
                (
                    f"audit #{entry.seq} {entry.action}",
                    json.dumps([entry.actor, entry.subject, entry.detail], ensure_ascii=False),
                )
            )
        leaks = [
            (what, where, text[:300])
            for where, text in texts
            for what, variants in secret_forms.items()
            if any(v in text for v in variants)
        ]
        assert not leaks, "\n".join(f"{w} in {p}: {t!r}" for w, p, t in leaks[:20])
        assert_no_content_in_kannel_logs(rig, world)

        # The failure paths were really taken (and logged without their secrets).
        messages = "\n".join(text for _name, text in log.lines)
        assert "refused our credentials; trying backup" in messages
        assert "Authorization failed" in messages
        assert re.search(r"relay \S+ failed .* at auth", messages), "no SMTP AUTH failure logged"
        assert "secret=***" in messages  # the over-long request line, redacted
        assert len(log.lines) > 200, "suspiciously little was logged"

        # Access log: the route, never the path (a link token) or the query (the secret).
        assert log.access
        for line in log.access:
            match = ACCESS_LINE.match(line)
            assert match is not None, line
            assert match["route"] in ROUTES, line
        seen = {(m["method"], m["route"], m["status"]) for m in map(ACCESS_LINE.match, log.access)}
        for expected in (
            ("GET", "/sms/inbound", "403"),
            ("GET", "/sms/inbound", "200"),
            ("GET", "/sms/dlr", "200"),
            ("GET", "/ack/{token}", "200"),
            ("GET", "/ack/{token}", "404"),
            ("POST", "/ack/{token}", "404"),
            ("POST", "/ack/{token}", "200"),
        ):
            assert expected in seen, (expected, sorted(seen))
        print(
            f"\n{len(log.lines)} log records, {len(log.access)} access-log lines, "
            f"{len(texts) - len(log.lines)} other texts searched for "
            f"{sum(len(v) for v in secret_forms.values())} forms of {len(secret_forms)} secrets"
        )
        assert await db.verify_audit_chain() is None
    finally:
        await db.close()


def all_secret_forms(
    rig: BridgeRig,
    tokens: list[str],
    wrong_kannel: str,
    wrong_smtp: str,
    forged: str,
    matrix_password: str,
) -> dict[str, set[str]]:
    smtp_password: str = rig.smtp_password  # type: ignore[attr-defined]
    secret_forms: dict[str, set[str]] = {
        "Kannel password": forms(rig.kannel.password),
        "wrong Kannel password": forms(wrong_kannel),
        "SMTP password": forms(smtp_password) | auth_forms(SMTP_USER, smtp_password),
        "wrong SMTP password": forms(wrong_smtp) | auth_forms(SMTP_USER, wrong_smtp),
        "gateway secret": forms(rig.gateway_secret),
        "forged gateway secret": forms(forged),
        "bridge secret": forms(rig.bridge_secret),
        "Matrix password": forms(matrix_password),
    }
    for index, token in enumerate(tokens):
        secret_forms[f"link token {index}"] = {token} | windows(token.rpartition(".")[2])
    return secret_forms


def kannel_logs(rig: BridgeRig) -> list[tuple[str, str]]:
    """Kannel's own logs (bearerbox, smsbox, access log, console), not the fake handset's."""
    found = [
        (f"kannel {p.name}", p.read_text(encoding="utf-8", errors="replace"))
        for p in rig.kannel.log_files()
    ]
    assert {"kannel bearerbox.log", "kannel smsbox.log", "kannel bearerbox-access.log"} <= {
        name for name, _ in found
    }, found
    return found


def assert_no_content_in_kannel_logs(rig: BridgeRig, world: Any) -> None:
    """The production log settings keep texts (with their codes) and numbers out of Kannel's
    logs too; the access log still records each SMS and delivery report."""
    numbers = {rig.number(p).lstrip("+") for p in ALARMED}
    for name, text in kannel_logs(rig):
        assert "KVITTERA" not in text, (name, text[-2000:])
        assert "MASSKADELARM" not in text, name
        assert not [n for n in numbers if n in text], name
    access = (rig.kannel.workdir / "bearerbox-access.log").read_text(encoding="utf-8")
    assert access.count("Sent SMS") >= len(ALARMED), access
    assert "Receive DLR" in access, access


async def scenario(
    world: Any, rig: BridgeRig, http: aiohttp.ClientSession, db: BotDatabase, forged: str
) -> list[str]:
    """The alarm, forgeries and acknowledgements; returns every link token issued."""
    base = f"http://127.0.0.1:{rig.http_port}"
    await world.wait_bot_joined()
    await say(world, "uppsala", "!händelse katastrofläge Tågurspårning Märsta", "H-1")
    await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
    texts = {
        p: (await rig.kannel.wait_for_sent(receiver=rig.number(p), timeout=30))[-1].text
        for p in ALARMED
    }
    mails: dict[str, SinkMail] = {
        p: await rig.mail.wait_for(
            lambda m, p=p: rig.address(p) in m.rcpt_tos and "MASSKADELARM" in m.subject,
            timeout=30,
        )
        for p in ALARMED
    }
    assert all(m.login == SMTP_USER for m in mails.values())
    links = {p: _group(LINK, m.text) for p, m in mails.items()}
    tokens = [link.rpartition("/")[2] for link in links.values()]

    # Kannel callbacks with a forged secret, none, and the right one in a request line too
    # long for the server (its error text quotes the line).
    mo = f"from=%2B46709990001&to={SHORT_NUMBER}&text=KVITTERA%201234&id=forged-1"
    for query in (f"secret={forged}&{mo}", mo, f"secret={forged}&secret={rig.gateway_secret}"):
        async with http.get(URL(f"{base}/sms/inbound?{query}", encoded=True)) as response:
            assert response.status == 403
    long_text = "KVITTERA%201234%20" + "x" * 70_000  # past the 64 KiB request-line limit
    query = f"secret={rig.gateway_secret}&from=%2B46709990002&to=4600&text={long_text}&id=f-2"
    async with http.get(URL(f"{base}/sms/inbound?{query}", encoded=True)) as response:
        assert response.status == 400

    # A tampered link, opened and posted; a genuine one opened, then confirmed.
    genuine = tokens[-1]
    tampered = genuine[:-3] + ("AAA" if not genuine.endswith("AAA") else "BBB")
    async with http.get(f"{base}/ack/{tampered}") as response:
        assert response.status == 404
    async with http.post(f"{base}/ack/{tampered}", data={"token": tampered}) as response:
        assert response.status == 404
    async with http.get(links["varmland"]) as response:
        assert response.status == 200
    async with http.post(links["varmland"], data={"token": genuine, "count": "2"}) as response:
        assert response.status == 200

    # A wrong code, then the right one, by SMS; a reply by e-mail quoting the alarm.
    dalarna = rig.number("dalarna")
    code = _group(SMS_CODE, texts["dalarna"])
    wrong = "0000" if code != "0000" else "1111"
    rig.kannel.inject_mo(dalarna, SHORT_NUMBER, f"KVITTERA {wrong} 3")
    await rig.kannel.wait_for_sent(receiver=dalarna, count=2, timeout=30)
    rig.kannel.inject_mo(dalarna, SHORT_NUMBER, f"KVITTERA {code} 3")
    mail_code = _group(MAIL_CODE, mails["gavleborg"].text)
    await rig.mail.reply(mails["gavleborg"], f"KVITTERA {mail_code} 4", rig.address("gavleborg"))

    uppsala = world.officer("uppsala")
    for channel in ("via sms", "via e-post", "via länk"):
        await board_saying(world, uppsala, world.rooms["uppsala"], channel)
    await rig.kannel.wait_for_sent(receiver=dalarna, count=3, timeout=30)
    await rig.mail.wait_for(
        lambda m: rig.address("gavleborg") in m.rcpt_tos and "Kvitterat" in m.text, timeout=30
    )
    acks = await db.audit("ack.recorded")
    assert sorted(a.detail["channel"] for a in acks) == ["email", "link", "sms"]
    # Every link issued so far (the answers carry none, but look anyway).
    for mail in rig.mail.received:
        tokens += [link.rpartition("/")[2] for link in LINK.findall(mail.text)]
    return sorted(set(tokens))


def _group(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    assert match is not None, text
    return match.group(1)


# -- a long MO: Kannel puts the whole SMS into the request line ------------------------------


async def over_long_request_line(secret: str) -> tuple[int, str, Recorder]:
    """Kannel calling the MO URL with a text whose URL-encoding passes aiohttp's 8190-byte
    request-line limit (about 680 emoji: parse_mo itself allows 1600 characters)."""

    async def on_sms(_sms: InboundSms) -> None:
        return None

    app = build_app(health=lambda: {"ok": True}, gateway_secret=SecretStr(secret), on_sms=on_sms)
    with everything_logged() as log:
        runner = await serve(app, "127.0.0.1", 0)
        try:
            port = runner.addresses[0][1]
            text = quote("KVITTERA 1234 " + "🚑" * 700, safe="")
            query = f"secret={secret}&from=%2B46701110001&to=4600&text={text}&id=x1&ts=1"
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
                http.get(URL(f"http://127.0.0.1:{port}/sms/inbound?{query}", encoded=True)) as r,
            ):
                status, body = r.status, await r.text()
        finally:
            await runner.cleanup()
    return status, body, log


async def test_a_long_genuine_mo_is_taken_and_logged_by_route() -> None:
    """680 emoji percent-encoded pass aiohttp's default 8 KB request line; the endpoint takes
    them (a 400 would make Kannel drop the reply), and the access line names the route."""
    secret = "gw-" + secrets.token_urlsafe(24)
    status, _body, log = await over_long_request_line(secret)
    assert status == 200
    assert not [t for _n, t in log.lines if "Unhandled exception" in t]
    assert any("/sms/inbound 200" in line for line in log.access), log.access
    assert not [t for _n, t in log.lines if secret in t]


# -- the running bot at DEBUG: what an operator's log gets ------------------------------------

#: Text that only a logged message body would bring: the command typed in a room, the alarm
#: (SMS, e-mail, board), the replies and the bot's answers to them.
#: The bot's last start-up line, before any command is handled.
STARTED = "room keys shared ahead of need"
CONTENT = ("Tågurspårning", "!händelse", "!larma", "KVITTERA", "MASSKADELARM", "Kvitterat")


def codes_sent(rig: BridgeRig) -> set[str]:
    """Every reply code the bot sent, by SMS (4 digits) or e-mail (6 digits)."""
    found = {m.group(1) for sms in rig.kannel.sent_messages() for m in SMS_CODE.finditer(sms.text)}
    for mail in rig.mail.received:
        found |= {m.group(1) for m in MAIL_CODE.finditer(mail.text)}
    return found


async def test_debug_log_of_the_running_bot_has_no_secret_code_token_number_or_content(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    hostile = await hostile_world(make_world, rig)
    world = hostile.world
    db = BotDatabase(world)
    bot = BotProcess(world.config_path)
    try:
        await bot.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            tokens = await scenario(world, rig, http, db, hostile.forged_gateway_secret)
        assert await bot.stop() == 0, bot.log()[-3000:]
        text = bot.log()
        lines = text.splitlines()
        assert " DEBUG apscheduler.scheduler: " in text, "the bot did not log at DEBUG"

        findings: list[str] = []
        secret_forms = all_secret_forms(
            rig,
            tokens,
            hostile.wrong_kannel,
            hostile.wrong_smtp,
            hostile.forged_gateway_secret,
            hostile.matrix_password,
        )
        for what, variants in secret_forms.items():
            findings += [f"{what}: {line}" for line in lines if any(v in line for v in variants)]
        codes = codes_sent(rig)
        assert len(codes) >= 2 * len(ALARMED), codes  # an SMS and a mail code each, at least
        # A code exists only once the alarm is sent; before that a 4-digit run is something
        # else (alembic's revision "0003" once matched a code). Start-up ends with the keys.
        started = next(i for i, line in enumerate(lines) if STARTED in line)
        for code in codes:
            bare = re.compile(rf"(?<![\w.:,…-]){code}(?![\w:,-])")
            findings += [
                f"reply code {code}: {line}" for line in lines[started:] if bare.search(line)
            ]
        numbers = {rig.number(p) for p in ALARMED} | {"+46709990001", "+46709990002"}
        for number in numbers:
            national = number.lstrip("+")[2:]  # 70…, as a number may also be written
            findings += [f"number {number}: {line}" for line in lines if national in line]
        for marker in CONTENT:
            findings += [f"content {marker!r}: {line}" for line in lines if marker in line]
        assert not findings, "\n".join(f[:300] for f in findings[:30])

        # The log still says what happened: the SMS by its masked number, the callbacks by
        # route, the refused ones too.
        assert re.search(r"SMS \S+ to (…|\*\*\*)\d{4} via backup: accepted", text), "no SMS line"
        assert "GET /sms/inbound 403" in text
        assert "GET /sms/inbound 200" in text
        print(f"\n{len(lines)} lines of the bot's DEBUG log searched; {len(codes)} codes")
        assert await db.verify_audit_chain() is None
    finally:
        await bot.stop()
        await db.close()
