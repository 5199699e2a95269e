"""The canonical form of a phone number or e-mail address, as replies are matched to it.

Reply codes are bound to it (:mod:`bridges.reply_codes`), and the bot finds the party a reply
came from with it (:meth:`bot.config.Config.party_for_destination`), so a number Kannel reports
as ``0046…`` is the same number everywhere. Standard library only: the config model uses it.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr

_PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_ALPHANUMERIC_SENDER = re.compile(r"^[A-Za-z0-9 ]{1,11}$")  # "Telia", operator notices
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")


def normalize_destination(channel: str, value: object) -> str | None:
    """The canonical form codes are bound to, or None if it cannot be one of ours.

    SMS: digits only, ``+46…``, ``0046…`` and ``46…`` being one number (Kannel reports senders
    in any of these); a national ``070…`` stays distinct and so fails closed. Alphanumeric
    senders are kept (they can be throttled) but never match. E-mail: the bare address of
    ``Name <addr>``, lower-cased. Use the same function when issuing and when redeeming.
    """
    if not isinstance(value, str) or len(value) > 320:
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    if channel == "sms":
        compact = re.sub(r"[\s\-().]", "", text)
        if compact.startswith("00"):
            compact = "+" + compact[2:]
        if _PHONE.match(compact):
            return compact.lstrip("+")
        if _ALPHANUMERIC_SENDER.match(text):
            return text.lower()
        return None
    if channel == "email":
        address = parseaddr(text)[1].strip().lower()
        if _EMAIL.match(address) and len(address) <= 254 and address.isprintable():
            return address
        return None
    return None


def mask_destination(destination: str) -> str:
    """A phone number as ``***1234``, an address as ``t***@domain``: enough to tell apart in a
    log line or an audit entry, never the whole number."""
    if "@" in destination:
        local, _, domain = destination.rpartition("@")
        return f"{local[:1]}***@{domain}"
    return "***" + destination[-4:] if len(destination) > 4 else "***"


def scrub(text: str, destination: str, secrets: list[str]) -> str:
    """A gateway's or relay's answer made fit for a log line, a ``last_error`` and the audit:
    passwords out, a full phone number masked, one line, bounded."""
    for secret in secrets:
        text = text.replace(secret, "***")
    if destination and "@" not in destination:
        text = text.replace(destination, mask_destination(destination))
    return " ".join(text.split())[:500]
