"""Small named values the bot must keep across restarts (the Matrix sync token)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import BotStateRow

SYNC_TOKEN = "matrix.sync_token"


async def get(session: AsyncSession, key: str) -> str | None:
    row = (
        await session.execute(select(BotStateRow).where(BotStateRow.key == key))
    ).scalar_one_or_none()
    return None if row is None else row.value


async def put(session: AsyncSession, key: str, value: str) -> None:
    row = await session.get(BotStateRow, key)
    if row is None:
        session.add(BotStateRow(key=key, value=value))
    else:
        row.value = value
    await session.flush()
