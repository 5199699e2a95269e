"""Reading the bot's database from a test: due times, outbox rows, audit entries."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from bot.config import load_config
from bot.demo.world import World
from storage import audit, outbox
from storage.database import Database
from storage.incident_models import DueRow
from storage.models import OutboxRow

FAST = 0.03  # minutes: 1.8 s between steps, fast enough for a test, slow enough to observe


def fast_policy(
    *,
    steps: list[dict[str, Any]] | None = None,
    repeat_every_min: float = FAST,
    max_repeats: int = 2,
) -> dict[str, Any]:
    return {
        "steps": steps
        or [
            {"after_min": FAST, "action": "remind"},
            {"after_min": FAST, "action": "notify_initiator"},
        ],
        "repeat_every_min": repeat_every_min,
        "max_repeats": max_repeats,
    }


class BotDatabase:
    """The bot's own database, opened read-only by the test (SQLite allows a second reader)."""

    def __init__(self, world: World) -> None:
        self.db = Database(load_config(world.config_path).database_url)

    async def close(self) -> None:
        await self.db.close()

    async def due_rows(self) -> list[DueRow]:
        async with self.db.read() as session:
            query = select(DueRow).order_by(DueRow.due_at, DueRow.id)
            return list((await session.execute(query)).scalars())

    async def outbox_rows(self, purpose: str | None = None) -> list[OutboxRow]:
        async with self.db.read() as session:
            rows = await outbox.all_rows(session)
        return [r for r in rows if purpose is None or r.purpose == purpose]

    async def audit(self, action: str | None = None) -> list[Any]:
        async with self.db.read() as session:
            return await audit.entries(session, action)

    async def verify_audit_chain(self) -> int | None:
        async with self.db.read() as session:
            return await audit.verify_chain(session)

    async def wait_until_sent(self, timeout: float = 60) -> None:
        """Until every Matrix message the bot has decided on is out (or failed for good):
        what a phone can still receive from the bot is then only what its sync has not
        fetched yet, never something still to be decided."""
        async with asyncio.timeout(timeout):
            while True:
                rows = await self.outbox_rows()
                if all(
                    r.status in (outbox.SENT, outbox.FAILED) for r in rows if r.channel == "matrix"
                ):
                    return
                await asyncio.sleep(0.2)

    async def wait_until_quiet(self, timeout: float = 60) -> None:
        """Until no due time is pending and every Matrix outbox row is out."""
        async with asyncio.timeout(timeout):
            while True:
                dues = await self.due_rows()
                rows = await self.outbox_rows()
                if all(d.status != "pending" for d in dues) and all(
                    r.status in (outbox.SENT, outbox.FAILED) for r in rows if r.channel == "matrix"
                ):
                    return
                await asyncio.sleep(0.2)
