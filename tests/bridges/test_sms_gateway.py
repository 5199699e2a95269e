"""SMS through a real Kannel (bearerbox, smsbox, fakesmsc on loopback), the way an alarm goes.

Each test sends through :class:`KannelClient` and looks at what the fake SMSC (the handsets'
side) received, what delivery reports came back to the loopback listener, and how the client
classified the gateway's answer when a fault was injected.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator

import pytest

from bot.demo.kannel import SentSms, ThrowawayKannel
from bridges.sms import gsm7
from bridges.sms.kannel import DeliveryStatus, Endpoint, KannelClient, SendOutcome

_numbers = itertools.count(46701000001)


def new_number() -> str:
    """A fresh handset per test, so tests sharing the gateway never read each other's SMS."""
    return str(next(_numbers))


def dead_endpoint(kannel: ThrowawayKannel) -> Endpoint:
    """The gateway's credentials on a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Endpoint(
        f"http://127.0.0.1:{port}/cgi-bin/sendsms", kannel.username, kannel.password, "dead"
    )


async def pgrep(pattern: str) -> set[int]:
    """PIDs of running processes whose command line matches ``pattern``."""
    proc = await asyncio.create_subprocess_exec(
        "pgrep", "-f", pattern, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return {int(pid) for pid in out.split()}


@pytest.fixture
async def client(kannel: ThrowawayKannel) -> AsyncIterator[KannelClient]:
    async with KannelClient(
        [kannel.endpoint("kannel")], "Larmkedja", kannel.recorder.dlr_url_template
    ) as sms:
        yield sms


async def test_swedish_gsm7_text_arrives_as_written(
    kannel: ThrowawayKannel, client: KannelClient
) -> None:
    to = new_number()
    text = "LARM H-7 katastrofläge: Brand i Östra Ärlan. ÅÄÖ åäö Æ Ø æ ø é ü € [E4]"
    result = await client.send(to, text, "gsm7-1")
    assert result.accepted
    assert not result.queued
    assert result.detail == "202 0: Accepted for delivery"
    assert (result.encoding, result.segments) == (gsm7.Encoding.GSM7, 1)
    assert await kannel.wait_for_sent(receiver=to) == [SentSms("Larmkedja", to, text, "text", 1)]


async def test_emoji_goes_as_ucs2(kannel: ThrowawayKannel, client: KannelClient) -> None:
    to = new_number()
    text = "Ambulans 🚑 på väg – kvittera"
    result = await client.send(to, text, "ucs2-1")
    assert result.accepted
    assert result.encoding is gsm7.Encoding.UCS2
    assert await kannel.wait_for_sent(receiver=to) == [SentSms("Larmkedja", to, text, "ucs-2", 1)]


async def test_long_texts_are_concatenated_and_joined_again(
    kannel: ThrowawayKannel, client: KannelClient
) -> None:
    to = new_number()
    long_gsm7 = "Lägesbild: " + "Många skadade vid olycksplatsen, ambulanser behövs. " * 7
    long_ucs2 = "🚑 " + "Förstärkningsläge – sekundärtransporter behövs. " * 3
    assert (gsm7.segments(long_gsm7), gsm7.segments(long_ucs2)) == (3, 3)
    first = await client.send(to, long_gsm7, "long-1")
    second = await client.send(to, long_ucs2, "long-2")
    assert (first.segments, second.segments) == (3, 3)
    got = await kannel.wait_for_sent(2, receiver=to)
    assert got == [
        SentSms("Larmkedja", to, long_gsm7, "text", 3),
        SentSms("Larmkedja", to, long_ucs2, "ucs-2", 3),
    ]


async def test_delivery_reports_come_back_with_our_ref(
    kannel: ThrowawayKannel, client: KannelClient
) -> None:
    to = new_number()
    result = await client.send(to, "Larm H-8", "ob-1234")
    assert result.accepted
    # 8 (SMSC accepted) and 1 (delivered) both arrive, in either order.
    reports = await kannel.recorder.wait_for_reports("ob-1234", count=2)
    by_code = {r.code: r for r in reports}
    assert set(by_code) == {1, 8}
    assert by_code[8].status is DeliveryStatus.ACCEPTED_BY_SMSC
    assert by_code[8].answer == "ACK/"
    assert by_code[1].status is DeliveryStatus.DELIVERED
    assert by_code[1].final
    assert by_code[1].message_id  # Kannel's message id (%F)


async def test_replies_from_phones_reach_the_listener_parsed(kannel: ThrowawayKannel) -> None:
    phone = new_number()
    before = len(kannel.recorder.inbound)
    kannel.inject_mo(phone, "4600", "KVITTERA 4821 5")
    kannel.inject_mo(phone, "4600", "Kvitterar 🚑\nfem bilar på väg")
    got = await kannel.recorder.wait_for_inbound(2, after=before)
    assert sorted(sms.text for sms in got) == ["KVITTERA 4821 5", "Kvitterar 🚑\nfem bilar på väg"]
    assert {(sms.sender, sms.receiver) for sms in got} == {(phone, "4600")}
    assert len({sms.gateway_id for sms in got}) == 2  # the inbox key, unique per SMS
    assert all(sms.ts is not None for sms in got)
    assert kannel.recorder.rejected == []


async def test_unroutable_receiver_is_a_permanent_failure_with_dlr_16(
    kannel: ThrowawayKannel, client: KannelClient
) -> None:
    result = await client.send("46700000123", "Larm", "ob-blocked")
    assert result.outcome is SendOutcome.PERMANENT_FAILURE
    assert result.http_status == 403
    assert "Not routable" in result.detail
    (report,) = await kannel.recorder.wait_for_reports("ob-blocked")
    assert (report.code, report.status) == (16, DeliveryStatus.FAILED)
    assert "black-list" in report.answer


async def test_smsc_stopped_by_admin_is_permanent_then_recovers(
    kannel: ThrowawayKannel, client: KannelClient
) -> None:
    to = new_number()
    await kannel.stop_smsc()
    try:
        refused = await client.send(to, "Larm under SMSC stop", "ob-stopped")
    finally:
        await kannel.start_smsc()
    assert refused.outcome is SendOutcome.PERMANENT_FAILURE
    assert refused.http_status == 403
    assert "Not routable" in refused.detail
    after = await client.send(to, "Larm efter SMSC start", "ob-started")
    assert after.accepted
    assert not after.queued
    assert [m.text for m in await kannel.wait_for_sent(receiver=to)] == ["Larm efter SMSC start"]


async def test_smsc_gone_means_queued_and_delivered_on_reconnect(
    kannel: ThrowawayKannel, client: KannelClient
) -> None:
    to = new_number()
    await kannel.kill_fakesmsc()
    try:
        queued = await client.send(to, "Larm medan SMSC saknas", "ob-queued")
        assert queued.accepted
        assert queued.queued
        assert queued.detail == "202 3: Queued for later delivery"
        assert [r for r in kannel.recorder.reports if r.ref == "ob-queued"] == []
    finally:
        await kannel.restart_fakesmsc()
    assert [m.text for m in await kannel.wait_for_sent(receiver=to)] == ["Larm medan SMSC saknas"]
    reports = await kannel.recorder.wait_for_reports("ob-queued")
    assert DeliveryStatus.DELIVERED in {r.status for r in reports}


async def test_gateway_outage_fails_over_and_recovers(
    kannel: ThrowawayKannel, client: KannelClient
) -> None:
    to = new_number()
    pids = kannel.pids
    await kannel.stop_bearerbox_and_smsbox()
    try:
        assert kannel.pids == {}
        running = await pgrep("bearerbox|smsbox|fakesmsc")
        assert not set(pids.values()) & running

        down = await client.send(to, "Larm under avbrott", "ob-outage")
        assert down.outcome is SendOutcome.TEMPORARY_FAILURE
        assert down.http_status is None
        assert "Cannot connect" in down.detail
    finally:
        await kannel.start()

    # Back on the same ports: the same client works again.
    again = await client.send(to, "Larm efter avbrott", "ob-back")
    assert again.accepted, again.detail

    # Redundancy: the first gateway is dead, the second takes the SMS.
    async with KannelClient(
        [dead_endpoint(kannel), kannel.endpoint("backup")],
        "Larmkedja",
        kannel.recorder.dlr_url_template,
    ) as redundant:
        via_backup = await redundant.send(to, "Larm via reservväg", "ob-backup")
    assert via_backup.accepted
    assert via_backup.endpoint == "backup"
    assert [(a.endpoint, a.outcome) for a in via_backup.attempts] == [
        ("dead", SendOutcome.TEMPORARY_FAILURE),
        ("backup", SendOutcome.ACCEPTED),
    ]
    got = [m.text for m in await kannel.wait_for_sent(2, receiver=to)]
    assert got == ["Larm efter avbrott", "Larm via reservväg"]


async def test_a_closed_gateway_leaves_no_process_and_no_directory() -> None:
    async with ThrowawayKannel() as gateway:
        pids = gateway.pids
        workdir = gateway.workdir
        assert set(pids) == {"bearerbox", "smsbox", "fakesmsc"}
        assert set(pids.values()) <= await pgrep("bearerbox|smsbox|fakesmsc")
        assert gateway.startup_seconds is not None
        assert gateway.startup_seconds < 5
    assert not set(pids.values()) & await pgrep("bearerbox|smsbox|fakesmsc")
    assert not workdir.exists()
    assert gateway.stop_seconds is not None
    assert gateway.stop_seconds < 5
