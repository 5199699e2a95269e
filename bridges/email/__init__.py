"""E-mail to function addresses (the SDK stand-in): alarms out over SMTP, replies in over SMTP.

Three parts, each usable alone:

- :mod:`bridges.email.message` builds the outgoing alarm, reminder, situation report or
  stand-down as a plain-text UTF-8 :class:`~email.message.EmailMessage` that threads.
- :mod:`bridges.email.smtp` hands it to the organisation's relays, failing over between them and
  saying whether a failure is worth retrying.
- :mod:`bridges.email.inbound` listens for the replies the organisation's mail server relays to
  the bot and parses each into an :class:`~bridges.email.inbound.InboundMail`.

Nothing here decides whether a reply acknowledges anything: the reply code in the text does,
and the layer above checks it. ``From:`` is carried, never trusted.
"""

from bridges.email.inbound import InboundMail, InboundMailServer, parse_inbound, strip_quoted
from bridges.email.message import MailKind, build_mail, make_message_id
from bridges.email.smtp import DeliveryStatus, MailResult, Relay, RelayAttempt, SmtpSender

__all__ = [
    "DeliveryStatus",
    "InboundMail",
    "InboundMailServer",
    "MailKind",
    "MailResult",
    "Relay",
    "RelayAttempt",
    "SmtpSender",
    "build_mail",
    "make_message_id",
    "parse_inbound",
    "strip_quoted",
]
