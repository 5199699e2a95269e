"""The write-before-act tables: inbox dedupe, outbox idempotency, a tamper-evident audit log."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from bot.clock import FakeClock
from storage import audit, inbox, outbox, state
from storage.database import Database
from storage.models import AuditRow


async def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'lk.db'}")
    await db.migrate()
    await db.migrate()  # idempotent: a restart runs it again
    return db


def _event(event_id: str) -> inbox.InboundEvent:
    return inbox.InboundEvent(
        event_id=event_id,
        source="matrix",
        kind="message",
        room_id="!r:localhost",
        sender="@a:localhost",
        origin_ts=1,
        payload={"body": "!hjälp"},
    )


async def test_inbox_stores_each_event_once(tmp_path: Path) -> None:
    db, clock = await _db(tmp_path), FakeClock()
    async with db.write() as s:
        assert (
            len(await inbox.store(s, [_event("$1"), _event("$1"), _event("$2")], clock.now())) == 2
        )
        await state.put(s, state.SYNC_TOKEN, "s1")
    async with db.write() as s:
        assert await inbox.store(s, [_event("$2"), _event("$3")], clock.now()) != []
        assert await state.get(s, state.SYNC_TOKEN) == "s1"
    async with db.read() as s:
        first = await inbox.next_pending(s)
        assert first is not None
        assert first.event_id == "$1"
    await db.close()


async def test_outbox_key_is_idempotent_and_the_newest_queued_edit_is_found(
    tmp_path: Path,
) -> None:
    db, clock = await _db(tmp_path), FakeClock()
    async with db.write() as s:
        args = dict(
            channel="matrix",
            destination="!r:localhost",
            purpose="reply",
            payload={"body": "x"},
            now=clock.now(),
        )
        assert await outbox.enqueue(s, key="$1:reply", **args) is not None
        assert await outbox.enqueue(s, key="$1:reply", **args) is None
        older = await outbox.enqueue(s, key="board:H-1:!r:edit:$2", **args)
        newer = await outbox.enqueue(s, key="board:H-1:!r:edit:$3", **args)
        assert await outbox.newest_queued(s, "board:H-1:!r:edit:") is newer
        assert newer is not None
        newer.status = outbox.SENDING  # claimed by a delivery lane: no longer rewritable
        assert await outbox.newest_queued(s, "board:H-1:!r:edit:") is older
        assert await outbox.newest_queued(s, "board:H-2:!r:edit:") is None
    await db.close()


async def test_audit_chain_detects_tampering(tmp_path: Path) -> None:
    db, clock = await _db(tmp_path), FakeClock()
    async with db.write() as s:
        for i in range(5):
            clock.advance(1)
            await audit.append(
                s,
                at=clock.now(),
                actor="@tib:localhost",
                action="test",
                subject=f"H-{i}",
                detail={"n": i, "text": "åäö"},
            )
    async with db.read() as s:
        assert await audit.verify_chain(s) is None
    async with db.write() as s:
        await s.execute(update(AuditRow).where(AuditRow.seq == 3).values(detail={"n": 99}))
    async with db.read() as s:
        assert await audit.verify_chain(s) == 3
    await db.close()


async def test_audit_chain_detects_a_removed_entry(tmp_path: Path) -> None:
    db, clock = await _db(tmp_path), FakeClock()
    async with db.write() as s:
        for i in range(3):
            await audit.append(s, at=clock.now(), actor="bot", action="test", detail={"i": i})
    async with db.write() as s:
        await s.delete(await s.get(AuditRow, 2))
    async with db.read() as s:
        assert await audit.verify_chain(s) == 3
    await db.close()
