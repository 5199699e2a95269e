"""Verifying the audit log: the whole hash chain, and the anchors published outside it.

:func:`storage.audit.verify_chain` answers "intact or not"; this module says *what* is wrong
with the first entry that breaks the chain, as an operator needs it (``larmkedja audit
verify``): an entry edited in place, entries deleted (with or without the later ones
renumbered), an entry inserted, entries reordered. Each entry's hash covers its sequence
number, its content and the previous entry's hash, so:

- edited: the entry no longer matches its own hash, but follows its predecessor;
- deleted: a sequence number is missing, or an entry matches its hash only under a higher
  number and the entry it was written after is gone;
- inserted: an entry is written after the same entry as the one after it, or an entry matches
  its hash only under a lower number;
- reordered: an entry matches its hash under another number and the entry it was written
  after is still there, somewhere else.

What the chain cannot show on its own: someone who rewrites an entry *and* recomputes every
hash after it, or who cuts off the newest entries. Anchors (:mod:`commands.anchor`), the head
posted into the coordination room, catch both: an anchored entry whose hash is no longer the
published one, or that no longer exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import AuditHead
from storage.audit import GENESIS, _digest, entries

# The machine-readable part of an anchor post (commands/anchor.py, catalogue "audit.anchor").
_TOKEN = re.compile(r"\[larmkedja-audit seq=([0-9]{1,18}) sha256=([0-9a-f]{64})\]")


@dataclass(frozen=True)
class Anchor:
    """A published head: entry ``seq`` had hash ``digest`` when it was posted."""

    seq: int
    digest: str
    posted_at: datetime | None = None  # the homeserver's timestamp of the message
    event_id: str | None = None


def find_anchors(
    text: str, *, posted_at: datetime | None = None, event_id: str | None = None
) -> list[Anchor]:
    """Every anchor token in ``text`` (a message body, or a whole exported history)."""
    return [
        Anchor(int(m.group(1)), m.group(2), posted_at, event_id) for m in _TOKEN.finditer(text)
    ]


# How far from its place a moved entry is looked for (by recomputing its hash).
_SEARCH = 8


class Row(Protocol):
    seq: int
    at: object
    actor: str
    action: str
    subject: str | None
    detail: dict
    prev_hash: str
    hash: str


class BreakKind:
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    REWRITTEN = "rewritten"  # consistent in itself, but not what an anchor published
    TRUNCATED = "truncated"  # an anchor names an entry that is no longer there


@dataclass(frozen=True)
class ChainBreak:
    seq: int  # the first entry that is not as it was written (or the first missing one)
    kind: str
    explanation: str  # one line for the operator, in English (a tool's output, not a chat)


@dataclass(frozen=True)
class Verification:
    entries: int
    head: AuditHead | None
    first_break: ChainBreak | None
    anchors_checked: int = 0
    anchors_matching: int = 0
    anchor_break: ChainBreak | None = None
    checked_anchors: tuple[Anchor, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.first_break is None and self.anchor_break is None


def _hash_as(row: Row, seq: int, prev_hash: str) -> str:
    return _digest(prev_hash, seq, row.at, row.actor, row.action, row.subject, row.detail)  # type: ignore[arg-type]


def _consistent(row: Row) -> bool:
    return row.hash == _hash_as(row, row.seq, row.prev_hash)


def _written_as(row: Row, by_hash: dict[str, Row]) -> int | None:
    """The sequence number under which ``row`` matches its own hash, if one nearby does."""
    after = by_hash.get(row.prev_hash)
    candidates = [] if after is None else [after.seq + 1]
    candidates += [row.seq + d for k in range(1, _SEARCH + 1) for d in (k, -k)]
    if row.prev_hash == GENESIS:
        candidates.insert(0, 1)
    return next(
        (s for s in candidates if s >= 1 and row.hash == _hash_as(row, s, row.prev_hash)), None
    )


def _first_break(rows: Sequence[Row]) -> ChainBreak | None:
    by_hash = {r.hash: r for r in rows}
    prev_hash = GENESIS
    expected = 1
    for i, row in enumerate(rows):
        if row.seq > expected:
            missing = (
                f"entry {expected}"
                if row.seq == expected + 1
                else f"entries {expected}-{row.seq - 1}"
            )
            return ChainBreak(
                expected, BreakKind.DELETED, f"{missing} deleted (the next one is {row.seq})"
            )
        consistent = _consistent(row)
        linked = row.prev_hash == prev_hash
        following = rows[i + 1] if i + 1 < len(rows) else None
        if consistent and linked:
            prev_hash, expected = row.hash, expected + 1
            continue
        if linked and following is not None and following.prev_hash == row.prev_hash:
            return ChainBreak(
                row.seq,
                BreakKind.INSERTED,
                f"entry {row.seq} inserted: entry {following.seq} was written right after "
                f"entry {row.seq - 1}",
            )
        if not consistent and linked:
            return ChainBreak(
                row.seq,
                BreakKind.EDITED,
                f"entry {row.seq} edited: its content no longer matches its hash",
            )
        previous = rows[i - 1] if i > 0 else None
        if consistent:  # intact itself, but written after something else
            if previous is not None and row.prev_hash == previous.prev_hash:
                return ChainBreak(
                    previous.seq,
                    BreakKind.INSERTED,
                    f"entry {previous.seq} inserted: entry {row.seq} was written right after "
                    f"entry {previous.seq - 1}",
                )
            written_after = by_hash.get(row.prev_hash)
            if written_after is not None:
                return ChainBreak(
                    row.seq,
                    BreakKind.REORDERED,
                    f"entry {row.seq} reordered: it was written after entry "
                    f"{written_after.seq}, not after entry {row.seq - 1}",
                )
            seq = previous.seq if previous is not None else row.seq
            return ChainBreak(
                seq,
                BreakKind.EDITED,
                f"entry {seq} edited and re-hashed: entry {row.seq} was written after a "
                "different entry",
            )
        original = _written_as(row, by_hash)
        if original is None:
            return ChainBreak(
                row.seq,
                BreakKind.EDITED,
                f"entry {row.seq} edited: it matches its hash under no number and does not "
                "follow its predecessor",
            )
        written_after = by_hash.get(row.prev_hash)
        if written_after is not None and written_after.seq != original - 1:
            return ChainBreak(
                row.seq,
                BreakKind.REORDERED,
                f"entry {row.seq} reordered: it was written as entry {original}, after the "
                f"entry now numbered {written_after.seq}",
            )
        if original > row.seq:
            return ChainBreak(
                row.seq,
                BreakKind.DELETED,
                f"entries deleted before entry {row.seq}: it was written as entry {original} "
                "and the later ones renumbered",
            )
        return ChainBreak(
            original,
            BreakKind.INSERTED,
            f"{row.seq - original} entr{'y' if row.seq - original == 1 else 'ies'} inserted "
            f"at {original}: entry {row.seq} was written as entry {original}",
        )
    return None


def _anchor_break(rows: Sequence[Row], anchors: Iterable[Anchor]) -> tuple[ChainBreak | None, int]:
    by_seq = {r.seq: r for r in rows}
    last = rows[-1].seq if rows else 0
    matching = 0
    problems: list[ChainBreak] = []
    for anchor in sorted(anchors, key=lambda a: a.seq):
        row = by_seq.get(anchor.seq)
        when = f" (posted {anchor.posted_at.isoformat()})" if anchor.posted_at else ""
        if row is None:
            kind = BreakKind.TRUNCATED if anchor.seq > last else BreakKind.DELETED
            problems.append(
                ChainBreak(
                    anchor.seq,
                    kind,
                    f"entry {anchor.seq} is gone, but an anchor{when} published it "
                    f"(the log ends at {last})",
                )
            )
        elif row.hash != anchor.digest:
            problems.append(
                ChainBreak(
                    anchor.seq,
                    BreakKind.REWRITTEN,
                    f"entry {anchor.seq} does not have the hash an anchor{when} published: "
                    "the log was rewritten at or before it",
                )
            )
        else:
            matching += 1
    return (problems[0] if problems else None), matching


def verify_rows(rows: Sequence[Row], anchors: Iterable[Anchor] = ()) -> Verification:
    """Check ``rows`` (in sequence order) and, if given, the published ``anchors``."""
    anchors = tuple(anchors)
    last = rows[-1] if rows else None
    anchor_break, matching = _anchor_break(rows, anchors)
    return Verification(
        entries=len(rows),
        head=None if last is None else AuditHead(last.seq, last.hash, last.at),  # type: ignore[arg-type]
        first_break=_first_break(rows),
        anchors_checked=len(anchors),
        anchors_matching=matching,
        anchor_break=anchor_break,
        checked_anchors=anchors,
    )


async def verify_audit(session: AsyncSession, anchors: Iterable[Anchor] = ()) -> Verification:
    """The whole audit log of the database, and the anchors found outside it."""
    return verify_rows(await entries(session), anchors)
