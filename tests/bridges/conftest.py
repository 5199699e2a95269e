"""The real SMS gateway for the bridge tests: one Kannel per test module.

Kannel starts in ~0.2 s but stops in ~1.1 s, so a module shares one; tests that inject a fault
put it right again before they end. Its config and logs (``fakesmsc.log`` holds every SMS the
'handsets' got) stay in pytest's temporary directory for reading after a failure. If Kannel is
not installed the fixture fails with the apt-get line: these tests are never skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.demo.kannel import ThrowawayKannel


@pytest.fixture(scope="module")
async def kannel(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ThrowawayKannel]:
    """bearerbox + smsbox + fakesmsc on free loopback ports; MO and DLR go to ``.recorder``."""
    async with ThrowawayKannel(tmp_path_factory.mktemp("kannel")) as gateway:
        yield gateway
