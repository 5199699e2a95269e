"""Database faults give one clear line and the bot keeps going (issue 10 §3, database faults).

The faults are SQLite's own, on a real migrated database: a connection opened read-only
(``mode=ro``: "attempt to write a readonly database", what a read-only file gives a non-root
bot) and a database that cannot grow (``max_page_count``: "database or disk is full", what a
full disk gives). A pass writing through them fails round after round; the supervisor logs one
line that says what to do, with no SQL and no parameters, reports the trouble once with that
line, keeps the other passes running, and the work is done when writes succeed again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.engine.supervisor import REPORT_AFTER, Supervisor
from storage import outbox
from storage.database import Database
from storage.errors import describe_failure

SECRET_BODY = "Brand i vårdbyggnad, ring +46701234567"


@pytest.fixture
async def path(tmp_path: Path) -> Path:
    file = tmp_path / "bot.db"
    db = Database(f"sqlite+aiosqlite:///{file}")
    await db.migrate()
    await db.close()
    return file


async def enqueue_one(db: Database, key: str) -> None:
    async with db.write() as session:
        await outbox.enqueue(
            session,
            key=key,
            channel="matrix",
            destination="!room:example.org",
            purpose="alarm",
            payload={"body": SECRET_BODY},
            now=datetime(2026, 12, 7, 3, 0, tzinfo=UTC),
        )


async def failure_of(db: Database) -> Exception:
    try:
        await enqueue_one(db, "k-1")
    except Exception as exc:  # noqa: BLE001 - the fault is what we look at
        return exc
    raise AssertionError("the write succeeded")


async def test_a_read_only_database_is_named_with_what_to_do(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    try:
        line = describe_failure(await failure_of(db))
    finally:
        await db.close()
    assert line.startswith("the database is read-only: make the database file")
    assert "INSERT" not in line
    assert SECRET_BODY not in line


async def test_a_full_disk_is_named_with_what_to_do(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.write() as session:
        pages = (await session.execute(text("PRAGMA page_count"))).scalar_one()
    await db.close()
    full = Database(f"sqlite+aiosqlite:///{path}")

    try:
        async with full.write() as session:
            await session.execute(text(f"PRAGMA max_page_count = {pages}"))
            big = "x" * 200_000
            await outbox.enqueue(
                session,
                key="big",
                channel="matrix",
                destination="!room:example.org",
                purpose="alarm",
                payload={"body": big},
                now=datetime(2026, 12, 7, 3, 0, tzinfo=UTC),
            )
    except Exception as exc:  # noqa: BLE001
        line = describe_failure(exc)
    else:
        raise AssertionError("the database grew past max_page_count")
    finally:
        await full.close()
    assert line.startswith("the disk holding the database is full")


def test_an_unknown_fault_keeps_only_its_first_line_without_sql() -> None:
    exc = sqlite3.OperationalError("no such table: outbox")
    assert describe_failure(exc) == "OperationalError: no such table: outbox"


class Writing:
    """A pass that writes one outbox row per round, through whatever database it is given."""

    name = "writing"

    def __init__(self, db: Database) -> None:
        self.db = db
        self.rounds = 0

    async def run_once(self) -> float | None:
        self.rounds += 1
        await enqueue_one(self.db, f"k-{self.rounds}")
        return None


class Counting:
    """Another pass, on no database: it keeps running while the other one fails."""

    name = "counting"

    def __init__(self) -> None:
        self.rounds = 0
        self.twenty = asyncio.Event()

    async def run_once(self) -> float | None:
        self.rounds += 1
        if self.rounds >= 20:
            self.twenty.set()
        return 0.01


async def test_a_pass_on_a_read_only_database_is_logged_in_one_line_reported_once_and_recovers(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.engine.supervisor.RETRY_INITIAL_S", 0.01)
    monkeypatch.setattr("bot.engine.supervisor.RETRY_MAX_S", 0.02)
    reports: list[tuple[str, str | None]] = []
    reported = [asyncio.Event(), asyncio.Event()]

    async def on_trouble(name: str, error: str | None) -> None:
        reports.append((name, error))
        reported[len(reports) - 1].set()

    read_only = Database(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    writable = Database(f"sqlite+aiosqlite:///{path}")
    writing, counting = Writing(read_only), Counting()
    supervisor = Supervisor(on_trouble=on_trouble)
    supervisor.add(writing)
    supervisor.add(counting)
    caplog.set_level(logging.ERROR, logger="bot.engine.supervisor")
    supervisor.start()
    try:
        async with asyncio.timeout(10):
            await reported[0].wait()
            await counting.twenty.wait()
        writing.db = writable  # the operator fixed it
        supervisor.wake("writing")
        async with asyncio.timeout(10):
            await reported[1].wait()
    finally:
        await supervisor.stop()
        await read_only.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.engine.supervisor"]
    assert len(lines) >= REPORT_AFTER
    assert all(
        line.startswith("writing pass failed (")
        and line.endswith(
            "the database is read-only: make the database file and its folder "
            "writable by the bot (storage.database_url), or give the database role write access"
        )
        for line in lines
    ), lines
    assert not any(r.exc_info for r in caplog.records)  # no traceback, so no SQL either
    assert all(SECRET_BODY not in line and "INSERT" not in line for line in lines)
    assert reports[0][0] == "writing"
    assert reports[0][1] is not None
    assert reports[0][1].startswith("the database is read-only")
    assert reports[1] == ("writing", None)  # recovered, told once
    async with writable.read() as session:
        rows = await outbox.all_rows(session)
    await writable.close()
    assert [r.idempotency_key for r in rows] == [f"k-{writing.rounds}"]
