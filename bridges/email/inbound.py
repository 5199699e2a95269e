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
  code in the text, checked by the layer above. Automatic mail (vacation replies, bounces) is
  flagged in :attr:`InboundMail.automatic` because some of them quote the alarm, reply code
  included, without ``>``.
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
from email.header import decode_header
from email.message import Message
from email.utils import parseaddr
from html.parser import HTMLParser
from types import TracebackType
from typing import Any, Self, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

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
    header_from: str
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
            text=_safe(lambda: strip_quoted(text), text),
            full_text=text,
            automatic=_is_bounce(envelope_from),
            raw_sha256=digest,
            size=len(raw),
            raw=raw,
        )
    full_text = _safe(lambda: _body_text(msg), "")
    return InboundMail(
        envelope_from=envelope_from,
        header_from=_safe(lambda: parseaddr(_header(msg, "From"))[1], ""),
        to=to,
        message_id=_safe(lambda: _first_msgid(_header(msg, "Message-ID")), ""),
        in_reply_to=_safe(lambda: _first_msgid(_header(msg, "In-Reply-To")), ""),
        references=_safe(lambda: tuple(_MSGID.findall(_header(msg, "References"))), ()),
        subject=_safe(lambda: _header(msg, "Subject"), ""),
        text=_safe(lambda: strip_quoted(full_text), full_text),
        full_text=full_text,
        automatic=_safe(lambda: _is_automatic(msg, envelope_from), False),
        raw_sha256=digest,
        size=len(raw),
        raw=raw,
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
        return _normalise(_part_text(plain))
    if html is not None:
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


def _is_automatic(msg: Message, envelope_from: str) -> bool:
    """Vacation replies, bounces and lists (RFC 3834 and the common vendor headers)."""
    if _is_bounce(envelope_from) or msg.get_content_type() == "multipart/report":
        return True
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return True
    if _header(msg, "Precedence").lower() in ("auto_reply", "bulk", "junk", "list"):
        return True
    return any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"))


# --- quoted text ---------------------------------------------------------------------------------

# "On Tue, 26 Nov 2026 at 04:12, TiB <tib@x> wrote:", "Den 26 nov. 2026 kl. 04:12 skrev TiB:",
# "ons. 26. nov. 2026 kl. 04:12 skrev TiB <tib@x>:", "Am … schrieb …:", "Le … a écrit :".
# Bounded repeats and a cheap pre-check keep a 256 KiB message of long lines fast.
_ATTRIBUTION = re.compile(
    r"^\s*(?P<head>.{0,300}?)\b(?:wrote|skrev|schrieb|a\s+écrit|escribió|schreef|escreveu)\b"
    r"[^:\n]{0,200}:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_WORD = re.compile(r"wrote|skrev|schrieb|écrit|escribió|schreef|escreveu", re.I)
_ATTRIBUTION_OPENER = re.compile(r"^\s*(?:On|Den|Am|Le|El|Op|Em)\b", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprungligt meddelande|Originalmeddelande|"
    r"Opprinnelig melding|Oprindelig meddelelse|Forwarded message|Vidarebefordrat meddelande|"
    r"Videresendt melding)\s*-{2,}\s*$|^\s*_{20,}\s*$",
    re.IGNORECASE,
)
# Outlook quotes the original without '>' under a block of "From:/Sent:/To:/Subject:" lines.
_HEADER_FROM = re.compile(r"^\s*\**(?:From|Från|Fra|Von|De)\s*:\**\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\**(?:Sent|Skickat|Sendt|Gesendet|Date|Datum|Dato|To|Till|Til|An|Subject|Ämne|Emne|"
    r"Betreff|Cc)\s*:",
    re.IGNORECASE,
)
_SENT_FROM = re.compile(
    r"^\s*(?:Sent from my|Skickat från min|Sendt fra min|Von meinem|Get Outlook for)\b",
    re.IGNORECASE,
)


def strip_quoted(text: str) -> str:
    """The new text of a reply: quoted lines, attributions, forwarded originals and signatures
    removed where recognisable.

    Why it matters here: the alarm carries its reply code, so a reply that merely quotes the
    alarm must not read as if the person typed the code. Top-posted replies lose everything
    from the attribution down; inline replies keep the person's lines between the quotes.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">"):
            i += 1
            continue
        if line in ("-- ", "--") or _SEPARATOR.match(line):
            break
        if _HEADER_FROM.match(line) and any(
            _HEADER_NEXT.match(following) for following in lines[i + 1 : i + 4]
        ):
            break
        span, certain = _attribution(lines, i)
        if span:
            after = _next_content(lines, i + span)
            if after is None or lines[after].strip().startswith(">"):
                i += span  # an attribution above a '>' quote: drop it, keep what follows
                continue
            if certain:
                break  # an attribution above an unquoted original: the rest is the original
        if _SENT_FROM.match(line):
            i += 1
            continue
        kept.append(line.rstrip())
        i += 1
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join(kept)


def _attribution(lines: list[str], i: int) -> tuple[int, bool]:
    """(lines spanned, certain) if an attribution starts at line ``i``; (0, False) if not.

    It may be wrapped over two lines, the first opening with On/Den/…. "Certain" (it opens
    with On/Den/…, or names an address) is required before everything below it is taken for
    the quoted original; a mere "… skrev …:" with a digit in it is only dropped when a '>'
    quote follows.
    """
    for span in (1, 2):
        if i + span > len(lines):
            break
        candidate = " ".join(line.strip() for line in lines[i : i + span])
        if len(candidate) > 600 or not candidate.endswith(":"):
            continue
        if span == 2 and not _ATTRIBUTION_OPENER.match(lines[i]):
            break  # only a line that opens like an attribution may be its first half
        if not _ATTRIBUTION_WORD.search(candidate):
            continue
        found = _ATTRIBUTION.match(candidate)
        if found is None:
            continue
        head = found.group("head")
        opener = _ATTRIBUTION_OPENER.match(candidate) is not None
        if not (opener or any(c.isdigit() for c in head) or "@" in candidate):
            continue
        return span, opener or "@" in candidate
    return 0, False


def _next_content(lines: list[str], start: int) -> int | None:
    for j in range(start, len(lines)):
        if lines[j].strip():
            return j
    return None


# --- HTML --------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """HTML to text for replies: block elements become line breaks, quotes are dropped.

    ``<blockquote>`` and Gmail/Outlook quote containers hold the quoted alarm; dropping them
    here does for HTML what removing '>' lines does for plain text.
    """

    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "pre"})
    _SKIP = frozenset({"script", "style", "head", "title"})
    _QUOTE_MARKERS = ("gmail_quote", "moz-cite", "divrplyfwdmsg", "appendonsend")
    _VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # open elements: (tag, hides its content)

    def _hidden(self) -> bool:
        return any(hides for _tag, hides in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(v or "" for k, v in attrs if k in ("class", "id")).lower()
        hides = (
            tag in self._SKIP
            or tag == "blockquote"
            or any(marker in classes for marker in self._QUOTE_MARKERS)
        )
        if tag in self._BLOCK and not self._hidden():
            self.parts.append("\n")
        if tag not in self._VOID:
            self._stack.append((tag, hides))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._VOID:
            return
        # Close up to the matching element: HTML mail leaves <p> and <li> open all the time.
        for depth in range(len(self._stack) - 1, -1, -1):
            if self._stack[depth][0] == tag:
                del self._stack[depth:]
                break
        if tag in self._BLOCK and not self._hidden():
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.parts.append(" ".join(data.split()) if data.strip() else " " if data else "")


def html_to_text(html: str) -> str:
    """Readable text from an HTML reply, quoted parts left out; never raises."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - HTMLParser is lenient; this is the last resort
        return re.sub(r"<[^>]*>", " ", html)
    text = "".join(parser.parts)
    # Block elements nest (<div><p>…), so blank lines say nothing about paragraphs: drop them.
    return "\n".join(line for line in (" ".join(x.split()) for x in text.split("\n")) if line)
