"""Replies in over SMTP: a real listener, real replies from the function mailbox, and junk.

The story: the bot e-mails the alarm through a relay to Region Uppsala's TiB mailbox (a
:class:`MailSink`); the TiB answers from the phone, quoting the alarm; the reply comes back
through the organisation's mail server into the bot's :class:`InboundMailServer`. What the bot
gets must be the TiB's own words, threaded to the alarm, whatever the client did to them.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiosmtplib
import pytest

from bot.demo.mailsink import MailSink
from bridges.email.inbound import (
    InboundMail,
    InboundMailServer,
    html_to_text,
    parse_inbound,
    strip_quoted,
)
from bridges.email.message import MailKind, build_mail, make_message_id
from bridges.email.smtp import DeliveryStatus, Relay, SmtpSender
from bridges.reply_parser import ParseProblem, parse_reply

BOT = "larm@vgregion.example"
TIB = "tib@regionuppsala.example"


class Inbox:
    """What the listener handed over, in order; ``fail`` makes the next deliveries fail.

    No waiting is needed: the listener answers 250 only after :meth:`store` returned, so by the
    time a send has returned, its mail is here (that is the guarantee under test).
    """

    def __init__(self) -> None:
        self.mails: list[InboundMail] = []
        self.fail = 0

    async def store(self, mail: InboundMail) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("database is locked")
        self.mails.append(mail)


@pytest.fixture
async def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def listener(inbox: Inbox) -> AsyncIterator[InboundMailServer]:
    async with InboundMailServer(
        "127.0.0.1", 0, inbox.store, accept=[BOT, "svar.vgregion.example"]
    ) as server:
        yield server


@pytest.fixture
async def mailbox(listener: InboundMailServer) -> AsyncIterator[MailSink]:
    """Region Uppsala's TiB function mailbox, answering into the bot's listener."""
    async with MailSink(listener=(listener.host, listener.port)) as sink:
        yield sink


Send = Callable[..., Awaitable[tuple[dict[str, object], str]]]


def raw_sender(server: InboundMailServer) -> Send:
    """Send exact bytes to the listener, as the organisation's mail server would."""

    async def send(data: bytes, *, sender: str = TIB, to: str = BOT) -> tuple[dict, str]:
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            start_tls=False,
            local_hostname="mx.localhost",
            timeout=5,
        )
        async with client:
            utf8 = [] if (sender + to).isascii() else ["SMTPUTF8"]
            return await client.sendmail(sender, [to], data, mail_options=utf8)

    return send


async def without_size(server: InboundMailServer, data: bytes) -> str:
    """A hand-typed session that does not announce SIZE: the reply to the end of DATA."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        await reader.readline()
        envelope = (f"MAIL FROM:<{TIB}>", f"RCPT TO:<{BOT}>")
        for command in ("HELO mx.localhost", *envelope, "DATA"):
            writer.write(command.encode() + b"\r\n")
            reply = await reader.readline()
            assert reply[:1] in (b"2", b"3"), reply
        writer.write(data.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return (await reader.readline()).decode()
    finally:
        writer.close()


# --- the round trip ---------------------------------------------------------------------------


async def test_a_reply_from_the_function_mailbox_comes_back_threaded_and_without_the_quote(
    inbox: Inbox, mailbox: MailSink
) -> None:
    alarm_id = make_message_id("vgregion.example")
    alarm = build_mail(
        kind=MailKind.ALARM,
        sender=BOT,
        recipients=[TIB],
        subject="[H-1] MASSKADELARM – Katastrofläge",
        body="MASSKADELARM – katastrofläge\nBussolycka vid Ånge.\nSvara KVITTERA 482193 <antal>\n",
        message_id=alarm_id,
        incident_id="H-1",
        reply_code="KVITTERA 482193",
    )
    sent = await SmtpSender([Relay("127.0.0.1", mailbox.port, starttls=False)]).send(alarm)
    assert sent.status is DeliveryStatus.SENT
    received = await mailbox.wait_for(lambda m: m.message_id == alarm_id)

    reply = await mailbox.reply(
        received, "KVITTERA 482193 5\nVi skickar fem bilar från Gävle.", TIB
    )
    [got] = inbox.mails

    assert got.text == "KVITTERA 482193 5\nVi skickar fem bilar från Gävle."
    assert got.in_reply_to == alarm_id
    assert got.references == (alarm_id,)
    assert got.message_id == reply["Message-ID"]
    assert got.subject == "Re: [H-1] MASSKADELARM – Katastrofläge"
    assert got.header_from == TIB
    assert got.envelope_from == TIB
    assert got.to == (BOT,)
    assert not got.automatic
    # The quote is kept for the audit trail, and it is where the code also appears.
    assert "> Svara KVITTERA 482193 <antal>" in got.full_text
    assert got.full_text.count("482193") == 2
    assert len(got.raw_sha256) == 64


async def test_an_english_client_bottom_posting_is_read_too(
    inbox: Inbox, mailbox: MailSink, listener: InboundMailServer
) -> None:
    await raw_sender(listener)(
        b"From: TiB Oslo <tib@helse-sorost.example>\r\nTo: " + BOT.encode() + b"\r\n"
        b"Subject: Re: [H-1] MASSKADELARM\r\nMessage-ID: <r2@helse-sorost.example>\r\n"
        b"In-Reply-To: <a1@vgregion.example>\r\n"
        b"References: <a0@vgregion.example>\r\n <a1@vgregion.example>\r\n\r\n"
        b"On Wed, Nov 26, 2026 at 4:12 AM larmkedja <\r\nlarm@vgregion.example> wrote:\r\n\r\n"
        b"> MASSKADELARM\r\n> Svara KVITTERA 482193 <antall>\r\n\r\nKVITTERA 482193 3\r\n"
        b"\r\n-- \r\nTiB Helse Sor-Ost, tlf 22 00 00 00\r\n",
        sender="tib@helse-sorost.example",
    )
    [got] = inbox.mails

    assert got.text == "KVITTERA 482193 3"
    assert got.references == ("<a0@vgregion.example>", "<a1@vgregion.example>")
    assert got.in_reply_to == "<a1@vgregion.example>"


# --- what the listener refuses ------------------------------------------------------------------


async def test_only_the_bots_addresses_are_accepted_so_it_is_no_open_relay(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    send = raw_sender(listener)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(b"Subject: relay me\r\n\r\nhi\r\n", to="someone@elsewhere.example")
    assert refused.value.recipients[0].code == 550

    await send(b"Subject: a\r\n\r\nKVITTERA 1\r\n", to="LARM+h-1@VGregion.example")
    await send(b"Subject: b\r\n\r\nKVITTERA 2\r\n", to="anything@svar.vgregion.example")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send(b"Subject: c\r\n\r\nx\r\n", to="larm@vgregion.example.evil.example")
    await send(b"Subject: d\r\n\r\nKVITTERA 3\r\n", sender="tib@region-\u00f6rebro.example")
    assert [m.subject for m in inbox.mails] == ["a", "b", "d"]
    assert inbox.mails[-1].envelope_from == "tib@region-\u00f6rebro.example"


async def test_a_message_over_256_kib_gets_552_announced_or_not(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    big = b"Subject: stor\r\n\r\n" + (b"A" * 998 + b"\r\n") * 300

    with pytest.raises(aiosmtplib.SMTPSenderRefused) as announced:
        await raw_sender(listener)(big)  # aiosmtplib announces SIZE=…
    assert announced.value.code == 552

    assert (await without_size(listener, big)).startswith("552")
    assert inbox.mails == []
    assert (await without_size(listener, b"Subject: small\r\n\r\nok\r\n")).startswith("250")


async def test_a_client_outside_allowed_clients_is_refused(inbox: Inbox) -> None:
    async with InboundMailServer(
        "127.0.0.1", 0, inbox.store, accept=[BOT], allowed_clients=["10.0.0.0/8"]
    ) as server:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await raw_sender(server)(b"Subject: x\r\n\r\ny\r\n")
    assert refused.value.code == 554
    assert inbox.mails == []


async def test_a_failing_inbox_gets_451_and_the_mail_server_retry_is_stored_once(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    inbox.fail = 1
    message = b"Subject: Re: larm\r\nMessage-ID: <retry@x.example>\r\n\r\nKVITTERA 482193 5\r\n"
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await raw_sender(listener)(message)
    assert refused.value.code == 451

    await raw_sender(listener)(message)
    [stored] = inbox.mails
    assert stored.text == "KVITTERA 482193 5"


def test_the_listener_binds_to_loopback_by_default() -> None:
    async def nothing(_mail: InboundMail) -> None:
        return None

    assert InboundMailServer(on_mail=nothing, accept=[BOT]).host == "127.0.0.1"


# --- odd and broken mail ----------------------------------------------------------------------


async def test_latin1_headers_and_body_are_read(inbox: Inbox, listener: InboundMailServer) -> None:
    await raw_sender(listener)(
        "From: Åsa Öberg <tib@regionuppsala.example>\r\n"
        "Subject: Re: Masskadelarm – svar från Gävle\r\n"
        "Content-Type: text/plain; charset=ISO-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Kvittera 482193 5, vi skickar fem bilar från Gävle. Hälsningar Åsa\r\n".encode("cp1252")
    )
    await raw_sender(listener)(
        b"Subject: =?iso-8859-1?q?Re=3A_Masskadelarm_fr=E5n_G=E4vle?=\r\n"
        b'Content-Type: text/plain; charset="iso-8859-1"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Kvittera 482193 5 fr=E5n G=E4vle=\r\n, =D6rebro\r\n"
    )
    undeclared, declared = inbox.mails

    assert undeclared.subject == "Re: Masskadelarm – svar från Gävle"
    assert undeclared.text == "Kvittera 482193 5, vi skickar fem bilar från Gävle. Hälsningar Åsa"
    assert undeclared.header_from == TIB
    assert declared.subject == "Re: Masskadelarm från Gävle"
    assert declared.text == "Kvittera 482193 5 från Gävle, Örebro"


async def test_base64_and_broken_charsets_come_out_as_text(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    send = raw_sender(listener)
    body = base64.encodebytes("KVITTERA 482193 2\nHilsen fra Tromsø, Bodø og Ålesund\n".encode())
    await send(
        b"Subject: =?utf-8?b?U3Ztw6RyOiBsYXJt?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + body
    )
    await send(
        b"Subject: =?x-no-such-charset?q?Re=3A_larm?=\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
        + "KVITTERA 482193 1 från Älvdalen\r\n".encode()
    )
    await send(
        b"Subject: broken\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nS1ZJVFRFUkEgNDgyMTkz\xff\xfe!!!\r\n"
    )
    await send(
        b"Subject: invalid utf-8\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"ok \xc3\x28 \xff\r\n"
    )
    b64, unknown, broken_b64, invalid = inbox.mails

    assert b64.subject == "Svmär: larm"
    assert b64.text == "KVITTERA 482193 2\nHilsen fra Tromsø, Bodø og Ålesund"
    assert unknown.text == "KVITTERA 482193 1 från Älvdalen"
    assert "Re" in unknown.subject
    assert broken_b64.text.startswith("KVITTERA 482193")
    assert invalid.text == "ok \ufffd( \ufffd"


async def test_an_html_only_reply_loses_its_quoted_alarm(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    html = (
        "<html><head><style>p{color:red}</style></head><body>"
        "<div dir=ltr>KVITTERA 482193 4<br>Vi &aring;ker nu.</div><br>"
        "<div class=gmail_quote><div class=gmail_attr>Den ons 26 nov. 2026 skrev larmkedja:</div>"
        "<blockquote>MASSKADELARM<br>Svara KVITTERA 482193 &lt;antal&gt;</blockquote></div>"
        "</body></html>"
    )
    await raw_sender(listener)(
        b"Subject: Re: larm\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + html.replace("=", "=3D").encode()
        + b"\r\n"
    )
    [got] = inbox.mails

    assert got.text == "KVITTERA 482193 4\nVi åker nu."
    assert "Svara" not in got.full_text


async def test_multipart_prefers_plain_text_and_skips_attachments_and_enclosures(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    await raw_sender(listener)(
        b"Subject: Re: larm\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b'--b1\r\nContent-Type: multipart/alternative; boundary="b2"\r\n\r\n'
        b"--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nKVITTERA 482193 6\r\n"
        b"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>KVITTERA 482193 6</p>\r\n"
        b"--b2--\r\n"
        b"--b1\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt"
        b"\r\n\r\nKVITTERA 999999 99\r\n--b1--\r\n"
    )
    # A forwarded alarm enclosed as message/rfc822 carries a code but is not the sender's text.
    await raw_sender(listener)(
        b"Subject: Fwd: larm\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: MASSKADELARM\r\n\r\nSvara KVITTERA 482193 <antal>\r\n--b1--\r\n"
    )
    replied, forwarded = inbox.mails
    assert replied.text == "KVITTERA 482193 6"
    assert forwarded.text == ""


async def test_junk_is_accepted_without_a_crash(inbox: Inbox, listener: InboundMailServer) -> None:
    send = raw_sender(listener)
    await send(b"\x00\x01\x02 not a mail at all \xff\xfe\r\n\r\n\r\n")
    await send(
        b"Subject: \xff\xfe=?utf-8?q?=FF?= =?bogus?x?y?=\r\nContent-Type: ;;;\r\n"
        b"Content-Transfer-Encoding: x-unheard-of\r\nMessage-ID: no brackets\r\n"
        b"From: <<<@@@>>>\r\nReferences: garbage <ok@x.example> <bad\r\n\r\nbody\r\n"
    )
    await send(b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n--never-closed\r\n')
    first, second, third = inbox.mails

    assert "not a mail at all" in first.full_text
    assert "\x00" not in first.full_text
    assert second.message_id == ""
    assert second.references == ("<ok@x.example>",)
    assert second.text == "body"
    assert third.text == ""


def test_parsing_never_raises_on_random_bytes() -> None:
    rng = random.Random(4821)
    pieces = [
        b"Subject: ", b"From: ", b"Content-Type: multipart/mixed; boundary=x\r\n", b"--x\r\n",
        b"Content-Transfer-Encoding: base64\r\n", b"=?utf-8?b?", b"?=", b"\r\n", b"\r\n\r\n",
        b"> ", b"On Mon wrote:", b"<html><blockquote>", b"\xff", b"\xc3", b"=E5", b"\x00",
    ]  # fmt: skip
    for _ in range(300):
        parts = rng.randint(0, 40)
        raw = b"".join(
            rng.choice(pieces) if rng.random() < 0.7 else rng.randbytes(8) for _ in range(parts)
        )
        mail = parse_inbound(raw, "x@y.example", [BOT])
        assert isinstance(mail.text, str)
        assert mail.size == len(raw)


async def test_auto_replies_and_bounces_are_flagged(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    send = raw_sender(listener)
    await send(
        "Auto-Submitted: auto-replied\r\nSubject: Frånvaro: [H-1] MASSKADELARM\r\n\r\n"
        "Jag är på semester. Ditt meddelande:\r\nSvara KVITTERA 482193 <antal>\r\n".encode()
    )
    await send(b"Subject: Undelivered\r\n\r\nSvara KVITTERA 482193\r\n", sender="")
    await send(b"Auto-Submitted: no\r\nSubject: Re: larm\r\n\r\nKVITTERA 482193 5\r\n")

    assert [m.automatic for m in inbox.mails] == [True, True, False]


# --- quoted text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            "KVITTERA 482193 5\n\nDen ons 26 nov. 2026 kl 04:12 skrev larmkedja "
            "<larm@vgregion.example>:\n> MASSKADELARM\n> Svara KVITTERA 482193 <antal>\n",
            "KVITTERA 482193 5",
            id="gmail-sv-top-posted",
        ),
        pytest.param(
            "Kvitterer 482193 2\n\nons. 26. nov. 2026 kl. 04:12 skrev larmkedja "
            "<larm@vgregion.example>:\n\n> Svar KVITTER 482193 <antall>\n",
            "Kvitterer 482193 2",
            id="apple-nb",
        ),
        pytest.param(
            "KVITTERA 482193 1\n\nSkickat från min iPhone\n\n________________________________\n"
            "Från: larmkedja <larm@vgregion.example>\nSkickat: den 26 november 2026 04:12\n"
            "Till: TiB Uppsala\nÄmne: MASSKADELARM\n\nSvara KVITTERA 482193 <antal>\n",
            "KVITTERA 482193 1",
            id="outlook-sv-unquoted-original",
        ),
        pytest.param(
            "Ok 482193 3\n\n-----Original Message-----\nFrom: larm@vgregion.example\n"
            "Svara KVITTERA 482193\n",
            "Ok 482193 3",
            id="original-message-separator",
        ),
        pytest.param(
            "> MASSKADELARM\n> Kvittera och ange antal.\nKVITTERA 482193 5\n"
            "> Svara KVITTERA 482193 <antal>\nVi åker nu.\n",
            "KVITTERA 482193 5\nVi åker nu.",
            id="inline",
        ),
        pytest.param(
            "Den ons 26 nov. 2026 kl 04:12 skrev larmkedja <larm@vgregion.example>:\n"
            "> Svara KVITTERA 482193 <antal>\n",
            "",
            id="only-a-quote",
        ),
        pytest.param(
            "KVITTERA 482193 5\nSom jag skrev 04:12:\nvi har fem bilar.\n",
            "KVITTERA 482193 5\nSom jag skrev 04:12:\nvi har fem bilar.",
            id="own-text-mentioning-skrev-is-kept",
        ),
        pytest.param(
            "KVITTERA 482193 5\nDen här gången skickar vi fem.\n",
            "KVITTERA 482193 5\nDen här gången skickar vi fem.",
            id="own-line-starting-with-den-is-kept",
        ),
    ],
)
def test_quoted_parts_are_removed_where_recognisable(reply: str, expected: str) -> None:
    assert strip_quoted(reply) == expected


def test_html_to_text_keeps_lines_and_entities() -> None:
    assert html_to_text("<p>Ett</p><p>Tv&aring; &amp; tre<br/>fyra</p>") == "Ett\nTvå & tre\nfyra"
    assert html_to_text("<div>svar<blockquote>citat<p>mer</blockquote>efter</div>") == "svarefter"


# --- automatic mail: never a code, whatever marks it (issue 10) ---------------------------------

ALARM_QUOTE = "Ditt meddelande:\r\nSvara KVITTERA 482193 <antal>\r\n"
AUTO_HEADERS = [
    ("Auto-Submitted", "auto-replied"),
    ("Auto-Submitted", "auto-generated"),
    ("Auto-Submitted", "auto-notified; owner-email=tib@x.example"),
    ("Precedence", "auto_reply"),
    ("Precedence", "auto-reply"),
    ("Precedence", "bulk"),
    ("Precedence", "junk"),
    ("Precedence", "list"),
    ("X-Auto-Response-Suppress", "All"),
    ("X-Auto-Response-Suppress", "DR, OOF, AutoReply"),
    ("X-MS-Exchange-Inbox-Rules-Loop", "tib@regionuppsala.example"),
    ("X-Autoreply", "yes"),
    ("X-Autorespond", "Jag är ledig"),
    ("X-Autoresponse", "1"),
    ("X-Autogenerated", "Reply"),
    ("X-Failed-Recipients", "tib@regionuppsala.example"),
    ("List-Id", "TiB-listan <tib.lists.regionuppsala.example>"),
    ("Return-Path", "<>"),
]
AUTO_SUBJECTS = [
    "Automatiskt svar: [H-1] MASSKADELARM",
    "Automatisk svar: [H-1] MASSESKADEVARSEL",
    "Autosvar: [H-1] MASSKADELARM",
    "Frånvaro: [H-1] MASSKADELARM",
    "Frånvaro",
    "Frånvarande: larm",
    "Fraværende: [H-1] MASSESKADEVARSEL",
    "Fravær: varsel",
    "Out of Office: [H-1] MASS-CASUALTY ALARM",
    "Out of office",
    "Out of Office AutoReply: larm",
    "Automatic reply: [H-1] MASS-CASUALTY ALARM",
    "Auto: [H-1] MASSKADELARM",
    "AutoReply: larm",
    "Auto-Reply: larm",
    "Auto Response: larm",
    "Abwesenheitsnotiz: [H-1] MASSKADELARM",
    "Automatische Antwort: larm",
    "Undeliverable: [H-1] MASSKADELARM",
    "Kan inte levereras: [H-1] MASSKADELARM",
    "Ikke levert: [H-1] MASSESKADEVARSEL",
    "Delivery Status Notification (Failure)",
    "Mail delivery failed: returning message to sender",
    "  automatiskt SVAR: [H-1]",
]
HUMAN_SUBJECTS = [
    "Re: [H-1] MASSKADELARM – Katastrofläge",
    "SV: Automatiskt svar: [H-1] MASSKADELARM",
    "Re: Out of Office: larm",
    "Autosvaret fungerar inte",
    "Automatiska larm",
    "Frånvarolista för natten",
    "Auto-generated report not needed",
]


def auto_reply(header: tuple[str, str] | None, subject: str, rng: random.Random) -> bytes:
    lines = [f"From: TiB Uppsala <{TIB}>", f"To: {BOT}", f"Subject: {subject}"]
    if header is not None:
        lines.insert(rng.randrange(len(lines) + 1), f"{header[0]}: {header[1]}")
    body = rng.choice(
        [
            "Jag är på semester till måndag. " + ALARM_QUOTE,
            "Jeg er på ferie.\r\n\r\n" + ALARM_QUOTE.replace("Svara KVITTERA", "KVITTER"),
            "I am out of the office.\r\n> KVITTERA 482193 <antal>\r\nKVITTERA 482193 5\r\n",
            "KVITTERA 482193 5\r\n",  # even the plainest acknowledgement, if the mail is automatic
        ]
    )
    return (
        "\r\n".join(lines) + "\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    ).encode()


async def test_automatic_mail_of_every_kind_is_flagged_and_gives_no_code(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    """Every automatic marker, alone, and every automatic subject, alone, with a body that
    would acknowledge if a person had written it; and the human look-alikes, which must not be
    taken for automatic (their acknowledgement would be lost without an answer)."""
    rng = random.Random(3834)
    send = raw_sender(listener)
    cases: list[tuple[bytes, bool, str]] = []
    for header in AUTO_HEADERS:
        cases.append((auto_reply(header, "Re: [H-1] MASSKADELARM", rng), True, header[0]))
    for subject in AUTO_SUBJECTS:
        cases.append((auto_reply(None, subject, rng), True, subject))
    for _ in range(40):  # combinations, in random places
        header = rng.choice(AUTO_HEADERS)
        cases.append((auto_reply(header, rng.choice(AUTO_SUBJECTS), rng), True, header[0]))
    for subject in HUMAN_SUBJECTS:
        cases.append((auto_reply(None, subject, rng), False, subject))
    cases.append((auto_reply(("Auto-Submitted", "no"), HUMAN_SUBJECTS[0], rng), False, "no"))
    cases.append(
        (auto_reply(("X-Auto-Response-Suppress", "None"), HUMAN_SUBJECTS[0], rng), False, "None")
    )
    for raw, _automatic, _why in cases:
        await send(raw)
    counts: Counter[str] = Counter()
    assert len(inbox.mails) == len(cases)  # every one stored: nothing dropped at the door
    for mail, (_raw, automatic, why) in zip(inbox.mails, cases, strict=True):
        counts["inputs"] += 1
        assert mail.automatic is automatic, (why, mail.subject, mail.automatic_reason)
        if automatic:
            assert mail.automatic_reason, why
            assert mail.text == "", why  # no code can be read from it
            assert isinstance(parse_reply(mail.text, channel="email"), ParseProblem)
            counts["automatic, no code"] += 1
        else:
            counts["a person's"] += 1
    # A bounce with a null sender, and one from MAILER-DAEMON.
    await send(b"Subject: Undelivered\r\n\r\nKVITTERA 482193 5\r\n", sender="")
    await send(b"Subject: x\r\n\r\nKVITTERA 482193 5\r\n", sender="MAILER-DAEMON@x.example")
    for mail in inbox.mails[-2:]:
        assert (mail.automatic, mail.automatic_reason, mail.text) == (True, "bounce", "")
    print(f"\nautomatic mail: {dict(counts)}")


# --- the From: binding: the address, never the display name (issue 10) --------------------------

REGION = "tib@varmland.example"
FORGER = "attacker@evil.example"


def from_headers(rng: random.Random) -> list[tuple[str, str]]:
    """(From: header as sent, the only address a reply may be bound to: FORGER or "")."""

    def q(text: str) -> str:
        return "=?utf-8?q?" + "".join(c if c.isalnum() else f"={ord(c):02X}" for c in text) + "?="

    def b(text: str) -> str:
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="

    out = [
        (f"{q(REGION)} <{FORGER}>", FORGER),
        (f"{b(REGION)} <{FORGER}>", FORGER),
        (f"{q('TiB ' + REGION)} <{FORGER}>", FORGER),
        (f'"{REGION}" <{FORGER}>', FORGER),
        (f"TiB ({REGION}) <{FORGER}>", FORGER),
        (f"{FORGER} ({REGION})", FORGER),
        (f"=?iso-8859-1?q?{REGION.replace('@', '=40')}?= <{FORGER}>", FORGER),
        (f"{REGION} <{FORGER}>", ""),  # an unquoted address as display name: ambiguous
        (f"<{FORGER}> {REGION}", ""),
        (f"{REGION}, {FORGER}", ""),  # two mailboxes
        (f"{FORGER}, {REGION}", ""),
        (q(REGION), ""),  # an encoded-word where the address should be
        (f"<{q(REGION)}>", ""),
        (f'"{REGION}"@evil.example', ""),
        (f"Undisclosed recipients: {REGION};", ""),
        ("", ""),
    ]
    for _ in range(30):
        display = rng.choice([REGION, REGION.upper(), "TiB Värmland " + REGION, REGION + " "])
        encode, bound = rng.choice(
            [(q, FORGER), (b, FORGER), (lambda t: t.replace("@", " @ "), "")]  # the last: invalid
        )
        out.append((f"{encode(display)} <{FORGER}>", bound))
    return out


async def test_an_encoded_word_display_name_never_becomes_the_address(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    rng = random.Random(2047)
    cases = from_headers(rng)
    send = raw_sender(listener)
    for header, _expected in cases:
        raw = (f"From: {header}\r\n" if header else "") + f"To: {BOT}\r\nSubject: Re: larm\r\n"
        await send((raw + "\r\nKVITTERA 482193 4\r\n").encode(), sender=FORGER)
    assert len(inbox.mails) == len(cases)
    counts: Counter[str] = Counter()
    for mail, (header, expected) in zip(inbox.mails, cases, strict=True):
        counts["inputs"] += 1
        assert REGION not in mail.header_from.lower(), header
        assert REGION not in mail.from_address.lower(), header
        if header:
            assert mail.from_address == expected, (header, mail.from_address)
        else:  # no From: at all: the envelope sender, which the relay checked (SPF)
            assert mail.from_address == FORGER
        counts["bound to the forger" if mail.from_address else "bound to nobody"] += 1
    print(f"\nFrom: bindings: {dict(counts)}")
    assert counts["bound to the forger"]
    assert counts["bound to nobody"]


async def test_a_plain_from_still_binds_to_its_address(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    send = raw_sender(listener)
    for header in (
        f"TiB Uppsala <{TIB}>",
        f'"Berg, Anna (TiB)" <{TIB}>',
        f"Anna B. Berg <{TIB}>",
        f"=?utf-8?q?=C3=85sa_=C3=96berg?= <{TIB}>",
        TIB,
        f"<{TIB}>",
    ):
        await send(f"From: {header}\r\nSubject: Re: larm\r\n\r\nKVITTERA 482193\r\n".encode())
    assert [m.from_address for m in inbox.mails] == [TIB] * 6
    assert inbox.mails[3].from_display == "Åsa Öberg"
