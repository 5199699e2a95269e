"""Prometheus metrics, read from the database: what went out on which channel, what was decided.

The database already holds every message (outbox) and every decision (audit log), so the
metrics are snapshots of it, refreshed every few seconds by :meth:`Metrics.run`, rather than
counters threaded through every code path: they survive a restart, and they cannot disagree
with the after-action report. Scraped at ``GET /metrics`` (``bot/http/``), from this registry
only (no process-global default registry).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import func, select

from bot.clock import Clock
from bot.waiting import wait_event
from storage import outbox
from storage.database import Database
from storage.models import AuditRow, OutboxRow

log = logging.getLogger(__name__)

#: Audit actions worth a time series (the rest are there for the report, not for alerting).
WATCHED_ACTIONS = (
    "chain.started",
    "ack.recorded",
    "escalation.fired",
    "delivery.fallback",
    "outbox.retry",
    "outbox.failed",
    "outbox.undelivered",
    "outbox.cancelled",
    "outbox.refused",
    "inbound_reply.refused",
    "inbound_reply.unparsed",
    "reply_code.rejected",
    "command.crashed",
)


class Metrics:
    def __init__(self, db: Database, clock: Clock, *, interval_s: float = 10.0) -> None:
        self.db = db
        self.clock = clock
        self.interval_s = interval_s
        self.registry = CollectorRegistry()
        self.messages = Gauge(
            "larmkedja_outbox_messages",
            "Outbox messages by channel and status (queued, sending, sent, failed, cancelled)",
            ["channel", "status"],
            registry=self.registry,
        )
        self.oldest_waiting = Gauge(
            "larmkedja_outbox_oldest_waiting_seconds",
            "Age of the oldest message not yet out, by channel (0: none waiting)",
            ["channel"],
            registry=self.registry,
        )
        self.decisions = Gauge(
            "larmkedja_decisions",
            "Audit log entries by action (acknowledgements, escalations, fallbacks, refusals)",
            ["action"],
            registry=self.registry,
        )
        self.refreshed = Gauge(
            "larmkedja_metrics_refreshed_timestamp_seconds",
            "When these metrics were last read from the database",
            registry=self.registry,
        )
        self._stop = asyncio.Event()

    async def refresh(self) -> None:
        now = self.clock.now()
        async with self.db.read() as session:
            by_status = await session.execute(
                select(OutboxRow.channel, OutboxRow.status, func.count()).group_by(
                    OutboxRow.channel, OutboxRow.status
                )
            )
            oldest = await session.execute(
                select(OutboxRow.channel, func.min(OutboxRow.created_at))
                .where(OutboxRow.status.in_((outbox.QUEUED, outbox.SENDING)))
                .group_by(OutboxRow.channel)
            )
            actions = await session.execute(
                select(AuditRow.action, func.count())
                .where(AuditRow.action.in_(WATCHED_ACTIONS))
                .group_by(AuditRow.action)
            )
            channels: set[str] = set()
            for channel, status, count in by_status:
                self.messages.labels(channel, status).set(count)
                channels.add(channel)
            waiting = {channel: since for channel, since in oldest}
            for channel in channels:
                since = waiting.get(channel)
                self.oldest_waiting.labels(channel).set(_age(now, since))
            counted = dict(actions.all())
            for action in WATCHED_ACTIONS:
                self.decisions.labels(action).set(counted.get(action, 0))
        self.refreshed.set(now.timestamp())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("metrics refresh failed")
            await wait_event(stop, self.interval_s)


def _age(now: datetime, since: datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None and now.tzinfo is not None:
        since = since.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - since).total_seconds())
