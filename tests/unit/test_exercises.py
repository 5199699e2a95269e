"""Exercises and test alarms through the command layer and the engine's own writer and delivery
pass (real database, fake clock): ÖVNING/ØVELSE/EXERCISE on every message of every channel in
three languages, their own id series that never acknowledges a live incident, a live incident
winning, the test alarm, who may, bad times, and the report's figures from scripted times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from chain_world import (
    BLOOD_CENTRE,
    COORDINATION_ROOM,
    COORDINATOR,
    NATIONAL,
    OUTSIDER,
    REGIONS,
    Harness,
    duty_officer,
    mellansverige,
    room,
)

from bot.clock import FakeClock
from bot.http.pages import AckPage, PageState, render_ack_page
from bot.i18n import Catalog
from bridges.sms import gsm7
from bridges.sms.sender import sms_text
from commands.outcome import Delivery, Outcome, Post
from storage import stats
from storage.database import Database

UPPSALA, TIB = room("uppsala"), duty_officer("uppsala")
ALARMED = [p for p in REGIONS if p != "uppsala"] + [NATIONAL, BLOOD_CENTRE]
MARKERS = {"sv": "ÖVNING", "nb": "ØVELSE", "en": "EXERCISE"}
LANGS = {"dalarna": "nb", "gavleborg": "en"}


def marker_of_room(room_id: str, langs: dict[str, str] = LANGS, home: str = "sv") -> str:
    for party_id in [*REGIONS, NATIONAL, BLOOD_CENTRE]:
        if room(party_id) == room_id:
            return MARKERS[langs.get(party_id, "sv")]
    return MARKERS[home]  # the coordination room


@pytest.fixture
async def polyglot(db: Database, clock: FakeClock, catalog: Catalog) -> Harness:
    """Dalarna speaks Norwegian, Gävleborg English; the coordination room Swedish."""
    config = mellansverige(languages=LANGS)
    return Harness(db=db, config=config, clock=clock, catalog=catalog)


def reply_of(outcome: Outcome | None) -> str:
    assert outcome is not None
    replies = [p for p in outcome.posts if p.purpose == "reply" and p.key == "reply"]
    assert len(replies) == 1, [p.body for p in outcome.posts]
    return replies[0].body


def assert_marked(
    posts: list[Post], deliveries: list[Delivery], langs: dict[str, str] = LANGS
) -> None:
    """Every room post starts with its room's marker; every SMS (as the gateway gets it,
    fitted to its budget) and every e-mail (subject = first line, and body) with the
    party's."""
    assert posts or deliveries
    for post in posts:
        assert post.body.startswith(marker_of_room(post.room_id, langs) + ":"), post.body
    for delivery in deliveries:
        marker = MARKERS[langs.get(delivery.party_id or "", "sv")]
        assert delivery.marker == marker
        if delivery.channel == "sms":
            text = sms_text(delivery.body)
            assert text.split()[0] == marker + ":", text
            assert gsm7.is_gsm7(text), text
        else:
            assert delivery.body.splitlines()[0].startswith(marker + ":"), delivery.body


async def start(bot: Harness, text: str = "!övning Brand på Akademiska") -> Outcome | None:
    return await bot.say(COORDINATION_ROOM, COORDINATOR, text)


# -- marked on every channel, every template, three languages --------------------------------


async def test_an_exercise_runs_the_real_chain_marked_everywhere(polyglot: Harness) -> None:
    bot = polyglot
    answer = await start(bot)
    body = reply_of(answer)
    assert body.startswith("ÖVNING: övning Ö-1 startad för Region Uppsala"), body
    posts = bot.take()
    deliveries = bot.take_deliveries()
    alarms = {p.room_id: p for p in posts if p.purpose == "alarm"}
    assert set(alarms) == {room(p) for p in ALARMED}
    assert {d.party_id for d in deliveries if d.channel == "sms"} == set(ALARMED)
    assert {d.party_id for d in deliveries if d.channel == "email"} == set(ALARMED)
    assert_marked(posts, deliveries)
    assert "Ö-1" in alarms[room("dalarna")].body
    # the boards too, in each room's language
    boards = {r: b for (i, r), b in bot.boards.items() if i == "Ö-1"}
    assert boards
    for room_id, board in boards.items():
        assert board.startswith(marker_of_room(room_id) + ":"), board

    # a reminder (escalation template) is marked as well
    await bot.tick(6)
    reminders = bot.take()
    assert reminders
    assert_marked(reminders, bot.take_deliveries())

    # acknowledgements by room and ✅ answer marked; the last one ends it (not all here)
    reply = reply_of(await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvitter 2"))
    assert reply.startswith("ØVELSE:"), reply
    event = await bot.alarm_event_id(room("gavleborg"), "Ö-1")
    await bot.react(room("gavleborg"), duty_officer("gavleborg"), event)
    assert_marked(bot.take(), bot.take_deliveries())

    # the stand-down, by the coordinator ending it: marked on every channel
    end = await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning avsluta")
    assert reply_of(end).startswith("ÖVNING: Avslutad: Ö-1.")
    posts = bot.take()
    deliveries = bot.take_deliveries()
    standdowns = [p for p in posts if p.purpose == "standdown"]
    assert {p.room_id for p in standdowns} == {room(p) for p in ALARMED}
    assert {d.party_id for d in deliveries if d.purpose == "standdown"} == set(ALARMED)
    assert_marked(posts, deliveries)
    assert "avsluttet" in next(p.body for p in standdowns if p.room_id == room("dalarna"))
    assert "has ended" in next(p.body for p in standdowns if p.room_id == room("gavleborg"))

    # the report follows in its own transaction: text and chart in the coordination room
    outcomes = await bot.run_due()
    report = next(o for o in outcomes if o.attachments)
    chart = report.attachments[0]
    assert chart.room_id == COORDINATION_ROOM
    assert chart.mimetype == "image/png"
    assert chart.data.startswith(b"\x89PNG")
    assert chart.body.startswith("ÖVNING:")
    text = [p for p in bot.take() if p.room_id == COORDINATION_ROOM]
    assert any(p.body.startswith("ÖVNING: Rapport övning Ö-1") for p in text), text
    audit = await bot.audit_entries("exercise.ended")
    assert audit[-1].detail["exercise"] == "exercise"
    assert audit[-1].detail["reason"] == "ended"


@pytest.mark.parametrize(("lang", "marker"), list(MARKERS.items()))
async def test_every_template_carries_the_marker_in_each_language(
    db: Database, clock: FakeClock, catalog: Catalog, lang: str, marker: str
) -> None:
    """Every party and the coordination room speak ``lang``: alarm, reminder, resent alarm,
    escalation notices, acknowledgement answers and notices, stand-down and report all start
    with its marker, on every channel."""
    config = mellansverige(
        languages=dict.fromkeys([*REGIONS, NATIONAL, BLOOD_CENTRE], lang),
        coordination_language=lang,
    )
    bot = Harness(db=db, config=config, clock=clock, catalog=catalog)
    langs = dict.fromkeys([*REGIONS, NATIONAL, BLOOD_CENTRE], lang)
    if True:  # one language throughout
        for_all = {"sv": "!övning", "nb": "!øvelse", "en": "!exercise"}[lang]
        await bot.say(COORDINATION_ROOM, COORDINATOR, f"{for_all} scenario")
        seen_purposes: set[str] = set()
        posts, deliveries = bot.take(), bot.take_deliveries()
        for p in posts:
            assert p.body.startswith(marker + ":"), p.body
        assert_marked([p for p in posts if p.room_id != COORDINATION_ROOM], deliveries, langs)
        seen_purposes |= {p.purpose for p in posts}
        # every escalation step of the default plan, up to the initiator's notice
        await bot.tick(45)
        posts, deliveries = bot.take(), bot.take_deliveries()
        for p in posts:
            assert p.body.startswith(marker + ":"), p.body
        assert_marked([], deliveries, langs) if deliveries else None
        seen_purposes |= {p.purpose for p in posts} | {d.purpose for d in deliveries}
        # an SMS acknowledgement's notice in the room comes from commands.acknowledge
        ack = {"sv": "!kvittera", "nb": "!kvitter", "en": "!ack"}[lang]
        answer = await bot.say(room("dalarna"), duty_officer("dalarna"), f"{ack} 5")
        assert reply_of(answer).startswith(marker + ":")
        bot.take()
        # the region's duty officer stands it down (!avlarma Ö-1)
        standdown = {"sv": "!avlarma", "nb": "!avvarsle", "en": "!standdown"}[lang]
        await bot.say(UPPSALA, TIB, f"{standdown} Ö-1")
        posts, deliveries = bot.take(), bot.take_deliveries()
        assert {p.purpose for p in posts} >= {"standdown", "reply"}
        for p in posts:
            assert p.body.startswith(marker + ":"), p.body
        assert_marked([], deliveries, langs)
        outcomes = await bot.run_due()
        for p in bot.take():
            assert p.body.startswith(marker + ":"), p.body
        for o in outcomes:
            for a in o.attachments:
                assert a.body.startswith(marker + ":")
        for (incident_id, _room), board in bot.boards.items():
            assert incident_id == "Ö-1"
            assert board.startswith(marker + ":"), board
        assert {"alarm", "escalation"} <= seen_purposes, seen_purposes
        bot.take_deliveries()


# -- the test alarm ------------------------------------------------------------------------------


async def test_a_test_alarm_asks_only_for_an_acknowledgement(bot: Harness) -> None:
    answer = await bot.say(COORDINATION_ROOM, COORDINATOR, "!larmprov")
    assert "larmprov T-1" in reply_of(answer)
    posts = bot.take()
    deliveries = bot.take_deliveries()
    alarms = [p for p in posts if p.purpose == "alarm"]
    assert len(alarms) == len(ALARMED)
    for alarm in alarms:
        assert alarm.body.startswith("ÖVNING: Larmprov T-1 från Region Uppsala"), alarm.body
        assert "sekundärtransport" not in alarm.body
    sms = [d for d in deliveries if d.channel == "sms"]
    assert all(sms_text(d.body).startswith("ÖVNING: Larmprov T-1") for d in sms)
    # a bare acknowledgement is all it takes: no pledge reminder follows
    for party_id in ALARMED:
        await bot.say(room(party_id), duty_officer(party_id), "!kvittera")
    bot.take()
    bot.take_deliveries()
    ended = await bot.audit_entries("exercise.ended")
    assert [e.detail["reason"] for e in ended] == ["completed"]
    assert ended[0].subject == "T-1"
    assert ended[0].detail["exercise"] == "test"
    await bot.run_due()
    report = [p for p in bot.take() if p.room_id == COORDINATION_ROOM]
    assert any("Rapport larmprov T-1" in p.body for p in report)
    assert await bot.tick(120) == []  # nothing more: no reminders, no pledge reminders


# -- never confusable with a live incident -------------------------------------------------------


async def test_a_live_incident_ends_the_exercise_and_no_code_crosses(bot: Harness) -> None:
    await start(bot)
    bot.take()
    bot.take_deliveries()
    # Dalarna acknowledges the exercise, then a live incident comes
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera Ö-1 3")
    bot.take()
    confirmed = await bot.say(UPPSALA, TIB, "!händelse katastrofläge Bussolycka E4")
    assert confirmed is not None
    posts = bot.take()
    assert not bot.take_deliveries(), "no stand-down of the exercise on top of a live alarm"
    notice = [p for p in posts if p.room_id == COORDINATION_ROOM and p.purpose == "notice"]
    assert len(notice) == 1
    assert notice[0].body.startswith("ÖVNING: övning Ö-1 är avbruten: skarp händelse H-1")
    assert not [p for p in posts if p.purpose == "standdown"]
    await bot.say(UPPSALA, TIB, "!larma")
    live = [p for p in bot.take() if p.purpose == "alarm"]
    assert live
    assert not any(p.body.startswith("ÖVNING") for p in live)
    live_sms = [d for d in bot.take_deliveries() if d.channel == "sms"]
    assert live_sms
    assert not any("ÖVNING" in d.body for d in live_sms)
    # the exercise's id acknowledges nothing live; the live one nothing of the exercise
    answer = reply_of(await bot.say(room("gavleborg"), duty_officer("gavleborg"), "!kvittera Ö-1"))
    assert "Ö-1" in answer
    assert "H-1" not in answer
    assert answer.startswith("ÖVNING:")
    async with bot.db.read() as session:
        ctx = bot._context(session)
        live_incident = await ctx.incidents.get("H-1")
        exercise = await ctx.incidents.get("Ö-1")
    assert live_incident.first_ack("gavleborg") is None
    assert exercise.first_ack("gavleborg") is None
    answer = reply_of(await bot.say(room("gavleborg"), duty_officer("gavleborg"), "!kvittera"))
    assert "H-1" in answer
    assert not answer.startswith("ÖVNING")
    bot.take()
    bot.take_deliveries()
    # no exercise reminder reaches anyone after the live alarm
    await bot.tick(60)
    for post in bot.take():
        if post.room_id != COORDINATION_ROOM:  # where the exercise's report goes
            assert post.incident_id != "Ö-1"
            assert not post.body.startswith("ÖVNING:"), post.body
    for delivery in bot.take_deliveries():
        assert delivery.incident_id != "Ö-1"
    # and a new exercise is refused while the live one is open
    refused = reply_of(await start(bot))
    assert "skarp händelse pågår (H-1)" in refused
    exercises = await bot.audit_entries("exercise.ended")
    assert exercises[0].detail["reason"] == "live_incident"
    assert exercises[0].detail["by"] == "H-1"
    assert exercises[0].detail["exercise"] == "exercise"
    live_audit = await bot.audit_entries("incident.confirmed")
    assert "exercise" not in live_audit[0].detail
    # separate in the metrics: larmkedja_decisions counts live, larmkedja_exercise_decisions
    async with bot.db.read() as session:
        watched = ("chain.started", "ack.recorded")
        assert await stats.audit_counts(session, watched) == {
            "chain.started": 1,
            "ack.recorded": 1,
        }
        assert await stats.audit_counts(session, watched, exercises=True) == {
            "chain.started": 1,
            "ack.recorded": 1,
        }


async def test_exercise_and_live_ids_are_separate_series(bot: Harness) -> None:
    await bot.say(UPPSALA, TIB, "!händelse stabsläge Övningsfri")
    await bot.say(UPPSALA, TIB, "!avlarma H-1")
    await start(bot)
    await bot.say(COORDINATION_ROOM, COORDINATOR, "!övning avsluta")
    await bot.say(COORDINATION_ROOM, COORDINATOR, "!larmprov")
    bot.take()
    bot.take_deliveries()
    started = [e.subject for e in await bot.audit_entries("exercise.started")]
    assert started == ["Ö-1", "T-1"]
    await bot.say(UPPSALA, TIB, "!händelse stabsläge Nästa")
    confirmed = [e.subject for e in await bot.audit_entries("incident.confirmed")]
    assert confirmed == ["H-1", "H-2"]
    bot.take()


# -- who may, and bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "who", "answer"),
    [
        (
            COORDINATION_ROOM,
            OUTSIDER,
            "Tyvärr, !övning får bara användas av beredskapssamordnarna",
        ),
        (COORDINATION_ROOM, TIB, "Tyvärr, !övning får bara användas av beredskapssamordnarna"),
        (UPPSALA, COORDINATOR, "!övning fungerar bara i samordningsrummet."),
        (UPPSALA, TIB, "!övning fungerar bara i samordningsrummet."),
    ],
)
async def test_only_coordinators_in_their_room(
    bot: Harness, where: str, who: str, answer: str
) -> None:
    for text in ("!övning", "!övning schemalägg 2027-01-12 09:00", "!övning avboka S-1"):
        body = reply_of(await bot.say(where, who, text))
        assert body.startswith(answer), body
    assert await bot.audit_actions() == ["command.refused"] * 3
    assert not [p for p in bot.take() if p.purpose == "alarm"]
    assert not bot.take_deliveries()


@pytest.mark.parametrize(
    ("lang", "typed", "expected"),
    [
        ("sv", "igår 09:00", "”igår 09:00” har redan varit."),
        ("sv", "31 februari 09:00", "”31 februari” finns inte i kalendern."),
        ("sv", "2026-11-25 09:00", "”2026-11-25 09:00” har redan varit."),
        ("sv", "imorgon", "Klockslag saknas efter ”imorgon”."),
        ("sv", "snart", "”snart” är ingen tid."),
        ("sv", "2027-01-12 25:00", "”2027-01-12 25:00” är inget klockslag (00:00–23:59)."),
        ("sv", "2039-01-12 09:00", "ligger mer än fem år fram"),
        ("nb", "i går 09:00", "«i går 09:00» har allerede vært."),
        ("nb", "31 februar 09:00", "«31 februar» finnes ikke i kalenderen."),
        ("en", "yesterday 09:00", "“yesterday 09:00” has already passed."),
        ("en", "31 february 09:00", "“31 february” is not in the calendar."),
    ],
)
async def test_bad_times_get_a_clear_answer(
    db: Database, clock: FakeClock, catalog: Catalog, lang: str, typed: str, expected: str
) -> None:
    bot = Harness(
        db=db, config=mellansverige(coordination_language=lang), clock=clock, catalog=catalog
    )
    name = {"sv": "!övning schemalägg", "nb": "!øvelse planlegg", "en": "!exercise schedule"}
    body = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, f"{name[lang]} {typed}"))
    assert expected in body, body
    assert await bot.audit_actions() == ["command.rejected"]
    async with bot.db.read() as session:
        assert await bot._context(session).schedules.planned() == []


# -- the report's figures from scripted acknowledgement times ------------------------------------


async def test_report_figures_and_trend_from_scripted_times(bot: Harness) -> None:
    async def exercise(times: dict[str, float]) -> list[Outcome]:
        await start(bot)
        for party_id, minutes in sorted(times.items(), key=lambda t: t[1]):
            bot.clock.set(started_at + timedelta(minutes=minutes))
            await bot.say(room(party_id), duty_officer(party_id), "!kvittera 5")
        bot.clock.set(started_at + timedelta(minutes=61))
        outcomes = await bot.run_due()
        bot.take_deliveries()
        return outcomes

    started_at = bot.clock.now()
    await exercise({"dalarna": 2, "gavleborg": 4, "varmland": 10})
    first = [p.body for p in bot.take() if p.room_id == COORDINATION_ROOM and "Rapport" in p.body]
    assert len(first) == 1
    report = first[0]
    assert "Avslutad: tiden gick ut." in report
    assert "median 4 min 0 s, längst 10 min 0 s. Första av sitt slag" in report
    assert "Region Dalarna: 2 min 0 s i rummet (per kanal: rummet 2 min 0 s)" in report
    assert "Region Värmland: 10 min 0 s i rummet" in report
    assert "Region Västmanland: ingen kvittens · påminnelser 1, eskaleringar 0" in report
    assert (
        "Svarade aldrig: Region Västmanland, Region Örebro län, Region Sörmland, Socialstyrelsen"
        in report
    )

    started_at = bot.clock.now() + timedelta(hours=1)
    bot.clock.set(started_at)
    outcomes = await exercise({"dalarna": 1, "gavleborg": 3, "varmland": 5, "orebro": 20})
    second = [p.body for p in bot.take() if p.room_id == COORDINATION_ROOM and "Rapport" in p.body]
    assert len(second) == 1
    assert (
        "median 3 min 0 s, längst 20 min 0 s. De 1 föregående (Ö-1): median 4 min 0 s, "
        "längst 10 min 0 s." in second[0]
    )
    chart = next(a for o in outcomes for a in o.attachments)
    assert chart.filename == "kvittenstider-Ö-2.png"
    reported = await bot.audit_entries("exercise.reported")
    assert [r.detail["median_s"] for r in reported] == [240.0, 180.0]
    assert [r.detail["worst_s"] for r in reported] == [600.0, 1200.0]
    # !rapport Ö-2 shows it again, with the chart
    again = await bot.say(COORDINATION_ROOM, COORDINATOR, "!rapport Ö-2")
    assert again is not None
    assert any(p.body.startswith("ÖVNING: Rapport övning Ö-2") for p in again.posts)
    assert [a.mimetype for a in again.attachments if a.key == "exercise-chart"] == ["image/png"]
    bot.take()


@pytest.mark.parametrize(("lang", "marker"), list(MARKERS.items()))
def test_the_link_page_of_an_exercise_is_marked(catalog: Catalog, lang: str, marker: str) -> None:
    for state in (PageState.CONFIRM, PageState.DONE, PageState.CLOSED):
        page = render_ack_page(
            AckPage(state=state, language=lang, incident_id="Ö-1", party_id="dalarna", token="t"),
            catalog,
        )
        assert f"<h1>{marker}: " in page
        assert f"<title>{marker}: " in page
        live = render_ack_page(
            AckPage(state=state, language=lang, incident_id="H-1", party_id="dalarna", token="t"),
            catalog,
        )
        assert marker not in live
