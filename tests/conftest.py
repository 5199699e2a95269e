"""Fixtures shared by the whole suite: one real Synapse per session, fresh E2EE people per test.

The machinery lives in :mod:`bot.demo` (the demo uses the same); this file only decides
lifetimes. Synapse's data and log stay in pytest's temporary directory after the run, so a failed
test can be read against ``homeserver.log``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.people import Cast


@pytest.fixture(scope="session")
async def homeserver(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ThrowawayHomeserver]:
    """Synapse on a free loopback port, started once (~2 s) and shared by every test."""
    async with ThrowawayHomeserver(tmp_path_factory.mktemp("synapse")) as hs:
        yield hs


@pytest.fixture
async def people(homeserver: ThrowawayHomeserver, tmp_path: Path) -> AsyncIterator[Cast]:
    """``await people("tib-uppsala")``: a new account with a syncing E2EE device.

    Accounts get a random suffix, so tests never meet each other's people on the shared
    server. ``await people.new_device(person)`` logs the same account in on a new phone.
    """
    cast = Cast(homeserver, tmp_path / "people")
    yield cast
    await cast.close()


@pytest.fixture(autouse=True)
async def dump_tasks_before_the_timeout() -> AsyncIterator[None]:
    """A hung async test shows only the event loop's idle poll in pytest-timeout's thread dump;
    this prints every asyncio task's stack shortly before that limit, so the await that never
    returned is in the failure report."""
    import sys

    async def watchdog() -> None:
        await asyncio.sleep(WATCHDOG_S)
        print(f"\n--- asyncio tasks after {WATCHDOG_S:.0f} s ---", file=sys.stderr)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.print_stack(limit=12, file=sys.stderr)

    dog = asyncio.create_task(watchdog())
    yield
    dog.cancel()


WATCHDOG_S = 270.0  # pytest-timeout ends a test at 300 s (pyproject.toml)
