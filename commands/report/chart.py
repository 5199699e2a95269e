"""The exercise report's chart: time to acknowledge per party, this exercise against the last.

Drawn with matplotlib's Agg backend (off-screen, no display, thread-safe enough for one figure
at a time in the bot's process) into PNG bytes, which the coordination room gets as an
encrypted ``m.image``. The figure's labels come from the catalogue like any text.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)

PNG = "image/png"


@dataclass(frozen=True)
class ChartRow:
    """One party: its time this exercise (None: never answered) and its earlier times."""

    name: str
    current: timedelta | None
    previous: Sequence[timedelta]


@dataclass(frozen=True)
class ChartLabels:
    title: str
    minutes: str
    current: str
    previous: str
    never: str


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


def render_chart(rows: Sequence[ChartRow], labels: ChartLabels) -> bytes:
    """A horizontal bar per party (this exercise) with the median of its previous times as a
    marker; a party that never answered is labelled so, with no bar."""
    figure = Figure(figsize=(8, 0.5 * max(len(rows), 2) + 1.5), dpi=100)
    axes = figure.subplots()
    names = [r.name for r in rows]
    positions = list(range(len(rows)))
    current = [_minutes(r.current) if r.current is not None else 0.0 for r in rows]
    axes.barh(positions, current, color="#2b6cb0", label=labels.current)
    prior = [
        (i, _minutes(sorted(r.previous)[(len(r.previous) - 1) // 2]))
        for i, r in enumerate(rows)
        if r.previous
    ]
    if prior:
        axes.scatter(
            [m for _, m in prior],
            [i for i, _ in prior],
            marker="D",
            color="#dd6b20",
            zorder=3,
            label=labels.previous,
        )
    for i, r in enumerate(rows):
        if r.current is None:
            axes.text(0, i, " " + labels.never, va="center", color="#c53030")
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xlabel(labels.minutes)
    axes.set_title(labels.title)
    axes.legend(loc="best")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
