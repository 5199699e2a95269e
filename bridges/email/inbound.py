"""Replies by e-mail: an SMTP listener the organisation's mail server relays them to.

Why a listener and not polling a mailbox (IMAP/POP):

- **The SMTP "250" is the durability handshake.** The listener answers 250 only after the
  callback (the bot's inbox writer) has stored the reply; if that fails or takes too long it
  answers 451 and the organisation's mail server keeps the message queued and retries, for
  days if need be. Polling would need its own "seen" bookkeeping to reach the same guarantee,
  and a crash between fetch and store would lose or repeat an acknowledgement.
- **Seconds, not a polling interval.** The time to acknowledge is what an exercise measures.
- **No mailbox credentials in the bot, no mailbox to fill up**, no IMAP server quirks; the
  mail server does what it is good at (spam and virus filtering, TLS and DKIM on the internet
  side) and hands the bot only what is addressed to it, over the internal network.
- The cost is one routing rule at the mail server: deliver the bot's address (or a subdomain)
  to this listener's host and port (Postfix ``transport_maps``, Exchange send connector).

What the listener guarantees:

- **Not an open relay.** Only recipients in ``accept`` (exact addresses, ``local+tag``
  subaddresses of them, or whole domains) are accepted; any other gets 550.
- **Loopback by default**; ``allowed_clients`` can restrict who may connect when it must listen
  on a network interface.
- **Size-limited**: above ``max_size`` (256 KiB) the message is refused with 552, both when the
  client announces its size and when the data outgrows it.
- **Total parsing.** :func:`parse_inbound` never raises: junk, odd or broken encodings and
  charsets come out as text with replacement characters, not as a traceback in the listener.
- **From is carried, not trusted.** Anyone can write any ``From:``; authorisation is the reply
  code in the text, checked by the layer above, and bound to :attr:`InboundMail.from_address`:
  the *address* of the ``From:`` header, parsed from the raw header, never its display name.
  ``From: =?utf-8?q?tib=40varmland=2Eexample?= <attacker@evil.example>`` is the attacker's
  address with a display name that looks like the region's. A ``From:`` that is not exactly one
  well-formed mailbox gives no address at all (the reply is then bound to nobody). What makes
  the address worth binding to is the organisation's mail server, which checks SPF, DKIM and
  DMARC before it relays anything here (see the README).
- **Automatic mail never acknowledges.** Vacation replies, out-of-office notices, bounces and
  list mail are recognised by their headers (RFC 3834 ``Auto-Submitted``, ``Precedence``,
  Exchange's ``X-Auto-Response-Suppress`` and ``X-MS-Exchange-Inbox-Rules-Loop``,
  ``X-Autoreply``/``X-Autorespond``, ``List-Id``, a null or ``MAILER-DAEMON`` sender, a
  delivery report) or, when a client sends none of those, by their subject ("Automatiskt
  svar:", "Frånvaro:", "Fraværende:", "Out of Office:", "Automatic reply:", "Auto:",
  "Abwesenheitsnotiz:" …). Such mail is flagged (:attr:`InboundMail.automatic`, with the
  reason) and its :attr:`~InboundMail.text` left empty, so no code is ever read from it; the
  layer above audits it and never answers it (an answer to an auto-reply is how mail loops
  start).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import ipaddress
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.errors import ObsoleteHeaderDefect
from email.header import decode_header
from email.message import Message
from types import TracebackType
from typing import Any, Self, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from bridges.email.reply_text import html_to_text, strip_quoted

__all__ = ["InboundMail", "InboundMailServer", "html_to_text", "parse_inbound", "strip_quoted"]

log = logging.getLogger(__name__)


class _NoMessageContent(logging.Filter):
    """Drops aiosmtpd's ``DATA readline: …`` records: at DEBUG it logs every line of every
    message, and a reply quoting the alarm carries its live acknowledge link and reply code."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("DATA readline"))


_AIOSMTPD_LOG = logging.getLogger("mail.log")  # aiosmtpd.smtp's logger
_NO_MESSAGE_CONTENT = _NoMessageContent()

#: Replies are a few lines; 256 KiB leaves room for a quoted alarm, an HTML copy and a logo.
MAX_SIZE = 256 * 1024

_MSGID = re.compile(r"<[^<>\s]+>")

_T = TypeVar("_T")


@dataclass(frozen=True)
class InboundMail:
    """One received e-mail, parsed as far as it would go.

    ``to`` holds the envelope recipients (the bot addresses it was delivered to), which are
    what the mail server routed on; ``header_from`` is whatever the sender wrote and proves
    nothing. ``text`` is the new text of the reply, quoted parts removed; ``full_text`` is the
    whole text part, for the audit log. ``raw_sha256`` identifies the exact bytes: a mail
    server retrying after a lost 250 sends the same bytes, so it is the idempotency key for the
    inbox (a Message-ID may be missing, or reused by anyone).
    """

    envelope_from: str
    header_from: str  # the From: header's address only (addr-spec), "" if not one mailbox
    to: tuple[str, ...]
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    subject: str
    text: str
    full_text: str = ""
    automatic: bool = False
    raw_sha256: str = ""
    size: int = 0
    raw: bytes = field(default=b"", repr=False)
    automatic_reason: str = ""  # why it is automatic: "auto-submitted", "subject", …
    from_display: str = ""  # the From: header's display name, decoded: for people, never trust
    has_from: bool = True  # whether there was a From: header at all

    @property
    def from_address(self) -> str:
        """The address a reply is bound to: the ``From:`` header's addr-spec; the envelope
        sender only when there is no ``From:`` header at all; ``""`` when the header is there
        but is not exactly one well-formed mailbox (fail closed), and for a bounce without
        one."""
        if self.header_from:
            return self.header_from
        if self.has_from or _is_bounce(self.envelope_from):
            return ""
        return self.envelope_from.strip().strip("<>")


OnMail = Callable[[InboundMail], Awaitable[None]]


class InboundMailServer:
    """An SMTP listener for replies; ``on_mail`` is awaited for each message before the 250.

    ``accept`` names the bot's addresses (``larm@region.example``) and/or domains
    (``larm.region.example``). ``port=0`` picks a free port (see :attr:`port`).
    ``callback_timeout`` bounds ``on_mail``: past it the client gets 451 and retries later.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2525,
        on_mail: OnMail | None = None,
        *,
        accept: Iterable[str],
        max_size: int = MAX_SIZE,
        hostname: str = "larmkedja",
        allowed_clients: Iterable[str] | None = None,
        callback_timeout: float = 30.0,
    ) -> None:
        if on_mail is None:
            raise ValueError("InboundMailServer needs an on_mail callback")
        self._host = host
        self._port = port
        self._on_mail = on_mail
        self._policy = RecipientPolicy(accept)
        self._max_size = max_size
        self._hostname = hostname
        self._allowed = (
            None
            if allowed_clients is None
            else tuple(ipaddress.ip_network(c, strict=False) for c in allowed_clients)
        )
        self._callback_timeout = callback_timeout
        self._server: asyncio.Server | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        if _NO_MESSAGE_CONTENT not in _AIOSMTPD_LOG.filters:
            _AIOSMTPD_LOG.addFilter(_NO_MESSAGE_CONTENT)
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: SMTP(
                handler,
                data_size_limit=self._max_size,
                # A reply from an internationalised address must not bounce for want of it.
                enable_SMTPUTF8=True,
                hostname=self._hostname,
                ident="larmkedja",
                timeout=60,
                loop=loop,
            ),
            host=self._host,
            port=self._port,
        )
        log.info("e-mail replies: listening on %s:%d", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # wait_closed() waits for open client sessions, which a stuck peer can hold open.
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

    def _client_allowed(self, peer: Any) -> bool:
        if self._allowed is None:
            return True
        try:
            address = ipaddress.ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            return False
        return any(address in network for network in self._allowed)


class RecipientPolicy:
    """Which envelope recipients are the bot's: exact addresses, subaddresses, domains."""

    def __init__(self, accept: Iterable[str]) -> None:
        self._addresses: set[str] = set()
        self._domains: set[str] = set()
        for item in accept:
            item = item.strip().lower()
            if not item:
                continue
            if "@" in item:
                self._addresses.add(item)
            else:
                self._domains.add(item.lstrip("@"))
        if not self._addresses and not self._domains:
            raise ValueError("accept must name at least one bot address or domain")

    def accepts(self, address: str) -> bool:
        address = address.strip().strip("<>").lower()
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain:
            return False
        if domain in self._domains or address in self._addresses:
            return True
        base = local.split("+", 1)[0]
        return f"{base}@{domain}" in self._addresses


class _Handler:
    """aiosmtpd hooks; kept apart so the server object's public surface stays small."""

    def __init__(self, server: InboundMailServer) -> None:
        self._server = server

    async def handle_MAIL(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not self._server._client_allowed(session.peer):
            log.warning("e-mail replies: refused client %s", session.peer)
            return "554 5.7.1 Client not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self._server._policy.accepts(address):
            log.info("e-mail replies: refused recipient %r from %s", address, session.peer)
            return "550 5.7.1 Recipient not accepted here (this is not a relay)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        if len(raw) > self._server._max_size:
            return "552 5.3.4 Message too big"
        mail = parse_inbound(raw, envelope.mail_from or "", envelope.rcpt_tos)
        try:
            await asyncio.wait_for(self._server._on_mail(mail), self._server._callback_timeout)
        except Exception:
            log.exception(
                "e-mail replies: storing %s from %r failed; asked the sender to retry",
                mail.message_id or mail.raw_sha256[:12],
                mail.envelope_from,
            )
            return "451 4.3.0 Temporary failure, please retry"
        log.info(
            "e-mail replies: %s from %r to %s stored",
            mail.message_id or mail.raw_sha256[:12],
            mail.envelope_from,
            ",".join(mail.to),
        )
        return "250 2.0.0 OK"


# --- parsing -----------------------------------------------------------------------------------


def parse_inbound(
    raw: bytes, envelope_from: str = "", rcpt_tos: Iterable[str] = ()
) -> InboundMail:
    """Parse one message totally: whatever the bytes, an :class:`InboundMail` comes back."""
    digest = hashlib.sha256(raw).hexdigest()
    to = tuple(_clean(str(r)) for r in rcpt_tos)
    envelope_from = _clean(envelope_from)
    try:
        msg = message_from_bytes(raw, policy=email_policy.compat32)
    except Exception:  # noqa: BLE001 - the stdlib parser is lenient, but junk is junk
        text = _normalise(_decode_bytes(raw, None))
        return InboundMail(
            envelope_from=envelope_from,
            header_from="",
            to=to,
            message_id="",
            in_reply_to="",
            references=(),
            subject="",
            text="" if _is_bounce(envelope_from) else _safe(lambda: strip_quoted(text), ""),
            full_text=text,
            automatic=_is_bounce(envelope_from),
            automatic_reason="bounce" if _is_bounce(envelope_from) else "",
            has_from=False,
            raw_sha256=digest,
            size=len(raw),
            raw=raw,
        )
    full_text = _safe(lambda: _body_text(msg), "")
    reason = _safe(lambda: automatic_reason(msg, envelope_from), "unreadable headers")
    return InboundMail(
        envelope_from=envelope_from,
        header_from=_safe(lambda: _from_address(msg), ""),
        to=to,
        message_id=_safe(lambda: _first_msgid(_header(msg, "Message-ID")), ""),
        in_reply_to=_safe(lambda: _first_msgid(_header(msg, "In-Reply-To")), ""),
        references=_safe(lambda: tuple(_MSGID.findall(_header(msg, "References"))), ()),
        subject=_safe(lambda: _header(msg, "Subject"), ""),
        text="" if reason else _safe(lambda: strip_quoted(full_text), ""),
        full_text=full_text,
        automatic=bool(reason),
        raw_sha256=digest,
        size=len(raw),
        raw=raw,
        automatic_reason=reason,
        from_display=_safe(lambda: _from_display(msg), ""),
        has_from=_raw_header(msg, "From") is not None,
    )


def _safe(compute: Callable[[], _T], fallback: _T) -> _T:
    try:
        return compute()
    except Exception:  # noqa: BLE001 - one bad header must not lose the rest of the message
        log.debug("e-mail replies: a part did not parse", exc_info=True)
        return fallback


def _header(msg: Message, name: str) -> str:
    """A header decoded to text: RFC 2047 words, raw 8-bit bytes and unknown charsets alike."""
    # The stored value, not compat32's view of it: raw 8-bit bytes come back wrapped in a Header
    # object that would hide them.
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return ""
    value = raw if isinstance(raw, str) else str(raw)
    if _has_surrogates(value):
        value = _decode_bytes(value.encode("ascii", "surrogateescape"), None)
    value = " ".join(value.split())
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001
        return _clean(value)
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            out.append(chunk.decode("latin-1"))
        else:
            out.append(_decode_bytes(chunk, charset))
    return _clean("".join(out))


def _first_msgid(value: str) -> str:
    found = _MSGID.search(value)
    return found.group(0) if found else ""


def _body_text(msg: Message) -> str:
    """The text a person wrote: the first text/plain part, else the first text/html, stripped.

    Attachments and enclosed messages are skipped, even when they are text: a forwarded alarm
    (or the original in a bounce) carries the reply code but is not a reply.
    """
    plain: Message | None = None
    html: Message | None = None
    for part in _own_parts(msg):
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and html is None:
            html = part
    if plain is not None:
        text = _normalise(_part_text(plain))
        if text.strip() or html is None:
            return text
    if html is not None:  # or a text/plain part left empty by its client
        return _normalise(html_to_text(_part_text(html)))
    return ""


def _own_parts(msg: Message, depth: int = 0) -> Iterator[Message]:
    """The leaf parts the sender wrote: not attachments, not inside message/* enclosures."""
    if depth > 20:  # a bomb of nested multiparts
        return
    disposition = str(msg.get("Content-Disposition") or "").strip().lower()
    if depth and (disposition.startswith("attachment") or msg.get_content_maintype() == "message"):
        return
    if msg.is_multipart():
        payload = msg.get_payload()
        for part in payload if isinstance(payload, list) else ():
            if isinstance(part, Message):
                yield from _own_parts(part, depth + 1)
        return
    yield msg


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = str(part.get_payload()).encode("ascii", "surrogateescape")
    charset = _safe(lambda: part.get_content_charset(), None)
    return _decode_bytes(payload, charset)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes to text that never fails: declared charset if Python knows it, else a good guess.

    Mail that declares nothing (or US-ASCII) yet carries 8-bit bytes is common: UTF-8 is tried
    first, then Windows-1252, the usual undeclared Swedish/Norwegian mail. An unknown charset
    is read as UTF-8 with replacement characters rather than guessed at further.
    """
    name = (charset or "").strip().strip("\"'").lower()
    if name in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "default"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace")
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return data.decode("utf-8", "replace")
    if codec.name in ("iso8859-1", "latin-1"):
        codec = codecs.lookup("cp1252")  # what "latin-1" mail really is, per WHATWG
    try:
        return data.decode(codec.name, "replace")
    except Exception:  # noqa: BLE001 - a codec that is not a text codec (e.g. "base64")
        return data.decode("utf-8", "replace")


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in value)


def _clean(value: str) -> str:
    """Text safe to store and show: no lone surrogates, no NULs or other control characters."""
    return "".join(
        "\ufffd" if "\ud800" <= c <= "\udfff" else c
        for c in value
        if c in "\n\t" or unicodedata.category(c) != "Cc"
    )


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(_clean(line).rstrip() for line in text.split("\n")).strip("\n")


def _is_bounce(envelope_from: str) -> bool:
    sender = envelope_from.strip().strip("<>").lower()
    return sender == "" or sender.startswith(("mailer-daemon@", "postmaster@"))


# Subjects of automatic mail, for the clients that send no header saying so. Anchored at the
# start: "Re: Automatiskt svar: …" is a person answering one.
_AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(?:"
    r"automatiskt svar|automatisk svar|autosvar|frånvaro(?:meddelande)?|frånvarande|"
    r"fraværende|fravær|ikke til stede|"
    r"out of (?:the )?office(?: autoreply| auto reply| reply)?|automatic reply|auto[- ]?reply|"
    r"auto[- ]?response|auto|away from (?:the )?office|on vacation|vacation reply|"
    r"abwesenheitsnotiz|abwesend|automatische antwort|réponse automatique|"
    r"undeliverable|undelivered mail returned to sender|delivery status notification|"
    r"mail delivery (?:failed|failure|system)|returned mail|failure notice|"
    r"kan inte levereras|olevererbart|ej levererat|ikke levert|kan ikke leveres|unzustellbar"
    r")\b(?:\s*[:(]|\s+[-–—]\s|\s*$)",
    re.IGNORECASE,
)
_AUTO_HEADERS = (
    ("X-Auto-Response-Suppress", "x-auto-response-suppress"),
    ("X-MS-Exchange-Inbox-Rules-Loop", "inbox-rules-loop"),
    ("X-Autoreply", "x-autoreply"),
    ("X-Autorespond", "x-autorespond"),
    ("X-Autoresponse", "x-autoresponse"),
    ("X-Autogenerated", "x-autogenerated"),
    ("X-Failed-Recipients", "bounce"),
    ("List-Id", "list"),
)


def automatic_reason(msg: Message, envelope_from: str = "") -> str:
    """Why ``msg`` is automatic mail (a vacation reply, an out-of-office, a bounce, list mail),
    or ``""`` for mail a person wrote. RFC 3834 and the headers of the common servers first,
    then the subject, for the clients that send none of them."""
    if _is_bounce(envelope_from):
        return "bounce"
    if msg.get_content_type() == "multipart/report":
        return "report"
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return "auto-submitted"
    precedence = _header(msg, "Precedence").strip().lower()
    if precedence in ("auto_reply", "auto-reply", "bulk", "junk", "list"):
        return "precedence"
    for name, reason in _AUTO_HEADERS:
        value = _raw_header(msg, name)
        if value is not None and (name != "X-Auto-Response-Suppress" or _suppresses(value)):
            return reason
    return_path = _raw_header(msg, "Return-Path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "bounce"
    if _AUTOMATIC_SUBJECT.match(_header(msg, "Subject")):
        return "subject"
    return ""


def _suppresses(value: str) -> bool:
    """``X-Auto-Response-Suppress: All`` (or OOF, AutoReply, DR…) is on Exchange's automatic
    mail; an explicit ``None`` is not a reason."""
    return value.strip().lower() not in ("", "none")


def _raw_header(msg: Message, name: str) -> str | None:
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return None
    return raw if isinstance(raw, str) else str(raw)


# An addr-spec as the bot can bind a code to: one "@", no spaces, quotes, brackets or controls.
_ADDR_SPEC = re.compile(r"^[^@\s\"<>(),;:\\\[\]]{1,64}@[^@\s\"<>(),;:\\\[\]]{1,253}$")


def _from_header(msg: Message) -> Any:
    """The ``From:`` header parsed as an address list, from its raw value: encoded-words are
    only ever display names there (RFC 2047 §5), so decoding first would let one pose as an
    address."""
    raw = _raw_header(msg, "From")
    if raw is None:
        return None
    if _has_surrogates(raw):  # SMTPUTF8: 8-bit UTF-8 addresses
        raw = _decode_bytes(raw.encode("ascii", "surrogateescape"), None)
    return email_policy.default.header_factory("From", " ".join(raw.split()))


def _from_address(msg: Message) -> str:
    header = _from_header(msg)
    if header is None:
        return ""
    defects = [d for d in header.defects if not isinstance(d, ObsoleteHeaderDefect)]
    addresses = header.addresses
    grouped = any(group.display_name is not None for group in header.groups)  # not in From:
    if defects or grouped or len(addresses) != 1:
        return ""
    address = str(addresses[0].addr_spec)
    if not _ADDR_SPEC.match(address) or not address.isprintable() or "=?" in address:
        return ""
    return address


def _from_display(msg: Message) -> str:
    header = _from_header(msg)
    if header is None or len(header.addresses) != 1:
        return ""
    return _clean(" ".join(str(header.addresses[0].display_name).split()))[:200]
