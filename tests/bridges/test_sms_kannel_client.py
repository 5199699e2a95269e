"""The Kannel client and callback parsers without a gateway: classification, failover order,
secrecy of the password, and parsers that never raise on junk.

Answers that a real Kannel gives only in awkward set-ups (503 under ``--no-queue``, a gateway
that hangs) come from a loopback stub that answers with Kannel's exact words; everything Kannel
does readily is tested against the real one in ``test_sms_gateway.py``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web
from multidict import MultiDict

from bot.demo.kannel import (
    KannelBinaries,
    KannelNotInstalledError,
    SentSms,
    ThrowawayKannel,
    parse_fakesmsc_log,
)
from bridges.sms.kannel import (
    CallbackRejected,
    DeliveryReport,
    DeliveryStatus,
    Endpoint,
    InboundSms,
    KannelClient,
    SendOutcome,
    classify,
    dlr_url_template,
    parse_dlr,
    parse_mo,
    secret_matches,
)

PASSWORD = "pw-S3cr3t+/&x"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StubGateway:
    """A loopback HTTP server answering sendsms like Kannel would, recording the queries."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[MultiDict[str]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.queries.append(MultiDict(request.query))
            return await self.handler(request)

        app = web.Application()
        app.router.add_get("/cgi-bin/sendsms", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/cgi-bin/sendsms"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def endpoint(self, name: str) -> Endpoint:
        return Endpoint(self.url, "larmkedja", PASSWORD, name)


def answer(status: int, body: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body)

    return handler


@pytest.fixture
async def stubs() -> AsyncIterator[Callable[[Handler], Awaitable[StubGateway]]]:
    started: list[StubGateway] = []

    async def make(handler: Handler) -> StubGateway:
        stub = StubGateway(handler)
        await stub.start()
        started.append(stub)
        return stub

    yield make
    for stub in started:
        await stub.stop()


def dead_endpoint(name: str = "dead") -> Endpoint:
    """An endpoint on a loopback port nobody listens on: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Endpoint(f"http://127.0.0.1:{port}/cgi-bin/sendsms", "larmkedja", PASSWORD, name)


DLR = dlr_url_template("http://127.0.0.1:1/sms/dlr?secret=s3")


# -- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "outcome", "queued"),
    [
        (202, "0: Accepted for delivery", SendOutcome.ACCEPTED, False),
        (202, "3: Queued for later delivery", SendOutcome.ACCEPTED, True),
        (403, "Not routable. Do not try again.", SendOutcome.PERMANENT_FAILURE, False),
        (403, "Authorization failed for sendsms", SendOutcome.PERMANENT_FAILURE, False),
        (400, "Missing receiver number, rejected", SendOutcome.PERMANENT_FAILURE, False),
        (503, "Temporal failure, try again later.", SendOutcome.TEMPORARY_FAILURE, False),
        (500, "", SendOutcome.TEMPORARY_FAILURE, False),
        (429, "", SendOutcome.TEMPORARY_FAILURE, False),
        (302, "", SendOutcome.TEMPORARY_FAILURE, False),
    ],
)
def test_classify_follows_the_observed_table(
    status: int, body: str, outcome: SendOutcome, queued: bool
) -> None:
    assert classify(status, body) == (outcome, queued)


async def test_503_is_temporary_and_the_next_gateway_takes_it(stubs) -> None:
    busy = await stubs(answer(503, "Temporal failure, try again later."))
    good = await stubs(answer(202, "0: Accepted for delivery"))
    async with KannelClient([busy.endpoint("a"), good.endpoint("b")], "4600", DLR) as client:
        result = await client.send("46701234567", "Larm H-7", "ob-503")
    assert result.accepted
    assert result.endpoint == "b"
    assert [(a.endpoint, a.outcome, a.http_status) for a in result.attempts] == [
        ("a", SendOutcome.TEMPORARY_FAILURE, 503),
        ("b", SendOutcome.ACCEPTED, 202),
    ]
    assert len(busy.queries) == len(good.queries) == 1


async def test_a_permanent_refusal_is_not_retried_elsewhere(stubs) -> None:
    refusing = await stubs(answer(403, "Not routable. Do not try again."))
    other = await stubs(answer(202, "0: Accepted for delivery"))
    async with KannelClient([refusing.endpoint("a"), other.endpoint("b")], "4600", DLR) as c:
        result = await c.send("46701234567", "Larm", "ob-403")
    assert result.outcome is SendOutcome.PERMANENT_FAILURE
    assert result.http_status == 403
    assert "Not routable" in result.detail
    assert other.queries == []


async def test_a_hanging_gateway_times_out_as_temporary(stubs) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="0: Accepted for delivery")

    slow = await stubs(hang)
    async with KannelClient([slow.endpoint("slow")], "4600", DLR, timeout=0.2) as client:
        result = await client.send("46701234567", "Larm", "ob-slow")
    release.set()
    assert result.retryable
    assert "no answer within 0.2 s" in result.detail


async def test_a_failed_gateway_is_tried_last_until_its_cooldown_ends(stubs) -> None:
    now = [1000.0]
    primary = await stubs(answer(503, "Temporal failure, try again later."))
    backup = await stubs(answer(202, "0: Accepted for delivery"))
    client = KannelClient(
        [primary.endpoint("primary"), backup.endpoint("backup")],
        "4600",
        DLR,
        failover_cooldown=30,
        monotonic=lambda: now[0],
    )
    async with client:
        first = await client.send("46701234567", "1", "ob-c1")
        second = await client.send("46701234567", "2", "ob-c2")
        now[0] += 31
        third = await client.send("46701234567", "3", "ob-c3")
    assert [a.endpoint for a in first.attempts] == ["primary", "backup"]
    assert [a.endpoint for a in second.attempts] == ["backup"]
    assert [a.endpoint for a in third.attempts] == ["primary", "backup"]


async def test_every_gateway_down_is_temporary_with_every_attempt() -> None:
    async with KannelClient([dead_endpoint("a"), dead_endpoint("b")], "4600", DLR) as client:
        result = await client.send("46701234567", "Larm", "ob-down")
    assert result.outcome is SendOutcome.TEMPORARY_FAILURE
    assert [a.endpoint for a in result.attempts] == ["a", "b"]
    assert result.detail.startswith("every gateway failed")
    assert all(a.http_status is None for a in result.attempts)


async def test_request_carries_coding_charset_and_dlr_with_ref(stubs) -> None:
    stub = await stubs(answer(202, "0: Accepted for delivery"))
    async with KannelClient([stub.endpoint("s")], "Larmkedja", DLR) as client:
        await client.send("+46701234567", "Hej åäö & 100% {x}", "ob-42")
        await client.send("46701234567", "Ambulans 🚑", "ob-43")
    gsm, ucs = stub.queries
    assert gsm["text"] == "Hej åäö & 100% {x}"
    assert (gsm["coding"], gsm["charset"], gsm["dlr-mask"]) == ("0", "UTF-8", "31")
    assert (gsm["from"], gsm["to"], gsm["username"]) == ("Larmkedja", "+46701234567", "larmkedja")
    assert gsm["password"] == PASSWORD
    assert gsm["dlr-url"] == (
        "http://127.0.0.1:1/sms/dlr?secret=s3&ref=ob-42&status=%d&answer=%A&fid=%F&ts=%T"
    )
    assert ucs["coding"] == "2"
    assert ucs["text"] == "Ambulans 🚑"


async def test_what_cannot_be_sent_is_refused_before_any_request(stubs) -> None:
    stub = await stubs(answer(202, "0: Accepted for delivery"))
    async with KannelClient([stub.endpoint("s")], "4600", DLR) as client:
        too_long = await client.send("46701234567", "x" * 1531, "ob-long")
        not_a_number = await client.send("070 123", "Larm", "ob-num")
        empty = await client.send("46701234567", "", "ob-empty")
        with pytest.raises(ValueError, match="ref"):
            await client.send("46701234567", "Larm", "ob %C3")
    assert too_long.outcome is SendOutcome.PERMANENT_FAILURE
    assert too_long.segments == 11
    assert "at most 10" in too_long.detail
    assert not_a_number.outcome is SendOutcome.PERMANENT_FAILURE
    assert empty.outcome is SendOutcome.PERMANENT_FAILURE
    assert stub.queries == []


def test_client_and_endpoint_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        KannelClient([], "4600", DLR)
    with pytest.raises(ValueError, match=r"\{ref\}"):
        KannelClient([dead_endpoint()], "4600", "http://x/dlr?status=%d")
    with pytest.raises(ValueError, match="without query"):
        Endpoint("http://127.0.0.1:1/cgi-bin/sendsms?password=x", "u", "x")
    with pytest.raises(ValueError, match="http"):
        Endpoint("ftp://127.0.0.1/sendsms", "u", "x")
    assert Endpoint("http://127.0.0.1:13013/cgi-bin/sendsms", "u", "x").name == "127.0.0.1:13013"


async def test_the_password_never_shows_in_logs_results_or_errors(
    stubs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    refusing = await stubs(answer(403, f"Authorization failed for {PASSWORD}"))

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # the gateway dies mid-request
        return web.Response()

    dropping = await stubs(drop)
    endpoints = [dead_endpoint(), dropping.endpoint("drop"), refusing.endpoint("auth")]
    client = KannelClient(endpoints, "4600", DLR, timeout=2)
    async with client:
        result = await client.send("46701234567", "Larm", "ob-pw")
    assert result.outcome is SendOutcome.PERMANENT_FAILURE
    assert len(result.attempts) == 3
    texts = [caplog.text, repr(result), str(result), repr(client), repr(endpoints), str(endpoints)]
    texts += [r.getMessage() for r in caplog.records]
    for form in (PASSWORD, "pw-S3cr3t%2B%2F%26x", "pw-S3cr3t"):
        assert not any(form in text for text in texts), form
    assert "***" in result.detail  # the gateway's own echo of it was redacted
    assert "ob-pw" in caplog.text
    assert "***4567" in caplog.text
    assert "46701234567" not in caplog.text  # numbers are masked in logs


# -- delivery reports ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("1", DeliveryStatus.DELIVERED),
        ("2", DeliveryStatus.FAILED),
        ("4", DeliveryStatus.BUFFERED),
        ("8", DeliveryStatus.ACCEPTED_BY_SMSC),
        ("16", DeliveryStatus.FAILED),
        ("32", DeliveryStatus.UNKNOWN),
        ("", DeliveryStatus.UNKNOWN),
        ("%d", DeliveryStatus.UNKNOWN),
    ],
)
def test_dlr_codes(code: str, status: DeliveryStatus) -> None:
    report = parse_dlr({"ref": "ob-1", "status": code, "answer": "ACK/"})
    assert isinstance(report, DeliveryReport)
    assert report.status is status
    assert report.code == (int(code) if code.isdigit() else None)
    assert report.final == (status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED))


def test_dlr_from_a_raw_query_string() -> None:
    report = parse_dlr(
        "ref=ob-7&status=16&answer=NACK%2Freceiver+in+black-list"
        "&fid=5ae6e06d-8a81-4c8b-8d14-9eb54188cdcf&ts=1795685517"
    )
    assert report == DeliveryReport(
        ref="ob-7",
        status=DeliveryStatus.FAILED,
        code=16,
        answer="NACK/receiver in black-list",
        message_id="5ae6e06d-8a81-4c8b-8d14-9eb54188cdcf",
        ts=datetime.fromtimestamp(1795685517, UTC),
    )


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"status": "1"},
        {"ref": "", "status": "1"},
        {"ref": "ob 1", "status": "1"},
        {"ref": "x" * 65, "status": "1"},
        MultiDict([("ref", "ob-1"), ("ref", "ob-2"), ("status", "1")]),
        "ref=ob-1&ref=ob-2",
        "&".join(f"k{i}=v" for i in range(40)),
        "ref=ob-1&answer=" + "x" * 20_000,
        {"ref": 5, "status": 1},
        None,
        42,
    ],
)
def test_dlr_junk_is_rejected_not_raised(query: object) -> None:
    assert isinstance(parse_dlr(query), CallbackRejected)


# -- inbound SMS -----------------------------------------------------------------------------


def test_mo_is_parsed_and_cleaned() -> None:
    sms = parse_mo(
        {
            "from": "+46701234567",
            "to": "4600",
            "text": "  KVITTERA 4821 5\r\nA\u030ange\x00\x07  ",
            "id": "601de95b-cd46-4378-bf29-7e90cbd9ec6e",
            "ts": "1795685517",
            "secret": "ignored here",
        }
    )
    assert sms == InboundSms(
        sender="+46701234567",
        receiver="4600",
        text="KVITTERA 4821 5\nÅnge",
        gateway_id="601de95b-cd46-4378-bf29-7e90cbd9ec6e",
        ts=datetime.fromtimestamp(1795685517, UTC),
    )


def test_mo_time_is_optional() -> None:
    sms = parse_mo({"from": "46701234567", "to": "4600", "text": "ok", "id": "a1", "ts": "%T"})
    assert isinstance(sms, InboundSms)
    assert sms.ts is None
    assert sms.text == "ok"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"to": "4600", "text": "x", "id": "a"}, "sender"),
        ({"from": "4670 123", "to": "4600", "text": "x", "id": "a"}, "sender"),
        ({"from": "46701234567", "text": "x", "id": "a"}, "receiver"),
        ({"from": "46701234567", "to": "4600", "text": "x"}, "message id"),
        ({"from": "46701234567", "to": "4600", "text": "x", "id": "<script>"}, "message id"),
        ({"from": "46701234567", "to": "4600", "text": "x" * 1601, "id": "a"}, "too long"),
        ("from=1&from=2&to=4600&id=a", "twice"),
    ],
)
def test_mo_rejections_say_why(query: object, reason: str) -> None:
    rejected = parse_mo(query)
    assert isinstance(rejected, CallbackRejected)
    assert reason in rejected.reason


def test_callback_parsers_are_total_on_random_junk() -> None:
    rng = random.Random(20261126)
    alphabet = "ab=&%+?;\x00\xff🚑 \n" + "".join(map(chr, range(32, 127)))
    junk: list[object] = [b"\xff\xfe=&", bytearray(b"from=1"), 3.5, [("from", "1")], object()]
    for _ in range(600):
        junk.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))))
    junk.append({"from": None, "to": ["x"], "id": b"a"})
    for query in junk:
        assert isinstance(parse_mo(query), InboundSms | CallbackRejected)
        assert isinstance(parse_dlr(query), DeliveryReport | CallbackRejected)
        assert secret_matches(query, "s3") in (True, False)


def test_secret_matches() -> None:
    assert secret_matches({"secret": "s3cr3t", "from": "1"}, "s3cr3t")
    assert secret_matches("secret=s%C3%A5&x=1", "så")
    assert not secret_matches({"secret": "s3cr3"}, "s3cr3t")
    assert not secret_matches({}, "s3cr3t")
    assert not secret_matches({"secret": ""}, "")


# -- the fake SMSC's log ----------------------------------------------------------------------

# Lines as fakesmsc 1.4.5 printed them on this machine (see deploy/kannel/README.md).
FAKESMSC_LOG = """\
09:31:38 [1] [0] INFO: fakesmsc starting
09:31:42 [1] [0] DEBUG: Got message 1: <4600 46701234567 text hej åäö € [x]>
09:31:42 [1] [0] DEBUG: Got message 2: <4600 46701234567 text line1>
09:31:42 [1] [0] DEBUG: Got message 3: <line2>
09:31:42 [1] [0] DEBUG: Got message 4: <Larmkedja 4670 ucs-2 %00e%00m%00o%00+%D8%3D%DE%91>
09:31:42 [1] [0] DEBUG: Got message 5: <4600 4671 udh %05%00%03%04%02%01 data %00x%D8%3D>
09:31:42 [1] [0] DEBUG: Got message 6: <4600 4672 udh %05%00%03%03%02%02 data L%C3%A4>
09:31:42 [1] [0] DEBUG: Got message 7: <4600 4672 udh %05%00%03%03%02%01 data LL+>
09:31:42 [1] [0] DEBUG: Got message 8: <4600 4671 udh %05%00%03%04%02%02 data %DE%91>
09:31:42 [1] [0] DEBUG: Got message 9: <4600 46701234567 text x>y <z> end>
09:31:42 [1] [0] DEBUG: Got message 10: <4600 4673 udh %05%00%03%09%02%01 data only>
09:31:57 [1] [0] DEBUG: fakesmsc: sent message 1
"""


def test_fakesmsc_log_is_parsed_with_parts_joined() -> None:
    assert parse_fakesmsc_log(FAKESMSC_LOG) == [
        SentSms("4600", "46701234567", "hej åäö € [x]"),
        SentSms("4600", "46701234567", "line1\nline2"),
        SentSms("Larmkedja", "4670", "emo 🚑", "ucs-2"),
        SentSms("4600", "4672", "LL Lä", "text", 2),
        SentSms("4600", "4671", "x🚑", "ucs-2", 2),  # the surrogate pair was split by Kannel
        SentSms("4600", "46701234567", "x>y <z> end"),
    ]  # message 10 is an incomplete multipart: not (yet) an SMS


# -- the harness itself -----------------------------------------------------------------------


async def test_missing_kannel_fails_with_the_install_command(tmp_path) -> None:
    binaries = KannelBinaries(bearerbox=tmp_path / "no-bearerbox")
    with pytest.raises(KannelNotInstalledError, match="apt-get install kannel kannel-extras"):
        async with ThrowawayKannel(tmp_path / "k", binaries=binaries):
            pass


def test_mo_lines_over_fakesmscs_limit_are_refused(tmp_path) -> None:
    gateway = ThrowawayKannel(tmp_path)
    with pytest.raises(ValueError, match="255-byte"):
        gateway.inject_mo("46701234567", "4600", "x" * 240)
    with pytest.raises(ValueError, match="255-byte"):
        gateway.inject_mo("46701234567", "4600", "🚑" * 21)  # 12 bytes each as ucs2
    with pytest.raises(ValueError, match="without spaces"):
        gateway.inject_mo("4670 123", "4600", "x")
