"""The exercise part of the after-action report: time to acknowledge, measured, and its trend.

When an exercise or test alarm ends (and on ``!rapport Ö-3``) the coordination room gets, on
top of the ordinary report: per party the time to acknowledge (from the alarm, and per channel
from the moment that channel's alarm left the bot), the reminders and escalations it needed,
its delivery problems and pledge, who never answered, and the trend against the previous
exercises of the same kind (median and worst), with a chart of the same (:mod:`.chart`).

The figures come from the report's own timeline (:func:`commands.report.build_timeline`);
the previous exercises' from their stored incidents (first acknowledgement against the alarm),
which is all the trend needs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.domain import Incident
from commands.render import Voice
from commands.render.exercise import kind_name, reason_text
from commands.report.timeline import Kind, PartyFigures, Timeline
from commands.report.wording import duration, transport_name


@dataclass(frozen=True)
class Spread:
    """Median and worst time to acknowledge of one exercise (over the parties that did)."""

    median: timedelta | None
    worst: timedelta | None
    unanswered: int

    @classmethod
    def of(cls, times: Sequence[timedelta | None]) -> Spread:
        answered = sorted(t for t in times if t is not None)
        return cls(
            statistics.median_low(answered) if answered else None,
            answered[-1] if answered else None,
            sum(1 for t in times if t is None),
        )


def times_to_ack(incident: Incident) -> dict[str, timedelta | None]:
    """Each party's time from the alarm to its first acknowledgement (None: never)."""
    if incident.chain is None or incident.alarmed_at is None:
        return {}
    out: dict[str, timedelta | None] = {}
    for member in incident.chain.parties:
        first = incident.first_ack(member.id)
        out[member.id] = (
            None if first is None else max(timedelta(0), first.at - incident.alarmed_at)
        )
    return out


@dataclass(frozen=True)
class Trend:
    """This exercise against the previous ones (newest first)."""

    current: Spread
    previous: tuple[Spread, ...]
    previous_ids: tuple[str, ...]
    # Per party: its previous times (those that answered), for the chart.
    by_party: dict[str, tuple[timedelta, ...]]

    @property
    def previous_median(self) -> timedelta | None:
        medians = [s.median for s in self.previous if s.median is not None]
        return statistics.median_low(medians) if medians else None

    @property
    def previous_worst(self) -> timedelta | None:
        worst = [s.worst for s in self.previous if s.worst is not None]
        return max(worst) if worst else None


def trend(incident: Incident, previous: Sequence[Incident]) -> Trend:
    current = times_to_ack(incident)
    earlier = [times_to_ack(p) for p in previous]
    by_party: dict[str, tuple[timedelta, ...]] = {}
    for party_id in current:
        by_party[party_id] = tuple(
            t for times in earlier if (t := times.get(party_id)) is not None
        )
    return Trend(
        current=Spread.of(list(current.values())),
        previous=tuple(Spread.of(list(t.values())) for t in earlier),
        previous_ids=tuple(p.id for p in previous),
        by_party=by_party,
    )


def _steps(timeline: Timeline, party_id: str) -> tuple[int, int]:
    """(reminders, escalations) that fired for a party: a reminder in its room, or anything
    more (the alarm again on other channels, its backup, the initiating duty officer)."""
    reminders = escalations = 0
    for event in timeline.events:
        if event.kind != Kind.ESCALATION or event.party_id != party_id:
            continue
        if event.data.get("action") == "remind":
            reminders += 1
        else:
            escalations += 1
    return reminders, escalations


def _channels(party: PartyFigures, voice: Voice) -> str:
    return voice.join(
        voice.text(
            "exercise.report.channel",
            channel=transport_name(c.channel, voice),
            elapsed=duration(c.time_to_ack, voice),
        )
        for c in party.channels
        if c.time_to_ack is not None
    )


def render_party_line(timeline: Timeline, party: PartyFigures, voice: Voice) -> str:
    reminders, escalations = _steps(timeline, party.party_id)
    if party.acknowledged_at is None:
        line = voice.text("exercise.report.never", party=party.name)
    else:
        line = voice.text(
            "exercise.report.party",
            party=party.name,
            elapsed=duration(party.time_to_ack, voice),
            channel=voice.channel(party.acknowledged_via or ""),
        )
        channels = _channels(party, voice)
        if channels:
            line += voice.text("exercise.report.channels", channels=channels)
    line += voice.text("exercise.report.steps", reminders=reminders, escalations=escalations)
    if party.problems:
        line += voice.text("report.party.problems", count=party.problems)
    if party.required > 0:
        line += voice.text(
            "report.party.short" if party.short else "report.party.pledged",
            pledged=party.pledged if party.pledged is not None else 0,
            required=party.required,
        )
    return line


def render_trend(found: Trend, voice: Voice) -> str:
    current = found.current
    if not found.previous:
        return voice.text(
            "exercise.report.trend.first",
            median=duration(current.median, voice),
            worst=duration(current.worst, voice),
        )
    return voice.text(
        "exercise.report.trend",
        median=duration(current.median, voice),
        worst=duration(current.worst, voice),
        count=len(found.previous),
        previous_median=duration(found.previous_median, voice),
        previous_worst=duration(found.previous_worst, voice),
        incidents=voice.join(found.previous_ids),
    )


def render_exercise_report(timeline: Timeline, found: Trend, voice: Voice) -> str:
    """The coordination room's report of an exercise: who answered how fast, what it took."""
    incident = timeline.incident
    record = incident.exercise
    f = timeline.figures
    never = [p.name for p in timeline.parties if p.acknowledged_at is None]
    lines: list[str | None] = [
        voice.text(
            "exercise.report.header",
            kind=kind_name(voice, incident.kind.value),
            incident=incident.id,
            region=incident.region_name,
        ),
        voice.text("board.headline", headline=incident.headline),
        reason_text(
            voice,
            record.ended_reason if record is not None else None,
            record.ended_by if record is not None else None,
        ),
        voice.text(
            "report.acknowledged",
            acknowledged=f.acknowledged,
            total=f.parties,
            elapsed=duration(f.time_to_complete, voice),
        )
        if f.time_to_complete is not None
        else voice.text(
            "report.acknowledged.incomplete", acknowledged=f.acknowledged, total=f.parties
        ),
        render_trend(found, voice),
        voice.text("exercise.report.never_answered", parties=voice.join(never)) if never else None,
        voice.text(
            "report.problems", problems=f.problems, fallbacks=f.fallbacks, reminders=f.reminders
        ),
        voice.text("report.parties") if timeline.parties else None,
    ]
    return voice.lines(*lines, *(render_party_line(timeline, p, voice) for p in timeline.parties))
