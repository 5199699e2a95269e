"""!lägesbild and !logg through the command layer: who may, what each party receives in its
room, by e-mail and by SMS (changes marked, in its language, within the SMS budget), the board's
line, the answers to wrong input, and the audit (real database, fake clock)."""

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
    member,
    room,
)

from bot.clock import FakeClock
from bot.i18n import Catalog
from bridges.sms import gsm7
from bridges.sms.sender import sms_text
from commands.outcome import Outcome, Post
from storage.database import Database

UPPSALA, TIB = room("uppsala"), duty_officer("uppsala")
ALARMED = [p for p in REGIONS if p != "uppsala"] + [NATIONAL, BLOOD_CENTRE]
V1 = "!lägesbild plats=E4 Knivsta norrgående typ=Bussolycka antal=40 (P1=10 P2=30)"


@pytest.fixture
async def polyglot(db: Database, clock: FakeClock, catalog: Catalog) -> Harness:
    """Dalarna speaks Norwegian, Gävleborg English; the coordination room Swedish."""
    config = mellansverige(languages={"dalarna": "nb", "gavleborg": "en"})
    return Harness(db=db, config=config, clock=clock, catalog=catalog)


def reply_of(outcome: Outcome | None) -> str:
    assert outcome is not None
    replies = [p for p in outcome.posts if p.purpose == "reply"]
    assert len(replies) == 1, [p.body for p in outcome.posts]
    return replies[0].body


def by_room(posts: list[Post], purpose: str) -> dict[str, str]:
    found = {p.room_id: p.body for p in posts if p.purpose == purpose}
    assert len(found) == len([p for p in posts if p.purpose == purpose]), "one post per room"
    return found


async def confirm(bot: Harness) -> None:
    await bot.say(UPPSALA, TIB, "!händelse katastrofläge Bussolycka E4")
    bot.take()


async def alarmed(bot: Harness) -> None:
    await confirm(bot)
    await bot.say(UPPSALA, TIB, "!larma")
    bot.take()
    bot.take_deliveries()


# -- publishing versions -------------------------------------------------------------------------


async def test_the_initial_report_reaches_every_party_in_its_language(polyglot: Harness) -> None:
    bot = polyglot
    await alarmed(bot)
    outcome = await bot.say(UPPSALA, TIB, V1)
    assert outcome is not None
    assert outcome.reaction == "✅"
    answer = reply_of(outcome)
    assert answer.splitlines()[:2] == [
        "Lägesbild H-1 v1 skickad till de larmade parterna (8) och samordningen.",
        "Dessutom via e-post till 8 adresser och sms-avisering till 8 nummer.",
    ]
    posts = by_room(bot.take(), "situation-report")
    assert set(posts) == {room(p) for p in ALARMED} | {COORDINATION_ROOM}
    assert posts[room("varmland")] == (
        "📋 INITIAL LÄGESBILD H-1 v1 – Katastrofläge, Region Uppsala\n"
        "04:00, @tib.uppsala\n"
        "Exakt plats: E4 Knivsta norrgående\n"
        "Typ av händelse: Bussolycka\n"
        "Antal skadade: 40 (P1=10 P2=30)"
    )
    assert posts[room("dalarna")].splitlines()[0] == (
        "📋 FØRSTE SITUASJONSBILDE H-1 v1 – Katastrofe, Region Uppsala"
    )
    assert "Antall skadde: 40 (P1=10 P2=30)" in posts[room("dalarna")]
    assert "Number of casualties: 40 (P1=10 P2=30)" in posts[room("gavleborg")]
    deliveries = bot.take_deliveries()
    mails = {d.party_id: d for d in deliveries if d.channel == "email"}
    texts = {d.party_id: d for d in deliveries if d.channel == "sms"}
    assert set(mails) == set(texts) == set(ALARMED)
    assert {d.purpose for d in deliveries} == {"situation-report"}
    assert mails["gavleborg"].body == posts[room("gavleborg")]  # the whole text by e-mail
    assert texts["varmland"].body == (
        "LÄGESBILD H-1 v1 från Region Uppsala. Innehåll: Exakt plats, Typ av händelse, "
        "Antal skadade. Läs den i rummet eller i e-posten."
    )
    assert "{code}" not in texts["varmland"].body  # nothing to answer
    [entry] = await bot.audit_entries("sitrep.version")
    assert entry.subject == "H-1"
    assert entry.detail["version"] == 1
    assert entry.detail["values"] == {
        "location": "E4 Knivsta norrgående",
        "type": "Bussolycka",
        "casualties": "40 (P1=10 P2=30)",
    }
    assert entry.detail["alarmed"] is True
    assert len(entry.detail["rooms"]) == 9


async def test_a_second_version_marks_what_changed(polyglot: Harness) -> None:
    bot = polyglot
    await alarmed(bot)
    await bot.say(UPPSALA, TIB, V1 + " risker=Brand i fordonet")
    bot.take()
    bot.take_deliveries()
    bot.later(7)
    outcome = await bot.say(UPPSALA, TIB, "!sitrep casualties=47 hazards=- access=Via väg 77")
    posts = by_room(bot.take(), "situation-report")
    assert posts[room("orebro")] == (
        "📋 LÄGESBILD H-1 v2 – Katastrofläge, Region Uppsala\n"
        "04:07, @tib.uppsala\n"
        "Ändrat sedan v1: Risker, Framkomlighet, Antal skadade\n"
        "Exakt plats: E4 Knivsta norrgående\n"
        "Typ av händelse: Bussolycka\n"
        "Risker: – (borttaget; var: Brand i fordonet)\n"
        "Framkomlighet: Via väg 77 🆕\n"
        "Antal skadade: 47 ✏️ (var: 40 (P1=10 P2=30))"
    )
    # the command was English: the answer is too, the Swedish rooms stay Swedish
    assert reply_of(outcome).startswith("Situation report H-1 v2 sent to the alarmed parties")
    assert "Changed since v1: Hazards, Access, Number of casualties" in posts[room("gavleborg")]
    sms = {d.party_id: d.body for d in bot.take_deliveries() if d.channel == "sms"}
    assert sms["sormland"] == (
        "LÄGESBILD H-1 v2 från Region Uppsala. Ändrat: Risker, Framkomlighet, Antal skadade. "
        "Läs den i rummet eller i e-posten."
    )
    assert sms["dalarna"].startswith("SITUASJONSBILDE H-1 v2 fra Region Uppsala. Endret:")
    # the board names the current version and its time
    assert "📋 Lägesbild v2 (04:07) – visa med !lägesbild" in bot.boards[("H-1", UPPSALA)]
    assert "📋 Lägesbild v2 (04:07)" in bot.boards[("H-1", COORDINATION_ROOM)]
    # and the status board a person asks for says it too
    status = reply_of(await bot.say(room("dalarna"), duty_officer("dalarna"), "!status"))
    assert "📋 Situasjonsbilde v2 (04:07) – vis med !situasjon" in status


async def test_more_than_three_changes_are_counted_in_the_sms(bot: Harness) -> None:
    await alarmed(bot)
    await bot.say(
        UPPSALA, TIB, "!lägesbild plats=E4 typ=Buss antal=40 risker=Brand vag=77 resurser=3 amb"
    )
    sms = [d.body for d in bot.take_deliveries() if d.channel == "sms"]
    assert sms[0] == (
        "LÄGESBILD H-1 v1 från Region Uppsala. Innehåll: Exakt plats, Typ av händelse, "
        "Risker +3. Läs den i rummet eller i e-posten."
    )


@pytest.mark.parametrize("lang", ["sv", "nb", "en"])
async def test_the_sms_notice_is_gsm7_and_short_for_the_longest_names(
    db: Database, clock: FakeClock, catalog: Catalog, lang: str
) -> None:
    long_region = ("Region Øvre Ærø och Östra Ålands Sjöhälsovård" * 2)[:40]
    config = mellansverige(
        languages=dict.fromkeys([*REGIONS, NATIONAL, BLOOD_CENTRE], lang),
        party_overrides={"uppsala": {"name": long_region}},
    )
    bot = Harness(db=db, config=config, clock=clock, catalog=catalog)
    await alarmed(bot)
    # every field changes: the notice names three and counts the rest
    await bot.say(
        UPPSALA,
        TIB,
        "!sitrep major=ja plats=E4 typ=Buss antal=40 risker=Brand vag=77 resurser=3 ovrigt=x",
    )
    notices = [d.body for d in bot.take_deliveries() if d.channel == "sms"]
    assert len(notices) == len(ALARMED)
    for body in notices:
        assert gsm7.is_gsm7(body), body
        assert gsm7.segments(body) <= 2, body
        assert sms_text(body, 2) == body.strip()  # the outbox cuts nothing


async def test_a_report_before_the_alarm_goes_out_with_the_alarm(bot: Harness) -> None:
    await confirm(bot)
    outcome = await bot.say(UPPSALA, TIB, V1)
    answer = reply_of(outcome)
    assert answer.splitlines()[0] == (
        "Lägesbild H-1 v1 sparad. Ingen part är larmad än: den skickas med larmet (!larma)."
    )
    posts = bot.take()
    assert by_room(posts, "situation-report").keys() == {COORDINATION_ROOM}
    assert bot.take_deliveries() == []
    assert ("H-1", UPPSALA) not in bot.boards  # the board starts with the alarm
    await bot.say(UPPSALA, TIB, "!larma")
    posts = bot.take()
    alarms = [p.room_id for p in posts if p.purpose == "alarm"]
    reports = by_room(posts, "situation-report")
    assert set(reports) == {room(p) for p in ALARMED}  # the coordination room had it already
    for party in ALARMED:  # in each room the alarm first, then the report
        order = [p.purpose for p in posts if p.room_id == room(party)]
        assert order == ["alarm", "situation-report"]
    assert len(alarms) == len(ALARMED)
    kinds = {(d.channel, d.purpose) for d in bot.take_deliveries()}
    assert kinds == {
        ("sms", "alarm"),
        ("email", "alarm"),
        ("sms", "situation-report"),
        ("email", "situation-report"),
    }
    [started] = await bot.audit_entries("chain.started")
    assert started.detail["situation_version"] == 1


async def test_the_current_version_alone_for_the_region_and_the_alarmed(bot: Harness) -> None:
    await alarmed(bot)
    none = reply_of(await bot.say(UPPSALA, TIB, "!lägesbild"))
    assert none.splitlines()[0] == "H-1 har ingen lägesbild än."
    assert "plats= (Exakt plats, krävs)" in none
    await bot.say(UPPSALA, TIB, V1)
    await bot.say(UPPSALA, TIB, "!lägesbild antal=41")
    bot.take()
    bot.take_deliveries()
    shown = reply_of(await bot.say(room("dalarna"), duty_officer("dalarna"), "!lagesbild"))
    assert shown == (
        "📋 LÄGESBILD H-1 v2 – Katastrofläge, Region Uppsala\n"
        "04:00, @tib.uppsala\n"
        "Exakt plats: E4 Knivsta norrgående\n"
        "Typ av händelse: Bussolycka\n"
        "Antal skadade: 41"
    )
    assert reply_of(await bot.say(UPPSALA, TIB, "!lägesbild H-1")) == shown
    assert bot.take_deliveries() == []  # showing sends nothing anywhere


# -- wrong input, and who may --------------------------------------------------------------------


async def test_wrong_fields_get_every_problem_and_the_valid_fields(bot: Harness) -> None:
    await alarmed(bot)
    outcome = await bot.say(
        UPPSALA, TIB, "!lägesbild Bussen brinner plats=E4 url=x risker= antal=40 antal=3"
    )
    assert outcome is not None
    assert outcome.reaction == "❌"
    assert reply_of(outcome).splitlines() == [
        "Lägesbilden för H-1 är inte ändrad:",
        "• ”Bussen brinner” står före första fältet. Skriv fältets namn först, t.ex. "
        "plats=Bussen brinner",
        "• Det finns inget fält ”url=”.",
        "• Risker är tomt: skriv text efter risker= (eller - för att tömma fältet).",
        "• Antal skadade står två gånger.",
        "Fält: sarskild= (Särskild händelse), plats= (Exakt plats, krävs), typ= (Typ av "
        "händelse, krävs), risker= (Risker), framkomlighet= (Framkomlighet), antal= (Antal "
        "skadade, krävs), resurser= (Resurser på plats och behov), ovrigt= (Övrigt)",
        "Så här: !lägesbild plats=… typ=… antal=…",
    ]
    assert [p.purpose for p in bot.take()] == ["reply"]
    [rejected] = await bot.audit_entries("command.rejected")
    assert rejected.detail["reason"] == "invalid_situation_report"
    assert [p["kind"] for p in rejected.detail["problems"]] == [
        "text_before_field",
        "unknown_field",
        "empty_value",
        "repeated_field",
    ]
    assert await bot.audit_entries("sitrep.version") == []


@pytest.mark.parametrize(
    ("command", "lines"),
    [
        (
            "!lägesbild plats=E4",
            ["• Den initiala lägesbilden behöver: Typ av händelse, Antal skadade."],
        ),
        ("!sitrep location=" + "x" * 301, ["• Exact location is 301 characters; at most 300."]),
        (
            "!situasjon sted=-",
            [
                "• Det første situasjonsbildet trenger: Nøyaktig sted, Type hendelse, "
                "Antall skadde."
            ],
        ),
    ],
)
async def test_the_initial_report_problems_in_the_commands_language(
    bot: Harness, command: str, lines: list[str]
) -> None:
    await alarmed(bot)
    body = reply_of(await bot.say(UPPSALA, TIB, command))
    for line in lines:
        assert line in body.splitlines(), body
    assert body.splitlines()[-2].startswith(("Fält: ", "Fields: ", "Felt: "))


async def test_clearing_a_required_field_and_saying_the_same_again(bot: Harness) -> None:
    await alarmed(bot)
    await bot.say(UPPSALA, TIB, V1)
    bot.take()
    cleared = reply_of(await bot.say(UPPSALA, TIB, "!lägesbild typ=-"))
    assert "• Typ av händelse krävs och kan inte tömmas; ändra det i stället." in cleared
    same = reply_of(await bot.say(UPPSALA, TIB, "!lägesbild antal=40 (P1=10 P2=30)"))
    assert same == ("Lägesbild H-1 v1 säger redan så; ingen ny version. Visa den med !lägesbild.")
    assert [p.purpose for p in bot.take()] == ["reply", "reply"]


async def test_only_the_incidents_region_writes_its_report(bot: Harness) -> None:
    await alarmed(bot)
    other = reply_of(
        await bot.say(room("dalarna"), duty_officer("dalarna"), "!lägesbild H-1 plats=x")
    )
    assert other.startswith("H-1 tillhör Region Uppsala.")
    staff = reply_of(await bot.say(UPPSALA, member("uppsala"), "!lägesbild plats=x"))
    assert staff == "Tyvärr, !lägesbild får bara användas av regionens TiB."
    elsewhere = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, "!lägesbild plats=x"))
    assert elsewhere == "!lägesbild fungerar bara i en regions eget rum."
    reasons = [e.detail["reason"] for e in await bot.audit_entries("command.refused")]
    assert reasons == [
        "incident_of_other_region",
        "refusal.who.region_duty_officer",
        "refusal.where.region_room",
    ]
    assert await bot.audit_entries("sitrep.version") == []


async def test_no_report_after_the_stand_down(bot: Harness) -> None:
    await alarmed(bot)
    await bot.say(UPPSALA, TIB, "!avlarma")
    body = reply_of(await bot.say(UPPSALA, TIB, "!lägesbild H-1 " + V1.split(" ", 1)[1]))
    assert body.startswith("H-1 är redan avlarmad (04:00")


async def test_a_healthcare_regions_own_template(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    config = mellansverige(languages={"gavleborg": "en"})
    config = config.model_copy(
        update={
            "situation_report": type(config.situation_report).model_validate(
                {
                    "fields": [
                        {"key": "location", "aliases": ["plats", "sted"], "required": True},
                        {
                            "key": "patients",
                            "names": {"sv": "Patienter", "en": "Patients"},
                            "aliases": ["patienter", "pasienter"],
                            "required": True,
                        },
                    ],
                    "max_field_length": 50,
                }
            )
        }
    )
    bot = Harness(db=db, config=config, clock=clock, catalog=catalog)
    await alarmed(bot)
    wrong = reply_of(await bot.say(UPPSALA, TIB, "!lägesbild antal=3"))
    assert "• Det finns inget fält ”antal=”." in wrong
    assert "Fält: plats= (Exakt plats, krävs), patienter= (Patienter, krävs)" in wrong
    await bot.say(UPPSALA, TIB, "!lägesbild plats=E4 patienter=12 röda")
    posts = by_room(bot.take(), "situation-report")
    assert "Patienter: 12 röda" in posts[room("dalarna")]
    assert "Patients: 12 röda" in posts[room("gavleborg")]  # the configured English name
    assert "Exact location: E4" in posts[room("gavleborg")]


# -- the incident log ----------------------------------------------------------------------------


async def test_anyone_involved_logs_and_outsiders_may_not(polyglot: Harness) -> None:
    bot = polyglot
    await alarmed(bot)
    mine = reply_of(await bot.say(UPPSALA, member("uppsala"), "!logg Beslut: stabsläge 2 h"))
    assert mine == "📝 Loggat i H-1 (rad 1, 04:00)."
    bot.later(5)
    theirs = reply_of(
        await bot.say(room("gavleborg"), member("gavleborg"), "!log 5 ambulances on their way")
    )
    assert theirs == "📝 Logged in H-1 (line 2, 04:05)."  # "5" is text, not an incident id
    coordination = reply_of(await bot.say(COORDINATION_ROOM, COORDINATOR, "!logg Samordning"))
    assert coordination == "📝 Loggat i H-1 (rad 3, 04:05)."
    outsider = reply_of(await bot.say(COORDINATION_ROOM, OUTSIDER, "!logg hej"))
    assert outsider == (
        "Tyvärr, !logg får bara användas av TiB, medarbetare och beredskapssamordnare."
    )
    empty = reply_of(await bot.say(UPPSALA, TIB, "!logg"))
    assert empty.startswith("Det saknas text.")
    entries = await bot.audit_entries("log.entry")
    assert [(e.detail["number"], e.detail["text"], e.detail["party"]) for e in entries] == [
        (1, "Beslut: stabsläge 2 h", "uppsala"),
        (2, "5 ambulances on their way", "gavleborg"),
        (3, "Samordning", None),
    ]
    assert [e.actor for e in entries] == [member("uppsala"), member("gavleborg"), COORDINATOR]
    assert [p.purpose for p in bot.take()] == ["reply"] * 5  # logged, not broadcast


async def test_the_log_stays_open_after_the_stand_down(bot: Harness) -> None:
    await alarmed(bot)
    await bot.say(UPPSALA, TIB, "!avlarma")
    bot.later(60)
    body = reply_of(await bot.say(UPPSALA, TIB, "!logg Lärdom: sms gick långsamt"))
    assert body.startswith("📝 Loggat i H-1 (rad 1, 05:00); händelsen är avslutad")
    by_id = reply_of(await bot.say(room("dalarna"), duty_officer("dalarna"), "!logg H-1 Bra"))
    assert by_id.startswith("📝 Loggat i H-1 (rad 2, 05:00)")


async def test_a_party_outside_the_chain_cannot_log_in_it(
    db: Database, clock: FakeClock, catalog: Catalog
) -> None:
    config = mellansverige()
    bot = Harness(db=db, config=config, clock=clock, catalog=catalog)
    await confirm(bot)  # not alarmed: only Uppsala is involved so far
    refused = reply_of(await bot.say(room("dalarna"), member("dalarna"), "!logg H-1 hej"))
    assert refused == "Tyvärr, du hör inte till någon part i H-1."
    nothing = reply_of(await bot.say(room("dalarna"), member("dalarna"), "!logg hej"))
    assert nothing == "Det finns ingen öppen händelse här att logga i. Ange id, t.ex. H-7."


async def test_several_open_incidents_need_an_id(bot: Harness) -> None:
    await bot.say(UPPSALA, TIB, "!händelse stab Brand")
    await bot.say(UPPSALA, TIB, "!händelse stab Vatten")
    body = reply_of(await bot.say(UPPSALA, TIB, "!logg hej"))
    assert body == "Flera öppna händelser: H-1, H-2. Ange vilken, t.ex. !logg H-2 …"
    assert reply_of(await bot.say(UPPSALA, TIB, "!logg H-2 hej")).startswith("📝 Loggat i H-2")


async def test_time_passes_between_versions_on_the_fake_clock(bot: Harness) -> None:
    await alarmed(bot)
    await bot.say(UPPSALA, TIB, V1)
    bot.clock.advance(timedelta(hours=1, minutes=12))
    await bot.say(UPPSALA, TIB, "!lägesbild antal=52")
    versions = [e.detail for e in await bot.audit_entries("sitrep.version")]
    assert [v["at"] for v in versions] == [
        "2026-11-26T03:00:00+00:00",
        "2026-11-26T04:12:00+00:00",
    ]
    assert versions[1]["changes"] == [
        {"key": "casualties", "kind": "changed", "before": "40 (P1=10 P2=30)", "after": "52"}
    ]
