"""Prometheus metrics, read from the database: what went out on which channel, what was decided.

The database already holds every message (outbox) and every decision (audit log), so the
metrics are snapshots of it, refreshed every few seconds by the metrics pass, rather than
counters threaded through every code path: they survive a restart, and they cannot disagree
with the after-action report. Scraped at ``GET /metrics`` (``bot/http/``), from this registry
only (no process-global default registry).
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from bot.clock import Clock
from storage import stats
from storage.database import Database

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


class MetricsPass:
    """The metrics pass: the gauges refreshed from the database every ``interval_s``."""

    name = "metrics"

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
        self.exercise_decisions = Gauge(
            "larmkedja_exercise_decisions",
            "Audit log entries of exercises and test alarms by action (kept out of "
            "larmkedja_decisions, which counts live incidents only)",
            ["action"],
            registry=self.registry,
        )
        self.refreshed = Gauge(
            "larmkedja_metrics_refreshed_timestamp_seconds",
            "When these metrics were last read from the database",
            registry=self.registry,
        )

    async def run_once(self) -> float:
        await self.refresh()
        return self.interval_s

    async def refresh(self) -> None:
        now = self.clock.now()
        async with self.db.read() as session:
            by_status = await stats.outbox_by_status(session)
            waiting = await stats.oldest_waiting(session)
            counted = await stats.audit_counts(session, WATCHED_ACTIONS)
            exercised = await stats.audit_counts(session, WATCHED_ACTIONS, exercises=True)
        channels: set[str] = set()
        for channel, status, count in by_status:
            self.messages.labels(channel, status).set(count)
            channels.add(channel)
        for channel in channels:
            self.oldest_waiting.labels(channel).set(_age(now, waiting.get(channel)))
        for action in WATCHED_ACTIONS:
            self.decisions.labels(action).set(counted.get(action, 0))
            self.exercise_decisions.labels(action).set(exercised.get(action, 0))
        self.refreshed.set(now.timestamp())


def _age(now: datetime, since: datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None and now.tzinfo is not None:
        since = since.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - since).total_seconds())
