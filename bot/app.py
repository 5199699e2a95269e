"""The composition root: builds every part once, hands each what it needs, runs them.

No module-level singletons anywhere: tests build the same graph with a fake clock or another
state folder, and several bots can run in one process (the benchmarks do).

Start order matters and is the safety argument of the Matrix layer:
1. database migrated (nothing is received before it can be stored);
2. session restored or a new device logged in; the crypto store must be loaded;
3. device keys uploaded, then the device cross-signed — before any room is joined, because a
   message sent before the signature is visible is lost for Element users (DESIGN §5.9);
4. only then the sync loop, which brings invites (joined through the inbox) and commands.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from nio import SyncResponse

from bot.bridge_hub import BridgeHub
from bot.clock import Clock, SystemClock
from bot.config import ConfigError, LoadedConfig, redacted_dump
from bot.due_trigger import DueTrigger
from bot.engine import BOT, Engine, Faults
from bot.i18n import Catalog
from bot.matrix.cross_signing import CrossSigner
from bot.matrix.gateway import MatrixGateway
from bot.matrix.raw_api import RawApi
from bot.matrix.sender import MatrixSender
from bot.matrix.session import SessionInfo, SessionStore, StartupRefused, open_session
from bot.matrix.sync_loop import SyncLoop
from commands.context import CommandContext
from storage import audit, state
from storage.database import Database
from storage.incidents import make_repositories

log = logging.getLogger(__name__)


class App:
    def __init__(
        self, loaded: LoadedConfig, *, clock: Clock | None = None, faults: Faults | None = None
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.clock = clock or SystemClock()
        self.faults = faults or Faults.from_env()
        self.catalog = Catalog.load()
        self.db = Database(loaded.database_url)
        self.session: SessionInfo | None = None
        self.engine: Engine | None = None
        self.sync: SyncLoop | None = None
        self.bridges: BridgeHub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._stopping = False
        self.failure: BaseException | None = None

    async def start(self) -> None:
        cfg = self.config
        log.info("starting with config %s", redacted_dump(cfg))
        for key, ref in cfg.secret_refs():  # all of them now, not half-way through the start
            try:
                ref.resolve(self.loaded.base_dir)
            except ConfigError as exc:
                raise ConfigError(f"{key}: {exc}") from None
        password = cfg.matrix.password.resolve(self.loaded.base_dir).get_secret_value()
        passphrase = (
            cfg.matrix.store_passphrase.resolve(self.loaded.base_dir).get_secret_value()
            if cfg.matrix.store_passphrase
            else ""
        )
        await self.db.migrate()

        paths = SessionStore(self.loaded.state_dir)
        self.session = await open_session(
            homeserver=cfg.matrix.homeserver,
            user_id=cfg.matrix.user_id,
            password=password,
            device_name=cfg.matrix.device_name,
            store_passphrase=passphrase,
            paths=paths,
        )
        client = self.session.client
        if client.should_upload_keys:
            await client.keys_upload()
        signer = CrossSigner(
            RawApi(cfg.matrix.homeserver, client.access_token),
            cfg.matrix.user_id,
            paths.cross_signing_file,
            password,
        )
        signed = await signer.ensure(client.device_id)
        async with self.db.write() as session:
            await audit.append(
                session,
                at=self.clock.now(),
                actor=BOT,
                action="bot.started",
                subject=client.device_id,
                detail={"session": self.session.how, "cross_signing": signed},
            )
            token = await state.get(session, state.SYNC_TOKEN)

        trust_all = cfg.matrix.trust_policy == "all-devices"
        sender = MatrixSender(client, trust_all_devices=trust_all)
        gateway = MatrixGateway(client, sender, trust_all_devices=trust_all)
        self.engine = Engine(
            config=cfg,
            clock=self.clock,
            db=self.db,
            catalog=self.catalog,
            gateway=gateway,
            make_context=self._make_context,
            faults=self.faults,
        )
        self.sync = SyncLoop(
            client,
            store_batch=self.engine.store_batch,
            after_sync=self._after_sync,
            initial_token=token,
            timeout_ms=cfg.matrix.sync_timeout_ms,
            first_sync_timeout_s=cfg.matrix.first_sync_timeout_s,
            backoff_initial_s=cfg.matrix.backoff_initial_s,
            backoff_max_s=cfg.matrix.backoff_max_s,
        )
        self.engine.trigger = DueTrigger(self._fire_due)
        if cfg.bridges is not None:
            # Before the first sync: replies and delivery reports may already be waiting.
            self.bridges = BridgeHub(
                cfg,
                cfg.bridges,
                base_dir=self.loaded.base_dir,
                db=self.db,
                clock=self.clock,
                engine=self.engine,
                fault=self.faults.hit,
            )
            await self.bridges.start()
        self._spawn("sync", self.sync.run())
        self._spawn("due-times", self._start_due_times(self.sync.first_sync_done), forever=False)
        self._spawn("inbox", self.engine.run_inbox_worker(self.sync.first_sync_done))
        self._spawn("outbox", self.engine.run_outbox_worker(self.sync.first_sync_done))
        if self.bridges is not None:
            self._spawn("bridges", self.bridges.run())

    async def _start_due_times(self, ready: asyncio.Event) -> None:
        """Rebuild the trigger from the database once rooms are known; missed ones fire now."""
        await ready.wait()
        assert self.engine is not None
        assert self.engine.trigger is not None
        self.engine.trigger.start()
        await self.engine.rearm()

    async def _fire_due(self) -> None:
        assert self.engine is not None
        try:
            await self.engine.fire_due_now()
        except Exception:  # a failed pass is retried: the rows are still pending
            log.exception("due-time pass failed; retrying in 5 s")
            if self.engine.trigger is not None:
                self.engine.trigger.arm(self.clock.now() + timedelta(seconds=5))

    def _make_context(self, session: Any) -> CommandContext:
        incidents, alarms = make_repositories(session, self.config)
        return CommandContext(
            config=self.config,
            clock=self.clock,
            incidents=incidents,
            alarms=alarms,
            catalog=self.catalog,
        )

    async def _after_sync(self, resp: SyncResponse) -> None:
        assert self.engine is not None
        gateway = self.engine.gateway
        await gateway.maintain_keys()
        await self.engine.warn_unencrypted_rooms()
        await self.engine.retry_undecryptable()
        ours = self.config.known_rooms() & gateway.joined_rooms()
        if await gateway.share_keys_ahead(ours):
            log.info("room keys shared ahead of need")
        self.engine.outbox_wakeup.set()

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None], *, forever: bool = True) -> None:
        """Run a background task, keeping a reference; its failure stops the bot (so that a
        supervisor restarts it), and so does a ``forever`` task that returns."""
        task = asyncio.create_task(coro, name=f"larmkedja-{name}")
        task.add_done_callback(lambda t: self._task_done(t, forever))
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None], forever: bool) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.critical("background task %s died: %r; stopping", task.get_name(), exc)
            self.failure = exc
            self._stopped.set()
        elif forever:
            log.critical("background task %s ended; stopping", task.get_name())
            self._stopped.set()

    async def wait_ready(self, timeout: float = 60) -> None:
        """Until the first full-state sync is stored (tests and the demo wait for this)."""
        assert self.sync is not None
        await asyncio.wait_for(self.sync.first_sync_done.wait(), timeout)

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopped.set)
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self.bridges is not None:
            # Let an SMS/e-mail pass under way finish and be recorded: a send cut off between
            # "accepted by the gateway" and "marked sent" would go out again after a restart.
            await self.bridges.finish(timeout=15)
        await _cancel_all(self._tasks)
        self._tasks.clear()
        if self.engine is not None:
            if self.engine.trigger is not None:
                self.engine.trigger.shutdown()
            await self.engine.finish_inflight()
        if self.bridges is not None:
            await self.bridges.stop()
        if self.session is not None:
            await self.session.client.close()
        await self.db.close()


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that lost its cancellation
    (see :mod:`bot.waiting`): a stop must end, or the supervisor cannot restart the bot."""
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


__all__ = ["App", "StartupRefused"]
