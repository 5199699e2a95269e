"""Our own sync loop (DESIGN §5.3, §5.4, §5.7).

Why not ``sync_forever``: it spins on errors, and nio saves its sync token before running
callbacks, so a crash in between loses events. Here each batch's inbox rows and its next token
are written in ONE transaction by the injected ``store_batch``; only then is the next sync
requested. A crash at any point re-fetches the batch (duplicates are dropped by event id).

The first sync after a start asks for full state (nio does not persist room state) and is
bounded by a timeout. Errors back off exponentially up to a ceiling, forever: the homeserver
being down for an hour must not end the bot.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from nio import AsyncClient, SyncResponse

from bot.matrix.inbound import events_from_sync
from bot.waiting import within
from storage.errors import describe_failure
from storage.inbox import InboundEvent

log = logging.getLogger(__name__)

StoreBatch = Callable[[list[InboundEvent], str], Awaitable[None]]
AfterSync = Callable[[SyncResponse], Awaitable[None]]


class SyncLoop:
    def __init__(
        self,
        client: AsyncClient,
        *,
        store_batch: StoreBatch,
        after_sync: AfterSync,
        initial_token: str | None,
        timeout_ms: int,
        first_sync_timeout_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
    ) -> None:
        self._client = client
        self._store_batch = store_batch
        self._after_sync = after_sync
        self._token = initial_token
        self._timeout_ms = timeout_ms
        self._first_timeout = first_sync_timeout_s
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self.first_sync_done = asyncio.Event()
        self.synced = asyncio.Condition()
        self.sync_count = 0
        self.consecutive_failures = 0

    async def run(self) -> None:
        delay = self._backoff_initial
        while True:
            first = not self.first_sync_done.is_set()
            try:
                resp = await self._sync_once(first)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: back off, try again
                resp = None
                reason = f"{type(exc).__name__}"
            else:
                reason = (
                    "" if isinstance(resp, SyncResponse) else str(getattr(resp, "message", resp))
                )
            if not isinstance(resp, SyncResponse):
                self.consecutive_failures += 1
                wait = min(delay, self._backoff_max) * random.uniform(0.8, 1.2)
                log.warning(
                    "sync failed (%s); retry %d in %.1f s", reason, self.consecutive_failures, wait
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self._backoff_max)
                continue
            try:
                await self._handle(resp, first)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database said no: keep the token, back off, sync again
                log.error(
                    "could not store a sync batch (%s); will fetch it again",
                    describe_failure(exc),
                )
                await asyncio.sleep(min(delay, self._backoff_max))
                delay = min(delay * 2, self._backoff_max)
                continue
            delay = self._backoff_initial
            self.consecutive_failures = 0

    async def _sync_once(self, first: bool) -> object:
        if first:
            return await within(
                self._client.sync(timeout=0, since=self._token, full_state=True),
                self._first_timeout,
            )
        return await self._client.sync(timeout=self._timeout_ms, since=self._token)

    async def _handle(self, resp: SyncResponse, first: bool) -> None:
        events = events_from_sync(resp, self._client.user_id, first_sync=self._token is None)
        # Write before act: the batch and its token together, or neither.
        await self._store_batch(events, resp.next_batch)
        self._token = resp.next_batch
        try:
            await self._after_sync(resp)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # housekeeping failures must not stop syncing
            log.error("after-sync housekeeping failed (%s); continuing", describe_failure(exc))
        if first:
            self.first_sync_done.set()
        self.sync_count += 1
        async with self.synced:
            self.synced.notify_all()
