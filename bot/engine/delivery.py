"""The one outbox: every outbound message, on every channel, claimed, sent and recorded here.

Rows of every channel that has a :class:`bot.contracts.Sender` go through the same steps:

1. **Claim** (one write transaction): the due rows, oldest first, in *lanes* — one per channel
   and destination (a room, a number, an address), each served in order while lanes run in
   parallel. A destination whose lane is still running is skipped; a row that must wait (its
   backoff, an edit of a message not out yet) holds up the rows after it for that destination
   only. Each row is prepared (:mod:`bot.engine.prepare`: cancelled if moot, codes and links
   filled in) and marked ``sending`` with one more attempt *before* anything goes out, so a
   crash between send and record leaves a trace: a row found ``sending`` is sent again (with
   the same transaction id, Message-ID and SMS reference) and marked as a possible duplicate.
   A channel's rate limit holds rows back without counting an attempt.
2. **Send**: alarms, reminders, escalations and stand-downs first: a lane of anything else
   waits for them (at most 10 s), so the initiator's own reply and board never compete with
   the alarms they announce.
3. **Record** (one write transaction per lane): sent, retried with backoff, or failed
   (:mod:`bot.engine.retry` decides when to give up), audited with the destination masked. A
   failure that leaves a party unreached is handed to the fallback in the same transaction
   (:mod:`bot.engine.fallback`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.contracts import Outgoing, Refused, Retry, Sender, SendResult, Sent
from bot.engine.prepare import ORPHAN, WAIT, Preparer
from bot.engine.recording import AfterRecord, ProblemHandler, Recorder
from bot.engine.retry import URGENT_PURPOSES, ChannelPolicy
from bridges.destinations import mask_destination
from storage import outbox
from storage.database import Database
from storage.models import OutboxRow

log = logging.getLogger(__name__)

#: Crash points (see :class:`bot.engine.faults.Faults`) around a send, by channel.
_FAULTS = {"matrix": ("before-send", "after-send")}
_BRIDGE_FAULTS = ("before-channel-send", "after-channel-send")


@dataclass(frozen=True)
class _Lane:
    channel: str
    destination: str
    items: tuple[Outgoing, ...]

    @property
    def urgent(self) -> bool:
        return self.items[0].purpose in URGENT_PURPOSES


class DeliveryPass:
    name = "delivery"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        senders: Mapping[str, Sender],
        policies: Mapping[str, ChannelPolicy],
        preparer: Preparer,
        on_problem: ProblemHandler | None = None,
        after_record: AfterRecord | None = None,
        fault: Callable[[str], None] | None = None,
        wake: Callable[[], None] | None = None,
        idle_s: float = 5.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.senders = dict(senders)
        self.policies = {c: policies.get(c) or ChannelPolicy() for c in self.senders}
        self.preparer = preparer
        self.recorder = Recorder(
            db, clock, policies=self.policies, on_problem=on_problem, after_record=after_record
        )
        self._fault = fault or (lambda _point: None)
        self._wake = wake or (lambda: None)
        self.idle_s = idle_s
        self._slots = {c: asyncio.Semaphore(p.max_concurrent) for c, p in self.policies.items()}
        self._lanes: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._held_back: set[str] = set()

    # -- the pass ------------------------------------------------------------------------

    async def run_once(self) -> float:
        await self.deliver_due()
        return await self._seconds_to_next()

    async def deliver_due(self) -> int:
        """Claim what is due and start its lanes; returns how many rows were claimed."""
        lanes = await self._claim()
        urgent = [lane for lane in lanes if lane.urgent]
        first: list[asyncio.Task[None]] = []
        for lane in sorted(lanes, key=lambda lane: not lane.urgent):
            task = asyncio.create_task(
                self._run_lane(lane, after=[] if lane.urgent else first),
                name=f"larmkedja-lane-{lane.channel}-{mask_destination(lane.destination)}",
            )
            if lane in urgent:
                first.append(task)
            key = (lane.channel, lane.destination)
            self._lanes[key] = task
            task.add_done_callback(lambda t, k=key: self._lane_done(k, t))
        return sum(len(lane.items) for lane in lanes)

    async def drain(self, timeout: float = 15.0) -> None:
        """Let sends under way complete and be recorded (on stop): a send cut off between
        "accepted" and "marked sent" would go out again after a restart."""
        if self._lanes:
            await asyncio.wait(set(self._lanes.values()), timeout=timeout)

    async def wait_idle(self) -> None:
        """Until no lane is running (tests: everything claimed is recorded)."""
        while self._lanes:
            await asyncio.wait(set(self._lanes.values()))

    def _lane_done(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        self._lanes.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery lane %s failed: %r", key[0], task.exception())
        self._wake()

    async def _seconds_to_next(self) -> float:
        wait = self.idle_s
        now = self.clock.now()
        async with self.db.read() as session:
            for channel in self.senders:
                bucket = self.policies[channel].bucket
                if channel in self._held_back and bucket is not None:
                    wait = min(wait, bucket.seconds_until_token())
                    continue
                nxt = await outbox.next_due_time(session, channel)
                if nxt is not None:
                    wait = min(wait, (nxt - now).total_seconds())
        return max(0.05, wait)

    # -- claim ---------------------------------------------------------------------------

    async def _claim(self) -> list[_Lane]:
        now = self.clock.now()
        items: dict[tuple[str, str], list[Outgoing]] = {}
        self._held_back.clear()
        async with self.db.write() as session:
            for channel in self.senders:
                bucket = self.policies[channel].bucket
                blocked = {d for c, d in self._lanes if c == channel}
                for row in await outbox.pending(session, channel):
                    if row.destination in blocked:
                        continue
                    if row.next_attempt_at is not None and row.next_attempt_at > now:
                        blocked.add(row.destination)  # its turn has not come: later rows wait
                        continue
                    if bucket is not None and not bucket.take():
                        self._held_back.add(channel)  # stays as it is, not an attempt
                        break
                    prepared = await self._prepare(session, row, now)
                    if prepared is WAIT:
                        row.next_attempt_at = now + timedelta(seconds=0.2)
                        blocked.add(row.destination)
                        continue
                    if prepared is None:
                        continue  # cancelled or failed while preparing
                    assert isinstance(prepared, dict)
                    key = (channel, row.destination)
                    items.setdefault(key, []).append(
                        Outgoing(
                            row_id=row.id,
                            key=row.idempotency_key,
                            channel=channel,
                            destination=row.destination,
                            purpose=row.purpose,
                            payload=prepared,
                            incident_id=row.incident_id,
                            possible_duplicate=row.status == outbox.SENDING,
                        )
                    )
                    row.status = outbox.SENDING
                    row.attempts += 1
        return [_Lane(c, d, tuple(i)) for (c, d), i in items.items()]

    async def _prepare(self, session: AsyncSession, row: OutboxRow, now: datetime) -> object:
        try:
            async with session.begin_nested():  # a failure undoes only this row's writes
                prepared = await self.preparer.prepare(session, row, now)
        except Exception as exc:  # one bad row must not block the others
            reason = f"cannot prepare the message: {type(exc).__name__}"
            log.error("outbox %s: %s", row.idempotency_key, reason)
            await self.recorder.fail(session, row, reason, now, action="outbox.failed")
            return None
        if prepared is ORPHAN:
            await self.recorder.fail(
                session, row, "the message it edits was not delivered", now, "outbox.refused"
            )
            return None
        if isinstance(prepared, str):
            await self.recorder.cancel(session, row, prepared, now)
            return None
        return prepared

    # -- send ----------------------------------------------------------------------------

    async def _run_lane(self, lane: _Lane, after: list[asyncio.Task[None]]) -> None:
        if after:
            await asyncio.wait(after, timeout=10)
        before, after_send = _FAULTS.get(lane.channel, _BRIDGE_FAULTS)
        results: list[tuple[Outgoing, SendResult]] = []
        async with self._slots[lane.channel]:
            for item in lane.items:
                self._fault(before)
                result = await self._send(item)
                if isinstance(result, Sent):
                    self._fault(after_send)
                results.append((item, result))
                if isinstance(result, Retry):
                    break  # the rest of the destination waits behind it
        await self.recorder.record(results, unsent=lane.items[len(results) :])

    async def _send(self, item: Outgoing) -> SendResult:
        try:
            return await self.senders[item.channel].send(item)
        except ValueError as exc:  # a text or address no retry can fix
            return Refused(f"cannot be sent: {type(exc).__name__}")
        except Exception as exc:
            log.warning(
                "outbox %s to %s: unexpected %s",
                item.key,
                mask_destination(item.destination),
                type(exc).__name__,
            )
            return Retry(f"unexpected {type(exc).__name__}")
