"""The SMS and e-mail outbox: queued rows of channel ``sms`` and ``email`` out, verdicts back in.

The engine writes a row per message (channel ``sms`` with a phone number, or ``email`` with an
address, payload ``{"body": ...}``); this worker sends it and records what happened, with the
same write-before-act semantics as the Matrix outbox in :mod:`bot.engine`:

- **Claim, send, record.** One write transaction claims the due rows (status ``sending``,
  ``attempts`` + 1) before anything goes out, so a crash between send and record leaves a
  trace: a row found in ``sending`` is sent again and marked as a possible duplicate (for an
  alarm a duplicate beats silence). A second transaction records every verdict of the pass.
- **Temporary versus permanent.** Accepted → ``sent`` (``remote_id`` is the SMS ref or the
  Message-ID); temporary → ``queued`` again with exponential backoff and jitter, until
  ``max_attempts`` → ``failed``; permanent → ``failed``. Every failure is in the audit log
  (``outbox.retry``, ``outbox.failed``, ``outbox.undelivered``) with the destination masked.
- **A resend is recognisable.** The SMS ref is ``o<row id>`` (it comes back in the delivery
  reports); the Message-ID is derived from the idempotency key, so every retry of a row
  carries the same one.
- **Rate limits per channel** (a token bucket on the injected clock): rows held back for rate
  stay ``queued`` and are not counted as attempts.
- **No secrets in text.** Gateway and relay passwords never reach a log line, a ``last_error``
  or an audit entry, and neither does a full phone number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bridges.email.message import MailKind, build_mail, make_message_id
from bridges.email.smtp import DeliveryStatus as MailStatus
from bridges.email.smtp import SmtpSender
from bridges.sms import gsm7
from bridges.sms.kannel import DeliveryReport, DeliveryStatus, KannelClient
from storage import audit, outbox
from storage.database import Database
from storage.models import OutboxRow

log = logging.getLogger(__name__)

ACTOR = "larmkedja:outbox"
SMS = "sms"
EMAIL = "email"
CHANNELS = (SMS, EMAIL)

#: ``last_error`` of a row that was found in ``sending`` (a crash between claim and record)
#: and then sent: the recipient may have it twice.

_REF_RE = re.compile(r"o([0-9]{1,18})")
_FINAL_DELIVERY = (DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value)

#: Outbox purpose → kind of mail (urgency headers); anything else is an alarm.
_MAIL_KINDS = {
    "alarm": MailKind.ALARM,
    "escalation": MailKind.REMINDER,
    "reminder": MailKind.REMINDER,
    "stand-down": MailKind.STAND_DOWN,
    "standdown": MailKind.STAND_DOWN,
    "reply": MailKind.SITUATION_REPORT,
    "situation-report": MailKind.SITUATION_REPORT,
}


#: Called for each row as it is claimed, inside the claim transaction: returns the payload to
#: send (e.g. with the recipient's reply code filled in, never stored), or a reason not to.
Prepare = Callable[[AsyncSession, OutboxRow, datetime], Awaitable[dict[str, Any] | str]]


@dataclass(frozen=True)
class EmailChannelSettings:
    """How alarm mail goes out: the bot's address, the Message-ID domain and the relays."""

    sender: str
    message_id_domain: str
    smtp: SmtpSender
    sender_name: str | None = None
    reply_to: str | None = None


@dataclass(frozen=True)
class _Claimed:
    row_id: int
    key: str
    channel: str
    destination: str
    purpose: str
    payload: dict[str, Any]
    incident_id: str | None
    possible_duplicate: bool


@dataclass(frozen=True)
class _Verdict:
    """``outcome`` is ``sent``, ``temporary`` or ``permanent``; ``reason`` is already scrubbed."""

    outcome: str
    reason: str
    remote_id: str | None = None


class TokenBucket:
    """``rate`` tokens per second up to ``burst``, refilled by the injected clock."""

    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be above zero")
        self._clock = clock
        self.rate = rate
        self.burst = burst if burst is not None else float(max(1, math.ceil(rate)))
        self._tokens = self.burst
        self._at = clock.now()

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = max(0.0, (now - self._at).total_seconds())
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._at = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def seconds_until_token(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate


def mask_destination(destination: str) -> str:
    """A phone number as ``***1234``, an address as ``t***@domain``: enough to tell apart."""
    if "@" in destination:
        local, _, domain = destination.rpartition("@")
        return f"{local[:1]}***@{domain}"
    return "***" + destination[-4:] if len(destination) > 4 else "***"


def sms_ref(row_id: int) -> str:
    """The reference an outbox row's SMS carries into Kannel and back in delivery reports."""
    return f"o{row_id}"


def row_id_of_ref(ref: str) -> int | None:
    match = _REF_RE.fullmatch(ref)
    return int(match.group(1)) if match else None


def sms_text(body: str, budget_segments: int = 3) -> str:
    """The body as an SMS: typographic look-alikes replaced, fitted to the budget, and the last
    line (the reply instruction) kept whole; only the lines before it are shortened."""
    text = gsm7.normalize(body.replace("\r\n", "\n").replace("\r", "\n")).strip()
    head, sep, last = text.rpartition("\n")
    if sep and head.strip():
        with contextlib.suppress(ValueError):
            return gsm7.fit(head.rstrip(), budget_segments, suffix="\n" + last)
    return gsm7.fit(text, budget_segments)


class ChannelOutbox:
    """Sends the ``sms`` and ``email`` outbox rows; see the module docstring.

    ``sms`` / ``email`` may be ``None``: rows of that channel then stay queued untouched.
    ``rate_per_s`` maps a channel to messages per second (a channel not in it is unlimited);
    ``burst`` optionally sets a bucket's size (default: the rate, rounded up, at least one).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        sms: KannelClient | None,
        email: EmailChannelSettings | None,
        rate_per_s: Mapping[str, float] | None = None,
        burst: Mapping[str, float] | None = None,
        max_attempts: int = 8,
        backoff_initial_s: float = 5.0,
        backoff_max_s: float = 300.0,
        sms_budget_segments: int = 3,
        max_concurrent: int = 8,
        idle_s: float = 5.0,
        rng: random.Random | None = None,
        prepare: Prepare | None = None,
        fault: Callable[[str], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least one")
        self.db = db
        self.clock = clock
        self.sms = sms
        self.email = email
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.sms_budget_segments = sms_budget_segments
        self.idle_s = idle_s
        self._rng = rng or random.Random()
        self._prepare = prepare
        self._fault = fault or (lambda _point: None)
        self._buckets = {
            channel: TokenBucket(clock, rate, (burst or {}).get(channel))
            for channel, rate in (rate_per_s or {}).items()
        }
        self._slots = asyncio.Semaphore(max_concurrent)
        self._pass = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._held_back: set[str] = set()
        secrets: set[str] = set()
        if sms is not None:
            secrets |= {e.password for e in sms.endpoints if e.password}
        if email is not None:
            secrets |= {r.password for r in email.smtp.relays if r.password}
        self._secrets = sorted(secrets, key=len, reverse=True)

    # ---- the loop ----------------------------------------------------------------------

    def wakeup(self) -> None:
        """Something was queued: run a pass now instead of at the next due time."""
        self._wakeup.set()

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(
            c for c, on in ((SMS, self.sms is not None), (EMAIL, self.email is not None)) if on
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; an exception is logged and the loop goes on."""
        while not stop.is_set():
            self._wakeup.clear()
            wait = self.idle_s
            try:
                await self.deliver_due()
                wait = await self._seconds_to_next()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SMS/e-mail outbox pass failed; retrying")
            await _first_of(stop, self._wakeup, timeout=wait)

    async def _seconds_to_next(self) -> float:
        wait = self.idle_s
        now = self.clock.now()
        async with self.db.read() as session:
            for channel in self.channels:
                if channel in self._held_back:  # due rows wait for a token, not for a time
                    wait = min(wait, self._buckets[channel].seconds_until_token())
                    continue
                nxt = await outbox.next_due_time(session, channel)
                if nxt is not None:
                    wait = min(wait, (nxt - now).total_seconds())
        return max(0.05, wait)

    # ---- one pass ----------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Claim the due rows of every configured channel in one transaction, send them, and
        record the verdicts in one more. Returns how many rows were claimed."""
        async with self._pass:  # passes never overlap: a row in flight is not reclaimed
            claimed = await self._claim()
            if not claimed:
                return 0
            self._fault("before-channel-send")
            verdicts = await asyncio.gather(*(self._send(item) for item in claimed))
            self._fault("after-channel-send")
            await self._record(list(zip(claimed, verdicts, strict=True)))
            return len(claimed)

    async def _claim(self) -> list[_Claimed]:
        now = self.clock.now()
        claimed: list[_Claimed] = []
        self._held_back.clear()
        async with self.db.write() as session:
            for channel in self.channels:
                bucket = self._buckets.get(channel)
                for row in await outbox.due(session, channel, now):
                    if bucket is not None and not bucket.take():
                        self._held_back.add(channel)  # stays as it is, not an attempt
                        break
                    payload = dict(row.payload or {})
                    if self._prepare is not None:
                        try:
                            async with session.begin_nested():  # a failure undoes only this row
                                prepared = await self._prepare(session, row, now)
                        except Exception as exc:  # one bad row must not block the others
                            await self._unpreparable(session, row, exc, now)
                            continue
                        if isinstance(prepared, str):
                            await self._cancel(session, row, prepared, now)
                            continue
                        payload = prepared
                    claimed.append(
                        _Claimed(
                            row_id=row.id,
                            key=row.idempotency_key,
                            channel=channel,
                            destination=row.destination,
                            purpose=row.purpose,
                            payload=payload,
                            incident_id=row.incident_id,
                            possible_duplicate=row.status == outbox.SENDING,
                        )
                    )
                    row.status = outbox.SENDING
                    row.attempts += 1
        return claimed

    async def _cancel(
        self, session: AsyncSession, row: OutboxRow, reason: str, now: datetime
    ) -> None:
        """A message that is no longer wanted (the party acknowledged meanwhile, the incident
        was stood down) is not sent: an alarm after the answer only confuses."""
        row.status, row.next_attempt_at, row.last_error = outbox.CANCELLED, None, reason
        masked = mask_destination(row.destination)
        log.info(
            "outbox %s: %s to %s not sent: %s", row.idempotency_key, row.channel, masked, reason
        )
        await audit.append(
            session,
            at=now,
            actor=ACTOR,
            action="outbox.cancelled",
            subject=masked,
            detail={"key": row.idempotency_key, "channel": row.channel, "reason": reason},
        )

    async def _unpreparable(
        self, session: AsyncSession, row: OutboxRow, exc: Exception, now: datetime
    ) -> None:
        """A row whose code or link cannot be made fails for good (and so falls back)."""
        reason = f"cannot prepare the message: {type(exc).__name__}"
        row.status, row.next_attempt_at, row.last_error = outbox.FAILED, None, reason
        masked = mask_destination(row.destination)
        log.error("outbox %s: %s to %s %s", row.idempotency_key, row.channel, masked, reason)
        await audit.append(
            session,
            at=now,
            actor=ACTOR,
            action="outbox.failed",
            subject=masked,
            detail={"key": row.idempotency_key, "channel": row.channel, "reason": reason},
        )

    async def _send(self, item: _Claimed) -> _Verdict:
        async with self._slots:
            try:
                if item.channel == SMS:
                    return await self._send_sms(item)
                return await self._send_email(item)
            except ValueError as exc:  # a text or address no retry can fix
                return _Verdict("permanent", self._scrub(f"{exc}", item.destination))
            except Exception as exc:
                log.warning(
                    "outbox %s to %s: unexpected %s",
                    item.key,
                    mask_destination(item.destination),
                    type(exc).__name__,
                )
                return _Verdict("temporary", f"unexpected {type(exc).__name__}")

    async def _send_sms(self, item: _Claimed) -> _Verdict:
        assert self.sms is not None
        body = str(item.payload.get("body") or "")
        text = sms_text(body, self.sms_budget_segments)
        ref = sms_ref(item.row_id)
        result = await self.sms.send(item.destination, text, ref)
        reason = self._scrub(result.detail, item.destination)
        if result.accepted:
            return _Verdict("sent", reason, remote_id=ref)
        return _Verdict("temporary" if result.retryable else "permanent", reason)

    async def _send_email(self, item: _Claimed) -> _Verdict:
        settings = self.email
        assert settings is not None
        body = str(item.payload.get("body") or "").replace("\r\n", "\n").replace("\r", "\n")
        subject = next((line.strip() for line in body.split("\n") if line.strip()), "")
        message_id = make_message_id(settings.message_id_domain, item.key)
        reply_code = item.payload.get("reply_code")
        message = build_mail(
            kind=_MAIL_KINDS.get(item.purpose, MailKind.ALARM),
            sender=settings.sender,
            recipients=[item.destination],
            subject=subject,
            body=body,
            message_id=message_id,
            incident_id=item.incident_id or "-",
            reply_code=reply_code if reply_code and reply_code in body else None,
            thread=tuple(item.payload.get("thread") or ()),
            exercise_marker=item.payload.get("exercise_marker"),
            sender_name=settings.sender_name,
            reply_to=settings.reply_to,
            date=self.clock.now(),
        )
        result = await settings.smtp.send(message)
        reason = self._scrub(result.detail, item.destination)
        if result.status is MailStatus.SENT:
            return _Verdict("sent", reason, remote_id=message_id)
        return _Verdict("temporary" if result.retryable else "permanent", reason)

    async def _record(self, results: list[tuple[_Claimed, _Verdict]]) -> None:
        now = self.clock.now()
        async with self.db.write() as session:
            for item, verdict in results:
                row = await session.get(OutboxRow, item.row_id)
                if row is None:
                    continue
                masked = mask_destination(item.destination)
                if verdict.outcome == "sent":
                    delivery = (row.payload or {}).get("delivery") or {}
                    if delivery.get("status") != DeliveryStatus.FAILED.value:
                        row.status = outbox.SENT  # unless a failed DLR overtook the record
                    row.sent_at, row.remote_id = now, (verdict.remote_id or "")[:255] or None
                    row.next_attempt_at = None
                    row.last_error = outbox.POSSIBLE_DUPLICATE if item.possible_duplicate else None
                    log.log(
                        logging.WARNING if item.possible_duplicate else logging.INFO,
                        "outbox %s: %s to %s sent%s",
                        item.key,
                        item.channel,
                        masked,
                        " (possible duplicate after a crash)" if item.possible_duplicate else "",
                    )
                    continue
                reason = verdict.reason
                if item.possible_duplicate:
                    reason = f"{reason} ({outbox.POSSIBLE_DUPLICATE})"
                row.last_error = reason
                final = verdict.outcome == "permanent" or row.attempts >= self.max_attempts
                if final:
                    row.status, row.next_attempt_at = outbox.FAILED, None
                    action = "outbox.failed"
                else:
                    row.status = outbox.QUEUED
                    row.next_attempt_at = now + timedelta(seconds=self._backoff(row.attempts))
                    action = "outbox.retry"
                log.warning(
                    "outbox %s: %s to %s %s (attempt %d): %s",
                    item.key,
                    item.channel,
                    masked,
                    "failed" if final else "will be retried",
                    row.attempts,
                    reason,
                )
                await audit.append(
                    session,
                    at=now,
                    actor=ACTOR,
                    action=action,
                    subject=masked,
                    detail={
                        "key": item.key,
                        "channel": item.channel,
                        "kind": verdict.outcome,
                        "attempts": row.attempts,
                        "reason": reason,
                        **(
                            {"next_attempt_at": row.next_attempt_at.isoformat()}
                            if row.next_attempt_at is not None
                            else {}
                        ),
                    },
                )

    def _backoff(self, attempts: int) -> float:
        """Seconds until the next try: doubling from the initial value, capped, with jitter
        (50-100 %) so a recovered gateway is not hit by every row at once."""
        base = min(self.backoff_initial_s * 2 ** min(max(attempts - 1, 0), 30), self.backoff_max_s)
        return base * self._rng.uniform(0.5, 1.0)

    def _scrub(self, text: str, destination: str) -> str:
        """Gateway and relay passwords out, a full phone number masked; one line, bounded."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if destination and "@" not in destination:
            text = text.replace(destination, mask_destination(destination))
        return " ".join(text.split())[:500]

    # ---- delivery reports --------------------------------------------------------------

    async def record_dlr(self, report: DeliveryReport) -> None:
        """Store what a delivery report says about one of our SMS (matched by its ref).

        The state goes into ``payload["delivery"]``; a final state (delivered, failed) is not
        overwritten by a late intermediate report. Not delivered (Kannel's 2 or 16) fails the
        row and is audited as ``outbox.undelivered``, so the caller can fall back.
        """
        row_id = row_id_of_ref(report.ref)
        if row_id is None:
            log.info("delivery report for unknown ref %r ignored", report.ref[:64])
            return
        now = self.clock.now()
        async with self.db.write() as session:
            row = await session.get(OutboxRow, row_id)
            if row is None or row.channel != SMS:
                log.info("delivery report for %s matches no SMS row; ignored", report.ref)
                return
            payload = dict(row.payload or {})
            previous = payload.get("delivery") or {}
            if previous.get("status") in _FINAL_DELIVERY and not report.final:
                return
            payload["delivery"] = {
                "status": report.status.value,
                "code": report.code,
                "at": now.isoformat(),
                **({"ts": report.ts.isoformat()} if report.ts is not None else {}),
            }
            row.payload = payload  # a new dict: JSON columns do not track changes in place
            masked = mask_destination(row.destination)
            if report.status is DeliveryStatus.FAILED and row.status != outbox.FAILED:
                reason = self._scrub(
                    f"not delivered: {report.code} {report.answer}".strip(), row.destination
                )
                if row.status in (outbox.SENT, outbox.SENDING):
                    row.status = outbox.FAILED
                row.last_error = reason
                log.warning("outbox %s: SMS to %s %s", row.idempotency_key, masked, reason)
                await audit.append(
                    session,
                    at=now,
                    actor=ACTOR,
                    action="outbox.undelivered",
                    subject=masked,
                    detail={"key": row.idempotency_key, "channel": SMS, "reason": reason},
                )
            else:
                if report.status is DeliveryStatus.DELIVERED and row.status == outbox.QUEUED:
                    # An earlier attempt got through after all (its answer was lost): no resend.
                    row.status, row.next_attempt_at = outbox.SENT, None
                    row.sent_at, row.remote_id = now, report.ref
                log.info(
                    "outbox %s: SMS to %s %s", row.idempotency_key, masked, report.status.value
                )


def reported_delivered(row: OutboxRow) -> bool:
    """Whether a delivery report said this SMS reached the handset (see :meth:`ChannelOutbox.
    record_dlr`, which keeps the newest report in ``payload["delivery"]``)."""
    delivery = (row.payload or {}).get("delivery") or {}
    return bool(delivery.get("status") == DeliveryStatus.DELIVERED.value)


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of ``events`` is set or ``timeout`` seconds have passed."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
