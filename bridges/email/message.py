"""The outgoing e-mail of an alarm chain: alarm, reminder, situation report, stand-down.

Why these choices:

- **Plain text, UTF-8, quoted-printable.** A function mailbox may be read in a webmail, a phone
  or a terminal at 3 a.m.; plain text reads the same everywhere. Quoted-printable keeps the
  message 7-bit clean, so no relay on the way needs 8BITMIME or SMTPUTF8 for å, ä, ö, æ, ø.
- **Subject and body are parameters.** Their wording comes from the bot's catalogue in the
  party's language (and carries ÖVNING / ØVELSE / EXERCISE for exercise traffic); this module
  only guards what must hold whatever the wording: the reply code is in the *body* (people
  reply by typing it; a header survives no forwarding, copy or phone client), an exercise
  marker is in both subject and body, and no user text can inject a header.
- **A Message-ID per message, threaded.** Reminders and the stand-down name the alarm in
  ``In-Reply-To``/``References`` so a mailbox shows one thread per incident, and a reply to any
  of them names the message it answers. A caller that passes a stable key (the outbox row's
  idempotency key) gets the same Message-ID on every retry, so a recipient's mail system can
  drop the duplicate a relay failover may cause.
- **Auto-Submitted: auto-generated** (RFC 3834): well-behaved vacation responders stay quiet, so
  the replies that come back are people's.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from enum import StrEnum

#: Headers the bot sets for machines (filters, the inbound side, an auditor reading raw mail).
#: People never need them: everything a person needs is in the subject and body.
HEADER_INCIDENT = "X-Larmkedja-Incident"
HEADER_KIND = "X-Larmkedja-Kind"
HEADER_REPLY_CODE = "X-Larmkedja-Reply-Code"
HEADER_EXERCISE = "X-Larmkedja-Exercise"

_ADDR_SPEC = re.compile(r"^[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9.\-]+\.[A-Za-z0-9\-]+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)*$")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_=+]")
_LINE_BREAKS = re.compile(r"[\r\n\t\f\v\u2028\u2029\x85]+")


class MailKind(StrEnum):
    """What an e-mail is in the chain; also decides urgency headers."""

    ALARM = "alarm"
    REMINDER = "reminder"
    SITUATION_REPORT = "situation-report"
    STAND_DOWN = "stand-down"


#: Kinds a person must act on now; mail clients show them as high importance.
_URGENT = frozenset({MailKind.ALARM, MailKind.REMINDER})


def make_message_id(domain: str, key: str | None = None) -> str:
    """A Message-ID ``<…@domain>``; the same ``key`` always gives the same id.

    Without a key the id is random (time plus 96 random bits), which is unique enough for any
    number of bots on one domain. With a key (e.g. the outbox row's idempotency key) a retry of
    the same row reuses the id, which is what lets receivers deduplicate after a failover.
    """
    if not _DOMAIN.match(domain):
        raise ValueError(f"{domain!r} is not a domain name for a Message-ID")
    if key is None:
        left = f"{int(time.time() * 1000)}.{secrets.token_hex(12)}"
    else:
        left = _KEY_UNSAFE.sub("-", key).strip(".") or "x"
        left = f"larmkedja.{left}"
    return f"<{left}@{domain}>"


def build_mail(
    *,
    kind: MailKind,
    sender: str,
    recipients: Sequence[str],
    subject: str,
    body: str,
    message_id: str,
    incident_id: str,
    reply_code: str | None = None,
    thread: Sequence[str] = (),
    exercise_marker: str | None = None,
    sender_name: str | None = None,
    reply_to: str | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """Build one alarm-chain e-mail to a party's function address(es).

    ``sender`` is the bot's address (``From:`` and, when sent, the envelope sender, so bounces
    come back to the bot). ``thread`` holds the Message-IDs this mail follows up, oldest first
    (for a reminder or stand-down: the alarm's id, then any later ones); the last is the
    ``In-Reply-To``. ``reply_code`` must already be in ``body``, worded by the catalogue; it is
    also copied into a header for machines. ``exercise_marker`` (e.g. ``"ÖVNING"``) marks
    exercise traffic: it must appear in both subject and body, so an exercise can never be read
    as a live alarm. ``reply_to`` defaults to ``sender``.

    Raises :class:`ValueError` for what is a bug in the caller (a missing reply code or
    marker, a malformed address): such a mail must fail in tests, not confuse a duty officer.
    """
    if not recipients:
        raise ValueError("an e-mail needs at least one function address")
    for address in (sender, *recipients, *([reply_to] if reply_to else [])):
        _check_address(address)
    subject = _one_line(subject)
    if not subject:
        raise ValueError("an e-mail needs a subject")
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if reply_code is not None:
        reply_code = _one_line(reply_code)
        if not reply_code or reply_code not in body:
            raise ValueError(
                f"the reply code {reply_code!r} must be in the body text: people reply by "
                "typing it, and no header survives a phone client"
            )
    if exercise_marker is not None and (
        exercise_marker not in subject or exercise_marker not in body
    ):
        raise ValueError(f"exercise mail must carry {exercise_marker!r} in subject and body")
    for mid in (message_id, *thread):
        _check_message_id(mid)

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _address(sender, sender_name)
    msg["To"] = ", ".join(recipients)
    if reply_to is not None and reply_to != sender:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = message_id
    if thread:
        msg["In-Reply-To"] = thread[-1]
        msg["References"] = " ".join(thread)
    msg["Auto-Submitted"] = "auto-generated"
    if kind in _URGENT:
        msg["Importance"] = "high"
        msg["X-Priority"] = "1"
    msg[HEADER_INCIDENT] = _one_line(incident_id)
    msg[HEADER_KIND] = kind.value
    if reply_code is not None:
        msg[HEADER_REPLY_CODE] = reply_code
    if exercise_marker is not None:
        msg[HEADER_EXERCISE] = "yes"
    if not body.endswith("\n"):
        body += "\n"
    msg.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
    return msg


def envelope_of(message: EmailMessage) -> tuple[str, list[str]]:
    """The envelope sender and recipients of a message built by :func:`build_mail`.

    Taken from ``From:`` and ``To:``/``Cc:`` rather than passed around, so a message in the
    outbox is self-describing; ``Bcc:`` is honoured too and never transmitted.
    """
    sender = parseaddr(str(message.get("From", "")))[1]
    headers = [str(h) for name in ("To", "Cc", "Bcc") for h in message.get_all(name, [])]
    recipients: list[str] = []
    for _name, addr_spec in getaddresses(headers):
        if addr_spec and addr_spec not in recipients:
            recipients.append(addr_spec)
    return sender, recipients


def _address(addr_spec: str, display_name: str | None) -> Address | str:
    if not display_name:
        return addr_spec
    return Address(display_name=_one_line(display_name), addr_spec=addr_spec)


def _check_address(address: str) -> None:
    if not _ADDR_SPEC.match(address):
        raise ValueError(f"{address!r} is not a plain e-mail address (local@domain)")


def _check_message_id(message_id: str) -> None:
    if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id):
        raise ValueError(f"{message_id!r} is not a Message-ID like <id@domain>")
    if _LINE_BREAKS.search(message_id) or " " in message_id:
        raise ValueError(f"{message_id!r} contains whitespace")


def _one_line(text: str) -> str:
    """Collapse line breaks: a headline typed by a person must never start a new header."""
    return " ".join(_LINE_BREAKS.sub(" ", text).split())
