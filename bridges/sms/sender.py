"""The SMS channel's :class:`bot.contracts.Sender`: an outbox row out through Kannel.

The body is fitted to the Rakel/GSM-7 budget with the reply instruction (its last line) kept
whole; the row's reference (``o<row id>``) goes into Kannel's delivery-report URL and comes
back in every report (:meth:`bot.engine.delivery_reports`), and a resend carries the same one.
What Kannel answered is sorted into sent, retry and refused; the reason never holds a password
or a whole phone number.
"""

from __future__ import annotations

import contextlib
import re

from bot.contracts import Outgoing, Refused, Retry, SendResult, Sent
from bridges.destinations import scrub
from bridges.sms import gsm7
from bridges.sms.kannel import KannelClient

_REF_RE = re.compile(r"o([0-9]{1,18})")


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


class SmsSender:
    channel = "sms"

    def __init__(self, kannel: KannelClient, *, budget_segments: int = 3) -> None:
        self.kannel = kannel
        self.budget_segments = budget_segments
        self._secrets = sorted(
            {e.password for e in kannel.endpoints if e.password}, key=len, reverse=True
        )

    async def send(self, message: Outgoing) -> SendResult:
        body = str(message.payload.get("body") or "")
        try:
            text = sms_text(body, self.budget_segments)
        except ValueError as exc:  # a text no retry can fit
            return Refused(scrub(str(exc), message.destination, self._secrets))
        result = await self.kannel.send(message.destination, text, sms_ref(message.row_id))
        reason = scrub(result.detail, message.destination, self._secrets)
        if result.accepted:
            return Sent(sms_ref(message.row_id))
        return Retry(reason) if result.retryable else Refused(reason)
