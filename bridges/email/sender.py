"""The e-mail channel's :class:`bot.contracts.Sender`: an outbox row out through SMTP.

The first line of the body is the subject; the Message-ID is derived from the row's
idempotency key, so every retry of a row carries the same one and a reply's ``In-Reply-To``
finds it; the urgency headers follow the row's purpose. Relay failover is
:class:`bridges.email.smtp.SmtpSender`'s; the reason never holds a password.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock
from bot.contracts import Outgoing, Refused, Retry, SendResult, Sent
from bridges.destinations import scrub
from bridges.email.message import MailKind, build_mail, make_message_id
from bridges.email.smtp import DeliveryStatus, SmtpSender

#: Outbox purpose → kind of mail (urgency headers); anything else is an alarm.
MAIL_KINDS = {
    "alarm": MailKind.ALARM,
    "escalation": MailKind.REMINDER,
    "reminder": MailKind.REMINDER,
    "stand-down": MailKind.STAND_DOWN,
    "standdown": MailKind.STAND_DOWN,
    "reply": MailKind.SITUATION_REPORT,
    "situation-report": MailKind.SITUATION_REPORT,
}


@dataclass(frozen=True)
class EmailChannelSettings:
    """How alarm mail goes out: the bot's address, the Message-ID domain and the relays."""

    sender: str
    message_id_domain: str
    smtp: SmtpSender
    sender_name: str | None = None
    reply_to: str | None = None


class EmailSender:
    channel = "email"

    def __init__(self, settings: EmailChannelSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._secrets = sorted(
            {r.password for r in settings.smtp.relays if r.password}, key=len, reverse=True
        )

    async def send(self, message: Outgoing) -> SendResult:
        settings = self.settings
        payload = message.payload
        body = str(payload.get("body") or "").replace("\r\n", "\n").replace("\r", "\n")
        subject = next((line.strip() for line in body.split("\n") if line.strip()), "")
        message_id = make_message_id(settings.message_id_domain, message.key)
        reply_code = payload.get("reply_code")
        try:
            mail = build_mail(
                kind=MAIL_KINDS.get(message.purpose, MailKind.ALARM),
                sender=settings.sender,
                recipients=[message.destination],
                subject=subject,
                body=body,
                message_id=message_id,
                incident_id=message.incident_id or "-",
                reply_code=reply_code if reply_code and reply_code in body else None,
                thread=tuple(payload.get("thread") or ()),
                exercise_marker=payload.get("exercise_marker"),
                sender_name=settings.sender_name,
                reply_to=settings.reply_to,
                date=self.clock.now(),
            )
        except ValueError as exc:  # an address or text no retry can fix
            return Refused(scrub(str(exc), message.destination, self._secrets))
        result = await settings.smtp.send(mail)
        reason = scrub(result.detail, message.destination, self._secrets)
        if result.status is DeliveryStatus.SENT:
            return Sent(message_id)
        return Retry(reason) if result.retryable else Refused(reason)
