"""Reminders and escalation at the command level, against a real SQLite database, with the
fake clock moved tick by tick and the due rows fired the way the engine's due pass fires them.

Night of 26 November 2026: Uppsala alarms at 04:00 (Swedish time). Every party's policy:
remind at 04:05, tell Uppsala at 04:10, alert the backup contacts at 04:20, send the alarm
again in the room and by SMS and e-mail at 04:25, and again at 04:35 and 04:45.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from chain_world import (
    BLOOD_CENTRE,
    COORDINATION_ROOM,
    ENGINE,
    NATIONAL,
    REGIONS,
    Harness,
    duty_officer,
    mellansverige,
    room,
)

from bot.clock import FakeClock
from bot.i18n import Catalog
from commands.outcome import Outcome
from storage import incidents as store
from storage.database import Database

UPPSALA = room("uppsala")
TIB = duty_officer("uppsala")
ALARMED = [r for r in REGIONS if r != "uppsala"] + [NATIONAL, BLOOD_CENTRE]

ESCALATION: dict[str, Any] = {
    "steps": [
        {"after_min": 5, "action": "remind"},
        {"after_min": 5, "action": "notify_initiator"},
        {"after_min": 10, "action": "notify_backup"},
        {"after_min": 5, "action": "send", "channels": ["room", "sms", "email"]},
    ],
    "repeat_every_min": 10,
    "max_repeats": 2,
    "pledge_reminder_min": 10,
}
# (minutes after the alarm, step, repeat, action) of every party
SCHEDULE = [
    (5, 0, 0, "remind"),
    (10, 1, 0, "notify_initiator"),
    (20, 2, 0, "notify_backup"),
    (25, 3, 0, "send"),
    (35, 3, 1, "send"),
    (45, 3, 2, "send"),
]


def backup(party_id: str) -> str:
    return f"@reserv.{party_id}:example.org"


def world(escalation: dict[str, Any] | None = None, **overrides: dict[str, Any]) -> Any:
    every = {p: {"backup_contacts": [backup(p)]} for p in [*REGIONS, NATIONAL, BLOOD_CENTRE]}
    for party_id, change in overrides.items():
        every[party_id] = {**every[party_id], **change}
    return mellansverige(escalation=escalation or ESCALATION, party_overrides=every)


@pytest.fixture
def bot(db: Database, clock: FakeClock, catalog: Catalog) -> Harness:
    return Harness(db=db, config=world(), clock=clock, catalog=catalog)


async def alarm(bot: Harness, room_id: str = UPPSALA, tib: str = TIB) -> None:
    await bot.say(room_id, tib, "!händelse katastrofläge Tågurspårning Märsta")
    await bot.say(room_id, tib, "!larma")
    bot.take()
    # The alarm itself went out by SMS and e-mail too; these tests are about what follows.
    bot.take_deliveries()


def fired(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    return [e.detail for o in outcomes for e in o.audit if e.action == "escalation.fired"]


def board(bot: Harness, incident: str = "H-1", where: str = UPPSALA) -> str:
    return bot.boards[(incident, where)]


def line_of(bot: Harness, name: str, incident: str = "H-1") -> str:
    return next(line for line in board(bot, incident).splitlines() if f" {name}" in line[:40])


# -- the schedule ----------------------------------------------------------------------------


async def test_each_step_fires_at_exactly_its_due_tick_in_order_for_every_party(
    bot: Harness,
) -> None:
    await alarm(bot)
    start = bot.clock.now()
    log = []
    while bot.clock.now() < start + timedelta(minutes=60):
        for detail in fired(await bot.tick(0.5, step_s=30)):  # a tick every 30 s
            minutes = (bot.clock.now() - start) / timedelta(minutes=1)
            log.append(
                (minutes, detail["party"], detail["step"], detail["repeat"], detail["action"])
            )
            assert detail["late_by_s"] == 0
            assert detail["late"] is False
    assert log == [
        (minutes, party, step, repeat, action)
        for minutes, step, repeat, action in SCHEDULE
        for party in ALARMED
    ]


async def test_what_each_step_sends(bot: Harness) -> None:
    await alarm(bot)

    await bot.tick(5)  # 04:05 — a reminder in each party's room, to its duty officers
    posts = {p.room_id: p for p in bot.take()}
    assert sorted(posts) == sorted(room(p) for p in ALARMED)
    reminder = posts[room("dalarna")]
    assert (reminder.purpose, reminder.key, reminder.mentions, reminder.incident_id) == (
        "reminder",
        "reminder:H-1:dalarna:step:0:0",
        (duty_officer("dalarna"),),
        "H-1",
    )
    assert reminder.body == (
        "⏰ PÅMINNELSE H-1 – Katastrofläge\n"
        "Region Dalarna har inte kvitterat masskadelarmet från Region Uppsala (04:00): "
        "Tågurspårning Märsta\n"
        "Till Region Dalarna (TiB: @tib.dalarna)\n"
        "Kvittera: skriv !kvittera <antal>, t.ex. !kvittera 5, eller reagera med ✅ på det här "
        "meddelandet."
    )

    await bot.tick(5)  # 04:10 — Uppsala's duty officer hears who is silent
    notices = bot.take()
    assert {p.room_id for p in notices} == {UPPSALA}
    assert [p.mentions for p in notices] == [(TIB,)] * len(ALARMED)
    assert notices[0].body == (
        "⚠️ Region Dalarna har inte kvitterat H-1 efter 10 min.\n"
        "Telefon: +46700001007\n"
        "Nästa: reservkontakter 04:20."
    )

    await bot.tick(10)  # 04:20 — the backup contacts, in the party's room
    backups = {p.room_id: p for p in bot.take()}
    assert backups[room("dalarna")].mentions == (backup("dalarna"),)
    assert backups[room("dalarna")].body.splitlines()[:3] == [
        "📣 H-1 – Katastrofläge: Region Dalarna har inte kvitterat på 20 min.",
        "Region Uppsala har bekräftat en särskild händelse: Tågurspårning Märsta",
        "@reserv.dalarna: ni är reservkontakter för Region Dalarna. Se till att larmet kvitteras.",
    ]

    await bot.tick(5)  # 04:25 — the alarm again, in the room and by SMS and e-mail
    again = {p.room_id: p for p in bot.take()}
    assert again[room("dalarna")].body.splitlines()[:2] == [
        "🔁 Larmet skickas igen: Region Dalarna har inte kvitterat.",
        "🚨 MASSKADELARM H-1 – Katastrofläge",
    ]
    sent = bot.take_deliveries()
    assert sorted(d.channel for d in sent) == ["email"] * len(ALARMED) + ["sms"] * len(ALARMED)
    deliveries = {(d.channel, d.destination): d for d in sent}
    sms = deliveries[("sms", "+46700001007")]
    assert sms.body == (
        "MASSKADELARM H-1 Katastrofläge: Tågurspårning Märsta (Region Uppsala). Region Dalarna "
        "har inte kvitterat sedan 04:00.\nSvara: KVITTERA {code} <antal>"
    )
    assert (sms.party_id, sms.purpose) == ("dalarna", "escalation")
    assert sms.key == "sms:0:H-1:dalarna:step:3:0"
    assert sms.incident_id == "H-1"
    email = deliveries[("email", "tib@dalarna.example")]
    assert email.body.splitlines()[0] == "🚨 MASSKADELARM H-1 – Katastrofläge"
    assert "Eller kvittera i ert rum i Matrix: skriv !kvittera" in email.body
    assert "KVITTERA {code}" in email.body

    audit = (await bot.audit_entries("escalation.fired"))[-1]
    assert audit.actor == ENGINE
    assert audit.subject == "H-1"
    assert audit.detail["action"] == "send"
    assert audit.detail["skipped"] == []


async def test_repeats_stop_at_the_maximum(bot: Harness) -> None:
    await alarm(bot)
    await bot.tick(45)
    assert len(fired(bot.outcomes)) == len(SCHEDULE) * len(ALARMED)
    bot.take()
    bot.take_deliveries()
    assert fired(await bot.tick(180)) == []
    assert bot.take() == []
    assert bot.take_deliveries() == []
    assert [r.status for r in await bot.due_rows()] == ["fired"] * len(SCHEDULE) * len(ALARMED)
    assert line_of(bot, "Region Dalarna") == (
        "⏳ Region Dalarna · påminnelse 04:05 · besked till larmande TiB 04:10 · "
        "reservkontakter 04:20 · nytt larm via rummet/sms/e-post 04:25, 04:35, 04:45 · "
        "inga fler påminnelser"
    )


# -- acknowledgement and stand-down ------------------------------------------------------------


async def test_nothing_fires_for_a_party_after_its_acknowledgement(bot: Harness) -> None:
    await alarm(bot)
    await bot.tick(6)
    reminder = await bot.alarm_event_id(room("dalarna"), "H-1")  # the alarm; and the reminder:
    reminders = [s for s in bot.sent if s.post.purpose == "reminder"]
    on_reminder = next(s.event_id for s in reminders if s.post.room_id == room("dalarna"))
    assert on_reminder != reminder
    bot.take()
    # A ✅ on the reminder acknowledges, like one on the alarm.
    outcome = await bot.react(room("dalarna"), duty_officer("dalarna"), on_reminder)
    assert outcome is not None
    assert outcome.reaction == "✅"
    ack = (await bot.audit_entries("ack.recorded"))[-1]
    assert ack.detail["cancelled_dues"] == ["H-1:dalarna:step:1:0"]
    bot.take()
    outcomes = await bot.tick(120)
    assert "dalarna" not in {d["party"] for d in fired(outcomes) if d["kind"] == "step"}
    assert room("dalarna") not in {p.room_id for p in bot.take() if p.purpose == "reminder"}
    assert {d.destination for d in bot.take_deliveries()}.isdisjoint(
        {"+46700001007", "tib@dalarna.example"}
    )
    statuses = {r.key: r.status for r in await bot.due_rows()}
    assert statuses["H-1:dalarna:step:0:0"] == "fired"
    assert statuses["H-1:dalarna:step:1:0"] == "cancelled"
    assert statuses["H-1:gavleborg:step:3:2"] == "fired"  # the others went on


async def test_nothing_fires_after_a_stand_down(bot: Harness) -> None:
    await alarm(bot)
    await bot.tick(12)
    bot.take()
    await bot.say(UPPSALA, TIB, "!avlarma")
    stood_down = (await bot.audit_entries("incident.stood_down"))[-1]
    assert sorted(stood_down.detail["cancelled_dues"]) == sorted(
        f"H-1:{p}:step:2:0" for p in ALARMED
    )
    bot.take()
    bot.take_deliveries()
    assert await bot.tick(180) == []
    assert bot.take() == []
    assert bot.take_deliveries() == []
    assert {r.status for r in await bot.due_rows()} == {"fired", "cancelled"}
    async with bot.db.read() as session:
        assert await store.all_pending(session) == []
        assert await store.next_due_at(session) is None
    # The board keeps what ran, shows nothing next.
    assert line_of(bot, "Region Dalarna") == (
        "⏳ Region Dalarna · påminnelse 04:05 · besked till larmande TiB 04:10"
    )


async def test_an_acknowledgement_recorded_first_in_the_same_tick_makes_the_reminder_moot(
    bot: Harness,
) -> None:
    await alarm(bot)
    bot.later(5)  # 04:05: the reminders are due, the due pass has read the rows...
    async with bot.db.read() as session:
        rows = [(r.key, r.incident_id) for r in await store.due_now(session, bot.clock.now())]
    assert len(rows) == len(ALARMED)
    # ...and Dalarna's acknowledgement is written before the pass gets to Dalarna.
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera 5")
    bot.take()
    outcomes = {key: await bot.fire(key, incident) for key, incident in rows}
    moot = outcomes["H-1:dalarna:step:0:0"]
    assert moot.posts == []
    assert moot.boards == []
    assert [(e.action, e.detail["reason"], e.detail["was_pending"]) for e in moot.audit] == [
        ("escalation.moot", "acknowledged", False)
    ]
    sent = bot.take()
    assert room("dalarna") not in {p.room_id for p in sent}
    assert len(sent) == len(ALARMED) - 1
    await bot.tick(120)
    assert room("dalarna") not in {p.room_id for p in bot.take()}


# -- the pledge reminder -----------------------------------------------------------------------


async def test_a_short_pledge_gets_one_reminder_and_a_sufficient_one_clears_it(
    bot: Harness,
) -> None:
    await alarm(bot)
    await bot.tick(1)
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera 2")
    alarm_event = await bot.alarm_event_id(room("gavleborg"), "H-1")
    await bot.react(room("gavleborg"), duty_officer("gavleborg"), alarm_event)
    await bot.say(room(NATIONAL), duty_officer(NATIONAL), "!kvittera")
    assert "nästa: påminnelse om åtagande 04:11" in line_of(bot, "Region Dalarna")
    await bot.tick(2)
    await bot.say(room("gavleborg"), duty_officer("gavleborg"), "!kvittera 5")  # 04:03
    gavleborg = (await bot.audit_entries("ack.recorded"))[-1]
    assert gavleborg.detail["cancelled_dues"] == ["H-1:gavleborg:pledge:1:0"]
    bot.take()

    outcomes = await bot.tick(8)  # 04:11
    pledges = [d for d in fired(outcomes) if d["kind"] == "pledge"]
    assert [(d["party"], d["action"]) for d in pledges] == [("dalarna", "pledge_reminder")]
    post = next(p for p in bot.take() if p.room_id == room("dalarna"))
    assert (post.purpose, post.mentions) == ("notice", (duty_officer("dalarna"),))
    assert post.body == (
        "⚠️ Region Dalarna: ert åtagande för H-1 är 2 sekundärtransporter, kravet är minst 5. "
        "Kan ni ställa upp fler: !kvittera <antal>."
    )
    assert line_of(bot, "Region Dalarna") == (
        "✅ Region Dalarna: @tib.dalarna 04:01 i rummet · sekundärtransporter: 2 "
        "⚠️ krav minst 5 · påminnelse om åtagande 04:11"
    )
    later = fired(await bot.tick(60))
    assert [d for d in later if d["party"] in ("dalarna", "gavleborg", NATIONAL)] == []
    assert [p for p in bot.take() if p.room_id in (room("dalarna"), room("gavleborg"))] == []


async def test_a_missing_pledge_is_reminded_too(bot: Harness) -> None:
    await alarm(bot)
    alarm_event = await bot.alarm_event_id(room("dalarna"), "H-1")
    await bot.react(room("dalarna"), duty_officer("dalarna"), alarm_event)
    bot.take()
    await bot.tick(10)
    post = next(p for p in bot.take() if p.room_id == room("dalarna"))
    assert post.body == (
        "⚠️ Region Dalarna: ni har kvitterat H-1 men inte angett sekundärtransporter "
        "(krav minst 5). Ange antal: !kvittera <antal>."
    )


# -- frozen at start ---------------------------------------------------------------------------


async def test_a_running_chain_keeps_the_policy_it_started_with(bot: Harness) -> None:
    await alarm(bot)
    # The operator edits the policy during the incident: remind every minute, nothing else.
    bot.config = world(
        {"steps": [{"after_min": 1, "action": "remind"}], "repeat_every_min": 1, "max_repeats": 30}
    )
    start = bot.clock.now()
    log = []
    for _ in range(60):
        for detail in fired(await bot.tick(1)):
            log.append(((bot.clock.now() - start) // timedelta(minutes=1), detail["action"]))
    assert sorted(set(log)) == [(m, action) for m, _, _, action in SCHEDULE]
    # A chain started after the edit gets the new policy.
    await alarm(bot, room("dalarna"), duty_officer("dalarna"))
    due = [r for r in await bot.due_rows("H-2") if r.status == "pending"]
    assert {r.due_at - bot.clock.now() for r in due} == {timedelta(minutes=1)}


# -- late firings ------------------------------------------------------------------------------


async def test_due_times_missed_while_down_fire_late_in_order_without_shifting_the_schedule(
    bot: Harness,
) -> None:
    await alarm(bot)
    start = bot.clock.now()
    bot.later(27)  # the bot was down from 04:00 to 04:27
    outcomes = await bot.run_due()
    dalarna = [
        (d["step"], d["late_by_s"], d["late"]) for d in fired(outcomes) if d["party"] == "dalarna"
    ]
    assert dalarna == [
        (0, 22 * 60, True),
        (1, 17 * 60, True),
        (2, 7 * 60, True),
        (3, 2 * 60, True),
    ]
    # In order of due time for all parties: every reminder before any notice, etc.
    assert [d["step"] for d in fired(outcomes)] == sorted(d["step"] for d in fired(outcomes))
    # The schedule did not move: the next repeat is due when it always was.
    pending = [r for r in await bot.due_rows() if r.status == "pending"]
    assert {r.due_at for r in pending} == {start + timedelta(minutes=35)}
    rows = {r.key: r for r in await bot.due_rows()}
    assert rows["H-1:dalarna:step:0:0"].late_by_s == 22 * 60
    assert rows["H-1:dalarna:step:0:0"].fired_at == bot.clock.now()

    sent = bot.take()
    reminder = next(p for p in sent if p.key == "reminder:H-1:dalarna:step:0:0")
    assert reminder.body.splitlines()[-1] == ("⚠️ Skickad 22 min för sent (skulle ha gått 04:05).")
    notice = next(p for p in sent if p.key == "initiator:H-1:dalarna:step:1:0")
    assert notice.body.splitlines()[0] == "⚠️ Region Dalarna har inte kvitterat H-1 efter 27 min."
    sms = next(d for d in bot.take_deliveries() if d.destination == "+46700001007")
    assert sms.body.endswith("sedan 04:00. Försenat 2 min.\nSvara: KVITTERA {code} <antal>")
    assert line_of(bot, "Region Dalarna") == (
        "⏳ Region Dalarna · påminnelse 04:05 (sen 22 min) · besked till larmande TiB 04:10 "
        "(sen 17 min) · reservkontakter 04:20 (sen 7 min) · nytt larm via rummet/sms/e-post "
        "04:25 (sen 2 min) · nästa: nytt larm via rummet/sms/e-post 04:35"
    )
    # After the catch-up, the next one fires on time.
    assert [d["late_by_s"] for d in fired(await bot.tick(8))] == [0] * len(ALARMED)


async def test_a_few_seconds_late_is_shown_in_seconds(bot: Harness) -> None:
    await alarm(bot)
    bot.clock.advance(timedelta(minutes=5, seconds=7))
    await bot.run_due()
    reminder = next(p for p in bot.take() if p.room_id == room("dalarna"))
    assert reminder.body.endswith("⚠️ Skickad 7 s för sent (skulle ha gått 04:05).")
    assert "påminnelse 04:05 (sen 7 s)" in line_of(bot, "Region Dalarna")


# -- the due-time rows -------------------------------------------------------------------------


async def test_due_rows_mirror_the_pending_dues(bot: Harness) -> None:
    await alarm(bot)
    start = bot.clock.now()
    async with bot.db.read() as session:
        incident = await store.SqlIncidents(session).get("H-1")
        pending = await store.all_pending(session)
        assert await store.next_due_at(session) == start + timedelta(minutes=5)
        assert await store.due_now(session, start) == []
    assert incident is not None
    assert [(r.key, r.due_at, r.party_id, r.kind, r.step, r.repeat) for r in pending] == [
        (d.key, d.due_at, d.party_id, d.kind, d.step, d.repeat) for d in incident.pending_dues()
    ]
    assert {r.status for r in pending} == {"pending"}

    await bot.tick(5)
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera 3")
    rows = {r.key: r for r in await bot.due_rows()}
    assert (rows["H-1:dalarna:step:0:0"].status, rows["H-1:dalarna:step:0:0"].late_by_s) == (
        "fired",
        0,
    )
    assert rows["H-1:dalarna:step:1:0"].status == "cancelled"
    assert rows["H-1:dalarna:pledge:1:0"].status == "pending"
    assert rows["H-1:gavleborg:step:1:0"].status == "pending"
    async with bot.db.read() as session:
        incident = await store.SqlIncidents(session).get("H-1")
        pending_keys = [r.key for r in await store.all_pending(session)]
    assert incident is not None
    assert pending_keys == [d.key for d in incident.pending_dues()]


async def test_a_trigger_before_the_due_time_changes_nothing(bot: Harness) -> None:
    await alarm(bot)
    bot.later(4)
    outcome = await bot.fire("H-1:dalarna:step:0:0", "H-1")
    assert outcome == Outcome()
    row = next(r for r in await bot.due_rows() if r.key == "H-1:dalarna:step:0:0")
    assert row.status == "pending"


async def test_a_due_time_of_an_unknown_incident_is_moot(bot: Harness) -> None:
    outcome = await bot.fire("H-9:dalarna:step:0:0", "H-9")
    assert [(e.action, e.subject, e.detail["reason"]) for e in outcome.audit] == [
        ("escalation.moot", "H-9", "unknown_incident")
    ]


async def test_a_channel_the_party_has_no_address_for_is_recorded_as_skipped(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    bot = Harness(db=db, config=world(dalarna={"sms": []}), clock=clock, catalog=catalog)
    await alarm(bot)
    outcomes = await bot.tick(25)
    send = next(d for d in fired(outcomes) if d["party"] == "dalarna" and d["action"] == "send")
    assert send["skipped"] == ["sms"]
    assert send["deliveries"] == [{"channel": "email", "destination": "tib@dalarna.example"}]


# -- languages and the board ---------------------------------------------------------------


async def test_reminders_speak_the_party_s_language_and_boards_the_room_s(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    config = mellansverige(
        languages={"dalarna": "nb", "gavleborg": "en"},
        coordination_language="en",
        escalation=ESCALATION,
        party_overrides={
            p: {"backup_contacts": [backup(p)]} for p in [*REGIONS, NATIONAL, BLOOD_CENTRE]
        },
    )
    bot = Harness(db=db, config=config, clock=clock, catalog=catalog)
    await alarm(bot)
    assert "⏳ Region Dalarna · next: reminder 04:05" in board(bot, where=COORDINATION_ROOM)
    await bot.tick(5)
    posts = {p.room_id: p.body for p in bot.take()}
    assert posts[room("dalarna")].startswith(
        "⏰ PÅMINNELSE H-1 – Katastrofe\n"
        "Region Dalarna har ikke kvittert for masseskadevarselet fra Region Uppsala (04:00)"
    )
    assert posts[room("gavleborg")].startswith("⏰ REMINDER H-1 – Disaster\n")
    assert "!ack <number>" in posts[room("gavleborg")]
    assert "⏳ Region Dalarna · reminder 04:05 · next: initiator told 04:10" in board(
        bot, where=COORDINATION_ROOM
    )


async def test_status_shows_the_next_step(bot: Harness) -> None:
    await alarm(bot)
    await bot.tick(7)
    outcome = await bot.say(UPPSALA, TIB, "!status")
    assert outcome is not None
    assert "⏳ Region Dalarna · påminnelse 04:05 · nästa: besked till larmande TiB 04:10" in (
        outcome.posts[0].body
    )
