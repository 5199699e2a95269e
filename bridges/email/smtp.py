"""Outgoing e-mail through the organisation's SMTP relays, with failover and an honest verdict.

Why it works like an MTA and not like ``smtplib.sendmail`` in a try/except:

- **Redundancy.** DESIGN §1: no single channel can be trusted, and the mail relay is part of the
  channel. Relays are tried in order; a relay that cannot take the message *now* (refused or
  timed-out connection, a 4xx anywhere, a session it will not open for us: greeting 554,
  STARTTLS missing, AUTH refused) hands the message to the next one.
- **Temporary versus permanent** is what the outbox worker needs to decide between "retry with
  backoff" and "give up on this channel, escalate on the others". Following RFC 5321, a 5xx
  to RCPT for *every* recipient is final and no other relay is asked (the way an MTA does not
  try the next MX after a 5xx): the mailbox system behind the relays will say the same, and
  the address in the config is wrong. A 5xx anywhere else (greeting, EHLO, AUTH, MAIL, DATA)
  is this relay refusing *us* (credentials, sender policy, a content filter), so the next
  relay is tried. When every relay failed, the verdict is temporary if any failure was,
  permanent only if all of them refused outright (a configuration the operator must fix).
- **Partial acceptance counts as sent.** A party with two function addresses is alarmed when
  one accepted; the refused one is reported in :attr:`MailResult.refused` for the operator.
- **At least once.** If a relay took DATA but its final reply is lost (a timeout), the next
  relay sends the message again: for an alarm a duplicate is better than a loss, and a stable
  Message-ID (:func:`bridges.email.message.make_message_id` with a key) lets mail systems and
  people see it is the same message.
- **No secrets in text.** A relay's password never appears in a log line, a result or an
  exception text: every text that leaves this module passes :meth:`SmtpSender._redact`, and
  :class:`Relay` leaves the password out of its ``repr``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum
from types import MappingProxyType

import aiosmtplib
from aiosmtplib import (
    SMTPConnectResponseError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
)

from bridges.email.message import envelope_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Relay:
    """One SMTP relay (submission server) of the organisation.

    ``starttls`` *requires* STARTTLS: a relay that does not offer it is skipped rather than
    given the message, and the credentials, in clear text. ``ca_file`` adds a trust anchor for
    a relay with an internal CA. ``timeout`` bounds every step (connect, each reply).
    """

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    timeout: float = 10.0
    ca_file: str | None = None

    @property
    def name(self) -> str:
        """``host:port``: how a relay is named in logs and results (never with credentials)."""
        return f"{self.host}:{self.port}"


class DeliveryStatus(StrEnum):
    """The verdict the outbox worker acts on."""

    SENT = "sent"
    #: Every relay failed and at least one only for now: retry later.
    TEMPORARY = "temporary"
    #: Retrying the same message will not help: escalate on other channels, tell the operator.
    PERMANENT = "permanent"


@dataclass(frozen=True)
class RelayAttempt:
    """One relay's failure to take a message: where it failed and why (redacted)."""

    relay: str
    #: connect, starttls, auth, mail, rcpt, data or send (a failure not tied to one command)
    phase: str
    temporary: bool
    code: int | None
    detail: str


@dataclass(frozen=True)
class MailResult:
    """What happened to one message; ``attempts`` lists the relays that failed on the way.

    ``refused`` maps a recipient to the relay's (code, text). With :attr:`DeliveryStatus.SENT`
    it lists the function addresses the accepting relay refused while taking the others; a
    4xx among them is worth sending to again, a 5xx is a wrong address in the config.
    """

    status: DeliveryStatus
    message_id: str
    relay: str | None = None
    accepted: tuple[str, ...] = ()
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    attempts: tuple[RelayAttempt, ...] = ()

    @property
    def retryable(self) -> bool:
        return self.status is DeliveryStatus.TEMPORARY

    @property
    def detail(self) -> str:
        """One line for a log or the status board's "why not" (already redacted)."""
        parts = [f"{self.status.value}"]
        if self.relay:
            parts.append(f"via {self.relay}")
        if self.refused:
            parts.append(
                "refused "
                + ", ".join(f"{a} ({code} {text})" for a, (code, text) in self.refused.items())
            )
        parts.extend(f"{a.relay} {a.phase}: {a.detail}" for a in self.attempts)
        return "; ".join(parts)


class _Final(Exception):  # noqa: N818 - a control-flow signal, not an error type
    """A 5xx for every recipient (or an address no relay can take): no other relay is asked."""

    def __init__(self, attempt: RelayAttempt, refused: Mapping[str, tuple[int, str]]) -> None:
        super().__init__(attempt.detail)
        self.attempt = attempt
        self.refused = refused


class SmtpSender:
    """Sends messages through ``relays`` in order; see the module docstring for the policy.

    ``local_hostname`` is the name the bot gives in EHLO (default: this host's FQDN).
    ``max_concurrent`` bounds simultaneous relay connections, so an alarm to every region does
    not open twenty connections at once against a relay's per-client limit.
    """

    def __init__(
        self,
        relays: Sequence[Relay],
        *,
        local_hostname: str | None = None,
        max_concurrent: int = 8,
    ) -> None:
        if not relays:
            raise ValueError("SmtpSender needs at least one relay")
        self._relays = tuple(relays)
        self._local_hostname = local_hostname
        self._slots = asyncio.Semaphore(max_concurrent)
        # Longest first, so a password containing another one is hidden whole.
        self._secrets = sorted({r.password for r in self._relays if r.password}, key=len)[::-1]

    @property
    def relays(self) -> tuple[Relay, ...]:
        return self._relays

    async def send(self, message: EmailMessage) -> MailResult:
        """Hand ``message`` to the first relay that takes it; never raises for mail trouble.

        The envelope comes from the message (``From:``; ``To:``/``Cc:``/``Bcc:``), so a
        message built by :func:`bridges.email.message.build_mail` is sent as it reads.
        """
        message_id = str(message.get("Message-ID", "")).strip()
        sender, recipients = envelope_of(message)
        if not sender or not recipients:
            attempt = RelayAttempt("-", "send", False, None, "no envelope sender or recipient")
            return MailResult(DeliveryStatus.PERMANENT, message_id, attempts=(attempt,))
        attempts: list[RelayAttempt] = []
        async with self._slots:
            for relay in self._relays:
                try:
                    refused = await self._try(relay, message, sender, recipients)
                except _Final as final:
                    attempts.append(final.attempt)
                    log.warning(
                        "mail %s refused permanently by %s (%s): %s",
                        message_id,
                        relay.name,
                        final.attempt.phase,
                        final.attempt.detail,
                    )
                    return MailResult(
                        DeliveryStatus.PERMANENT,
                        message_id,
                        refused=MappingProxyType(dict(final.refused)),
                        attempts=tuple(attempts),
                    )
                except _RelayFailed as failed:
                    attempts.append(failed.attempt)
                    log.warning(
                        "mail %s: relay %s failed %s at %s: %s",
                        message_id,
                        relay.name,
                        "temporarily" if failed.attempt.temporary else "for this session",
                        failed.attempt.phase,
                        failed.attempt.detail,
                    )
                    continue
                accepted = tuple(r for r in recipients if r not in refused)
                log.info(
                    "mail %s accepted by %s for %d recipient(s)%s",
                    message_id,
                    relay.name,
                    len(accepted),
                    f", refused {sorted(refused)}" if refused else "",
                )
                return MailResult(
                    DeliveryStatus.SENT,
                    message_id,
                    relay=relay.name,
                    accepted=accepted,
                    refused=MappingProxyType(dict(refused)),
                    attempts=tuple(attempts),
                )
        temporary = any(a.temporary for a in attempts)
        return MailResult(
            DeliveryStatus.TEMPORARY if temporary else DeliveryStatus.PERMANENT,
            message_id,
            attempts=tuple(attempts),
        )

    async def _try(
        self, relay: Relay, message: EmailMessage, sender: str, recipients: list[str]
    ) -> dict[str, tuple[int, str]]:
        """One relay, one session. Returns the recipients it refused (the rest it accepted)."""
        smtp = aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            timeout=relay.timeout,
            start_tls=False,
            local_hostname=self._local_hostname,
        )
        phase = "connect"
        try:
            if relay.ca_file:
                smtp.tls_context = ssl.create_default_context(cafile=relay.ca_file)
            await smtp.connect()
            if relay.starttls:
                phase = "starttls"
                await smtp.starttls()
            if relay.username is not None:
                phase = "auth"
                await smtp.login(relay.username, relay.password or "")
            phase = "send"
            errors, _reply = await smtp.send_message(message, sender=sender, recipients=recipients)
        except SMTPRecipientsRefused as exc:
            refused = {r.recipient: (r.code, self._redact(r.message)) for r in exc.recipients}
            temporary = any(_is_temporary(code) for code, _ in refused.values())
            detail = "; ".join(f"{a}: {c} {m}" for a, (c, m) in refused.items())
            attempt = RelayAttempt(relay.name, "rcpt", temporary, _first_code(refused), detail)
            if temporary:
                raise _RelayFailed(attempt) from None
            raise _Final(attempt, refused) from None
        except SMTPResponseException as exc:
            raise self._classify_response(relay, phase, exc) from None
        except (SMTPException, OSError, TimeoutError) as exc:
            detail = self._redact(_describe(exc))
            attempt = RelayAttempt(relay.name, phase, _transient(phase, exc), None, detail)
            raise _RelayFailed(attempt) from None
        except ValueError as exc:
            # aiosmtplib refuses an address it cannot put on the wire: no relay will do better.
            attempt = RelayAttempt(relay.name, "send", False, None, self._redact(str(exc)))
            raise _Final(attempt, {}) from None
        else:
            with contextlib.suppress(Exception):
                await smtp.quit()
            return {a: (r.code, self._redact(r.message)) for a, r in errors.items()}
        finally:
            smtp.close()

    def _classify_response(
        self, relay: Relay, phase: str, exc: SMTPResponseException
    ) -> _RelayFailed:
        """A reply code outside RCPT: this relay will not take the message (now, or from us).

        Even a 5xx here is about the relay, not the mailbox: AUTH refused, MAIL refused for
        want of AUTH or by sender policy, DATA refused by its content filter. Another relay may
        well take the message, so it is asked.
        """
        code = exc.code
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            phase = "mail"
        elif isinstance(exc, aiosmtplib.SMTPDataError):
            phase = "data"
        elif isinstance(exc, SMTPConnectResponseError):
            phase = "connect"
        elif isinstance(exc, aiosmtplib.SMTPHeloError):
            phase = "ehlo"
        attempt = RelayAttempt(
            relay.name, phase, _is_temporary(code), code, self._redact(f"{code} {exc.message}")
        )
        return _RelayFailed(attempt)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())


class _RelayFailed(Exception):  # noqa: N818 - a control-flow signal, not an error type
    """This relay could not take the message; the next one may."""

    def __init__(self, attempt: RelayAttempt) -> None:
        super().__init__(attempt.detail)
        self.attempt = attempt


def _is_temporary(code: int) -> bool:
    # Anything that is not a clear 5xx (4xx, or a garbled reply) may work on another try.
    return not 500 <= code < 600


def _first_code(refused: Mapping[str, tuple[int, str]]) -> int | None:
    return next((code for code, _ in refused.values()), None)


def _transient(phase: str, exc: BaseException) -> bool:
    """Whether a failure without a reply code may pass: a lost or refused connection may, a
    certificate that does not verify or a relay lacking STARTTLS/AUTH will not (but the next
    relay is still tried)."""
    if isinstance(exc, ssl.SSLCertVerificationError | aiosmtplib.SMTPNotSupported):
        return False
    return not (phase in ("starttls", "auth") and type(exc) is SMTPException)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
