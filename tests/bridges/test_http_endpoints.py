"""The HTTP endpoints on aiohttp's loopback test server, with a real database behind the links."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from bot.clock import FakeClock
from bot.http import AckForm, AckOutcome, build_app, redact, serve
from bot.http.app import _is_loopback
from bot.i18n import Catalog
from bridges.reply_codes import Redeemed, RejectReason, ReplyCodes
from bridges.signed_links import LinkClaim, SignedLinks
from bridges.sms.kannel import DeliveryReport, DeliveryStatus, InboundSms
from storage.database import Database

GATEWAY_SECRET = "kannel-shared-secret-0123456789"
SIGNING_SECRET = SecretStr("signing-secret-of-sufficient-length")
MO = "from=%2B46701234567&to=4600&text=KVITTERA+4821+5&id=mo-1&ts=1795662000"


@dataclass
class World:
    db: Database
    clock: FakeClock
    codes: ReplyCodes
    links: SignedLinks
    sms: list[InboundSms] = field(default_factory=list)
    dlrs: list[DeliveryReport] = field(default_factory=list)
    acks: list[tuple[str, str, int | None, str]] = field(default_factory=list)
    ack_calls: int = 0
    healthy: bool = True

    async def on_sms(self, sms: InboundSms) -> None:
        self.sms.append(sms)

    async def on_dlr(self, report: DeliveryReport) -> None:
        self.dlrs.append(report)

    async def on_ack(self, claim: LinkClaim, form: AckForm) -> AckOutcome:
        """What the composition root would do: use up the code, then acknowledge."""
        self.ack_calls += 1
        async with self.db.write() as session:
            result = await self.codes.redeem_link(
                session,
                outbox_key=claim.outbox_key,
                incident_id=claim.incident_id,
                party_id=claim.party_id,
                now=self.clock.now(),
            )
        if isinstance(result, Redeemed):
            self.acks.append((claim.incident_id, claim.party_id, form.pledge, form.remark))
            return AckOutcome.ACKNOWLEDGED
        if result.reason is RejectReason.EXPIRED:
            return AckOutcome.EXPIRED
        if result.reason is RejectReason.REUSED:
            return AckOutcome.ALREADY
        return AckOutcome.CLOSED

    def health(self) -> dict[str, Any]:
        return {"ok": self.healthy, "sync": "running"}

    async def token(self, *, party: str = "uppsala", key: str = "out-1") -> str:
        async with self.db.write() as session:
            await self.codes.issue(
                session,
                channel="email",
                destination="tib@uppsala.example",
                incident_id="H-7",
                party_id=party,
                outbox_key=key,
                now=self.clock.now(),
            )
        return self.links.sign(
            incident_id="H-7",
            party_id=party,
            outbox_key=key,
            expires_at=self.clock.now() + self.codes.policy.ttl,
        )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'http.db'}")
    await db.migrate()
    yield World(db, FakeClock(), ReplyCodes(SIGNING_SECRET), SignedLinks(SIGNING_SECRET))
    await db.close()


def make_app(world: World, **over: Any) -> web.Application:
    registry = CollectorRegistry()
    Counter("larmkedja_test_things", "things", registry=registry).inc(3)
    options: dict[str, Any] = {
        "health": world.health,
        "registry": registry,
        "gateway_secret": SecretStr(GATEWAY_SECRET),
        "on_sms": world.on_sms,
        "on_dlr": world.on_dlr,
        "links": world.links,
        "on_ack": world.on_ack,
        "clock": world.clock,
        "language_for": lambda claim: "nb" if claim.party_id == "innlandet" else "sv",
        "callback_timeout": 0.5,
    }
    options.update(over)
    return build_app(**options)


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_app(world))) as test_client:
        assert test_client.server.host == "127.0.0.1"
        yield test_client


# -- health and metrics ------------------------------------------------------------------------


async def test_healthz(client: TestClient[Any, Any], world: World) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"ok": True, "sync": "running"}
    world.healthy = False
    assert (await client.get("/healthz")).status == 503


async def test_healthz_failing_check_is_503_without_detail(world: World) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("postgresql://user:hunter2@db/larm unreachable")

    async with TestClient(TestServer(make_app(world, health=broken))) as client:
        response = await client.get("/healthz")
        assert response.status == 503
        assert "hunter2" not in await response.text()


async def test_metrics_come_from_the_injected_registry_only(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/metrics")
    body = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "larmkedja_test_things_total 3.0" in body
    assert "python_gc" not in body  # the process-wide default registry is not exposed
    assert "process_" not in body


async def test_routes_exist_only_for_given_capabilities(world: World) -> None:
    async with TestClient(TestServer(build_app(health=world.health))) as client:
        assert (await client.get("/healthz")).status == 200
        for path in ("/metrics", "/sms/inbound", "/sms/dlr", "/ack/x"):
            assert (await client.get(path)).status == 404


def test_build_app_refuses_half_configurations(world: World) -> None:
    with pytest.raises(ValueError, match="gateway_secret"):
        build_app(health=world.health, on_sms=world.on_sms)
    with pytest.raises(ValueError, match="at least 16"):
        build_app(health=world.health, on_sms=world.on_sms, gateway_secret=SecretStr("short"))
    with pytest.raises(ValueError, match="together"):
        build_app(health=world.health, links=world.links, on_ack=world.on_ack)


# -- Kannel ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        MO,
        f"secret=wrong&{MO}",
        f"secret={GATEWAY_SECRET}x&{MO}",
        f"secret={GATEWAY_SECRET[:-1]}&{MO}",
        f"secret={GATEWAY_SECRET}&secret={GATEWAY_SECRET}&{MO}",
        f"SECRET={GATEWAY_SECRET}&{MO}",
    ],
)
async def test_sms_inbound_requires_the_secret(
    client: TestClient[Any, Any], world: World, query: str
) -> None:
    response = await client.get(f"/sms/inbound?{query}")
    assert response.status == 403
    assert GATEWAY_SECRET not in await response.text()
    assert world.sms == []


async def test_sms_inbound_get(client: TestClient[Any, Any], world: World) -> None:
    response = await client.get(f"/sms/inbound?secret={GATEWAY_SECRET}&{MO}")
    assert response.status == 200
    assert await response.text() == ""  # Kannel would send a body back as an SMS
    assert len(world.sms) == 1
    sms = world.sms[0]
    assert (sms.sender, sms.receiver, sms.text, sms.gateway_id) == (
        "+46701234567",
        "4600",
        "KVITTERA 4821 5",
        "mo-1",
    )


async def test_sms_inbound_post_form(client: TestClient[Any, Any], world: World) -> None:
    response = await client.post(
        f"/sms/inbound?secret={GATEWAY_SECRET}",
        data={"from": "+46701234567", "to": "4600", "text": "ok 4821 ✅ åäö", "id": "mo-2"},
    )
    assert response.status == 200
    assert world.sms[0].text == "ok 4821 ✅ åäö"


@pytest.mark.parametrize(
    "query",
    [
        "to=4600&text=x&id=mo-1",  # no sender
        "from=%2B46701234567&to=4600&text=x",  # no Kannel id
        "from=%27%3B+DROP+TABLE+inbox%3B--&to=4600&text=x&id=mo-1",
        f"from=%2B46701234567&to=4600&id=mo-1&text={'x' * 4000}",
    ],
)
async def test_sms_inbound_junk_is_400(
    client: TestClient[Any, Any], world: World, query: str
) -> None:
    response = await client.get(f"/sms/inbound?secret={GATEWAY_SECRET}&{query}")
    assert response.status == 400
    assert world.sms == []


async def test_sms_inbound_odd_bytes_are_accepted_as_text(
    client: TestClient[Any, Any], world: World
) -> None:
    query = "from=%2B46701234567&to=4600&id=mo-9&text=%FF%FE%00KVITTERA%E2%80%AE+4821"
    response = await client.get(f"/sms/inbound?secret={GATEWAY_SECRET}&{query}")
    assert response.status == 200
    assert "KVITTERA" in world.sms[0].text


async def test_sms_callback_failure_is_503_so_kannel_may_retry(world: World) -> None:
    async def broken(_sms: InboundSms) -> None:
        raise RuntimeError(f"database locked; secret={GATEWAY_SECRET}")

    async with TestClient(TestServer(make_app(world, on_sms=broken))) as client:
        response = await client.get(f"/sms/inbound?secret={GATEWAY_SECRET}&{MO}")
        assert response.status == 503
        assert GATEWAY_SECRET not in await response.text()


async def test_slow_callback_answers_503_and_still_finishes(world: World) -> None:
    done = asyncio.Event()

    async def slow(sms: InboundSms) -> None:
        await asyncio.sleep(0.2)
        world.sms.append(sms)
        done.set()

    async with TestClient(TestServer(make_app(world, on_sms=slow, callback_timeout=0.05))) as c:
        response = await c.get(f"/sms/inbound?secret={GATEWAY_SECRET}&{MO}")
        assert response.status == 503
        await asyncio.wait_for(done.wait(), 2)  # not cancelled: the store completes
    assert len(world.sms) == 1


async def test_dlr(client: TestClient[Any, Any], world: World) -> None:
    query = "ref=out-1&status=1&answer=id%3A123+stat%3ADELIVRD&fid=abc&ts=1795662000"
    assert (await client.get(f"/sms/dlr?{query}")).status == 403
    response = await client.get(f"/sms/dlr?secret={GATEWAY_SECRET}&{query}")
    assert response.status == 200
    assert [(d.ref, d.status) for d in world.dlrs] == [("out-1", DeliveryStatus.DELIVERED)]
    assert (await client.get(f"/sms/dlr?secret={GATEWAY_SECRET}&status=1")).status == 400


# -- acknowledge by link -----------------------------------------------------------------------


async def test_get_shows_the_page_and_does_not_acknowledge(
    client: TestClient[Any, Any], world: World
) -> None:
    token = await world.token()
    for _ in range(3):  # a mail scanner, a preview, the person
        response = await client.get(f"/ack/{token}")
        assert response.status == 200
        page = await response.text()
        assert "Kvittera larmet H-7 för uppsala?" in page
        assert f'name="token" value="{token}"' in page
        assert '<form method="post"' in page
    assert (await client.head(f"/ack/{token}")).status == 200
    assert world.ack_calls == 0
    assert world.acks == []
    headers = response.headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Content-Type"].startswith("text/html")


async def test_post_acknowledges_once(client: TestClient[Any, Any], world: World) -> None:
    token = await world.token()
    first = await client.post(
        f"/ack/{token}", data={"token": token, "count": "5", "remark": "  två  bussar "}
    )
    assert first.status == 200
    assert "Kvitterat: H-7 för uppsala" in await first.text()
    second = await client.post(f"/ack/{token}", data={"token": token})
    assert second.status == 200
    assert "Redan kvitterat" in await second.text()
    assert world.acks == [("H-7", "uppsala", 5, "två bussar")]


async def test_post_must_echo_the_token(client: TestClient[Any, Any], world: World) -> None:
    token = await world.token()
    other = await world.token(key="out-2")
    for data in ({}, {"token": ""}, {"token": other}, {"token": token[:-1]}):
        response = await client.post(f"/ack/{token}", data=data)
        assert response.status == 403
    response = await client.post(
        f"/ack/{token}", data=f"token={token}", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 400
    assert world.ack_calls == 0


async def test_cross_site_post_is_refused(world: World) -> None:
    app = make_app(world, public_origin="https://larm.example")
    async with TestClient(TestServer(app)) as client:
        token = await world.token()
        refused = [
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "https://evil.example"},
        ]
        for headers in refused:
            response = await client.post(f"/ack/{token}", data={"token": token}, headers=headers)
            assert response.status == 403
        assert world.ack_calls == 0
        ok = await client.post(
            f"/ack/{token}",
            data={"token": token},
            headers={"Origin": "https://larm.example", "Sec-Fetch-Site": "same-origin"},
        )
        assert ok.status == 200
    assert len(world.acks) == 1


@pytest.mark.parametrize(
    ("count", "remark"),
    [("fem", ""), ("-3", ""), ("2,5", ""), ("1000", ""), ("5", "x" * 501)],
)
async def test_bad_form_input_shows_the_form_again(
    client: TestClient[Any, Any], world: World, count: str, remark: str
) -> None:
    token = await world.token()
    response = await client.post(
        f"/ack/{token}", data={"token": token, "count": count, "remark": remark}
    )
    assert response.status == 400
    page = await response.text()
    assert 'class="problem"' in page
    assert f'name="token" value="{token}"' in page
    assert world.ack_calls == 0


async def test_expired_and_tampered_links(client: TestClient[Any, Any], world: World) -> None:
    token = await world.token()
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert (await client.get(f"/ack/{forged}")).status == 404
    assert (await client.post(f"/ack/{forged}", data={"token": forged})).status == 404
    assert (await client.get(f"/ack/{quote('<script>')}")).status == 404
    world.clock.advance(world.codes.policy.ttl)
    response = await client.get(f"/ack/{token}")
    assert response.status == 410
    assert "gått ut" in await response.text()
    assert (await client.post(f"/ack/{token}", data={"token": token})).status == 410
    assert world.ack_calls == 0


async def test_code_used_by_reply_first_means_already(
    client: TestClient[Any, Any], world: World
) -> None:
    token = await world.token()
    async with world.db.write() as session:
        await world.codes.redeem_link(
            session,
            outbox_key="out-1",
            incident_id="H-7",
            party_id="uppsala",
            now=world.clock.now(),
        )
    response = await client.post(f"/ack/{token}", data={"token": token})
    assert "Redan kvitterat" in await response.text()


async def test_page_language_and_escaping(world: World) -> None:
    async with TestClient(TestServer(make_app(world))) as client:
        token = await world.token(party="innlandet")
        page = await (await client.get(f"/ack/{token}")).text()
        assert 'lang="nb"' in page
        assert "Kvitter alarmen H-7 for innlandet?" in page
        evil = await world.token(party='"><script>alert(1)</script>', key="out-evil")
        page = await (await client.get(f"/ack/{evil}")).text()
        assert "<script>" not in page
        assert "&lt;script&gt;" in page


async def test_pages_take_their_texts_from_the_catalogue(world: World) -> None:
    real = Catalog.load()
    messages = {
        lang: {key: real.raw(lang, key) or "" for key in real.keys(lang)}
        for lang in real.languages
    }
    messages["sv"]["page.confirm"] = "Bekräfta <{incident}> & {party}?"
    async with TestClient(TestServer(make_app(world, catalog=Catalog(messages)))) as client:
        token = await world.token()
        page = await (await client.get(f"/ack/{token}")).text()
        assert "Bekräfta &lt;H-7&gt; &amp; uppsala?" in page  # catalogue text is escaped too
        response = await client.post(f"/ack/{token}", data={"token": token, "count": "fem"})
        assert "heltal från 0 till 999" in await response.text()
    for language, expected in [("en", "Acknowledge alarm H-7 for uppsala?"), ("de", "Kvittera")]:
        app = make_app(world, language_for=lambda _claim, lang=language: lang)
        async with TestClient(TestServer(app)) as client:
            token = await world.token(key=f"out-{language}")
            page = await (await client.get(f"/ack/{token}")).text()
            assert expected in page
            assert f'lang="{"en" if language == "en" else "sv"}"' in page
            response = await client.post(
                f"/ack/{token}", data={"token": token, "remark": "x" * 501}
            )
            problem = "at most 500 characters" if language == "en" else "högst 500 tecken"
            assert problem in await response.text()


async def test_ack_callback_failure_is_an_error_page(world: World) -> None:
    async def broken(_claim: LinkClaim, _form: AckForm) -> AckOutcome:
        raise RuntimeError(f"boom {SIGNING_SECRET.get_secret_value()}")

    async with TestClient(TestServer(make_app(world, on_ack=broken))) as client:
        token = await world.token()
        response = await client.post(f"/ack/{token}", data={"token": token})
        assert response.status == 503
        assert SIGNING_SECRET.get_secret_value() not in await response.text()


# -- serving and logging -----------------------------------------------------------------------


async def test_serve_on_loopback_logs_no_secret(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(_sms: InboundSms) -> None:
        raise RuntimeError(f"secret={GATEWAY_SECRET}")

    caplog.set_level(logging.DEBUG, logger="bot.http")
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    runner = await serve(make_app(world, on_sms=broken), port=0)
    try:
        host, port = runner.addresses[0][:2]
        assert host == "127.0.0.1"
        base = f"http://{host}:{port}"
        token = await world.token()
        async with aiohttp.ClientSession() as http:
            for url in (
                f"{base}/sms/inbound?secret={GATEWAY_SECRET}&{MO}",
                f"{base}/sms/dlr?secret={GATEWAY_SECRET}&ref=a&status=1",
                f"{base}/ack/{token}",
                f"{base}/nowhere?secret={GATEWAY_SECRET}",
            ):
                async with http.get(url) as response:
                    await response.read()
            async with http.post(f"{base}/ack/{token}", data={"token": token}) as response:
                assert response.status == 200
            # A malformed request line that aiohttp itself rejects.
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET /sms/inbound?secret={GATEWAY_SECRET} HTTP/1.1\r\n\x01\r\n\r\n".encode()
            )
            await writer.drain()
            await reader.read()
            writer.close()
    finally:
        await runner.cleanup()
    logged = "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    assert "/sms/inbound" in logged  # the access log is there...
    assert "/ack/{token}" in logged
    assert GATEWAY_SECRET not in logged  # ...without the secret or the capability
    assert token not in logged
    assert token.split(".")[2] not in logged


def test_redact() -> None:
    line = f'"GET /ack/{"1.abc.def"}?x=1 HTTP/1.1" /sms/dlr?secret=s3cr3t&ref=a'
    assert redact(line) == '"GET /ack/***?x=1 HTTP/1.1" /sms/dlr?secret=***&ref=a'


def test_loopback_detection() -> None:
    # Only checked, never bound: these tests listen on loopback alone.
    assert _is_loopback("127.0.0.1")
    assert _is_loopback("::1")
    assert _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0")  # noqa: S104
    assert not _is_loopback("192.0.2.1")
