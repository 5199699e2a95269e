"""Fuzz: forged SMS and e-mail replies through the parser and redeem, against real SQLite.

Every reply generated here is forged: a wrong code, someone else's code, a used or expired
code, junk, oversized or oddly encoded text, SQL-ish strings. None may acknowledge, none may
raise, and every rejection is counted by its reason (printed; run with ``-s`` to see them).
The generator never sends a sender its own live code: that would be a genuine reply.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from bot.clock import FakeClock
from bridges.reply_codes import (
    Redeemed,
    Rejected,
    RejectReason,
    ReplyCodes,
    normalize_code,
    normalize_destination,
)
from bridges.reply_parser import ParsedReply, ParseProblem, parse_reply
from storage import audit
from storage.database import Database
from storage.reply_codes import ReplyCodeRow

FORGERIES = 400
SEED = int(os.environ.get("LARMKEDJA_FUZZ_SEED", "20261126"))

NUMBERS = [f"+4670{n:07d}" for n in (1234567, 2345678, 3456789, 4567890, 5678901)]
ADDRESSES = ["tib@uppsala.example", "tib@dalarna.example", "blod@uppsala.example"]
STRANGERS = ["+46709999999", "+4915112345678", "0701234567", "Telia", "evil@attacker.example"]
SQLISH = [
    "'; DROP TABLE reply_codes; --",
    "4821' OR '1'='1",
    "1; UPDATE reply_codes SET used_at=NULL",
    '" OR ""="',
    "%' --",
    "UNION SELECT code_hash FROM reply_codes",
    "4821); DELETE FROM x",
]
ODD = [
    "\u202eARETTIVK 4821",
    "k\u0301vittera 4821",
    "ＫＶＩＴＴＥＲＡ ４８２１",
    "ⓚⓥⓘⓣⓣⓔⓡⓐ 4821",
    "KVITTERA\x00 4821",
    "\ufeffKVITTERA 4821",
    "KVITTERA 4\u200b821",
    "KVITTERA ٤٨٢١ ٥",
    "KVITTERA 𝟒𝟖𝟐𝟏",
    "😀😀😀 4821 😀",
    "KVITTERA 4821\r\n5\r\n",
    "\x1b[31mKVITTERA\x1b[0m 4821",
]


class Forger:
    """Builds forged replies from what was issued, never a sender's own live code."""

    def __init__(
        self,
        rng: random.Random,
        issued: dict[tuple[str, str], list[str]],
        used: dict[tuple[str, str], list[str]],
        expired: dict[tuple[str, str], list[str]],
    ) -> None:
        self.rng = rng
        self.issued = issued  # live, unused codes per (channel, normalised destination)
        self.used = used
        self.expired = expired

    def live_for(self, channel: str, sender: object) -> set[str]:
        norm = normalize_destination(channel, sender)
        return set(self.issued.get((channel, norm or ""), []))

    def is_genuine(self, channel: str, sender: object, payload: object) -> bool:
        parsed = parse_reply(payload, channel=channel)
        code = parsed.code if isinstance(parsed, ParsedReply) else payload
        return normalize_code(code) in self.live_for(channel, sender)

    def keyword(self) -> str:
        return self.rng.choice(
            [
                "KVITTERA",
                "kvittera",
                "Kvitterar",
                "ack",
                "ok",
                "KVITTER",
                "!kvittera",
                "Vi kvitterar, kod",
                "",
            ]
        )

    def pledge(self) -> str:
        return self.rng.choice(["", "5", "0", "3 bilar", "fem", "-2", "2,5", "99999", "+4"])

    def text(self, code: str) -> str:
        return " ".join(x for x in (self.keyword(), code, self.pledge()) if x)

    def pick(self, pool: dict[tuple[str, str], list[str]]) -> tuple[str, str, str]:
        (channel, dest), codes = self.rng.choice([(k, v) for k, v in pool.items() if v])
        return channel, dest, self.rng.choice(codes)

    def sender_spelling(self, channel: str, dest: str) -> str:
        if channel == "sms":
            return self.rng.choice([f"+{dest}", f"00{dest}", dest])
        return self.rng.choice([dest, dest.upper(), f"Someone <{dest}>"])

    # -- kinds of forgery -------------------------------------------------------------------

    def wrong_code(self) -> tuple[str, object, object]:
        channel, dest, code = self.pick(self.issued)
        sender = self.sender_spelling(channel, dest)
        live = self.live_for(channel, sender)
        guess = code
        while guess in live:
            guess = "".join(self.rng.choice("0123456789") for _ in code)
        return channel, sender, self.text(guess)

    def hammer_one_number(self) -> tuple[str, object, object]:
        """Someone who can forge one TiB's number guesses again and again: throttled."""
        victim = NUMBERS[-1]
        live = self.live_for("sms", victim)
        guess = "".join(self.rng.choice("0123456789") for _ in range(4))
        while guess in live:
            guess = "".join(self.rng.choice("0123456789") for _ in range(4))
        return "sms", victim, f"KVITTERA {guess}"

    def reused_code(self) -> tuple[str, object, object]:
        channel, dest, code = self.pick(self.used)
        return channel, self.sender_spelling(channel, dest), self.text(code)

    def expired_code(self) -> tuple[str, object, object]:
        channel, dest, code = self.pick(self.expired)
        return channel, self.sender_spelling(channel, dest), self.text(code)

    def foreign_code(self) -> tuple[str, object, object]:
        channel, dest, code = self.pick(self.issued)
        for _ in range(20):
            other_channel = self.rng.choice(["sms", "sms", "email"])
            sender = self.rng.choice(
                NUMBERS + STRANGERS if other_channel == "sms" else ADDRESSES + STRANGERS
            )
            if code not in self.live_for(other_channel, sender):
                return other_channel, sender, self.text(code)
        return "sms", "+46709999999", self.text(code)

    def junk(self) -> tuple[str, object, object]:
        rng = self.rng
        channel = rng.choice(["sms", "email"])
        sender: object = rng.choice(NUMBERS + ADDRESSES + STRANGERS + SQLISH + ["", "x" * 600])
        kind = rng.randrange(9)
        text: object
        if kind == 0:
            text = "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(80)))
        elif kind == 1:
            text = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif kind == 2:
            text = rng.choice(SQLISH) + " " + rng.choice(SQLISH)
        elif kind == 3:
            text = self.keyword() + " " + rng.choice(SQLISH)
        elif kind == 4:
            text = rng.choice(ODD)
        elif kind == 5:
            text = "KVITTERA " + "9" * rng.randrange(2_000, 120_000)  # oversized
        elif kind == 6:
            text = ("Kvittera " + "1234 ") * rng.randrange(1, 50)
        elif kind == 7:
            text = rng.choice([None, 4821, 48.21, ["KVITTERA", "4821"], {"code": "4821"}])
        else:
            text = rng.choice(["", " ", "\n\n", "> KVITTERA 4821", "-- \nKVITTERA 4821"])
        return channel, sender, text

    def raw_code(self) -> tuple[str, object, object]:
        """Bypasses the parser: what redeem itself gets if a caller skips parsing."""
        channel, dest, code = self.pick(self.issued)
        bogus = self.rng.choice(
            SQLISH + ["", "12", "٤٨٢١", code + "0" * 9, f" {code}\x00", code[::-1] + "x", "0" * 50]
        )
        return channel, self.sender_spelling(channel, dest), bogus


async def test_forged_replies_never_acknowledge(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}")
    await db.migrate()
    clock = FakeClock()
    codes = ReplyCodes(SecretStr("fuzz-secret-of-sufficient-length"))
    issued: dict[tuple[str, str], list[str]] = {}
    used: dict[tuple[str, str], list[str]] = {}
    expired: dict[tuple[str, str], list[str]] = {}
    key = 0

    async def issue_all(into: dict[tuple[str, str], list[str]]) -> None:
        nonlocal key
        async with db.write() as session:
            for channel, destinations in (("sms", NUMBERS), ("email", ADDRESSES)):
                for i, dest in enumerate(destinations):
                    for incident in ("H-7", "H-8"):
                        key += 1
                        code = await codes.issue(
                            session,
                            channel=channel,
                            destination=dest,
                            incident_id=incident,
                            party_id=f"party-{i}",
                            outbox_key=f"out-{key}",
                            now=clock.now(),
                        )
                        norm = normalize_destination(channel, dest)
                        assert norm is not None
                        into.setdefault((channel, norm), []).append(code)

    await issue_all(expired)
    clock.advance(codes.policy.ttl + timedelta(minutes=5))
    await issue_all(issued)
    # Genuine replies first, so that some codes are used: these are the only acknowledgements.
    genuine = 0
    for (channel, dest), live in issued.items():
        code = live.pop(0)
        sender = f"+{dest}" if channel == "sms" else dest
        async with db.write() as session:
            result = await codes.redeem(
                session, channel=channel, sender=sender, code=code, now=clock.now()
            )
            assert result.audit is not None
            await audit.append_note(session, clock.now(), result.audit)
        assert isinstance(result, Redeemed)
        used.setdefault((channel, dest), []).append(code)
        genuine += 1

    forger = Forger(rng, issued, used, expired)
    kinds: list[Callable[[], tuple[str, object, object]]] = [
        forger.wrong_code,
        forger.reused_code,
        forger.expired_code,
        forger.foreign_code,
        forger.junk,
        forger.junk,
        forger.raw_code,
        forger.hammer_one_number,
    ]
    counts: Counter[str] = Counter()
    false_acks: list[tuple[str, object]] = []
    exceptions: list[str] = []
    for _ in range(FORGERIES):
        make = rng.choice(kinds)
        channel, sender, payload = make()
        while forger.is_genuine(channel, sender, payload):  # junk may hit a real code by luck
            channel, sender, payload = make()
        clock.advance(rng.choice([0, 1, 5, 10]))  # all within the codes' lifetime
        try:
            if make == forger.raw_code:
                code: object = payload
            else:
                parsed = parse_reply(payload, channel=channel)
                if isinstance(parsed, ParseProblem):
                    counts[f"parse:{parsed.kind}"] += 1
                    continue
                assert isinstance(parsed, ParsedReply)
                code = parsed.code
            async with db.write() as session:
                result = await codes.redeem(
                    session,
                    channel=channel,
                    sender=sender,
                    code=code,  # type: ignore[arg-type]
                    now=clock.now(),
                )
                assert result.audit is not None
                await audit.append_note(session, clock.now(), result.audit)
        except Exception as exc:  # the point of the test: there must be none
            exceptions.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        if isinstance(result, Redeemed):
            false_acks.append((channel, sender))
        else:
            assert isinstance(result, Rejected)
            counts[f"redeem:{result.reason.value}"] += 1

    async with db.read() as session:
        used_rows = (
            (await session.execute(select(ReplyCodeRow).where(ReplyCodeRow.used_at.is_not(None))))
            .scalars()
            .all()
        )
        redeemed_entries = await audit.entries(session, "reply_code.redeemed")
        assert await audit.verify_chain(session) is None
    await db.close()

    print(f"\nfuzz seed {SEED}: {FORGERIES} forged replies, {genuine} genuine first")
    for reason, count in sorted(counts.items()):
        print(f"  {reason:28} {count}")
    assert exceptions == []
    assert false_acks == []
    assert len(used_rows) == genuine  # nothing forged used up a code
    assert len(redeemed_entries) == genuine
    assert sum(counts.values()) == FORGERIES
    for reason in RejectReason:
        assert counts[f"redeem:{reason.value}"] > 0, f"no forged reply was {reason.value}"
    assert sum(v for k, v in counts.items() if k.startswith("parse:")) > 0
