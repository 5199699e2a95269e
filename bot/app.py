"""The composition root: builds every part once, hands each what it needs, runs them.

No module-level singletons anywhere: tests build the same graph with a fake clock or another
state folder, and several bots can run in one process (the benchmarks do).

Start order matters and is the safety argument of the Matrix layer:
1. database migrated (nothing is received before it can be stored);
2. session restored or a new device logged in; the crypto store must be loaded;
3. device keys uploaded, then the device cross-signed — before any room is joined, because a
   message sent before the signature is visible is lost for Element users (DESIGN §5.9);
4. the SMS and e-mail channels (their endpoints store replies that may already be waiting);
5. only then the sync loop, which brings invites (joined through the inbox) and commands; the
   passes wait for its first full-state sync, since room state is not persisted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

from bot.channels import BridgeChannels, reply_codes, resolve_secrets
from bot.clock import Clock, SystemClock
from bot.config import LoadedConfig, redacted_dump
from bot.contracts import Sender
from bot.due_trigger import DueTrigger
from bot.engine.cleanup import CleanupPass
from bot.engine.context import ContextFactory
from bot.engine.delivery import DeliveryPass
from bot.engine.delivery_reports import DeliveryReports
from bot.engine.due import DuePass
from bot.engine.fallback import Fallback
from bot.engine.faults import Faults
from bot.engine.inbox import InboxPass
from bot.engine.metrics import MetricsPass
from bot.engine.prepare import Links, Preparer
from bot.engine.replies import ChannelReplies
from bot.engine.retry import ChannelPolicy, TokenBucket
from bot.engine.summaries import Summaries
from bot.engine.supervisor import Supervisor
from bot.engine.upkeep import MatrixUpkeep, UndecryptablePass
from bot.engine.writer import OutcomeWriter
from bot.i18n import Catalog
from bot.matrix.cross_signing import CrossSigner
from bot.matrix.gateway import MatrixGateway
from bot.matrix.raw_api import RawApi
from bot.matrix.sender import MatrixSender
from bot.matrix.session import SessionInfo, SessionStore, StartupRefused, open_session
from bot.matrix.sync_loop import SyncLoop
from bridges.signed_links import SignedLinks
from commands.exercise.marking import ExerciseMarking
from storage import audit, state, stats
from storage.database import Database

log = logging.getLogger(__name__)

BOT = "larmkedja"


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
        self.supervisor = Supervisor()
        self.session: SessionInfo | None = None
        self.gateway: MatrixGateway | None = None
        self.sync: SyncLoop | None = None
        self.inbox: InboxPass | None = None
        self.delivery: DeliveryPass | None = None
        self.due: DuePass | None = None
        self.metrics: MetricsPass | None = None
        self.bridges: BridgeChannels | None = None
        self.trigger: DueTrigger | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def failure(self) -> BaseException | None:
        return self.supervisor.failure

    async def start(self) -> None:
        cfg = self.config
        log.info("starting with config %s", redacted_dump(cfg))
        self.loaded.check_secrets()  # all of them now, not half-way through the start
        base_dir = self.loaded.base_dir
        password = cfg.matrix.password.resolve(base_dir).get_secret_value()
        passphrase = (
            cfg.matrix.store_passphrase.resolve(base_dir).get_secret_value()
            if cfg.matrix.store_passphrase
            else ""
        )
        secrets = resolve_secrets(cfg.bridges, base_dir) if cfg.bridges is not None else None
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
        matrix_sender = MatrixSender(client, trust_all_devices=trust_all)
        self.gateway = gateway = MatrixGateway(client, matrix_sender, trust_all_devices=trust_all)
        sup = self.supervisor
        make_context = ContextFactory(
            cfg, self.clock, self.catalog, room_problem=gateway.room_problem
        )

        def wake(*names: str) -> Any:
            return lambda: [sup.wake(n) for n in names]

        sms_timeout = (
            cfg.bridges.sms.delivery_timeout_s
            if cfg.bridges is not None
            and cfg.bridges.sms is not None
            and cfg.bridges.sms.delivery_reports
            else None
        )
        writer = OutcomeWriter(
            marking=ExerciseMarking(cfg, self.catalog),
            delivery_deadlines={"sms": sms_timeout} if sms_timeout else {},
            summary_after_s=cfg.matrix.delivery_deadline_s,
        )
        fallback = Fallback(writer=writer, make_context=make_context, wake=wake("delivery"))
        summaries = Summaries(
            writer=writer,
            make_context=make_context,
            on_problem=fallback.on_problem,
            wake=wake("delivery"),
        )
        codes = reply_codes(cfg.bridges, secrets) if cfg.bridges and secrets else None
        self.inbox = InboxPass(
            config=cfg,
            clock=self.clock,
            db=self.db,
            catalog=self.catalog,
            gateway=gateway,
            writer=writer,
            make_context=make_context,
            replies=ChannelReplies(codes) if codes is not None else None,
            faults=self.faults,
            wake=wake("inbox"),
            after_decision=wake("delivery", "due-times"),
        )
        self.metrics = MetricsPass(self.db, self.clock)
        reports = DeliveryReports(self.db, self.clock, on_problem=fallback.on_problem)
        senders: dict[str, Sender] = {"matrix": matrix_sender}
        links: Links | None = None
        if cfg.bridges is not None and secrets is not None:
            signer_links = SignedLinks(secrets.signing)
            links = Links(
                signer_links,
                cfg.bridges.http.public_base_url,
                timedelta(minutes=cfg.bridges.reply_code_ttl_min),
            )
            self.bridges = BridgeChannels(
                cfg,
                cfg.bridges,
                base_dir=base_dir,
                clock=self.clock,
                catalog=self.catalog,
                secrets=secrets,
                links=signer_links,
            )
            await self.bridges.start(
                inbound=self.inbox,
                on_dlr=reports.record,
                on_link_refused=self._audit_link_refused,
                health=self._health,
                registry=self.metrics.registry,
            )
            senders.update(self.bridges.senders)
        self.delivery = DeliveryPass(
            self.db,
            self.clock,
            senders=senders,
            policies=self._policies(),
            preparer=Preparer(
                party_for_room=make_context.party_for_room,
                codes=codes,
                links=links,
                late_after=timedelta(seconds=cfg.matrix.late_after_s),
            ),
            on_problem=fallback.on_problem,
            after_record=summaries.after_record,
            fault=self.faults.hit,
            wake=wake("delivery"),
        )

        async def wake_due() -> None:
            sup.wake("due-times")

        self.trigger = DueTrigger(wake_due)
        self.due = DuePass(
            self.db,
            self.clock,
            writer=writer,
            make_context=make_context,
            fallback=fallback,
            summaries=summaries,
            trigger=self.trigger,
            faults=self.faults,
            wake_delivery=wake("delivery"),
        )
        upkeep = MatrixUpkeep(
            config=cfg,
            clock=self.clock,
            db=self.db,
            catalog=self.catalog,
            gateway=gateway,
            wake_inbox=wake("inbox"),
            wake_delivery=wake("delivery"),
            wake_undecryptable=wake("undecryptable"),
        )
        self.sync = SyncLoop(
            client,
            store_batch=self.inbox.store_batch,
            after_sync=upkeep.after_sync,
            initial_token=token,
            timeout_ms=cfg.matrix.sync_timeout_ms,
            first_sync_timeout_s=cfg.matrix.first_sync_timeout_s,
            backoff_initial_s=cfg.matrix.backoff_initial_s,
            backoff_max_s=cfg.matrix.backoff_max_s,
        )
        ready = self.sync.first_sync_done
        self.trigger.start()
        sup.add(self.inbox, ready=ready)
        sup.add(self.due, ready=ready)
        sup.add(self.delivery, ready=ready)
        sup.add(self.metrics)
        sup.add(UndecryptablePass(upkeep), ready=ready)
        if codes is not None:
            sup.add(CleanupPass(self.db, self.clock, codes.policy))
        sup.start()
        sup.run_forever("sync", self.sync.run())

    def _policies(self) -> dict[str, ChannelPolicy]:
        cfg = self.config
        policies = {
            "matrix": ChannelPolicy(
                backoff_initial_s=2.0, backoff_max_s=cfg.matrix.backoff_max_s, max_attempts=None
            )
        }
        bridges = cfg.bridges
        if bridges is None:
            return policies
        for channel, rate in (
            ("sms", bridges.sms.rate_per_s if bridges.sms else None),
            ("email", bridges.email.rate_per_s if bridges.email else None),
        ):
            if rate is None:
                continue
            policies[channel] = ChannelPolicy(
                backoff_initial_s=bridges.backoff_initial_s,
                backoff_max_s=bridges.backoff_max_s,
                max_attempts=bridges.max_attempts,
                bucket=TokenBucket(self.clock, rate),
                max_concurrent=8,
            )
        return policies

    async def _audit_link_refused(self, reason: str) -> None:
        async with self.db.write() as session:
            await audit.append(
                session,
                at=self.clock.now(),
                actor="link",
                action="inbound_reply.refused",
                subject=None,
                detail={"channel": "link", "reason": reason},
            )

    async def _health(self) -> dict[str, Any]:
        async with self.db.read() as session:
            pending = await stats.pending_by_channel(
                session, ("matrix", *self.config.bridge_channels())
            )
        return {"ok": True, "pending": pending}

    async def wait_ready(self, timeout: float = 60) -> None:
        """Until the first full-state sync is stored (tests and the demo wait for this)."""
        assert self.sync is not None
        await asyncio.wait_for(self.sync.first_sync_done.wait(), timeout)

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.supervisor.stopped.set)
        await self.supervisor.stopped.wait()

    async def stop(self) -> None:
        """No new work is claimed; sends under way complete and are recorded (a send cut off
        between "accepted" and "marked sent" would go out again after a restart, and Matrix
        transaction ids are per device); then everything is closed."""
        await self.supervisor.stop()
        if self.trigger is not None:
            self.trigger.shutdown()
        if self.delivery is not None:
            await self.delivery.drain(timeout=15)
        if self.bridges is not None:
            await self.bridges.stop()
        if self.session is not None:
            await self.session.client.close()
        await self.db.close()


__all__ = ["App", "StartupRefused"]
