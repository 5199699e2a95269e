"""Waiting for an event with a timeout, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that arrives in the same loop
iteration as the awaited thing completes (CPython gh-86296, fixed in 3.12): the caller's task
stays "cancelling" but runs on. A worker loop that loses its cancellation that way never ends,
and a stop that waits for it hangs. ``asyncio.timeout`` does not have the bug, so every worker
loop waits through :func:`wait_event`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Until ``event`` is set (True) or ``timeout`` seconds have passed (False)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(awaitable: Awaitable[_T], timeout: float) -> _T:
    """``await awaitable``, raising TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        return await awaitable
