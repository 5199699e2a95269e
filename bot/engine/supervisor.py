"""Runs the engine's named passes (GoAlert's engine shape): one loop, one place for failures.

A pass is an object with a ``name`` and one entry point, ``run_once()``, which does one round
of its work and returns how many seconds may pass before the next round (None: only when woken).
The supervisor keeps a reference to every pass's task, wakes a pass when something it cares
about happened (:meth:`wake`), and decides what a failure means:

- a round that raises is logged with its pass's name and retried with a growing delay
  (1 s doubling to 30 s): the database may be read-only for a minute, a disk full until an
  operator acts; the work is still in the database and is done when the round succeeds;
- after :data:`REPORT_AFTER` failed rounds in a row, the failure is reported once through the
  ``on_trouble`` callback (the composition root tells the coordinators) and again when the pass
  has recovered;
- a pass's task that ends by itself or dies outside a round (a bug in the loop, not in the
  work) stops the bot, so that the service manager restarts it: a bot that silently stopped
  sending alarms is worse than one that restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.waiting import wait_event
from storage.errors import describe_failure

log = logging.getLogger(__name__)

#: Failed rounds in a row after which a pass is reported as in trouble.
REPORT_AFTER = 3
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 30.0

Trouble = Callable[[str, str | None], Awaitable[None]]  # pass name, what failed (None: recovered)


class Pass(Protocol):
    name: str

    async def run_once(self) -> float | None: ...


@dataclass
class _Running:
    work: Pass
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event | None = None  # the pass waits for this before its first round
    task: asyncio.Task[None] | None = None
    failures: int = 0
    reported: bool = False
    rounds: int = 0


class Supervisor:
    def __init__(self, *, on_trouble: Trouble | None = None) -> None:
        self._passes: dict[str, _Running] = {}
        self._forever: list[asyncio.Task[None]] = []
        self._stopping = False
        self._on_trouble = on_trouble
        self.stopped = asyncio.Event()
        self.failure: BaseException | None = None

    def add(self, work: Pass, *, ready: asyncio.Event | None = None) -> None:
        self._passes[work.name] = _Running(work, ready=ready)

    def wake(self, name: str) -> None:
        running = self._passes.get(name)
        if running is not None:
            running.wakeup.set()

    def tasks(self) -> list[asyncio.Task[None]]:
        """Every task the supervisor runs (health checks, tests)."""
        return [r.task for r in self._passes.values() if r.task is not None] + self._forever

    def rounds(self, name: str) -> int:
        """How many rounds a pass has completed (tests wait on it)."""
        return self._passes[name].rounds

    def start(self) -> None:
        for running in self._passes.values():
            running.task = asyncio.create_task(
                self._loop(running), name=f"larmkedja-{running.work.name}"
            )
            running.task.add_done_callback(lambda t, r=running: self._ended(r.work.name, t))

    def run_forever(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        """A task that is not a pass but must live as long as the bot (the sync loop): its
        end, or its death, stops the bot."""
        task = asyncio.create_task(work, name=f"larmkedja-{name}")
        task.add_done_callback(lambda t: self._ended(name, t))
        self._forever.append(task)

    async def _loop(self, running: _Running) -> None:
        if running.ready is not None:
            await running.ready.wait()
        while True:
            running.wakeup.clear()
            try:
                wait = await running.work.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                wait = await self._failed(running, exc)
            else:
                running.rounds += 1
                if running.failures:
                    await self._recovered(running)
            await wait_event(running.wakeup, timeout=wait)

    async def _failed(self, running: _Running, exc: Exception) -> float:
        running.failures += 1
        name = running.work.name
        what = describe_failure(exc)
        log.error("%s pass failed (%d in a row): %s", name, running.failures, what)
        if running.failures >= REPORT_AFTER and not running.reported:
            running.reported = True
            await self._report(name, what)
        return min(RETRY_INITIAL_S * 2 ** (running.failures - 1), RETRY_MAX_S)

    async def _recovered(self, running: _Running) -> None:
        log.warning(
            "%s pass works again after %d failed rounds", running.work.name, running.failures
        )
        running.failures = 0
        if running.reported:
            running.reported = False
            await self._report(running.work.name, None)

    async def _report(self, name: str, error: str | None) -> None:
        if self._on_trouble is None:
            return
        try:
            await self._on_trouble(name, error)
        except Exception as exc:  # the report is best effort; the log has it anyway
            log.error("could not report the %s pass's trouble: %s", name, type(exc).__name__)

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.critical("%s died: %r; stopping", name, exc)
            self.failure = exc
        else:
            log.critical("%s ended; stopping", name)
        self.stopped.set()

    async def stop(self) -> None:
        self._stopping = True
        await cancel_all(self.tasks())


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that lost its cancellation
    (see :mod:`bot.waiting`): a stop must end, or the service manager cannot restart the bot."""
    pending = [t for t in tasks if not t.done()]
    for attempt in range(100):
        for task in pending:
            task.cancel()
        _done, still = await asyncio.wait(pending, timeout=0.2) if pending else (set(), set())
        pending = list(still)
        if not pending:
            break
        if attempt == 10:
            log.warning("tasks still running after cancel: %s", [t.get_name() for t in pending])
    for task in tasks:  # collect outcomes so that none is reported as never retrieved
        if task.done() and not task.cancelled():
            task.exception()
