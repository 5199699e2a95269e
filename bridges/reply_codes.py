"""Reply codes: the short number in an SMS or e-mail alarm that lets a reply acknowledge it.

An alarm sent by SMS ends with ``Svara KVITTERA 4821 <antal>``. The code is the capability that
turns an SMS or e-mail reply into an acknowledgement, so it is built to make a *false*
acknowledgement practically impossible while staying typeable at 3 a.m.:

- **One code per recipient and message** (outbox key), tied to (incident, party, outbox key).
- **Bound** to the channel and the number/address it was sent to. The right code from anywhere
  else is refused as ``foreign``: a forwarded SMS or a guess from another phone never counts.
- **Single use**: redeeming marks it used with one conditional UPDATE (see
  :func:`storage.reply_codes.mark_used`); a reply and a link click racing cannot both win.
- **Expiring** after a configurable TTL.
- **Throttled**: after ``max_wrong`` wrong guesses (wrong code or someone else's code) within
  ``throttle_window``, a sender is refused without even looking at what it sent.
- **Compared in constant time** (:func:`hmac.compare_digest`) against the sender's codes.
- **Stored hashed** with an HMAC keyed by a secret that is not in the database, and *derived*
  (not stored) from that secret, the outbox key and a random salt, so neither a database copy
  nor the outbox (which should hold a ``{code}`` placeholder, see :meth:`ReplyCodes.issue`)
  reveals a live code.

**Why 4 digits for SMS (and 6 for e-mail).** A guess only counts if it arrives *from the exact
number the code was sent to*; from any other number even the right code is refused. Forging the
sender of an incoming (MO) SMS needs access to the operator's SMSC or the SIM; whoever holds
the SIM reads the alarm anyway, so more digits would not help against them. Against the rare
attacker who can forge that sender, the throttle allows at most ``max_wrong`` guesses per
``throttle_window``, so over a code's life at most ``max_wrong`` × (TTL / window) guesses
land. With the bot's defaults (5 per hour, ``bridges.reply_code_ttl_min`` = 240, so 4 h and 20
guesses; at most ~5 live codes per number during one incident) the chance of one success is
below 20 × 5 / 10 000 = 1 %, every miss is audited, and the number is throttled after each five.
(:class:`ReplyCodePolicy` itself defaults to 2 h: 10 guesses, 0.5 %.) Four digits keep the SMS
inside the Rakel/GSM-7 budget and match the design's ``KVITTERA 4821``. E-mail senders are
trivially forged, and nobody types an e-mail code on a T9 keypad, so e-mail gets 6 digits (20
guesses in 4 h: 0.01 %). Both are
configurable per channel (4..8 digits); a code is always longer than any pledge (≤ 999), which
keeps ``4821 5`` unambiguous in :mod:`bridges.reply_parser`.

Distinct rejection reasons are for the audit log and metrics. What the *sender* is told must not
distinguish ``foreign`` from ``wrong`` (that would confirm a guessed code is live), so callers
answer with :attr:`Rejected.public_reason`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from bridges.destinations import normalize_destination
from bridges.signed_links import derive_key
from storage import reply_codes as store
from storage.audit import AuditNote

CHANNELS = ("sms", "email")
MIN_DIGITS = 4
MAX_DIGITS = 8
_CODE = re.compile(rf"^[0-9]{{{MIN_DIGITS},{MAX_DIGITS}}}$")
_ISSUE_ATTEMPTS = 64


def _default_digits() -> Mapping[str, int]:
    return MappingProxyType({"sms": 4, "email": 6})


@dataclass(frozen=True)
class ReplyCodePolicy:
    """How long codes live, how long they are, and when a sender is throttled."""

    ttl: timedelta = timedelta(hours=2)
    digits: Mapping[str, int] = field(default_factory=_default_digits)
    max_wrong: int = 5
    throttle_window: timedelta = timedelta(hours=1)
    # How long after expiry a code is still recognised (answered "expired"/"reused" rather
    # than "wrong"), and therefore never issued again to the same number or address.
    grace: timedelta = timedelta(hours=12)

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0) or self.throttle_window <= timedelta(0):
            raise ValueError("ttl and throttle_window must be positive")
        if self.grace < timedelta(0):
            raise ValueError("grace cannot be negative")
        if self.max_wrong < 1:
            raise ValueError("max_wrong must be at least 1")
        for channel, digits in self.digits.items():
            if not MIN_DIGITS <= digits <= MAX_DIGITS:
                raise ValueError(
                    f"digits[{channel}] must be {MIN_DIGITS}..{MAX_DIGITS} (longer than any "
                    "pledge, short enough to type)"
                )

    def digits_for(self, channel: str) -> int:
        return self.digits.get(channel, 6)


class RejectReason(StrEnum):
    WRONG = "wrong"  # no such code for this sender
    REUSED = "reused"  # this sender's code, already used
    EXPIRED = "expired"  # this sender's code, too old
    FOREIGN = "foreign"  # a live code, but sent to another number/address or channel
    MALFORMED = "malformed"  # not a code, or not a sender we could ever have written to
    THROTTLED = "throttled"  # too many wrong guesses from this sender lately


# Reasons that are guesses, counted towards the throttle. Expired and reused codes are codes the
# sender really received; malformed input guesses nothing.
_COUNTED = frozenset({RejectReason.WRONG, RejectReason.FOREIGN})
_COUNTED_VALUES = tuple(sorted(r.value for r in _COUNTED))


@dataclass(frozen=True)
class Redeemed:
    """A code accepted and used up: acknowledge ``party_id`` for ``incident_id``."""

    incident_id: str
    party_id: str
    outbox_key: str
    code_id: int
    channel: str
    destination: str
    via: str  # sms, email, link
    #: The audit entry of the redemption, for the caller to write (never the code).
    audit: AuditNote | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Rejected:
    """A code refused. ``incident_id`` is set only for the sender's own code (reused,
    expired), so the answer can name the incident without revealing anyone else's."""

    reason: RejectReason
    incident_id: str | None = None
    audit: AuditNote | None = field(default=None, compare=False, repr=False)
    #: For ``throttled``: until when, and how many replies were refused so already in this
    #: window (the answer is sent for the first few only: a phone that keeps trying is not
    #: answered 79 times).
    until: datetime | None = field(default=None, compare=False)
    repeats: int = field(default=0, compare=False)

    @property
    def public_reason(self) -> RejectReason:
        """What the sender may be told: ``foreign`` is said as ``wrong``."""
        return RejectReason.WRONG if self.reason is RejectReason.FOREIGN else self.reason

    @property
    def counts_as_guess(self) -> bool:
        return self.reason in _COUNTED


def normalize_code(code: object) -> str | None:
    """``"４８２１"`` → ``"4821"``; None unless it is 4..8 ASCII digits after NFKC."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    text = unicodedata.normalize("NFKC", code).strip()
    return text if _CODE.match(text) else None


class ReplyCodes:
    """Issues and redeems reply codes. Holds the derived keys; one instance per bot.

    ``secret`` is the resolved config secret (:class:`bot.config.SecretRef`); two keys are
    derived from it, one to derive codes and one to hash them.
    """

    def __init__(
        self, secret: SecretStr | bytes | str, policy: ReplyCodePolicy | None = None
    ) -> None:
        self.policy = policy or ReplyCodePolicy()
        self._code_key = derive_key(secret, "reply-code/derive/v1")
        self._hash_key = derive_key(secret, "reply-code/hash/v1")

    def __repr__(self) -> str:
        return f"ReplyCodes(<keys hidden>, {self.policy!r})"

    # -- codes and hashes -----------------------------------------------------------------------

    def _derive(self, outbox_key: str, salt: str, digits: int) -> str:
        mac = hmac.new(self._code_key, f"{outbox_key}\x00{salt}".encode(), hashlib.sha256).digest()
        # 256 bits mod 10**8 at most: the bias is far below anything measurable.
        return str(int.from_bytes(mac, "big") % 10**digits).zfill(digits)

    def hash_code(self, code: str) -> str:
        """The stored form of a code: hex HMAC-SHA256 under the hash key."""
        return hmac.new(self._hash_key, code.encode("ascii"), hashlib.sha256).hexdigest()

    # -- issuing --------------------------------------------------------------------------------

    async def issue(
        self,
        session: AsyncSession,
        *,
        channel: str,
        destination: str,
        incident_id: str,
        party_id: str,
        outbox_key: str,
        now: datetime,
    ) -> str:
        """The code for the outbox message ``outbox_key`` to ``destination`` on ``channel``.

        Idempotent per outbox key: a retried send (or a render after a crash) gets the same
        code, so the outbox row should hold a placeholder and the sender call this again to fill
        it in, instead of storing the code. A code that expired unused is replaced by a fresh
        one (the old one cannot work any more anyway). A code is never equal to another code of
        the same number/address that is still recognised, so a late duplicate of an old reply
        cannot acknowledge a newer alarm. Raises ValueError for a destination that is not a
        number/address of the channel, or an outbox key already used for another recipient.
        """
        if channel not in CHANNELS:
            raise ValueError(f"unknown reply-code channel {channel!r}")
        dest = normalize_destination(channel, destination)
        if dest is None:
            raise ValueError(f"not a {channel} destination a reply could come from")
        digits = self.policy.digits_for(channel)
        row = await store.by_outbox_key(session, outbox_key)
        if row is not None:
            if (row.channel, row.destination, row.incident_id, row.party_id) != (
                channel,
                dest,
                incident_id,
                party_id,
            ):
                raise ValueError("this outbox key already has a reply code for another recipient")
            code = self._derive(outbox_key, row.salt, digits)
            still_valid = row.used_at is not None or row.expires_at > now
            if still_valid and hmac.compare_digest(row.code_hash, self.hash_code(code)):
                return code
            # Expired unused, or the key or length changed since: issue afresh in this row.
        recent = await store.recent_for(
            session, channel=channel, destination=dest, expiring_after=now - self.policy.grace
        )
        taken = {r.code_hash for r in recent if row is None or r.id != row.id}
        for _ in range(_ISSUE_ATTEMPTS):
            salt = secrets.token_hex(16)
            code = self._derive(outbox_key, salt, digits)
            code_hash = self.hash_code(code)
            if code_hash not in taken:
                break
        else:  # needs thousands of recognised codes for one number: something is wrong
            raise RuntimeError("no free reply code left for this destination")
        expires_at = now + self.policy.ttl
        if row is None:
            session.add(
                store.ReplyCodeRow(
                    outbox_key=outbox_key,
                    code_hash=code_hash,
                    salt=salt,
                    channel=channel,
                    destination=dest,
                    incident_id=incident_id,
                    party_id=party_id,
                    issued_at=now,
                    expires_at=expires_at,
                    used_at=None,
                    used_via=None,
                )
            )
        else:
            row.salt, row.code_hash = salt, code_hash
            row.issued_at, row.expires_at = now, expires_at
            row.used_at = row.used_via = None
        await session.flush()
        return code

    # -- redeeming ------------------------------------------------------------------------------

    async def redeem(
        self, session: AsyncSession, *, channel: str, sender: str, code: str, now: datetime
    ) -> Redeemed | Rejected:
        """Use up ``code`` if it was sent to ``sender`` on ``channel`` and is live.

        Call inside the write transaction that then records the acknowledgement, so that the
        code is used if and only if the acknowledgement is stored. Every result carries its
        audit entry (never the code) for the caller to append in the same transaction.
        Raises only what the database raises.
        """
        dest = normalize_destination(channel, sender) if channel in CHANNELS else None
        norm = normalize_code(code)
        actor = f"{channel if channel in CHANNELS else '?'}:{dest or '?'}"[:255]
        if dest is None or norm is None:
            return await self._reject(session, now, actor, Rejected(RejectReason.MALFORMED))
        window = self.policy.throttle_window
        guesses = await store.failures_since(
            session, channel=channel, sender=dest, since=now - window, reasons=_COUNTED_VALUES
        )
        if len(guesses) >= self.policy.max_wrong:
            # Refused unread until enough of the guesses are older than the window; refused
            # replies are recorded apart, so that trying on does not lengthen the lockout.
            until = guesses[len(guesses) - self.policy.max_wrong] + window
            repeats = await store.failures_since(
                session,
                channel=channel,
                sender=dest,
                since=now - window,
                reasons=(RejectReason.THROTTLED.value,),
            )
            await store.record_failure(
                session, channel=channel, sender=dest, at=now, reason=RejectReason.THROTTLED.value
            )
            throttled = Rejected(RejectReason.THROTTLED, until=until, repeats=len(repeats))
            return await self._reject(session, now, actor, throttled, {"repeats": len(repeats)})
        digest = self.hash_code(norm)
        candidates = await store.recent_for(
            session, channel=channel, destination=dest, expiring_after=now - self.policy.grace
        )
        match: store.ReplyCodeRow | None = None
        for row in candidates:  # look at every candidate: the time taken does not say which
            if hmac.compare_digest(row.code_hash, digest) and match is None:
                match = row
        if match is None:
            others = await store.live_with_hash(session, digest, now=now)
            reason = RejectReason.FOREIGN if others else RejectReason.WRONG
            await store.record_failure(
                session, channel=channel, sender=dest, at=now, reason=reason.value
            )
            detail = {"foreign_code_ids": [r.id for r in others]} if others else {}
            return await self._reject(session, now, actor, Rejected(reason), detail)
        own = {"code_id": match.id, "party_id": match.party_id}
        if match.used_at is not None:
            rejected = Rejected(RejectReason.REUSED, match.incident_id)
            return await self._reject(session, now, actor, rejected, own)
        if match.expires_at <= now:
            rejected = Rejected(RejectReason.EXPIRED, match.incident_id)
            return await self._reject(session, now, actor, rejected, own)
        if not await store.mark_used(session, match.id, at=now, via=channel):
            rejected = Rejected(RejectReason.REUSED, match.incident_id)
            return await self._reject(session, now, actor, rejected, own)
        return await self._redeemed(session, now, actor, match, via=channel)

    async def redeem_link(
        self,
        session: AsyncSession,
        *,
        outbox_key: str,
        incident_id: str,
        party_id: str,
        now: datetime,
    ) -> Redeemed | Rejected:
        """Use up the code of the message a verified signed link was sent in.

        The link's signature already proved who made it, so there is no throttle; the code
        row still decides single use and expiry, shared with replies to the same message.
        """
        actor = "link"
        row = await store.by_outbox_key(session, outbox_key)
        if row is None:
            return await self._reject(session, now, actor, Rejected(RejectReason.WRONG))
        own = {"code_id": row.id, "party_id": row.party_id}
        if (row.incident_id, row.party_id) != (incident_id, party_id):
            return await self._reject(session, now, actor, Rejected(RejectReason.FOREIGN), own)
        if row.used_at is not None:
            rejected = Rejected(RejectReason.REUSED, row.incident_id)
            return await self._reject(session, now, actor, rejected, own)
        if row.expires_at <= now:
            rejected = Rejected(RejectReason.EXPIRED, row.incident_id)
            return await self._reject(session, now, actor, rejected, own)
        if not await store.mark_used(session, row.id, at=now, via="link"):
            rejected = Rejected(RejectReason.REUSED, row.incident_id)
            return await self._reject(session, now, actor, rejected, own)
        return await self._redeemed(session, now, actor, row, via="link")

    async def _redeemed(
        self,
        session: AsyncSession,
        now: datetime,
        actor: str,
        row: store.ReplyCodeRow,
        *,
        via: str,
    ) -> Redeemed:
        return Redeemed(
            incident_id=row.incident_id,
            party_id=row.party_id,
            outbox_key=row.outbox_key,
            code_id=row.id,
            channel=row.channel,
            destination=row.destination,
            via=via,
            audit=AuditNote(
                actor,
                "reply_code.redeemed",
                row.incident_id,
                {"code_id": row.id, "party_id": row.party_id, "via": via},
            ),
        )

    @staticmethod
    async def _reject(
        session: AsyncSession,
        now: datetime,
        actor: str,
        rejected: Rejected,
        detail: dict[str, object] | None = None,
    ) -> Rejected:
        note = AuditNote(
            actor,
            "reply_code.rejected",
            rejected.incident_id,
            {"reason": rejected.reason.value, **(detail or {})},
        )
        return replace(rejected, audit=note)
