"""Planned and recurring exercises on the fake clock: they fire exactly when due (across the
daylight-saving changes of Europe/Stockholm and month ends), the coordinators are reminded
before (room and e-mail), a cancelled plan stays silent, one missed while the bot was down is
not started late, and a plan survives a restart (its rows are the database's)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from chain_world import COORDINATION_ROOM, COORDINATOR, ENGINE, Harness, mellansverige

from bot.clock import FakeClock
from bot.config import ConfigError, parse_config
from bot.domain.exercise import (
    PlanStatus,
    Recurrence,
    RecurrenceError,
    When,
    WhenProblem,
    WhenRejected,
    read_when,
)
from bot.i18n import Catalog
from commands.exercise.recurring import plan_next
from commands.outcome import Outcome
from storage.database import Database

COORDINATOR_MAIL = "beredskap@regionuppsala.example"
EXERCISES = {"email": [COORDINATOR_MAIL]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def reply_of(outcome: Outcome | None) -> str:
    assert outcome is not None
    replies = [p for p in outcome.posts if p.purpose == "reply"]
    assert len(replies) == 1, [p.body for p in outcome.posts]
    return replies[0].body


def harness(db: Database, clock: FakeClock, catalog: Catalog, **exercises: Any) -> Harness:
    config = mellansverige(exercises={**EXERCISES, **exercises})
    return Harness(db=db, config=config, clock=clock, catalog=catalog)


async def plan(bot: Harness) -> None:
    """The due pass's first step: the recurring schedules' next occurrences become plans."""
    async with bot.db.write() as session:
        outcome = await plan_next(bot._context(session))
        if outcome is not None:
            await bot._record(session, "schedules", ENGINE, outcome)


async def statuses(bot: Harness) -> dict[str, str]:
    async with bot.db.read() as session:
        ctx = bot._context(session)
        out = {}
        for number in range(1, 10):
            found = await ctx.schedules.get(number)
            if found is not None:
                out[found.id] = found.status.value
        return out


# -- recurrence rules (python-dateutil) in local wall-clock time ------------------------------


def test_first_tuesday_at_nine_across_daylight_saving() -> None:
    rule = Recurrence("FREQ=MONTHLY;BYDAY=1TU", time(9, 0), "Europe/Stockholm")
    after = utc(2027, 2, 15)
    found = []
    for _ in range(4):
        after = rule.next_after(after)
        assert after is not None
        found.append(after)
    # 09:00 local each time: 08:00 UTC in winter, 07:00 UTC in summer (from 28 March 2027)
    assert found == [
        utc(2027, 3, 2, 8),
        utc(2027, 4, 6, 7),
        utc(2027, 5, 4, 7),
        utc(2027, 6, 1, 7),
    ]
    # and back to winter time after 31 October 2027
    assert rule.next_after(utc(2027, 10, 15)) == utc(2027, 11, 2, 8)


def test_month_ends_and_leap_days() -> None:
    last = Recurrence("FREQ=MONTHLY;BYMONTHDAY=-1", time(13, 30), "Europe/Stockholm")
    after, days = utc(2027, 12, 1), []
    for _ in range(4):
        after = last.next_after(after)
        assert after is not None
        days.append(after.date())
    assert days == [date(2027, 12, 31), date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31)]
    # the 31st of every month skips the months without one (RFC 5545), never moves to the 1st
    thirty_first = Recurrence("FREQ=MONTHLY;BYMONTHDAY=31", time(9, 0), "Europe/Stockholm")
    assert thirty_first.next_after(utc(2027, 3, 31, 12)) == utc(2027, 5, 31, 7)


def test_clock_change_nights() -> None:
    nightly = Recurrence("FREQ=DAILY", time(2, 30), "Europe/Stockholm")
    # 02:30 does not exist on 28 March 2027: it moves forward by the gap, to 03:30 CEST
    assert nightly.next_after(utc(2027, 3, 27, 12)) == utc(2027, 3, 28, 1, 30)
    # 02:30 exists twice on 31 October 2027: the first (CEST)
    assert nightly.next_after(utc(2027, 10, 30, 12)) == utc(2027, 10, 31, 0, 30)
    assert nightly.next_after(utc(2027, 10, 31, 0, 30)) == utc(2027, 11, 1, 1, 30)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=MONTHLY;BYMONTHDAY=30;BYMONTH=2", "never fires"),
        ("FREQ=HOURLY", "FREQ must be YEARLY, MONTHLY, WEEKLY or DAILY"),
        ("FREQ=WEEKLY;BYHOUR=9", "give the time of day as 'time'"),
        ("FREQ=MONTHLY;BYDAY=1XX", "not an RFC 5545 rule"),
        ("FREQ=MONTHLY;UNTIL=20200101T000000", "never fires"),
    ],
)
def test_a_schedule_that_cannot_fire_is_refused_by_the_config(rule: str, reason: str) -> None:
    data = mellansverige().model_dump(mode="json", exclude_none=True)
    del data["matrix"]["password"]
    data["matrix"]["password"] = {"value": "not-a-secret"}
    data["bridges"]["secret"] = {"value": "unit-test-bridge-secret"}
    data["exercises"] = {"schedules": [{"id": "prov", "rule": rule, "time": "09:00"}]}
    with pytest.raises((ConfigError, RecurrenceError, ValueError)) as problem:
        parse_config(data)
    assert reason in str(problem.value)


# -- typed times ---------------------------------------------------------------------------------


def test_typed_times_are_local_and_strict() -> None:
    now = utc(2027, 3, 27, 12)
    found = read_when(["2027-03-28", "02:30"], now=now)
    assert found == When(utc(2027, 3, 28, 1, 30), 2)  # in the gap: forward by the hour
    assert read_when(["imorgon", "kl", "09.15", "Brand"], now=now) == When(
        utc(2027, 3, 28, 7, 15), 3
    )
    assert read_when(["31", "januari", "09:00"], now=now) == When(utc(2028, 1, 31, 8), 3)
    assert read_when(["29", "februari", "09:00"], now=now) == When(utc(2028, 2, 29, 8), 3)
    rejected = read_when(["30", "februari", "2028", "09:00"], now=now)
    assert isinstance(rejected, WhenRejected)
    assert rejected.problem is WhenProblem.NO_SUCH_DATE
    assert read_when(["idag", "11:00"], now=now) == WhenRejected(WhenProblem.PAST, 2)


# -- a plan, its reminders and its start ---------------------------------------------------------


async def test_a_scheduled_exercise_is_reminded_and_fires_on_time(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    bot = harness(db, clock, catalog)
    clock.set(utc(2026, 11, 26, 10))
    body = reply_of(
        await bot.say(
            COORDINATION_ROOM, COORDINATOR, "!övning schemalägg 2026-11-28 09:00 Strömavbrott"
        )
    )
    assert body.splitlines() == [
        "Planerad som S-1 (tid i Europe/Stockholm):",
        "S-1 2026-11-28 09:00: övning, Region Uppsala, hela kedjan, oaviserad. "
        "Scenario: Strömavbrott",
        "Samordnarna påminns 1 d 0 h, 1 h 0 min före.",
        "Avboka: !övning avboka S-1",
    ]
    listed = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning lista"))
    assert listed.splitlines()[0] == "Planerat (1):"
    bot.take()

    # a day before: the coordinators in their room and by e-mail
    await bot.tick(60 * 22 - 1)
    assert bot.take() == []
    await bot.tick(1)
    reminder = bot.take()
    assert [p.room_id for p in reminder] == [COORDINATION_ROOM]
    assert reminder[0].body.startswith("ÖVNING: Påminnelse: övning S-1 körs 2026-11-28 09:00")
    assert "Avboka: !övning avboka S-1" in reminder[0].body
    mails = bot.take_deliveries()
    assert [(d.channel, d.destination) for d in mails] == [("email", COORDINATOR_MAIL)]
    assert mails[0].body == reminder[0].body
    assert clock.now() == utc(2026, 11, 27, 8)

    # an hour before, then at 09:00 local (08:00 UTC) the chain is alarmed
    await bot.tick(60 * 23)
    assert "om 1 h 0 min" in bot.take()[0].body
    bot.take_deliveries()
    await bot.tick(59)
    assert bot.take() == []
    await bot.tick(1)
    posts = bot.take()
    alarms = [p for p in posts if p.purpose == "alarm"]
    assert len(alarms) == 8
    assert all(p.body.startswith("ÖVNING:") for p in posts)
    assert clock.now() == utc(2026, 11, 28, 8)
    started = await bot.audit_entries("exercise.started")
    assert started[0].subject == "Ö-1"
    assert started[0].detail["schedule"] == "S-1"
    assert await statuses(bot) == {"S-1": "started"}
    bot.take_deliveries()


async def test_a_cancelled_plan_stays_silent(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    bot = harness(db, clock, catalog)
    await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning schemalägg imorgon 09:00")
    answer = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning avboka S-1"))
    assert answer.startswith("Avbokad: S-1")
    again = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning avboka S-1"))
    assert again == "S-1 är inte planerad längre (redan startad, avbokad eller missad)."
    unknown = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning avboka S-9"))
    assert unknown == "Det finns ingen plan S-9."
    bot.take()
    assert await bot.tick(60 * 48, step_s=600) == [] or not bot.take()
    assert bot.take_deliveries() == []
    assert await statuses(bot) == {"S-1": "cancelled"}
    assert "Inga övningar" in reply_of(
        await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning lista")
    )


async def test_a_plan_missed_while_the_bot_was_down_asks_instead_of_starting(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    bot = harness(db, clock, catalog)
    clock.set(utc(2026, 11, 26, 10))
    await bot.say(COORDINATION_ROOM, COORDINATOR, "!larmprov schemalägg 2026-11-26 15:00")
    bot.take()
    # the bot is down from now until 17:20 local: nothing fires meanwhile
    clock.set(utc(2026, 11, 26, 16, 20))
    restarted = harness(db, clock, catalog)  # a new process on the same database
    await restarted.run_due()
    posts = restarted.take()
    assert [p.room_id for p in posts] == [COORDINATION_ROOM]
    assert posts[0].body == (
        "ÖVNING: larmprov S-1 skulle ha startat 2026-11-26 15:00, men boten var nere "
        "(2 h 20 min sedan). Den startas inte i efterhand. Starta nu med !larmprov eller "
        "planera en ny."
    )
    assert [d.destination for d in restarted.take_deliveries()] == [COORDINATOR_MAIL]
    assert await statuses(restarted) == {"S-1": "missed"}
    assert await restarted.audit_actions() == [
        "exercise.planned",
        "exercise.reminder_late",
        "exercise.missed",
    ]


async def test_a_plan_survives_a_restart_and_fires_on_time(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    bot = harness(db, clock, catalog, reminders_before_min=[30])
    clock.set(utc(2026, 11, 26, 10))
    await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning schemalägg 2026-11-26 12:00")
    bot.take()
    restarted = harness(db, clock, catalog, reminders_before_min=[30])
    await restarted.tick(29)
    assert restarted.take() == []
    await restarted.tick(1)
    assert restarted.take()[0].body.startswith("ÖVNING: Påminnelse: övning S-1")
    restarted.take_deliveries()
    await restarted.tick(30)
    assert len([p for p in restarted.take() if p.purpose == "alarm"]) == 8
    assert clock.now() == utc(2026, 11, 26, 11)
    restarted.take_deliveries()


async def test_a_recurring_schedule_plans_its_next_occurrence_once(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    schedule = {
        "id": "manadsprov",
        "kind": "test",
        "rule": "FREQ=MONTHLY;BYDAY=1TU",
        "time": "09:00",
    }
    bot = harness(db, clock, catalog, schedules=[schedule])
    clock.set(utc(2026, 11, 26, 10))
    await plan(bot)
    await plan(bot)  # idempotent: one plan per occurrence
    assert await statuses(bot) == {"S-1": "planned"}
    listed = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, "!larmprov lista"))
    assert "S-1 2026-12-01 09:00: larmprov" in listed
    bot.take()
    # the first Tuesday of December, 09:00 CET = 08:00 UTC; reminders a day and an hour before
    await bot.tick((utc(2026, 12, 1, 8) - clock.now()).total_seconds() / 60 - 1, step_s=300)
    reminders = [p.body for p in bot.take()]
    assert len(reminders) == 2
    assert all(r.startswith("ÖVNING: Påminnelse: larmprov S-1") for r in reminders)
    bot.take_deliveries()
    await bot.tick(1)
    alarms = [p for p in bot.take() if p.purpose == "alarm"]
    assert len(alarms) == 8
    assert alarms[0].body.startswith("ÖVNING: Larmprov T-1")
    assert clock.now() == utc(2026, 12, 1, 8)
    bot.take_deliveries()
    await plan(bot)
    async with bot.db.read() as session:
        planned = await bot._context(session).schedules.planned()
    assert [(p.id, p.at, p.status) for p in planned] == [
        ("S-2", utc(2027, 1, 5, 8), PlanStatus.PLANNED)
    ]


def test_no_reminder_in_the_past(catalog: Catalog) -> None:
    """A plan made less than a day ahead gets only the reminders still to come."""
    from bot.domain.exercise import PlannedExercise

    plan = PlannedExercise(
        number=1,
        kind="exercise",
        at=utc(2027, 1, 1, 10),
        region_id="uppsala",
        created_by=COORDINATOR,
        reminders=(timedelta(days=1), timedelta(hours=1)),
    )
    assert [when for _, when in plan.reminder_times()] == [
        utc(2026, 12, 31, 10),
        utc(2027, 1, 1, 9),
    ]
