"""What the bot writes to its log, made safe at every level, ``DEBUG`` included.

Why a layer and not care at each call site: most log lines at ``DEBUG`` are written by
libraries, not by us. SQLAlchemy's engine logger prints every statement's parameters and every
row it reads (decrypted command bodies, inbound SMS texts with live reply codes, phone
numbers); peewee (nio's crypto store) prints its parameters (key material); nio prints whole
requests and responses; aiosmtpd (``mail.log``) prints each line of an incoming reply mail. A
duty officer's log level must never decide whether a reply code or an alarm text ends up in a
file that support staff read.

Two parts, both installed by :func:`configure` (the ``larmkedja`` command's logging):

- **Caps** (:data:`CAPPED`): loggers that print content below ``WARNING`` are held at
  ``WARNING`` whatever ``log_level`` says. Their warnings and errors still show, and the
  engine is created with ``hide_parameters=True`` so a database error's text names the
  statement but not its values.
- **A filter on the handler** (:class:`SafetyFilter`) that rewrites every record before any
  formatter sees it: the message, the exception text and the stack are :func:`scrub`-bed
  (secret and text query parameters, the whole query of a Kannel callback, acknowledge-link
  tokens, bearer tokens, reply codes after an acknowledge word, phone numbers masked to their
  last four digits as ``…4567``). The filter
  rewrites the record itself, so a second handler added to the same logger later gets the
  scrubbed record too.

The bot's own modules never log a message body, a code or a token in the first place (an
inbound SMS is logged by its Kannel id and masked sender); :func:`scrub` is the net under
that rule, not a licence to log content.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import IO

#: Loggers held at WARNING or above at every ``log_level`` (what they print below it).
CAPPED: dict[str, str] = {
    "sqlalchemy": "statements with parameters, and every row read",
    "aiosqlite": "every call with its arguments",
    "peewee": "nio's crypto-store statements with their parameters (key material)",
    "nio": "whole requests and responses, decrypted events",
    "mail.log": "each line of an incoming e-mail (aiosmtpd)",
    "mail.debug": "each line of an incoming e-mail (aiosmtpd)",
    "aiohttp.access": "request paths and queries (the bot logs routes itself)",
    "aiohttp.client": "request URLs",
    "urllib3": "request URLs",
    "asyncio": "task and callback reprs",
}

_SECRET_PARAM = re.compile(
    r"(?i)\b(secret|token|access_token|password|passwd|pass|pwd|key|code|auth|text)"
    r"(=|%3D)[^&\s'\"<>]*"
)
_ACK_PATH = re.compile(r"/ack/[^\s?#'\"<>]+")
#: A Kannel callback's query is an SMS: sender, text with its code, ids. Kept out whole.
_CALLBACK_QUERY = re.compile(r"(/sms/(?:inbound|dlr))\?[^\s'\"<>)]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_AUTH_HEADER = re.compile(r"(?i)(['\"]?authorization['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+")
#: An acknowledge word followed by what looks like a reply code (SMS 4, e-mail 6 digits).
_REPLY_CODE = re.compile(r"(?i)\b(kvittera|kvitter|kvittering|ack|ok)(\W{1,3})\d{4,8}\b")
#: E.164-like numbers: an optional +, 00 or URL-encoded + (%2B), then 7 to 15 digits, not part
#: of a longer word, number or decimal.
_PHONE = re.compile(r"(?:(?<=%2B)|(?<=%2b)|(?<![\w.,:/%-]))\+?\d{7,15}(?![\w.,]\d|\d)")

REDACTED = "***"


def mask_number(number: str) -> str:
    """``…4567``: enough to tell recipients apart, not enough to call them."""
    digits = re.sub(r"\D", "", number)
    return "…" + digits[-4:] if len(digits) > 4 else "…"


def scrub(text: str) -> str:
    """``text`` with secrets, link tokens and reply codes replaced and phone numbers masked."""
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _ACK_PATH.sub("/ack/" + REDACTED, text)
    text = _CALLBACK_QUERY.sub(lambda m: f"{m.group(1)}?{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _REPLY_CODE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _PHONE.sub(lambda m: mask_number(m.group(0)), text)


class SafetyFilter(logging.Filter):
    """Rewrites each record (message, exception, stack) through :func:`scrub`; drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception as exc:  # a record whose arguments do not fit its format
            message = f"{record.msg!s} (unformattable log arguments: {type(exc).__name__})"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def cap_loggers(level: int) -> None:
    """Hold the :data:`CAPPED` loggers at ``WARNING`` (or ``level``, if that is higher)."""
    for name in CAPPED:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))


def configure(level: str, stream: IO[str] | None = None) -> logging.Handler:
    """The bot's logging: one handler on the root logger, behind the :class:`SafetyFilter`,
    at ``level`` (a name: DEBUG, INFO, WARNING, ERROR), with the :data:`CAPPED` loggers held
    at WARNING. Returns the handler (tests remove it again)."""
    numeric = logging.getLevelNamesMapping()[level]
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SafetyFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(numeric)
    cap_loggers(numeric)
    return handler
