"""Verifying the audit log in a real database after someone edits it behind the bot's back:
every way of tampering is detected and named by its first broken entry, including those the
hash chain alone cannot show (re-hashed, truncated), which the anchors catch; anchors survive a
restart because they live in the room's history, not in the bot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chain_world import mellansverige
from sqlalchemy import text

from bot.clock import FakeClock
from bot.domain import AuditHead
from bot.i18n import LANGUAGES, Catalog
from commands.anchor import anchor_outcome
from commands.context import CommandContext
from storage import audit
from storage.audit import GENESIS, _digest
from storage.audit_verify import BreakKind, find_anchors, verify_audit
from storage.database import Database

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
N = 12


async def fill(db: Database, count: int = N) -> None:
    async with db.write() as session:
        for i in range(count):
            await audit.append(
                session,
                at=T0 + timedelta(seconds=i),
                actor="@tib.uppsala:example.org",
                action="ack.recorded",
                subject="H-1",
                detail={"n": i + 1, "party": f"p{i + 1}"},
            )


async def sql(db: Database, statement: str, **params: object) -> None:
    async with db.write() as session:
        await session.execute(text(statement), params)


async def check(db: Database, anchors=()):  # type: ignore[no-untyped-def]
    async with db.read() as session:
        return await verify_audit(session, anchors)


async def rehash_from(db: Database, first: int) -> None:
    """What a careful forger does after an edit: recompute every hash from ``first`` on."""
    async with db.write() as session:
        rows = await audit.entries(session)
        prev = GENESIS if first == 1 else rows[first - 2].hash
        for row in rows[first - 1 :]:
            row.prev_hash = prev
            row.hash = _digest(
                prev, row.seq, row.at, row.actor, row.action, row.subject, row.detail
            )
            prev = row.hash


async def test_an_untouched_log_is_intact(db: Database) -> None:
    await fill(db)
    result = await check(db)
    assert result.ok
    assert result.entries == N
    assert result.head is not None
    assert result.head.seq == N
    assert result.first_break is None


async def test_an_empty_log_is_intact(db: Database) -> None:
    result = await check(db)
    assert result.ok
    assert result.entries == 0
    assert result.head is None


async def test_an_edited_entry_is_named(db: Database) -> None:
    await fill(db)
    await sql(db, "UPDATE audit_log SET actor = 'someone else' WHERE seq = 5")
    b = (await check(db)).first_break
    assert b is not None
    assert (b.seq, b.kind) == (5, BreakKind.EDITED)


async def test_an_edited_detail_is_named(db: Database) -> None:
    await fill(db)
    await sql(db, """UPDATE audit_log SET detail = '{"n": 7, "party": "pX"}' WHERE seq = 7""")
    b = (await check(db)).first_break
    assert b is not None
    assert (b.seq, b.kind) == (7, BreakKind.EDITED)


async def test_a_deleted_entry_is_named(db: Database) -> None:
    await fill(db)
    await sql(db, "DELETE FROM audit_log WHERE seq = 4")
    b = (await check(db)).first_break
    assert b is not None
    assert (b.seq, b.kind) == (4, BreakKind.DELETED)
    assert "entry 4 deleted" in b.explanation


async def test_the_first_entry_deleted(db: Database) -> None:
    await fill(db)
    await sql(db, "DELETE FROM audit_log WHERE seq = 1")
    b = (await check(db)).first_break
    assert b is not None
    assert (b.seq, b.kind) == (1, BreakKind.DELETED)


async def test_deleted_and_renumbered_is_named(db: Database) -> None:
    await fill(db)
    await sql(db, "DELETE FROM audit_log WHERE seq = 6")
    for seq in range(7, N + 1):
        await sql(db, "UPDATE audit_log SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    b = (await check(db)).first_break
    assert b is not None
    assert (b.seq, b.kind) == (6, BreakKind.DELETED)
    assert "written as entry 7" in b.explanation


async def test_reordered_entries_are_named(db: Database) -> None:
    await fill(db)
    await sql(db, "UPDATE audit_log SET seq = 1000 WHERE seq = 8")
    await sql(db, "UPDATE audit_log SET seq = 8 WHERE seq = 9")
    await sql(db, "UPDATE audit_log SET seq = 9 WHERE seq = 1000")
    b = (await check(db)).first_break
    assert b is not None
    assert (b.seq, b.kind) == (8, BreakKind.REORDERED)


async def test_an_inserted_entry_is_named(db: Database) -> None:
    """A forger inserts an entry at 5, hashed properly after 4, and renumbers the rest."""
    await fill(db)
    for seq in range(N, 4, -1):
        await sql(db, "UPDATE audit_log SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    async with db.write() as session:
        rows = await audit.entries(session)
        prev = rows[3].hash  # entry 4
        at = T0 + timedelta(seconds=4, milliseconds=500)
        detail = {"n": 0, "party": "forged"}
        forged = _digest(prev, 5, at, "@x:example.org", "ack.recorded", "H-1", detail)
        await session.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) "
                "VALUES (5, :at, '@x:example.org', 'ack.recorded', 'H-1', :detail, :prev, :hash)"
            ),
            {
                "at": at.replace(tzinfo=None),
                "detail": '{"n": 0, "party": "forged"}',
                "prev": prev,
                "hash": forged,
            },
        )
    b = (await check(db)).first_break
    assert b is not None
    assert (b.seq, b.kind) == (5, BreakKind.INSERTED)


async def test_an_inserted_entry_without_renumbering_is_named(db: Database) -> None:
    """An entry squeezed in with a number of its own after the last one but claiming to follow
    an earlier entry (the only way to insert without renumbering)."""
    await fill(db)
    async with db.write() as session:
        rows = await audit.entries(session)
        await session.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) "
                "VALUES (:seq, :at, 'x', 'ack.recorded', 'H-1', '{}', :prev, :hash)"
            ),
            {"seq": N + 1, "at": T0.replace(tzinfo=None), "prev": rows[2].hash, "hash": "0" * 64},
        )
    b = (await check(db)).first_break
    assert b is not None
    assert b.seq == N + 1
    assert b.kind in (BreakKind.EDITED, BreakKind.INSERTED, BreakKind.REORDERED)


async def test_a_rehashed_rewrite_passes_the_chain_but_not_the_anchors(db: Database) -> None:
    await fill(db)
    async with db.read() as session:
        rows = await audit.entries(session)
    anchor_text = f"⚓ … [larmkedja-audit seq=10 sha256={rows[9].hash}]"
    await sql(db, "UPDATE audit_log SET actor = 'someone else' WHERE seq = 5")
    await rehash_from(db, 5)
    result = await check(db, find_anchors(anchor_text))
    assert result.first_break is None  # consistent in itself: the chain alone cannot tell
    assert not result.ok
    b = result.anchor_break
    assert b is not None
    assert (b.seq, b.kind) == (10, BreakKind.REWRITTEN)
    assert (result.anchors_checked, result.anchors_matching) == (1, 0)


async def test_cutting_off_the_newest_entries_is_caught_by_an_anchor(db: Database) -> None:
    await fill(db)
    async with db.read() as session:
        rows = await audit.entries(session)
    anchors = find_anchors(
        f"[larmkedja-audit seq=6 sha256={rows[5].hash}] "
        f"[larmkedja-audit seq=12 sha256={rows[11].hash}]"
    )
    await sql(db, "DELETE FROM audit_log WHERE seq > 9")
    result = await check(db, anchors)
    assert result.first_break is None
    b = result.anchor_break
    assert b is not None
    assert (b.seq, b.kind) == (12, BreakKind.TRUNCATED)
    assert result.anchors_matching == 1


async def test_anchors_that_match_and_forged_tokens(db: Database) -> None:
    await fill(db)
    async with db.read() as session:
        rows = await audit.entries(session)
    texts = [f"[larmkedja-audit seq={r.seq} sha256={r.hash}]" for r in rows[::3]] + [
        "[larmkedja-audit seq=3 sha256=nothex]",
        "larmkedja-audit seq=4",
    ]
    anchors = [a for t in texts for a in find_anchors(t)]
    assert len(anchors) == 4  # malformed tokens are not anchors
    result = await check(db, anchors)
    assert result.ok
    assert (result.anchors_checked, result.anchors_matching) == (4, 4)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_anchor_post_is_read_back_in_every_language(catalog: Catalog, lang: str) -> None:
    config = mellansverige(coordination_language=lang)
    ctx = CommandContext(config=config, clock=FakeClock(), catalog=catalog)
    head = AuditHead(4711, "c0ffee" * 10 + "abcd", T0)
    outcome = anchor_outcome(ctx, head, catalog, reason="report")
    [post] = outcome.posts
    assert post.room_id == config.healthcare_region.coordination_room
    [anchor] = find_anchors(post.body)
    assert (anchor.seq, anchor.digest) == (4711, head.hash)
    assert outcome.audit[0].detail == {
        "seq": 4711,
        "hash": head.hash,
        "room": post.room_id,
        "reason": "report",
    }


def test_no_anchor_without_a_coordination_room_or_entries(catalog: Catalog) -> None:
    config = mellansverige()
    ctx = CommandContext(config=config, clock=FakeClock(), catalog=catalog)
    assert anchor_outcome(ctx, None, catalog, reason="report").posts == []
    no_room = config.model_copy(
        update={
            "healthcare_region": config.healthcare_region.model_copy(
                update={"coordination_room": None}
            )
        }
    )
    ctx = CommandContext(config=no_room, clock=FakeClock(), catalog=catalog)
    head = AuditHead(1, "0" * 64, T0)
    assert anchor_outcome(ctx, head, catalog, reason="report").posts == []


async def test_anchors_survive_a_restart(tmp_path: Path) -> None:
    """The anchors are texts in the room's history: a bot that restarts (a new process, a
    new database handle) verifies the same log against them; a log edited while the bot was
    down fails against them."""
    path = tmp_path / "larmkedja.db"
    first = Database(f"sqlite+aiosqlite:///{path}")
    await first.migrate()
    await fill(first, 5)
    async with first.read() as session:
        head = (await audit.entries(session))[-1]
    history = [f"⚓ post 5 [larmkedja-audit seq={head.seq} sha256={head.hash}]"]
    await first.close()

    again = Database(f"sqlite+aiosqlite:///{path}")
    await again.migrate()  # a start migrates; nothing in the log changes
    await fill(again, 2)  # the bot goes on writing after the anchor
    result = await check(again, [a for t in history for a in find_anchors(t)])
    assert result.ok
    assert result.entries == 7
    await sql(again, "UPDATE audit_log SET action = 'ack.forged' WHERE seq = 2")
    await rehash_from(again, 2)
    await again.close()

    third = Database(f"sqlite+aiosqlite:///{path}")
    result = await check(third, [a for t in history for a in find_anchors(t)])
    await third.close()
    assert result.first_break is None
    assert result.anchor_break is not None
    assert result.anchor_break.kind == BreakKind.REWRITTEN
