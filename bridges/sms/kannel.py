"""Kannel as the SMS gateway: ``sendsms`` out, delivery reports and inbound replies back in.

Why it looks like this:

* **Answers are classified, not interpreted at the call site.** Kannel's observed answers
  (``deploy/kannel/README.md``) fall in three kinds: accepted (``202 0: Accepted``, also
  ``202 3: Queued for later delivery`` while its SMSC is down), permanent (``403 Not routable``,
  ``400``: retrying the same request cannot help) and temporary (``503``, connection refused,
  timeout). The outbox worker only needs the kind.
* **Several gateways.** Planning assumes any one channel can be down for days (DESIGN §1), so the
  client takes an ordered list of ``sendsms`` endpoints and moves to the next one on a temporary
  failure. A gateway that just failed is tried last for a while, so a dead primary does not
  cost a timeout on every alarm. A temporary failure *after* Kannel accepted (a timeout on the
  answer) can make the next gateway send the SMS again: for an alarm a duplicate is far better
  than silence.
* **We check the budget, Kannel does not.** Kannel cuts a text silently after ``max-messages``
  parts (seen: 1700 characters arrive as 1530), so a text over ``max_parts`` is refused here.
  The coding is set explicitly: 0 (GSM 7-bit) when :func:`bridges.sms.gsm7.is_gsm7`, else 2
  (UCS-2); real SMSC drivers replace what is outside GSM-7 in coding 0.
* **The password never leaves this module in text.** It is sent as Kannel requires (a query
  parameter), but it is kept out of ``repr``, logs, results and exception texts.
* **Callbacks are parsed totally.** :func:`parse_dlr` and :func:`parse_mo` take whatever arrives
  on the HTTP endpoint and return a typed value or a :class:`CallbackRejected`, never raise:
  the endpoint is reachable by anyone who can reach the bot.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import aiohttp

from bridges.sms import gsm7

log = logging.getLogger(__name__)

#: Query of a delivery-report URL: ``{ref}`` is ours, the ``%`` escapes are Kannel's (%d type,
#: %A the SMSC's answer, %F Kannel's message id, %T time). :func:`parse_dlr` reads these names.
DLR_QUERY = "ref={ref}&status=%d&answer=%A&fid=%F&ts=%T"
#: Query of the inbound (MO) URL for Kannel's ``sms-service get-url``: %p sender, %P receiver,
#: %b the text as sent (``%a`` would squeeze whitespace), %I Kannel's message id, %T time.
#: :func:`parse_mo` reads these names.
MO_QUERY = "from=%p&to=%P&text=%b&id=%I&ts=%T"

#: Our reference travels inside the dlr-url, which Kannel scans for ``%`` escapes: a
#: URL-escaped reference such as ``%C3%A5`` would be eaten as %C and %A. Hence only these.
_REF_RE = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_RECEIVER_RE = re.compile(r"\+?[0-9]{3,20}")
_ADDRESS_RE = re.compile(r"\+?[0-9A-Za-z]{1,31}")
_GATEWAY_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")

#: Limits of what a callback may carry; larger means junk or abuse, not an SMS.
MAX_QUERY_CHARS = 16_384
MAX_FIELDS = 32
#: Ten concatenated parts of 160 characters: more is not an SMS a phone can send.
MAX_MO_TEXT = 1_600
MAX_ANSWER = 160
_MAX_BODY = 1_024

#: Kannel's ``dlr-mask`` = 31: delivered (1), not delivered (2), buffered (4), SMSC accepted (8),
#: SMSC rejected (16); we want every one of them.
DLR_MASK_ALL = 31


class SendOutcome(StrEnum):
    """What the outbox worker must do next: nothing, give up, or try again later."""

    ACCEPTED = "accepted"
    PERMANENT_FAILURE = "permanent_failure"
    TEMPORARY_FAILURE = "temporary_failure"


class DeliveryStatus(StrEnum):
    """A delivery report's meaning; ``code`` on :class:`DeliveryReport` keeps Kannel's number."""

    DELIVERED = "delivered"
    ACCEPTED_BY_SMSC = "accepted_by_smsc"
    FAILED = "failed"
    BUFFERED = "buffered"
    UNKNOWN = "unknown"


_DLR_CODES = {
    1: DeliveryStatus.DELIVERED,
    2: DeliveryStatus.FAILED,
    4: DeliveryStatus.BUFFERED,
    8: DeliveryStatus.ACCEPTED_BY_SMSC,
    16: DeliveryStatus.FAILED,  # rejected by the SMSC (e.g. NACK/receiver in black-list)
}


@dataclass(frozen=True)
class Endpoint:
    """One gateway's ``sendsms`` URL and credentials; ``name`` is what logs and results show."""

    url: str
    username: str
    password: str = field(repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an SMS gateway endpoint needs an http(s) URL with a host")
        if parts.query or parts.username or parts.password:
            # Credentials in the URL would end up in logs; they belong in the fields.
            raise ValueError("give the sendsms URL without query or user info")
        if not self.name:
            object.__setattr__(self, "name", f"{parts.hostname}:{parts.port or parts.scheme}")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Attempt:
    """One request to one gateway, for the after-action report and for debugging failover."""

    endpoint: str
    outcome: SendOutcome
    http_status: int | None
    detail: str
    seconds: float


@dataclass(frozen=True)
class SmsResult:
    """The verdict on one SMS: the outcome and the attempt that decided it, plus all attempts.

    ``queued`` is Kannel's ``3: Queued for later delivery``: accepted, but its SMSC is down, so
    delivery waits; the delivery reports tell when it happens.
    """

    ref: str
    outcome: SendOutcome
    detail: str
    http_status: int | None = None
    endpoint: str | None = None
    queued: bool = False
    encoding: gsm7.Encoding | None = None
    segments: int = 0
    attempts: tuple[Attempt, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.outcome is SendOutcome.ACCEPTED

    @property
    def retryable(self) -> bool:
        return self.outcome is SendOutcome.TEMPORARY_FAILURE


@dataclass(frozen=True)
class DeliveryReport:
    """A delivery report for the SMS we sent with reference ``ref``.

    Several arrive per SMS, not always in order (with the fake SMSC: 8 then 1, or 1 then 8);
    ``final`` tells the ones after which no other is expected.
    """

    ref: str
    status: DeliveryStatus
    code: int | None
    answer: str = ""
    message_id: str | None = None
    ts: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


@dataclass(frozen=True)
class InboundSms:
    """An SMS someone sent to us (an acknowledgement by SMS, DESIGN §3).

    ``gateway_id`` is Kannel's message id: the inbox key that makes a repeated callback harmless.
    """

    sender: str
    receiver: str
    text: str
    gateway_id: str
    ts: datetime | None = None


@dataclass(frozen=True)
class CallbackRejected:
    """A callback that is not a usable DLR or MO, and why (for a 400 answer and the log)."""

    reason: str


# -- sending -------------------------------------------------------------------------------


def classify(http_status: int, body: str) -> tuple[SendOutcome, bool]:
    """Kannel's sendsms answer as (outcome, queued), per the table in deploy/kannel/README.md.

    2xx is accepted (``3:`` means queued while the SMSC is down); 5xx, 408 and 429 are worth
    retrying; any other 4xx (``403 Not routable``, ``403 Authorization failed``, ``400``) will be
    refused again. Anything else (1xx, 3xx) is not Kannel talking: retry later.
    """
    if 200 <= http_status < 300:
        return SendOutcome.ACCEPTED, body.lstrip().startswith("3:")
    if http_status >= 500 or http_status in (408, 429):
        return SendOutcome.TEMPORARY_FAILURE, False
    if 400 <= http_status < 500:
        return SendOutcome.PERMANENT_FAILURE, False
    return SendOutcome.TEMPORARY_FAILURE, False


def dlr_url_template(base_url: str) -> str:
    """``base_url`` with :data:`DLR_QUERY` appended: the template :class:`KannelClient` wants."""
    return base_url + ("&" if "?" in base_url else "?") + DLR_QUERY


def mo_url(base_url: str) -> str:
    """``base_url`` with :data:`MO_QUERY` appended: Kannel's ``get-url`` for inbound SMS."""
    return base_url + ("&" if "?" in base_url else "?") + MO_QUERY


def _mask_number(number: str) -> str:
    """Enough of a phone number to tell recipients apart in a log, not enough to call them."""
    return "***" + number[-4:] if len(number) > 4 else "***"


class KannelClient:
    """Sends SMS through the first Kannel that takes them, in the order given.

    ``dlr_url_template`` contains ``{ref}`` once (see :func:`dlr_url_template`); ``None`` asks
    for no delivery reports. The client owns its aiohttp session unless one is given; close it
    with :meth:`close` or ``async with``.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        sender_id: str,
        dlr_url_template: str | None,
        *,
        timeout: float = 5.0,
        max_parts: int = 10,
        failover_cooldown: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("KannelClient needs at least one endpoint")
        if dlr_url_template is not None and dlr_url_template.count("{ref}") != 1:
            raise ValueError("dlr_url_template must contain {ref} exactly once")
        if not 1 <= max_parts <= 255:
            raise ValueError("max_parts must be within 1..255")
        self._endpoints = tuple(endpoints)
        self._sender_id = sender_id
        self._dlr_url_template = dlr_url_template
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_parts = max_parts
        self._cooldown = failover_cooldown
        self._monotonic = monotonic
        self._session = session
        self._owns_session = session is None
        #: endpoint index -> monotonic time until which it is tried last.
        self._failed_until: dict[int, float] = {}

    def __repr__(self) -> str:
        names = ", ".join(e.name for e in self._endpoints)
        return f"KannelClient([{names}], sender_id={self._sender_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

    def dlr_url(self, ref: str) -> str | None:
        """The delivery-report URL Kannel is given for the SMS with reference ``ref``."""
        _check_ref(ref)
        if self._dlr_url_template is None:
            return None
        return self._dlr_url_template.replace("{ref}", ref)

    def _order(self) -> list[int]:
        """Configured order, except that endpoints that failed recently go last."""
        now = self._monotonic()
        return sorted(
            range(len(self._endpoints)),
            key=lambda i: (self._failed_until.get(i, float("-inf")) > now, i),
        )

    async def send(self, to: str, text: str, ref: str) -> SmsResult:
        """Send ``text`` to ``to``; ``ref`` (our outbox id) comes back in the delivery reports.

        Never raises for what a gateway or the network does; raises ``ValueError`` only for a
        ``ref`` outside ``[A-Za-z0-9._~-]{1,64}`` (a bug on our side, see ``_REF_RE``).
        """
        dlr_url = self.dlr_url(ref)
        enc = gsm7.encoding(text)
        parts = gsm7.segments(text)
        if not _RECEIVER_RE.fullmatch(to):
            return self._refuse(ref, "the receiver is not a phone number", enc, parts)
        if not text:
            return self._refuse(ref, "the text is empty", enc, parts)
        if parts > self._max_parts:
            return self._refuse(
                ref, f"the text needs {parts} SMS parts; at most {self._max_parts}", enc, parts
            )
        attempts: list[Attempt] = []
        order = self._order()
        for position, index in enumerate(order):
            endpoint = self._endpoints[index]
            attempt, queued = await self._attempt(endpoint, to, text, enc, dlr_url)
            attempts.append(attempt)
            log.log(
                logging.INFO if attempt.outcome is SendOutcome.ACCEPTED else logging.WARNING,
                "SMS %s to %s via %s: %s, %s (%.0f ms)",
                ref,
                _mask_number(to),
                endpoint.name,
                attempt.outcome.value,
                attempt.detail,
                attempt.seconds * 1000,
            )
            refused_us = _refused_us(attempt) and position + 1 < len(order)
            if attempt.outcome is SendOutcome.TEMPORARY_FAILURE or refused_us:
                self._failed_until[index] = self._monotonic() + self._cooldown
                if position + 1 < len(order):
                    log.warning(
                        "SMS %s: gateway %s %s; trying %s",
                        ref,
                        endpoint.name,
                        "refused our credentials" if refused_us else "failed temporarily",
                        self._endpoints[order[position + 1]].name,
                    )
                continue
            if attempt.outcome is SendOutcome.ACCEPTED:
                self._failed_until.pop(index, None)
            return SmsResult(
                ref=ref,
                outcome=attempt.outcome,
                detail=attempt.detail,
                http_status=attempt.http_status,
                endpoint=endpoint.name,
                queued=queued,
                encoding=enc,
                segments=parts,
                attempts=tuple(attempts),
            )
        last = attempts[-1]
        return SmsResult(
            ref=ref,
            outcome=SendOutcome.TEMPORARY_FAILURE,
            detail=f"every gateway failed; last: {last.detail}",
            http_status=last.http_status,
            endpoint=last.endpoint,
            encoding=enc,
            segments=parts,
            attempts=tuple(attempts),
        )

    def _refuse(self, ref: str, why: str, enc: gsm7.Encoding, parts: int) -> SmsResult:
        log.warning("SMS %s not sent: %s", ref, why)
        return SmsResult(
            ref=ref,
            outcome=SendOutcome.PERMANENT_FAILURE,
            detail=why,
            encoding=enc,
            segments=parts,
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _attempt(
        self,
        endpoint: Endpoint,
        to: str,
        text: str,
        enc: gsm7.Encoding,
        dlr_url: str | None,
    ) -> tuple[Attempt, bool]:
        params = [
            ("username", endpoint.username),
            ("password", endpoint.password),
            ("from", self._sender_id),
            ("to", to),
            ("text", text),
            ("charset", "UTF-8"),
            ("coding", "0" if enc is gsm7.Encoding.GSM7 else "2"),
        ]
        if dlr_url is not None:
            params += [("dlr-mask", str(DLR_MASK_ALL)), ("dlr-url", dlr_url)]
        began = time.monotonic()
        status: int | None = None
        queued = False
        try:
            async with self._http().get(
                endpoint.url, params=params, timeout=self._timeout, allow_redirects=False
            ) as response:
                status = response.status
                body = (await response.content.read(_MAX_BODY)).decode("utf-8", "replace")
            outcome, queued = classify(status, body)
            detail = f"{status} {' '.join(body.split())[:200]}".rstrip()
        except TimeoutError:
            outcome = SendOutcome.TEMPORARY_FAILURE
            detail = f"no answer within {self._timeout.total:g} s"
        except aiohttp.InvalidURL as exc:
            outcome = SendOutcome.PERMANENT_FAILURE
            detail = f"invalid gateway URL ({type(exc).__name__})"
        except (aiohttp.ClientError, OSError) as exc:
            outcome = SendOutcome.TEMPORARY_FAILURE
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
        detail = _redact(detail, endpoint.password)
        seconds = time.monotonic() - began
        return Attempt(endpoint.name, outcome, status, detail, seconds), queued


def _refused_us(attempt: Attempt) -> bool:
    """Kannel's ``403 Authorization failed``: a wrong username or password *at that gateway*.
    It says nothing about the message, so the next gateway is asked (as an SMTP relay refusing
    AUTH is); only when no gateway is left does it stay a permanent failure."""
    return attempt.http_status == 403 and "Authorization failed" in attempt.detail


def _redact(text: str, secret: str) -> str:
    """``text`` with the secret, plain or URL-encoded, replaced: error texts may quote URLs."""
    if not secret:
        return text
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(form, "***")
    return text


def _check_ref(ref: str) -> None:
    if not isinstance(ref, str) or not _REF_RE.fullmatch(ref):
        raise ValueError("an SMS ref must match [A-Za-z0-9._~-]{1,64}")


# -- callbacks -----------------------------------------------------------------------------


def _fields(query: object) -> dict[str, str] | CallbackRejected:
    """One value per name from a query string or a (multi)mapping, within the size limits."""
    if isinstance(query, bytes | bytearray):
        query = bytes(query).decode("utf-8", "replace")
    if isinstance(query, str):
        if len(query) > MAX_QUERY_CHARS:
            return CallbackRejected("query too long")
        try:
            pairs = parse_qsl(
                query.lstrip("?"),
                keep_blank_values=True,
                max_num_fields=MAX_FIELDS,
                errors="replace",
            )
        except ValueError:
            return CallbackRejected("too many query fields")
    elif isinstance(query, Mapping):
        getall = getattr(query, "getall", None)
        pairs = []
        try:
            if len(query) > MAX_FIELDS:
                return CallbackRejected("too many query fields")
            if callable(getall):
                for key in {*query.keys()}:
                    pairs.extend((key, value) for value in getall(key))
            else:
                pairs = list(query.items())
        except Exception:  # a hostile Mapping: totality matters more than the reason
            return CallbackRejected("unreadable query")
    else:
        return CallbackRejected("not a query")
    if len(pairs) > MAX_FIELDS:
        return CallbackRejected("too many query fields")
    result: dict[str, str] = {}
    total = 0
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            return CallbackRejected("query names and values must be text")
        total += len(key) + len(value)
        if total > MAX_QUERY_CHARS:
            return CallbackRejected("query too long")
        if key in result:
            return CallbackRejected(f"parameter {key[:20]!r} given twice")
        result[key] = value
    return result


_CONTROL = {c for c in range(32) if c not in (9, 10)} | {127}


def _clean_text(text: str) -> str:
    """NFC (so a decomposed å matches ``å`` in commands), CRLF to LF, no other control codes."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(ch for ch in text if ord(ch) not in _CONTROL)


def _timestamp(value: str | None) -> datetime | None:
    if value is None or not value.isdigit() or len(value) > 12:
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_dlr(query: Mapping[str, str] | str | Any) -> DeliveryReport | CallbackRejected:
    """A delivery report from the dlr-url's query (names of :data:`DLR_QUERY`); never raises.

    A report without a well-formed ``ref`` is rejected (it could not be matched to a message);
    an unknown or missing status is kept as ``unknown`` so that nothing Kannel says is lost.
    """
    fields = _fields(query)
    if isinstance(fields, CallbackRejected):
        return fields
    ref = fields.get("ref", "")
    if not _REF_RE.fullmatch(ref):
        return CallbackRejected("missing or malformed ref")
    raw = fields.get("status", "").strip()
    code = int(raw) if raw.isdigit() and len(raw) <= 5 else None
    status = _DLR_CODES.get(code, DeliveryStatus.UNKNOWN) if code is not None else None
    message_id = fields.get("fid") or None
    if message_id is not None and not _GATEWAY_ID_RE.fullmatch(message_id):
        message_id = None
    return DeliveryReport(
        ref=ref,
        status=status or DeliveryStatus.UNKNOWN,
        code=code,
        answer=_clean_text(fields.get("answer", "")).replace("\n", " ").strip()[:MAX_ANSWER],
        message_id=message_id,
        ts=_timestamp(fields.get("ts")),
    )


def parse_mo(query: Mapping[str, str] | str | Any) -> InboundSms | CallbackRejected:
    """An inbound SMS from the MO URL's query (names of :data:`MO_QUERY`); never raises.

    Sender, receiver and Kannel's id are required and checked; the text is cleaned (NFC, no
    control codes, trimmed) and refused above :data:`MAX_MO_TEXT` characters rather than cut:
    a cut reply could change what someone acknowledged.
    """
    fields = _fields(query)
    if isinstance(fields, CallbackRejected):
        return fields
    sender = fields.get("from", "").strip()
    receiver = fields.get("to", "").strip()
    gateway_id = fields.get("id", "").strip()
    if not _ADDRESS_RE.fullmatch(sender):
        return CallbackRejected("missing or malformed sender")
    if not _ADDRESS_RE.fullmatch(receiver):
        return CallbackRejected("missing or malformed receiver")
    if not _GATEWAY_ID_RE.fullmatch(gateway_id):
        return CallbackRejected("missing or malformed message id")
    text = fields.get("text", "")
    if len(text) > MAX_MO_TEXT * 2:
        return CallbackRejected("text too long")
    text = _clean_text(text).strip()
    if len(text) > MAX_MO_TEXT:
        return CallbackRejected("text too long")
    return InboundSms(
        sender=sender,
        receiver=receiver,
        text=text,
        gateway_id=gateway_id,
        ts=_timestamp(fields.get("ts")),
    )


def secret_matches(
    query: Mapping[str, str] | str | Any, expected: str, name: str = "secret"
) -> bool:
    """True if the callback carries ``expected`` as ``name`` (compared in constant time).

    Kannel cannot sign its callbacks; a secret in the configured URL is what keeps strangers
    from acknowledging alarms through the SMS endpoint.
    """
    fields = _fields(query)
    if isinstance(fields, CallbackRejected) or not expected:
        return False
    given = fields.get(name, "")
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))
