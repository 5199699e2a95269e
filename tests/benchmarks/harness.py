"""Benchmark harness: the bench (world + bot in this process), its database, figures.

The bot is the real :class:`bot.app.App` against the session's Synapse on loopback; every
figure comes either from the bot's own database (inbox ``received_at``/``handled_at``, outbox
``created_at``/``sent_at``, written by the bot's clock) or from a baseline timed here around
raw matrix-nio calls made with the bot's own client, in the same run.

The benchmarks print their figures and write a JSON summary to ``results/``; they assert
correctness only (every party alarmed, every acknowledgement recorded), never a speed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from nio import AsyncClient, RoomSendResponse
from sqlalchemy import select

from bot.app import App
from bot.demo.people import Person
from bot.demo.world import World
from bot.matrix.sender import build_content
from storage import inbox as inbox_repo
from storage import outbox as outbox_repo
from storage.models import InboxRow, OutboxRow

RESULTS = Path(__file__).with_name("results")
REGIONS = tuple((f"r{i:02d}", f"Region {i}") for i in range(21))
INCIDENT_ID = re.compile(r"\bH-\d+\b")
POLL_S = 0.02


# -- figures ------------------------------------------------------------------------------


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 100 samples is the 95th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def publish(
    capsys: pytest.CaptureFixture[str], name: str, lines: list[str], summary: dict[str, Any]
) -> None:
    """Print the figures past pytest's capture (so CI logs show them) and keep a JSON copy."""
    RESULTS.mkdir(exist_ok=True)
    load = os.getloadavg()
    summary = {
        "benchmark": name,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": load,
        **summary,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with capsys.disabled():
        print()
        print(f"=== benchmark: {name} ===")
        for line in lines:
            print(line)
        print(
            f"(machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
            f"{load[2]:.2f}; other work on the machine shows up in both bot and baseline)"
        )
        print(f"(summary written to {path})")


# -- the bench ----------------------------------------------------------------------------


@dataclass
class Bench:
    world: World
    app: App
    setup_s: float

    @property
    def client(self) -> AsyncClient:
        assert self.app.session is not None
        return self.app.session.client

    @property
    def bot(self) -> str:
        return self.world.bot_user_id

    def room(self, party: str) -> str:
        return self.world.rooms[party]

    def officer(self, party: str) -> Person:
        return self.world.officer(party)

    # -- the bot's database --------------------------------------------------------------

    async def inbox_rows(self, event_ids: Iterable[str]) -> dict[str, InboxRow]:
        ids = list(event_ids)
        async with self.app.db.read() as session:
            query = select(InboxRow).where(InboxRow.event_id.in_(ids))
            return {r.event_id: r for r in (await session.execute(query)).scalars()}

    async def outbox_rows(
        self,
        *,
        incident: str | None = None,
        purposes: Iterable[str] | None = None,
        destination: str | None = None,
    ) -> list[OutboxRow]:
        query = select(OutboxRow).order_by(OutboxRow.id)
        if incident is not None:
            query = query.where(OutboxRow.incident_id == incident)
        if purposes is not None:
            query = query.where(OutboxRow.purpose.in_(tuple(purposes)))
        if destination is not None:
            query = query.where(OutboxRow.destination == destination)
        async with self.app.db.read() as session:
            return list((await session.execute(query)).scalars())

    async def outbox_row(self, key: str) -> OutboxRow | None:
        async with self.app.db.read() as session:
            return await outbox_repo.by_key(session, key)

    # -- waiting -------------------------------------------------------------------------

    async def settle(self, limit_s: float = 30, quiet_s: float = 0.3) -> None:
        """Until the bot has nothing pending (inbox) or queued for Matrix (outbox), then a
        quiet moment so that the people's phones have decrypted what it sent."""
        async with asyncio.timeout(limit_s):
            while True:
                async with self.app.db.read() as session:
                    pending = await inbox_repo.next_pending(session)
                    busy = (
                        await session.execute(
                            select(OutboxRow.id)
                            .where(
                                OutboxRow.channel == "matrix",
                                OutboxRow.status.in_((outbox_repo.QUEUED, outbox_repo.SENDING)),
                            )
                            .limit(1)
                        )
                    ).scalar_one_or_none()
                if pending is None and busy is None:
                    break
                await asyncio.sleep(POLL_S * 5)
        await asyncio.sleep(quiet_s)

    async def wait_handled(
        self, event_ids: Iterable[str], limit_s: float = 30
    ) -> dict[str, InboxRow]:
        ids = list(event_ids)
        async with asyncio.timeout(limit_s):
            while True:
                rows = await self.inbox_rows(ids)
                if len(rows) == len(ids) and all(r.handled_at is not None for r in rows.values()):
                    return rows
                await asyncio.sleep(POLL_S)

    async def wait_sent(
        self, *, incident: str, purposes: Iterable[str], count: int, limit_s: float = 60
    ) -> list[OutboxRow]:
        """Until ``count`` rows of ``incident`` with these purposes are sent; fails at once
        if one failed for good."""
        purposes = tuple(purposes)
        async with asyncio.timeout(limit_s):
            while True:
                rows = await self.outbox_rows(incident=incident, purposes=purposes)
                failed = [r for r in rows if r.status == outbox_repo.FAILED]
                assert not failed, [(r.destination, r.last_error) for r in failed]
                sent = [r for r in rows if r.status == outbox_repo.SENT]
                if len(sent) >= count:
                    return sent
                await asyncio.sleep(POLL_S)

    # -- commands as a duty officer types them ---------------------------------------------

    async def confirm(self, party: str, headline: str) -> str:
        """``!händelse katastrofläge …`` in ``party``'s room; returns the incident id."""
        event_id = await self.officer(party).send_text(
            self.room(party), f"!händelse katastrofläge {headline}"
        )
        await self.wait_handled([event_id])
        reply = await self.outbox_row(f"{event_id}:reply")
        assert reply is not None, "the bot did not answer !händelse"
        found = INCIDENT_ID.search(reply.payload["body"])
        assert found, reply.payload["body"]
        return found.group(0)

    # -- the bot's Megolm sessions ---------------------------------------------------------

    def all_rooms(self) -> set[str]:
        return set(self.world.rooms.values())

    def rooms_without_shared_key(self) -> list[str]:
        olm = self.client.olm
        assert olm is not None
        return sorted(r for r in self.all_rooms() if olm.should_share_group_session(r))

    async def warm(self) -> None:
        """Room keys shared ahead of need in every room (what the bot does after each sync)."""
        for _ in range(5):
            await self.app.gateway.share_keys_ahead(self.all_rooms())  # type: ignore[union-attr]
            if not self.rooms_without_shared_key():
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"room keys not shared in {self.rooms_without_shared_key()}")

    def invalidate_all_room_keys(self) -> None:
        olm = self.client.olm
        assert olm is not None
        olm.outbound_group_sessions.clear()

    # -- the raw matrix-nio baseline ---------------------------------------------------------

    async def raw_send(self, room_id: str, content: dict[str, Any]) -> float:
        """One ``room_send`` with the bot's client; returns seconds until accepted."""
        began = time.perf_counter()
        resp = await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        took = time.perf_counter() - began
        assert isinstance(resp, RoomSendResponse), resp
        return took

    async def raw_fanout(self, contents: dict[str, dict[str, Any]]) -> float:
        """All rooms at once (``asyncio.gather``); seconds until the last was accepted."""
        began = time.perf_counter()
        responses = await asyncio.gather(
            *(
                self.client.room_send(
                    room, "m.room.message", content, ignore_unverified_devices=True
                )
                for room, content in contents.items()
            )
        )
        took = time.perf_counter() - began
        bad = [r for r in responses if not isinstance(r, RoomSendResponse)]
        assert not bad, bad
        return took


def seconds_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def alarm_content(row: OutboxRow) -> dict[str, Any]:
    """The content the bot sends for an alarm row, built as its sender builds it."""
    payload = row.payload
    return build_content(
        payload["body"],
        mentions=payload.get("mentions") or (),
        in_reply_to=payload.get("in_reply_to"),
    )
