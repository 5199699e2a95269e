"""Benchmark fixtures: one 21-region world with the bot running in this process.

Both benchmarks use the same world (building it, 21 people with their own E2EE devices and
encrypted rooms, is most of the wall time), so it is built once for the package. See
:mod:`tests.benchmarks.harness` for what is measured where.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.world import build_world
from tests.benchmarks.harness import REGIONS, Bench
from tests.integration.botctl import bot_in_process


@pytest.fixture(scope="package")
async def bench(
    homeserver: ThrowawayHomeserver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Bench]:
    """21 regions, each with its duty officer's encrypted room; the bot joined, keys shared."""
    began = time.perf_counter()
    world = await build_world(
        homeserver,
        tmp_path_factory.mktemp("bench"),
        regions=REGIONS,
        national=False,
        blood_centre_of=None,
        coordination=False,
    )
    try:
        async with bot_in_process(world.config_path) as app:
            await world.wait_bot_joined()
            client = app.session.client  # type: ignore[union-attr]
            async with asyncio.timeout(60):  # the bot's own sync has brought every room
                while not all(  # noqa: ASYNC110 - polls another client's state; no event to await
                    r in client.rooms and client.rooms[r].encrypted for r in world.rooms.values()
                ):
                    await asyncio.sleep(0.05)
            bench = Bench(world=world, app=app, setup_s=0.0)
            await bench.warm()
            await bench.settle()
            bench.setup_s = time.perf_counter() - began
            yield bench
    finally:
        await world.cast.close()
