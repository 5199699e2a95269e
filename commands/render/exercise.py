"""Texts of exercises and test alarms, from catalogue fragments only.

The marker (ÖVNING / ØVELSE / EXERCISE) is not added here: every message tied to an exercise
gets it from :mod:`commands.exercise.marking` when it is written, whichever renderer made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain import ChainParty, Incident, IncidentKind
from bot.domain.exercise import EndReason, PlannedExercise, PlanStatus, WhenProblem
from commands.render.bridges import email_reply_lines, sms_reply_line
from commands.render.voice import Voice

_KIND_KEYS = {
    IncidentKind.EXERCISE.value: "exercise.kind.exercise",
    IncidentKind.TEST.value: "exercise.kind.test",
}
_REASON_KEYS = {
    EndReason.COMPLETED: "exercise.reason.completed",
    EndReason.DEADLINE: "exercise.reason.deadline",
    EndReason.STOOD_DOWN: "exercise.reason.stood_down",
    EndReason.ENDED: "exercise.reason.ended",
    EndReason.LIVE_INCIDENT: "exercise.reason.live_incident",
}
_STATUS_KEYS = {
    PlanStatus.PLANNED: "exercise.status.planned",
    PlanStatus.STARTED: "exercise.status.started",
    PlanStatus.CANCELLED: "exercise.status.cancelled",
    PlanStatus.MISSED: "exercise.status.missed",
    PlanStatus.SKIPPED: "exercise.status.skipped",
}
WHEN_KEYS = {
    WhenProblem.UNREADABLE: "exercise.when.unreadable",
    WhenProblem.NO_TIME: "exercise.when.no_time",
    WhenProblem.NO_SUCH_DATE: "exercise.when.no_such_date",
    WhenProblem.NO_SUCH_TIME: "exercise.when.no_such_time",
    WhenProblem.PAST: "exercise.when.past",
    WhenProblem.TOO_FAR: "exercise.when.too_far",
}
#: An example time in answers: always the same, so it reads as an example.
EXAMPLE_TIME = "2027-01-12 09:00"


def kind_name(voice: Voice, kind: str) -> str:
    return voice.text(_KIND_KEYS.get(kind, "exercise.kind.exercise"))


def reason_text(voice: Voice, reason: EndReason | None, by: str | None) -> str:
    if reason is None:
        return voice.text("exercise.reason.running")
    return voice.text(_REASON_KEYS[reason], by=voice.person(by) if by else "?")


def status_name(voice: Voice, status: PlanStatus) -> str:
    return voice.text(_STATUS_KEYS[status])


def local_stamp(when: datetime, zone: str) -> str:
    """``2027-01-12 09:00``: a planned time with its date, local to ``zone``."""
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _parties(voice: Voice, names: Sequence[str]) -> str:
    return voice.join(names) if names else voice.text("exercise.parties.all")


def _announced(voice: Voice, announced: bool) -> str:
    return voice.text("exercise.announced" if announced else "exercise.unannounced")


def render_plan(
    plan: PlannedExercise,
    voice: Voice,
    *,
    zone: str,
    region: str,
    party_names: Sequence[str],
) -> str:
    """One planned exercise on one line: id, when, what, where, who."""
    return voice.text(
        "exercise.plan",
        schedule=plan.id,
        when=local_stamp(plan.at, zone),
        kind=kind_name(voice, plan.kind),
        region=region,
        parties=_parties(voice, party_names),
        announced=_announced(voice, plan.announced),
        scenario=plan.scenario or "-",
    )


def render_scheduled(
    plan: PlannedExercise,
    voice: Voice,
    *,
    zone: str,
    region: str,
    party_names: Sequence[str],
    cancel_command: str,
) -> str:
    reminders = [voice.duration(b) for b, _ in plan.reminder_times()]
    return voice.lines(
        voice.text("exercise.scheduled", schedule=plan.id, zone=zone),
        render_plan(plan, voice, zone=zone, region=region, party_names=party_names),
        voice.text("exercise.scheduled.reminders", before=voice.join(reminders))
        if reminders
        else None,
        voice.text("exercise.cancel_how", command=cancel_command, schedule=plan.id),
    )


def render_plan_list(lines: Sequence[str], voice: Voice) -> str:
    if not lines:
        return voice.text("exercise.list.none")
    return voice.lines(voice.text("exercise.list.header", count=len(lines)), *lines)


def render_reminder(
    plan: PlannedExercise,
    voice: Voice,
    *,
    now: datetime,
    zone: str,
    region: str,
    party_names: Sequence[str],
    cancel_command: str,
) -> str:
    """To the coordinators: what will run, when, and how to cancel."""
    return voice.lines(
        voice.text(
            "exercise.reminder",
            schedule=plan.id,
            kind=kind_name(voice, plan.kind),
            when=local_stamp(plan.at, zone),
            left=voice.duration(max(timedelta(0), plan.at - now)),
        ),
        render_plan(plan, voice, zone=zone, region=region, party_names=party_names),
        voice.text("exercise.cancel_how", command=cancel_command, schedule=plan.id),
    )


def render_announcement(plan: PlannedExercise, voice: Voice, *, zone: str, region: str) -> str:
    """To a party of an announced exercise, in advance."""
    return voice.text(
        "exercise.announcement",
        kind=kind_name(voice, plan.kind),
        when=local_stamp(plan.at, zone),
        region=region,
        scenario=plan.scenario or "-",
    )


def render_missed(
    plan: PlannedExercise, voice: Voice, *, zone: str, late: timedelta, command: str
) -> str:
    return voice.text(
        "exercise.missed",
        schedule=plan.id,
        kind=kind_name(voice, plan.kind),
        when=local_stamp(plan.at, zone),
        delay=voice.delay(late),
        command=command,
    )


def render_skipped(plan: PlannedExercise, voice: Voice, *, zone: str, blocking: str) -> str:
    return voice.text(
        "exercise.skipped",
        schedule=plan.id,
        kind=kind_name(voice, plan.kind),
        when=local_stamp(plan.at, zone),
        incidents=blocking,
    )


def render_exercise_started(
    incident: Incident, voice: Voice, *, deadline: datetime, end_command: str
) -> str:
    """The coordinators' line on top of who was alarmed where."""
    return voice.text(
        "exercise.started",
        kind=kind_name(voice, incident.kind.value),
        incident=incident.id,
        region=incident.region_name,
        deadline=voice.time(deadline),
        command=end_command,
    )


# -- the test alarm: a short text asking only for an acknowledgement ----------------------------


def render_test_alarm(
    incident: Incident, member: ChainParty, voice: Voice, *, ack_command: str
) -> str:
    return voice.lines(
        voice.text("testalarm.header", incident=incident.id, region=incident.region_name),
        voice.text("testalarm.ask", party=member.party.name, command=ack_command),
    )


def render_test_alarm_sms(incident: Incident, member: ChainParty, voice: Voice) -> str:
    text = voice.text(
        "testalarm.sms",
        incident=incident.id,
        region=incident.region_name,
        party=member.party.name,
    )
    return voice.lines(text, sms_reply_line(member, voice))


def render_test_alarm_email(
    incident: Incident, member: ChainParty, voice: Voice, *, ack_command: str, with_link: bool
) -> str:
    return voice.lines(
        voice.text("testalarm.header", incident=incident.id, region=incident.region_name),
        voice.text("testalarm.email", party=member.party.name),
        "",
        *email_reply_lines(member, voice, ack_command=ack_command, with_link=with_link),
    )


def render_live_ended(incident: Incident, voice: Voice, *, live_id: str) -> str:
    return voice.text(
        "exercise.live_ended",
        kind=kind_name(voice, incident.kind.value),
        incident=incident.id,
        live=live_id,
    )


def render_exercise_ended(incident: Incident, voice: Voice) -> str:
    """The parties' stand-down of an exercise (not after a live incident ended it)."""
    return voice.lines(
        voice.text(
            "exercise.ended",
            kind=kind_name(voice, incident.kind.value),
            incident=incident.id,
            region=incident.region_name,
        ),
        voice.text("exercise.ended.thanks"),
    )


def render_exercise_ended_sms(incident: Incident, voice: Voice) -> str:
    return voice.text(
        "exercise.ended.sms", kind=kind_name(voice, incident.kind.value), incident=incident.id
    )
