"""Reply codes against a real migrated SQLite database, with a fake clock."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

import bridges.reply_codes as reply_codes_module
from bot.clock import FakeClock
from bridges.reply_codes import (
    Redeemed,
    Rejected,
    RejectReason,
    ReplyCodePolicy,
    ReplyCodes,
    normalize_code,
    normalize_destination,
)
from storage import audit
from storage.database import Database
from storage.reply_codes import ReplyCodeRow

SECRET = SecretStr("test-secret-of-sufficient-length")
NUMBER = "+46701234567"
OTHER = "+46709999999"
MAIL = "tib@regionuppsala.example"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'codes.db'}")
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def codes() -> ReplyCodes:
    return ReplyCodes(SECRET)


async def issue(
    db: Database,
    codes: ReplyCodes,
    clock: FakeClock,
    *,
    key: str = "out-1",
    channel: str = "sms",
    destination: str = NUMBER,
    incident: str = "H-7",
    party: str = "uppsala",
) -> str:
    async with db.write() as session:
        return await codes.issue(
            session,
            channel=channel,
            destination=destination,
            incident_id=incident,
            party_id=party,
            outbox_key=key,
            now=clock.now(),
        )


async def redeem(
    db: Database,
    codes: ReplyCodes,
    clock: FakeClock,
    code: str,
    *,
    sender: str = NUMBER,
    channel: str = "sms",
) -> Redeemed | Rejected:
    async with db.write() as session:
        result = await codes.redeem(
            session, channel=channel, sender=sender, code=code, now=clock.now()
        )
        assert result.audit is not None  # the caller writes it, as the engine does
        await audit.append_note(session, clock.now(), result.audit)
        return result


def other_code(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


async def test_issue_gives_digits_per_channel_and_is_idempotent(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    sms = await issue(db, codes, clock)
    assert len(sms) == 4
    assert sms.isdigit()
    assert await issue(db, codes, clock) == sms  # a retried send gets the same code
    mail = await issue(db, codes, clock, key="out-2", channel="email", destination=MAIL)
    assert len(mail) == 6


async def test_codes_are_never_stored_in_plaintext(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    code = await issue(db, codes, clock)
    async with db.read() as session:
        dump = (await session.execute(text("SELECT * FROM reply_codes"))).all()
    row_text = " ".join(str(v) for v in dump[0])
    assert len(dump) == 1
    assert dump[0].code_hash == codes.hash_code(code)
    assert dump[0].code_hash != ReplyCodes(SecretStr("another-secret-of-enough-length")).hash_code(
        code
    )
    # The code must not appear as a value of its own (salt and hash are hex and may contain
    # the digits by chance, so compare whole values).
    assert code not in [str(v) for v in dump[0]]
    assert f" {code} " not in f" {row_text} "


async def test_codes_of_one_number_are_distinct(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    issued = [await issue(db, codes, clock, key=f"out-{i}") for i in range(60)]
    assert len(set(issued)) == 60


async def test_issue_refuses_misuse(db: Database, codes: ReplyCodes, clock: FakeClock) -> None:
    await issue(db, codes, clock)
    with pytest.raises(ValueError, match="another recipient"):
        await issue(db, codes, clock, destination=OTHER)
    with pytest.raises(ValueError, match="destination"):
        await issue(db, codes, clock, key="out-x", destination="not a number")
    with pytest.raises(ValueError, match="channel"):
        await issue(db, codes, clock, key="out-y", channel="pigeon")


async def test_redeem_once_then_reused(db: Database, codes: ReplyCodes, clock: FakeClock) -> None:
    code = await issue(db, codes, clock)
    first = await redeem(db, codes, clock, code)
    assert first == Redeemed(
        incident_id="H-7",
        party_id="uppsala",
        outbox_key="out-1",
        code_id=first.code_id,
        channel="sms",
        destination="46701234567",
        via="sms",
    )
    again = await redeem(db, codes, clock, code)
    assert again == Rejected(RejectReason.REUSED, "H-7")
    async with db.read() as session:
        row = (await session.execute(select(ReplyCodeRow))).scalar_one()
        actions = [e.action for e in await audit.entries(session)]
        details = [e.detail for e in await audit.entries(session)]
        assert await audit.verify_chain(session) is None
    assert row.used_at == clock.now()
    assert row.used_via == "sms"
    assert actions == ["reply_code.redeemed", "reply_code.rejected"]
    assert code not in repr(details)


async def test_sender_spellings_of_one_number(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    code = await issue(db, codes, clock)
    assert isinstance(await redeem(db, codes, clock, code, sender="0046 70-123 45 67"), Redeemed)
    code2 = await issue(db, codes, clock, key="out-2")
    assert isinstance(await redeem(db, codes, clock, code2, sender="46701234567"), Redeemed)
    mail = await issue(db, codes, clock, key="out-3", channel="email", destination=MAIL)
    result = await redeem(
        db, codes, clock, mail, channel="email", sender="TiB Uppsala <TIB@RegionUppsala.example>"
    )
    assert isinstance(result, Redeemed)


async def test_expiry(db: Database, codes: ReplyCodes, clock: FakeClock) -> None:
    code = await issue(db, codes, clock)
    clock.advance(codes.policy.ttl - timedelta(seconds=1))
    late_key_code = await issue(db, codes, clock, key="out-2")
    clock.advance(timedelta(seconds=1))  # exactly at expiry: no longer valid
    assert await redeem(db, codes, clock, code) == Rejected(RejectReason.EXPIRED, "H-7")
    assert isinstance(await redeem(db, codes, clock, late_key_code), Redeemed)
    clock.advance(codes.policy.grace + codes.policy.ttl)  # forgotten: just a wrong code now
    assert (await redeem(db, codes, clock, code)).reason is RejectReason.WRONG


async def test_expired_unused_code_is_replaced_on_reissue(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    old = await issue(db, codes, clock)
    clock.advance(codes.policy.ttl + timedelta(minutes=1))
    new = await issue(db, codes, clock)  # the outbox retried after the gateway was down
    assert new != old
    assert isinstance(await redeem(db, codes, clock, new), Redeemed)


async def test_foreign_number_and_channel(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    code = await issue(db, codes, clock)
    foreign = await redeem(db, codes, clock, code, sender=OTHER)
    assert foreign == Rejected(RejectReason.FOREIGN)
    assert foreign.public_reason is RejectReason.WRONG  # the sender must not learn it is live
    assert foreign.counts_as_guess
    mail_foreign = await redeem(db, codes, clock, code, channel="email", sender=MAIL)
    assert mail_foreign.reason is RejectReason.FOREIGN
    # Still the owner's to use.
    assert isinstance(await redeem(db, codes, clock, code), Redeemed)
    # Once used it is no longer "live": from elsewhere it is just wrong.
    assert (await redeem(db, codes, clock, code, sender=OTHER)).reason is RejectReason.WRONG


@pytest.mark.parametrize(
    ("code", "sender"),
    [
        ("12", NUMBER),
        ("abcd", NUMBER),
        ("", NUMBER),
        ("123456789", NUMBER),
        ("48 21", NUMBER),
        ("4821", ""),
        ("4821", "'; DROP TABLE reply_codes; --"),
        ("4821", "x" * 400),
        ("٤٨٢١", NUMBER),
    ],
)
async def test_malformed(
    db: Database, codes: ReplyCodes, clock: FakeClock, code: str, sender: str
) -> None:
    await issue(db, codes, clock)
    assert (await redeem(db, codes, clock, code, sender=sender)).reason is RejectReason.MALFORMED


async def test_unknown_channel_is_malformed(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    code = await issue(db, codes, clock)
    assert (await redeem(db, codes, clock, code, channel="fax")).reason is RejectReason.MALFORMED


async def test_throttle_after_wrong_guesses(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    code = await issue(db, codes, clock)
    wrong = other_code(code)
    for _ in range(codes.policy.max_wrong):
        assert (await redeem(db, codes, clock, wrong)).reason is RejectReason.WRONG
        clock.advance(1)
    # Throttled: even the right code is refused, without being looked at.
    assert (await redeem(db, codes, clock, code)).reason is RejectReason.THROTTLED
    # Another number is not affected by this one's guesses.
    other = await issue(db, codes, clock, key="out-2", destination=OTHER)
    assert isinstance(await redeem(db, codes, clock, other, sender=OTHER), Redeemed)
    clock.advance(codes.policy.throttle_window)
    assert isinstance(await redeem(db, codes, clock, code), Redeemed)


async def test_trying_on_while_throttled_does_not_lengthen_the_lockout(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    """The real duty officer who mistyped five times and keeps trying is let in again when
    the window after the guesses has passed, however often it tried meanwhile; each refusal
    says until when and how many came before it (for answering only the first few)."""
    code = await issue(db, codes, clock)
    wrong = other_code(code)
    first_guess = clock.now()
    for _ in range(codes.policy.max_wrong):
        assert (await redeem(db, codes, clock, wrong)).reason is RejectReason.WRONG
        clock.advance(60)
    refusals = []
    for _ in range(20):
        result = await redeem(db, codes, clock, code)
        assert isinstance(result, Rejected)
        assert result.reason is RejectReason.THROTTLED
        refusals.append(result)
        clock.advance(60)
    assert [r.repeats for r in refusals] == list(range(20))
    assert {r.until for r in refusals} == {first_guess + codes.policy.throttle_window}
    clock.set(first_guess + codes.policy.throttle_window + timedelta(seconds=1))
    assert isinstance(await redeem(db, codes, clock, code), Redeemed)


async def test_expired_and_reused_do_not_count_towards_throttle(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    policy = ReplyCodePolicy(max_wrong=2)
    codes = ReplyCodes(SECRET, policy)
    used = await issue(db, codes, clock)
    await redeem(db, codes, clock, used)
    for _ in range(5):
        assert (await redeem(db, codes, clock, used)).reason is RejectReason.REUSED
    fresh = await issue(db, codes, clock, key="out-2")
    assert isinstance(await redeem(db, codes, clock, fresh), Redeemed)


async def test_constant_time_compare_is_used(
    db: Database, codes: ReplyCodes, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = [await issue(db, codes, clock, key=f"out-{i}") for i in range(3)]
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: str | bytes, b: str | bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(reply_codes_module.hmac, "compare_digest", spy)
    assert isinstance(await redeem(db, codes, clock, issued[0]), Redeemed)
    # Every candidate of the number is compared, not just until the first match.
    assert len(calls) >= len(issued)


async def test_link_uses_up_the_same_code(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    code = await issue(db, codes, clock)
    async with db.write() as session:
        by_link = await codes.redeem_link(
            session, outbox_key="out-1", incident_id="H-7", party_id="uppsala", now=clock.now()
        )
    assert isinstance(by_link, Redeemed)
    assert by_link.via == "link"
    assert await redeem(db, codes, clock, code) == Rejected(RejectReason.REUSED, "H-7")
    async with db.write() as session:
        twice = await codes.redeem_link(
            session, outbox_key="out-1", incident_id="H-7", party_id="uppsala", now=clock.now()
        )
        other_party = await codes.redeem_link(
            session, outbox_key="out-1", incident_id="H-7", party_id="dalarna", now=clock.now()
        )
        missing = await codes.redeem_link(
            session, outbox_key="nope", incident_id="H-7", party_id="uppsala", now=clock.now()
        )
    assert twice.reason is RejectReason.REUSED  # type: ignore[union-attr]
    assert other_party.reason is RejectReason.FOREIGN  # type: ignore[union-attr]
    assert missing.reason is RejectReason.WRONG  # type: ignore[union-attr]


async def test_racing_replies_acknowledge_once(
    db: Database, codes: ReplyCodes, clock: FakeClock
) -> None:
    code = await issue(db, codes, clock)
    results = await asyncio.gather(*(redeem(db, codes, clock, code) for _ in range(8)))
    assert sum(isinstance(r, Redeemed) for r in results) == 1
    assert all(r.reason is RejectReason.REUSED for r in results if isinstance(r, Rejected))


def test_normalisers() -> None:
    assert normalize_code("４８２１") == "4821"
    assert normalize_code(" 4821 ") == "4821"
    assert normalize_code("482") is None
    assert normalize_code(4821) is None
    assert normalize_destination("sms", "+46 70-123 45 67") == "46701234567"
    assert normalize_destination("sms", "0046701234567") == "46701234567"
    assert normalize_destination("sms", "070 123 45 67") == "0701234567"  # national: distinct
    assert normalize_destination("sms", "Telia") == "telia"
    assert normalize_destination("sms", "+46<script>") is None
    assert normalize_destination("email", "A <TiB@X.example>") == "tib@x.example"
    assert normalize_destination("email", "no-at-sign") is None


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="digits"):
        ReplyCodePolicy(digits={"sms": 3})
    with pytest.raises(ValueError, match="max_wrong"):
        ReplyCodePolicy(max_wrong=0)
    with pytest.raises(ValueError, match="at least 16"):
        ReplyCodes(SecretStr("short"))
    assert "test-secret" not in repr(ReplyCodes(SECRET))
