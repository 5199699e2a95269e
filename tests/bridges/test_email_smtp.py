"""Alarms out over SMTP, against real servers on loopback: what arrives, failover, verdicts.

The relays are :class:`bot.demo.mailsink.MailSink` instances (aiosmtpd), a port nothing
listens on, and a server that accepts the connection and then says nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.demo.mailsink import MailSink, self_signed_tls
from bot.demo.ports import free_port
from bridges.email.message import MailKind, build_mail, make_message_id
from bridges.email.smtp import DeliveryStatus, MailResult, Relay, SmtpSender

BOT = "larm@vgregion.example"
TIB_UPPSALA = "tib@regionuppsala.example"
TIB_OSLO = "tib@helse-sorost.example"
SECRET = "hemligt-Lösenord-9f3c"  # noqa: S105 - a test credential, the point of one test


def relay(port: int, **kwargs: object) -> Relay:
    """A loopback relay without TLS (aiosmtpd offers none here) and a short timeout."""
    kwargs.setdefault("starttls", False)
    kwargs.setdefault("timeout", 2.0)
    return Relay("127.0.0.1", port, **kwargs)


def sender(*relays: Relay) -> SmtpSender:
    return SmtpSender(list(relays), local_hostname="bot.localhost")


def alarm_mail(
    *recipients: str, subject: str = "[H-1] MASSKADELARM – Katastrofläge"
) -> EmailMessage:
    return build_mail(
        kind=MailKind.ALARM,
        sender=BOT,
        recipients=list(recipients) or [TIB_UPPSALA],
        subject=subject,
        body=(
            "MASSKADELARM – katastrofläge. Bussolycka vid Ånge; räddningstjänsten på plats.\n"
            "Kvittera och ange antal sekundärtransporter (minst 5).\n"
            "Hilsen fra Helse Sør-Øst: æ ø å Æ Ø Å.\n"
            "Svara KVITTERA 4821 <antal>\n"
        ),
        message_id=make_message_id("vgregion.example"),
        incident_id="H-1",
        reply_code="KVITTERA 4821",
    )


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink() as mailbox:
        yield mailbox


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A server that accepts TCP and never greets: the relay that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()


async def test_an_alarm_arrives_with_its_headers_and_utf8_text_intact(sink: MailSink) -> None:
    msg = alarm_mail(TIB_UPPSALA, TIB_OSLO)
    result = await sender(relay(sink.port)).send(msg)

    assert result.status is DeliveryStatus.SENT, result.detail
    assert result.relay == f"127.0.0.1:{sink.port}"
    assert result.accepted == (TIB_UPPSALA, TIB_OSLO)
    got = await sink.wait_for(lambda m: TIB_UPPSALA in m.rcpt_tos, timeout=2)
    assert got.envelope_from == BOT
    assert got.rcpt_tos == (TIB_UPPSALA, TIB_OSLO)
    assert got.subject == "[H-1] MASSKADELARM – Katastrofläge"
    assert got.message_id == result.message_id == msg["Message-ID"]
    assert got.header("X-Larmkedja-Reply-Code") == "KVITTERA 4821"
    assert "Bussolycka vid Ånge; räddningstjänsten på plats." in got.text
    assert "æ ø å Æ Ø Å" in got.text
    assert "Svara KVITTERA 4821 <antal>" in got.text
    assert max(got.raw) < 128, "the wire form must be 7-bit clean"


async def test_login_with_credentials_when_the_relay_asks() -> None:
    async with MailSink(credentials={"larmkedja": SECRET}) as sink:
        ok = await sender(relay(sink.port, username="larmkedja", password=SECRET)).send(
            alarm_mail()
        )
        anonymous = await sender(relay(sink.port)).send(alarm_mail())

    assert ok.status is DeliveryStatus.SENT, ok.detail
    assert sink.received[0].login == "larmkedja"
    # The relay refuses MAIL (530) to an unauthenticated client: final, not worth a retry.
    assert anonymous.status is DeliveryStatus.PERMANENT
    assert anonymous.attempts[0].phase == "mail"
    assert anonymous.attempts[0].code == 530


async def test_a_relay_refusing_us_with_a_5xx_outside_rcpt_hands_over(sink: MailSink) -> None:
    async with MailSink(credentials={"someone-else": SECRET}) as wants_auth:
        result = await sender(relay(wants_auth.port), relay(sink.port)).send(alarm_mail())

    assert result.status is DeliveryStatus.SENT
    assert result.attempts[0].phase == "mail"
    assert result.attempts[0].code == 530
    assert len(sink.received) == 1


async def test_a_dead_first_relay_hands_over_to_the_second(sink: MailSink) -> None:
    dead = free_port()
    result = await sender(relay(dead), relay(sink.port)).send(alarm_mail())

    assert result.status is DeliveryStatus.SENT
    assert result.relay == f"127.0.0.1:{sink.port}"
    [failed] = result.attempts
    assert failed.relay == f"127.0.0.1:{dead}"
    assert failed.phase == "connect"
    assert failed.temporary
    assert len(sink.received) == 1


async def test_a_hanging_relay_times_out_and_the_next_one_is_used(
    sink: MailSink, silent_port: int
) -> None:
    started = asyncio.get_running_loop().time()
    result = await sender(relay(silent_port, timeout=0.3), relay(sink.port)).send(alarm_mail())

    assert result.status is DeliveryStatus.SENT
    assert result.attempts[0].temporary
    assert "imed out" in result.attempts[0].detail
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_4xx_for_the_recipient_tries_the_next_relay(sink: MailSink) -> None:
    async with MailSink(refuse={TIB_UPPSALA: "451 4.3.2 Try again later"}) as busy:
        result = await sender(relay(busy.port), relay(sink.port)).send(alarm_mail())

    assert result.status is DeliveryStatus.SENT
    assert result.relay == f"127.0.0.1:{sink.port}"
    assert result.attempts[0].phase == "rcpt"
    assert result.attempts[0].code == 451
    assert busy.received == []
    assert len(sink.received) == 1


async def test_a_550_for_the_recipient_is_permanent_and_no_other_relay_is_asked(
    sink: MailSink,
) -> None:
    async with MailSink(refuse={TIB_UPPSALA: "550 5.1.1 No such mailbox"}) as strict:
        result = await sender(relay(strict.port), relay(sink.port)).send(alarm_mail())

    assert result.status is DeliveryStatus.PERMANENT
    assert not result.retryable
    assert dict(result.refused) == {TIB_UPPSALA: (550, "5.1.1 No such mailbox")}
    assert result.attempts[-1].phase == "rcpt"
    assert not result.attempts[-1].temporary
    assert sink.received == [], "a 5xx is final: the backup relay must not be tried"


async def test_one_refused_function_address_of_two_still_alarms_the_party(
    sink: MailSink,
) -> None:
    sink.refuse_recipient(TIB_OSLO, "550 5.1.1 No such mailbox")
    result = await sender(relay(sink.port)).send(alarm_mail(TIB_UPPSALA, TIB_OSLO))

    assert result.status is DeliveryStatus.SENT
    assert result.accepted == (TIB_UPPSALA,)
    assert result.refused[TIB_OSLO][0] == 550
    assert sink.received[0].rcpt_tos == (TIB_UPPSALA,)


async def test_every_relay_down_is_temporary_so_the_outbox_retries(silent_port: int) -> None:
    result = await sender(relay(free_port()), relay(silent_port, timeout=0.2)).send(alarm_mail())

    assert result.status is DeliveryStatus.TEMPORARY
    assert result.retryable
    assert [a.phase for a in result.attempts] == ["connect", "connect"]
    assert result.relay is None
    assert result.accepted == ()


async def test_starttls_with_a_verified_certificate_then_login(tmp_path: Path) -> None:
    server_tls, ca_file = self_signed_tls(tmp_path)
    async with MailSink(credentials={"larmkedja": SECRET}, tls_context=server_tls) as sink:
        secure = relay(
            sink.port, starttls=True, ca_file=str(ca_file), username="larmkedja", password=SECRET
        )
        result = await sender(secure).send(alarm_mail())

    assert result.status is DeliveryStatus.SENT, result.detail
    assert sink.received[0].login == "larmkedja"


async def test_an_untrusted_certificate_is_not_talked_to(tmp_path: Path, sink: MailSink) -> None:
    server_tls, _ca_file = self_signed_tls(tmp_path)
    async with MailSink(credentials={"larmkedja": SECRET}, tls_context=server_tls) as impostor:
        doubtful = relay(impostor.port, starttls=True, username="larmkedja", password=SECRET)
        result = await sender(doubtful, relay(sink.port)).send(alarm_mail())

    assert result.status is DeliveryStatus.SENT
    assert result.attempts[0].phase == "starttls"
    assert not result.attempts[0].temporary
    assert "CERTIFICATE_VERIFY_FAILED" in result.attempts[0].detail
    assert impostor.received == []


async def test_required_starttls_that_is_not_offered_never_sends_in_clear(
    sink: MailSink,
) -> None:
    async with MailSink(credentials={"larmkedja": SECRET}) as plain_only:
        wants_tls = relay(plain_only.port, starttls=True, username="larmkedja", password=SECRET)
        result = await sender(wants_tls, relay(sink.port)).send(alarm_mail())

    assert result.status is DeliveryStatus.SENT
    assert result.attempts[0].phase == "starttls"
    assert not result.attempts[0].temporary
    assert plain_only.received == []


async def test_a_password_never_reaches_a_log_line_a_result_or_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"wrong-{SECRET}"
    async with MailSink(credentials={"larmkedja": SECRET}) as sink:
        results: list[MailResult] = [
            # Refused AUTH (535), then the only other relay is down.
            await sender(
                relay(sink.port, username="larmkedja", password=wrong),
                relay(free_port(), username="larmkedja", password=SECRET),
            ).send(alarm_mail()),
            await sender(relay(sink.port, username="larmkedja", password=SECRET)).send(
                alarm_mail()
            ),
        ]
    auth_failure = results[0].attempts[0]
    assert auth_failure.phase == "auth"
    assert auth_failure.code == 535
    assert results[0].status is DeliveryStatus.TEMPORARY
    assert results[1].status is DeliveryStatus.SENT

    texts = [caplog.text, *(repr(r) for r in results), *(r.detail for r in results)]
    texts.append(repr(relay(1, username="larmkedja", password=SECRET)))
    texts.append(repr(sender(relay(1, username="larmkedja", password=SECRET)).relays))
    for text in texts:
        assert SECRET not in text
        assert wrong not in text
    assert "larmkedja" in caplog.text  # the log is not simply empty


async def test_a_secret_echoed_by_a_relay_is_redacted(sink: MailSink) -> None:
    # A badly behaved relay that quotes what it was given must not leak it through us either.
    secret = "ascii-secret-7d1e"  # noqa: S105 - SMTP replies are ASCII
    sink.refuse_recipient(TIB_UPPSALA, f"550 5.7.1 refused for password {secret}")
    result = await sender(relay(sink.port, password=secret)).send(alarm_mail())

    assert result.status is DeliveryStatus.PERMANENT
    assert secret not in result.detail
    assert "***" in result.detail
    assert all(secret not in text for _code, text in result.refused.values())
