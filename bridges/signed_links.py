"""Signed "acknowledge by link" tokens: HMAC-SHA256 over a small claim, verified in constant time.

Why a signed token and not a random id looked up in the database: the link must work when the
e-mail was sent long ago by a bot that has restarted since, and verifying it must not need a
database read before we know the request is genuine (a flood of forged links costs one HMAC
each). The token is a bearer capability: whoever holds the e-mail may acknowledge for the party
it was sent to, exactly as whoever holds the alarm SMS may reply with its code. That is why the
link also names the outbox message (and so the reply code row): acknowledging by link uses up
the same single-use code as a reply would, whichever comes first.

Format: ``1.<base64url(JSON claim)>.<base64url(HMAC-SHA256)>``. The MAC covers the version and
the *encoded* claim, so verification never parses unauthenticated JSON and no canonical form
is needed. Order of checks: shape → signature → expiry, so "expired" is only ever said about a
token we issued ourselves.

The signing key is derived from the configured secret (a :class:`bot.config.SecretRef`,
resolved by the caller) with :func:`derive_key`, one sub-key per purpose, so the same secret
can also key the reply-code hashes without the two uses ever being interchangeable. Nothing
here logs, and no rejection carries the token or the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

VERSION = "1"
MIN_SECRET_BYTES = 16
MAX_TOKEN_CHARS = 1024
# Fields are ids we produce ourselves; bound them so a forged claim cannot be large.
_MAX_FIELD = 255
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def derive_key(secret: SecretStr | bytes | str, purpose: str) -> bytes:
    """A 32-byte key for one ``purpose``, derived from the configured secret.

    Why derive: one operator secret can key several mechanisms (links, reply codes) while a
    value computed for one purpose is useless for the other. The secret must be at least
    :data:`MIN_SECRET_BYTES` long; the error names only the rule, never the value.
    """
    if isinstance(secret, SecretStr):
        raw = secret.get_secret_value().encode("utf-8")
    elif isinstance(secret, str):
        raw = secret.encode("utf-8")
    else:
        raw = bytes(secret)
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes long")
    return hmac.new(raw, b"larmkedja/" + purpose.encode("ascii"), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    if not text or not _B64URL.match(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class LinkClaim:
    """What a genuine, unexpired link says: acknowledge ``incident_id`` for ``party_id``, in
    answer to the outbox message ``outbox_key`` (whose reply code the link uses up)."""

    incident_id: str
    party_id: str
    outbox_key: str
    expires_at: datetime


class LinkProblem(StrEnum):
    MALFORMED = "malformed"  # not a token of ours at all
    TAMPERED = "tampered"  # right shape, wrong signature
    EXPIRED = "expired"  # genuine, but too old


@dataclass(frozen=True)
class LinkRejected:
    """Why a link was refused. Carries no part of the token."""

    reason: LinkProblem


class SignedLinks:
    """Signs and verifies link tokens with a key derived from the configured secret."""

    PURPOSE = "ack-link/v1"

    def __init__(self, secret: SecretStr | bytes | str) -> None:
        self._key = derive_key(secret, self.PURPOSE)

    def __repr__(self) -> str:  # never show the key, even in a debugger or a traceback
        return "SignedLinks(<key hidden>)"

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, f"{VERSION}.{body}".encode("ascii"), hashlib.sha256).digest()

    def sign(
        self, *, incident_id: str, party_id: str, outbox_key: str, expires_at: datetime
    ) -> str:
        """The token for one link. ``expires_at`` must be timezone-aware (whole seconds)."""
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware; use the injected clock")
        for name, value in (
            ("incident_id", incident_id),
            ("party_id", party_id),
            ("outbox_key", outbox_key),
        ):
            if not value or len(value) > _MAX_FIELD:
                raise ValueError(f"{name} must be 1..{_MAX_FIELD} characters")
        claim = {
            "i": incident_id,
            "p": party_id,
            "k": outbox_key,
            "e": int(expires_at.timestamp()),
        }
        body = _b64encode(json.dumps(claim, separators=(",", ":")).encode("utf-8"))
        token = f"{VERSION}.{body}.{_b64encode(self._mac(body))}"
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError("the link claim is too long for a token")
        return token

    def url(self, base_url: str, **claim: Any) -> str:
        """``https://larm.example/ack/<token>`` for ``base_url`` ``https://larm.example``."""
        return f"{base_url.rstrip('/')}/ack/{self.sign(**claim)}"

    def verify(self, token: object, *, now: datetime) -> LinkClaim | LinkRejected:
        """The claim of a genuine unexpired token, else why not. Never raises."""
        try:
            return self._verify(token, now)
        except Exception:  # a verifier that can crash is a verifier that can be attacked
            return LinkRejected(LinkProblem.MALFORMED)

    def _verify(self, token: object, now: datetime) -> LinkClaim | LinkRejected:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return LinkRejected(LinkProblem.MALFORMED)
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != VERSION:
            return LinkRejected(LinkProblem.MALFORMED)
        _, body, mac_text = parts
        given = _b64decode(mac_text)
        if given is None or _b64decode(body) is None:
            return LinkRejected(LinkProblem.MALFORMED)
        if not hmac.compare_digest(given, self._mac(body)):
            return LinkRejected(LinkProblem.TAMPERED)
        claim = self._claim(_b64decode(body) or b"")
        if claim is None:  # signed by us but unreadable: a bug or a key reused elsewhere
            return LinkRejected(LinkProblem.MALFORMED)
        if now >= claim.expires_at:
            return LinkRejected(LinkProblem.EXPIRED)
        return claim

    @staticmethod
    def _claim(raw: bytes) -> LinkClaim | None:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            return None
        fields = [data.get(k) for k in ("i", "p", "k")]
        expiry = data.get("e")
        if not all(isinstance(f, str) and 0 < len(f) <= _MAX_FIELD for f in fields):
            return None
        if not isinstance(expiry, int) or isinstance(expiry, bool) or not 0 < expiry < 2**40:
            return None
        incident_id, party_id, outbox_key = fields
        return LinkClaim(
            incident_id=incident_id,  # type: ignore[arg-type]
            party_id=party_id,  # type: ignore[arg-type]
            outbox_key=outbox_key,  # type: ignore[arg-type]
            expires_at=datetime.fromtimestamp(expiry, UTC),
        )
