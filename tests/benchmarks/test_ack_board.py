"""Benchmark: from an acknowledgement to the status board edit, against a raw nio edit.

One incident is alarmed from one region's room to the 20 other regions; then every party's
duty officer types ``!kvittera N`` in its room, round after round (repeated acknowledgements
by the same party are allowed and recorded), each round with its own N. Two kinds of rounds,
alternating with the baseline:

- burst: all 20 duty officers acknowledge at the same moment (the worst case);
- paced: one after another, ``PACE_S`` apart (still far faster than people do it).

Bot figure, per acknowledgement: from its inbox ``received_at`` to the ``sent_at`` of the first
board message (the post or an ``m.replace`` edit) of the incident in the initiating room that
shows it, i.e. whose line for that party shows that round's N. This is what the initiating duty
officer waits for; it does not depend on how the engine queues, supersedes or merges edits.
Baseline, in the same run: a raw ``m.replace`` edit of the same board, sent with the bot's own
nio client to the same room, one after another as the bot sends them, timed around
``room_send``.

The issue's rule "the first board row whose created_at >= the ack's handled_at" is printed for
comparison only: the engine stamps a command's outbox rows with the ``now`` taken when it starts
writing the outcome and the inbox row's ``handled_at`` with a later ``now`` in the same
transaction, so the acknowledgement's own edit is always created *before* its ``handled_at`` and
that rule picks the edit of a later acknowledgement (or none, for the last one).

Target (issue): p95 ≤ 1 s on loopback. Printed, never asserted.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from bot.matrix.sender import build_content
from storage import audit
from storage.incidents import SqlIncidents
from storage.models import AuditRow, OutboxRow
from tests.benchmarks.harness import (
    REGIONS,
    Bench,
    median,
    ms,
    percentile,
    publish,
    seconds_between,
)

INITIATOR = REGIONS[-1][0]
ROUNDS_PER_KIND = 5  # 5 burst + 5 paced rounds of 20 acknowledgements
PACE_S = 0.15
TARGET_P95_S = 1.0
NAMES = dict(REGIONS)


@dataclass(frozen=True)
class Ack:
    event_id: str
    party: str
    count: int
    kind: str  # burst | paced


def board_key(incident: str, room: str) -> str:
    return f"board:{incident}:{room}"


async def ack_round(bench: Bench, parties: list[str], count: int, kind: str) -> list[Ack]:
    """Every party's duty officer types ``!kvittera <count>``: all at once (burst) or one
    after another (paced). Returns once the bot has handled them and sent everything."""
    order = parties if count % 2 else parties[::-1]

    async def ack(party: str) -> Ack:
        event_id = await bench.officer(party).send_text(bench.room(party), f"!kvittera {count}")
        return Ack(event_id, party, count, kind)

    if kind == "burst":
        acks = await asyncio.gather(*(ack(p) for p in order))
    else:
        tasks = []
        for party in order:
            tasks.append(asyncio.create_task(ack(party)))
            await asyncio.sleep(PACE_S)
        acks = await asyncio.gather(*tasks)
    await bench.wait_handled([a.event_id for a in acks], limit_s=60)
    await bench.settle()
    return list(acks)


async def raw_edits(bench: Bench, incident: str, room: str, n: int) -> list[float]:
    """``n`` edits of the board, one after the other as the bot sends them, straight
    through nio: the newest board text as an ``m.replace`` of the board message."""
    board = await bench.outbox_row(board_key(incident, room))
    assert board is not None
    assert board.remote_id is not None
    body = (await sent_boards(bench, incident, room))[-1].payload["body"]
    took = [
        await bench.raw_send(room, build_content(body, replaces=board.remote_id)) for _ in range(n)
    ]
    await bench.settle()
    return took


async def sent_boards(bench: Bench, incident: str, room: str) -> list[OutboxRow]:
    """The board post and its edits that went out, in the order they were accepted."""
    rows = await bench.outbox_rows(
        incident=incident, purposes=("board", "board-edit"), destination=room
    )
    sent = [r for r in rows if r.status == "sent" and r.sent_at is not None]
    return sorted(sent, key=lambda r: (r.sent_at, r.id))


def shows(bench: Bench, body: str, ack: Ack) -> bool:
    """Whether a board text shows ``ack``: the party's line carries that round's count."""
    pledge = bench.app.catalog.text("sv", "board.party.transports", count=ack.count)
    line = re.compile(
        rf"^.*\b{re.escape(NAMES[ack.party])}:.*{re.escape(pledge)}(?!\d)", re.MULTILINE
    )
    return line.search(body) is not None


async def latencies(
    bench: Bench, incident: str, room: str, acks: list[Ack]
) -> tuple[dict[str, list[float]], list[float]]:
    """Per kind of round, seconds from each acknowledgement received to the first board
    accepted that shows it; and the same by the issue's created_at >= handled_at rule."""
    inbox_rows = await bench.inbox_rows(a.event_id for a in acks)
    boards = await sent_boards(bench, incident, room)
    by_kind: dict[str, list[float]] = {"burst": [], "paced": []}
    by_handled_at: list[float] = []
    for ack in acks:
        received = inbox_rows[ack.event_id]
        first = next(
            (
                b
                for b in boards
                if shows(bench, b.payload["body"], ack) and b.sent_at >= received.received_at
            ),
            None,
        )
        assert first is not None, f"no board sent shows {ack}"
        by_kind[ack.kind].append(seconds_between(received.received_at, first.sent_at))
        later = [b for b in boards if b.created_at >= received.handled_at]
        if later:
            by_handled_at.append(
                seconds_between(received.received_at, min(b.sent_at for b in later))
            )
    return by_kind, by_handled_at


async def check_recorded(bench: Bench, incident: str, acks: list[Ack]) -> None:
    """Every acknowledgement handled, audited, answered and kept on the incident."""
    event_ids = sorted(a.event_id for a in acks)
    rows = await bench.inbox_rows(event_ids)
    assert sorted(r.status for r in rows.values()) == ["handled"] * len(acks)
    async with bench.app.db.read() as session:
        recorded = [
            e for e in await audit.entries(session, "ack.recorded") if e.subject == incident
        ]
        assert await audit.verify_chain(session) is None
        stored = await SqlIncidents(session).get(incident)
        failed = (
            (
                await session.execute(
                    select(AuditRow).where(
                        AuditRow.action.in_(("command.crashed", "outbox.refused"))
                    )
                )
            )
            .scalars()
            .all()
        )
    assert not failed, [(e.action, e.detail) for e in failed]
    # The inbound event behind each entry ("source"; "event_id" in older engines).
    assert (
        sorted(e.detail.get("source") or e.detail.get("event_id") for e in recorded) == event_ids
    )
    assert stored is not None
    assert len(stored.acks) == len(acks)
    for event_id in event_ids:
        reply = await bench.outbox_row(f"{event_id}:reply")
        assert reply is not None
        assert reply.status == "sent", (reply.status, reply.last_error)


@pytest.mark.benchmark
async def test_ack_to_board_edit_against_raw_nio_edit(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.perf_counter()
    parties = [pid for pid, _ in REGIONS if pid != INITIATOR]
    room = bench.room(INITIATOR)
    incident = await bench.confirm(INITIATOR, "Benchmark kvittenser")
    await bench.warm()
    await bench.settle()
    await bench.officer(INITIATOR).send_text(room, f"!larma {incident}")
    await bench.wait_sent(incident=incident, purposes=("alarm",), count=len(parties))
    await bench.wait_sent(incident=incident, purposes=("board",), count=1)
    await bench.settle()

    acks: list[Ack] = []
    raw: list[float] = []
    for _ in range(ROUNDS_PER_KIND):  # burst, baseline, paced, baseline, ...
        for kind in ("burst", "paced"):
            acks += await ack_round(bench, parties, 5 + len(acks) // len(parties), kind)
            raw += await raw_edits(bench, incident, room, len(parties) // 2)
    assert len(acks) == 2 * ROUNDS_PER_KIND * len(parties)

    await check_recorded(bench, incident, acks)
    by_kind, by_handled_at = await latencies(bench, incident, room, acks)
    # The initiating duty officer's phone shows the final board: everyone acknowledged.
    last = (await sent_boards(bench, incident, room))[-1]
    everyone = f"{len(parties)}/{len(parties)}"  # "kvitterat 20/20"
    assert everyone in last.payload["body"]
    seen = await bench.officer(INITIATOR).wait_for(
        lambda m: m.event_id == last.remote_id, timeout=30
    )
    assert seen.encrypted
    assert seen.is_edit
    assert seen.new_body == last.payload["body"]

    rows = await bench.outbox_rows(incident=incident, purposes=("board-edit",), destination=room)
    edits_sent = sum(1 for r in rows if r.status == "sent")
    raw_p50, raw_p95 = percentile(raw, 50), percentile(raw, 95)
    everything = by_kind["burst"] + by_kind["paced"]
    figures = {
        kind: {
            "acks": len(v),
            "p50_s": percentile(v, 50),
            "p95_s": percentile(v, 95),
            "max_s": max(v),
            "median_s": median(v),
            "ratio_p95": percentile(v, 95) / raw_p95,
            "samples_s": v,
        }
        for kind, v in (("all", everything), *by_kind.items())
    }
    lines = [
        f"{len(acks)} acknowledgements: {ROUNDS_PER_KIND} burst rounds (20 parties type "
        f"!kvittera N at once) and {ROUNDS_PER_KIND} paced rounds ({PACE_S * 1000:.0f} ms "
        f"apart); board in the initiating room",
    ]
    for kind, label in (("burst", "burst"), ("paced", "paced"), ("all", "all  ")):
        f = figures[kind]
        lines.append(
            f"bot {label} ack received -> board shows it: p50 {ms(f['p50_s'])}, "
            f"p95 {ms(f['p95_s'])}, max {ms(f['max_s'])}  (n={f['acks']}, "
            f"p95/p95_baseline {f['ratio_p95']:.1f})"
        )
    lines += [
        f"raw nio m.replace edit, same room (n={len(raw)}): p50 {ms(raw_p50)}, "
        f"p95 {ms(raw_p95)}, max {ms(max(raw))}",
        f"target p95 <= {TARGET_P95_S * 1000:.0f} ms; board edits written {len(rows)}, "
        f"sent {edits_sent} (a queued edit is rewritten in place, not superseded)",
        f"  issue's rule (first board row created >= ack handled_at): p50 "
        f"{ms(percentile(by_handled_at, 50))}, p95 {ms(percentile(by_handled_at, 95))} "
        f"(n={len(by_handled_at)}; picks a later ack's edit, see module docstring)",
    ]
    publish(
        capsys,
        "ack_board",
        lines,
        {
            "acks": len(acks),
            "rounds_per_kind": ROUNDS_PER_KIND,
            "pace_s": PACE_S,
            "parties": len(parties),
            "setup_s": bench.setup_s,
            "wall_s": time.perf_counter() - began,
            "target_p95_s": TARGET_P95_S,
            "bot": figures,
            "baseline_raw_edit": {
                "p50_s": raw_p50,
                "p95_s": raw_p95,
                "max_s": max(raw),
                "samples_s": raw,
            },
            "board_edits": {"written": len(rows), "sent": edits_sent},
            "issue_rule_created_after_handled": {
                "p50_s": percentile(by_handled_at, 50),
                "p95_s": percentile(by_handled_at, 95),
                "samples": len(by_handled_at),
            },
        },
    )
