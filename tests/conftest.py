"""Fixtures shared by the whole suite: one real Synapse per session, fresh E2EE people per test.

The machinery lives in :mod:`bot.demo` (the demo uses the same); this file only decides
lifetimes. Synapse's data and log stay in pytest's temporary directory after the run, so a failed
test can be read against ``homeserver.log``.
"""

from __future__ import annotations

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
