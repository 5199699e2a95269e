"""Integration fixtures: a whole (small) healthcare region on the session's Synapse."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.world import World, build_world

WorldFactory = Callable[..., Awaitable[World]]

TWO_REGIONS = (("uppsala", "Region Uppsala"), ("dalarna", "Region Dalarna"))


@pytest.fixture
async def make_world(
    homeserver: ThrowawayHomeserver, tmp_path: Path
) -> AsyncIterator[WorldFactory]:
    """``await make_world(regions=…)``: people, encrypted rooms with the bot invited, config."""
    worlds: list[World] = []

    async def make(**kwargs: Any) -> World:
        kwargs.setdefault("regions", TWO_REGIONS)
        kwargs.setdefault("national", False)
        kwargs.setdefault("blood_centre_of", None)
        kwargs.setdefault("coordination", False)
        world = await build_world(homeserver, tmp_path / f"world{len(worlds)}", **kwargs)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        await world.cast.close()
