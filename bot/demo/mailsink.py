"""A function mailbox for the demo and the tests: a real SMTP server that records and answers.

Why a real server and not a recorded ``send`` call: what fails in the field is the wire (a
relay that refuses a recipient, drops the connection, wants AUTH, mangles å ä ö), so the bot's
mail must go through aiosmtplib and arrive over SMTP exactly as a relay would see it. The sink
plays both sides of a regional TiB's mailbox (DESIGN §6): it records every message that
arrives (:attr:`MailSink.received`, :meth:`MailSink.wait_for`) and sends a proper reply back
into the bot's inbound listener (:meth:`MailSink.reply`), threaded and quoted the way a mail
client does it, so the inbound side is exercised against realistic replies.

It can also misbehave on purpose: ``refuse`` answers given recipients with a chosen reply
(550 for "no such mailbox", 451 for "try later"), ``credentials`` makes it demand AUTH.
"""

# The waits take a ``timeout`` argument on purpose: a test reads "wait up to 5 s for the alarm",
# and the error then says what did arrive, which ``asyncio.timeout`` around the call cannot.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import aiosmtplib
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class SinkMail:
    """One message as it arrived: the envelope, the exact bytes, and the parsed message."""

    envelope_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes = field(repr=False)
    message: EmailMessage = field(repr=False)
    #: The account that authenticated for it (``None`` without AUTH).
    login: str | None = None

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", "")).strip()

    @property
    def text(self) -> str:
        """The decoded plain-text body (what a person reads)."""
        body = self.message.get_body(preferencelist=("plain",))
        return "" if body is None else str(body.get_content())

    def header(self, name: str) -> str:
        value = self.message.get(name)
        return "" if value is None else str(value)


class MailSink:
    """A recording SMTP server on a free loopback port; see the module docstring.

    ``listener`` is where :meth:`reply` sends by default: the bot's inbound listener.
    ``refuse`` maps a recipient (case-insensitive) to the full SMTP reply it gets, e.g.
    ``{"okand@region.example": "550 5.1.1 No such mailbox"}``; it can be changed on the fly
    through :meth:`refuse_recipient`. ``credentials`` (user → password) makes the sink offer
    AUTH and refuse MAIL before a successful login. ``tls_context`` (see :func:`self_signed_tls`)
    makes it offer and require STARTTLS, like a real submission relay; without it, AUTH is
    offered in clear, which is acceptable on loopback only.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        listener: tuple[str, int] | None = None,
        refuse: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self.listener = listener
        self._refuse = {k.lower(): v for k, v in (refuse or {}).items()}
        self._credentials = dict(credentials or {})
        self._tls_context = tls_context
        self.received: list[SinkMail] = []
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 No such mailbox") -> None:
        self._refuse[address.lower()] = reply

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _SinkHandler(self)
        self._server = await loop.create_server(
            lambda: SMTP(
                handler,
                hostname="mailsink.localhost",
                ident="larmkedja mailsink",
                authenticator=self._authenticate if self._credentials else None,
                auth_require_tls=False,
                tls_context=self._tls_context,
                require_starttls=self._tls_context is not None,
                timeout=30,
                loop=loop,
            ),
            host=self._host,
            port=self._port,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_for(
        self, predicate: Callable[[SinkMail], bool] = lambda _m: True, timeout: float = 5.0
    ) -> SinkMail:
        """The first message, already here or still to come, for which ``predicate`` holds."""

        async def first() -> SinkMail:
            async with self._arrived:
                while True:
                    for mail in self.received:
                        if predicate(mail):
                            return mail
                    await self._arrived.wait()

        try:
            return await asyncio.wait_for(first(), timeout)
        except TimeoutError:
            seen = "; ".join(f"{m.rcpt_tos} {m.subject!r}" for m in self.received) or "nothing"
            raise TimeoutError(f"no matching mail within {timeout} s; arrived: {seen}") from None

    async def reply(
        self,
        to_message: SinkMail,
        text: str,
        from_addr: str,
        *,
        listener: tuple[str, int] | None = None,
        attribution: str | None = None,
        quote: bool = True,
    ) -> EmailMessage:
        """Answer ``to_message`` the way a mail client does, over SMTP to the bot's listener.

        Top-posted ``text``, then (with ``quote``) an attribution line (Swedish by default:
        "Den <date> skrev <from>:") over the original, every line prefixed "> ". Threading:
        ``In-Reply-To`` is the original's Message-ID, ``References`` the original's references
        plus it; subject "Re: …". Goes to the original's Reply-To (else From). Returns the
        reply as sent.
        """
        target = listener or self.listener
        if target is None:
            raise ValueError("no listener to reply to: pass listener=(host, port)")
        original = to_message.message
        to_addr = parseaddr(str(original.get("Reply-To") or original.get("From") or ""))[1]
        subject = to_message.subject
        if not subject.lower().startswith(("re:", "sv:", "vs:")):
            subject = f"Re: {subject}"
        body = text.rstrip("\n") + "\n"
        if quote:
            date = str(original.get("Date", "")) or "okänt datum"
            said = attribution or f"Den {date} skrev {original.get('From', to_addr)}:"
            quoted = "\n".join(
                f"> {line}" if line else ">" for line in to_message.text.rstrip("\n").split("\n")
            )
            body += f"\n{said}\n{quoted}\n"
        reply = EmailMessage(policy=policy.SMTP)
        reply["From"] = from_addr
        reply["To"] = to_addr
        reply["Subject"] = subject
        reply["Date"] = format_datetime(datetime.now(UTC))
        reply["Message-ID"] = make_msgid(domain=from_addr.rpartition("@")[2] or "localhost")
        if to_message.message_id:
            refs = str(original.get("References", "")).split()
            reply["In-Reply-To"] = to_message.message_id
            reply["References"] = " ".join([*refs, to_message.message_id])
        reply.set_content(body, charset="utf-8")
        host, port = target
        await aiosmtplib.send(
            reply,
            hostname=host,
            port=port,
            sender=from_addr,
            recipients=[to_addr],
            start_tls=False,
            local_hostname="mailsink.localhost",
            timeout=10,
        )
        return reply

    async def _record(self, mail: SinkMail) -> None:
        async with self._arrived:
            self.received.append(mail)
            self._arrived.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            login = data.login.decode("utf-8", "replace")
            password = data.password.decode("utf-8", "replace")
            if self._credentials.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


class _SinkHandler:
    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_MAIL(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._sink._credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self._sink._refuse.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        message = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(raw))
        login = session.auth_data if isinstance(session.auth_data, str) else None
        await self._sink._record(
            SinkMail(
                envelope_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message=message,
                login=login,
            )
        )
        return "250 2.0.0 Recorded"


def addresses(header_value: str) -> list[str]:
    """The addr-specs of an address header (``To:``, ``Cc:``), for assertions."""
    return [addr for _name, addr in getaddresses([header_value]) if addr]


def self_signed_tls(directory: Path, host: str = "127.0.0.1") -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for ``host`` and the CA file a client must trust to verify it.

    Generated on the spot (cryptography comes with the demo/test extras), so the sink can play a
    relay that requires STARTTLS and the bot's certificate checking is exercised for real.
    """
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "larmkedja mailsink")])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "mailsink-cert.pem"
    key_file = directory / "mailsink-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
