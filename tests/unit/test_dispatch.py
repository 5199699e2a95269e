"""The command layer seen from the engine: names, languages, usage errors, refusals.

Each test types commands into rooms of Mellansverige through the engine stand-in and reads
what the bot answers, what it would send, and what it audits.
"""

from __future__ import annotations

import pytest
from chain_world import (
    BOT,
    COORDINATION_ROOM,
    COORDINATOR,
    OUTSIDER,
    Harness,
    duty_officer,
    mellansverige,
    member,
    room,
)

from bot.clock import FakeClock
from bot.i18n import Catalog
from commands.arguments import MAX_COUNT
from commands.outcome import Outcome
from commands.registry import build_registry
from storage.database import Database

FULL_WIDTH = str.maketrans("０１２３４５６７８９＋", "0123456789+")
UPPSALA_TIB = duty_officer("uppsala")
UPPSALA = room("uppsala")


@pytest.fixture
async def polyglot(db: Database, clock: FakeClock, catalog: Catalog) -> Harness:
    """Dalarna speaks Norwegian, Gävleborg and the coordination room English."""
    config = mellansverige(
        languages={"dalarna": "nb", "gavleborg": "en"}, coordination_language="en"
    )
    return Harness(db=db, config=config, clock=clock, catalog=catalog)


def only_reply(outcome: Outcome | None) -> str:
    assert outcome is not None
    assert len(outcome.posts) == 1, [p.body for p in outcome.posts]
    post = outcome.posts[0]
    assert post.purpose == "reply"
    return post.body


async def confirm_and_alarm(bot: Harness, region: str = "uppsala") -> None:
    await bot.say(room(region), duty_officer(region), "!händelse förstärkningsläge Bussolycka")
    await bot.say(room(region), duty_officer(region), "!larma")
    bot.take()


# -- what is and is not a command ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body", ["hej", "", "   ", "!", "! hjälp", "!!!", "vi larmar snart !larma", "ok!"]
)
async def test_text_that_is_not_a_command_is_ignored(bot: Harness, body: str) -> None:
    assert await bot.say(UPPSALA, UPPSALA_TIB, body) is None
    assert await bot.audit_actions() == []


async def test_the_bot_never_answers_itself(bot: Harness) -> None:
    assert await bot.say(UPPSALA, BOT, "!hjälp") is None


async def test_a_reply_fallback_before_the_command_is_skipped(bot: Harness) -> None:
    body = "> <@tib.uppsala:example.org> 🚨 MASSKADELARM H-1\n\n!hjälp"
    assert "!händelse" in only_reply(await bot.say(UPPSALA, UPPSALA_TIB, body))


# -- names in three languages, case and diacritics -----------------------------------------------


SWEDISH_HELP = "larmkedja – kommandon för dig:"
NORWEGIAN_HELP = "larmkedja – kommandoer for deg:"
ENGLISH_HELP = "larmkedja – commands for you:"


@pytest.mark.parametrize(
    ("name", "lang"),
    [
        ("hjälp", "sv"),
        ("HJÄLP", "sv"),
        ("Hjalp", "sv"),
        ("hjelp", "nb"),
        ("HJELP", "nb"),
        ("help", "en"),
        ("HELP", "en"),
        ("händelse", "sv"),
        ("handelse", "sv"),
        ("hendelse", "nb"),
        ("Incident", "en"),
        ("larma", "sv"),
        ("varsle", "nb"),
        ("ALARM", "en"),
        ("kvittera", "sv"),
        ("kvitter", "nb"),
        ("ack", "en"),
        ("avlarma", "sv"),
        ("avvarsle", "nb"),
        ("StandDown", "en"),
        ("lägesbild", "sv"),
        ("lagesbild", "sv"),
        ("situasjon", "nb"),
        ("SITREP", "en"),
        ("log", "en"),
        ("report", "en"),
        # every language calls it status: the name says nothing, the room decides
        ("status", None),
        ("STATUS", None),
        ("rapport", None),  # Swedish and Norwegian
        ("logg", None),  # Swedish and Norwegian
        # not a command, nor a near miss of one
        ("xyzzy", None),
        ("larm", None),
        ("övning", "sv"),
        ("øvelse", "nb"),
        ("självtest", None),
        ("", None),
    ],
)
def test_the_language_of_a_command_name(name: str, lang: str | None) -> None:
    registry = build_registry()
    assert registry.language_of(name) == lang
    assert registry.language_of("!" + name) == lang


@pytest.mark.parametrize(
    ("name", "first_line"),
    [
        ("hjälp", SWEDISH_HELP),
        ("HJÄLP", SWEDISH_HELP),
        ("Hjalp", SWEDISH_HELP),
        ("hjelp", NORWEGIAN_HELP),
        ("help", ENGLISH_HELP),
        ("HELP", ENGLISH_HELP),
    ],
)
async def test_help_answers_to_every_name(bot: Harness, name: str, first_line: str) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!" + name))
    assert body.splitlines()[0] == first_line


SWEDISH_CONFIRMED = (
    "Särskild händelse H-1 bekräftad: Stabsläge, ”Brand”. Starta larmkedjan med !larma H-1."
)
ENGLISH_CONFIRMED = (
    "Major incident H-1 confirmed: Staff alert, “Brand”. Start the alarm chain with !alarm H-1."
)
NORWEGIAN_CONFIRMED = (
    "Særskilt hendelse H-1 bekreftet: Stab, «Brand». Start varslingskjeden med !varsle H-1."
)


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("!händelse stabsläge Brand", SWEDISH_CONFIRMED),
        ("!handelse stabslage Brand", SWEDISH_CONFIRMED),
        ("!HÄNDELSE Stabsläge Brand", SWEDISH_CONFIRMED),
        # the level may be spelled in any language; the command name picks the reply's
        ("!händelse staff Brand", SWEDISH_CONFIRMED),
        ("!incident staff Brand", ENGLISH_CONFIRMED),
        ("!Incident STAB Brand", ENGLISH_CONFIRMED),
        ("!hendelse stab Brand", NORWEGIAN_CONFIRMED),
        ("!HENDELSE stabslage Brand", NORWEGIAN_CONFIRMED),
    ],
)
async def test_incident_in_any_language_and_without_diacritics(
    bot: Harness, command: str, answer: str
) -> None:
    assert only_reply(await bot.say(UPPSALA, UPPSALA_TIB, command)) == answer
    assert await bot.audit_actions() == ["incident.confirmed"]
    # whatever the command's language, the incident is the same and Uppsala's board is Swedish
    status = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!status"))
    assert status.startswith("🚨 H-1 · Stabsläge · Region Uppsala\n”Brand”\n")


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("stabsläge", "Stabsläge"),
        ("staff", "Stabsläge"),
        ("stab", "Stabsläge"),
        ("förstärkningsläge", "Förstärkningsläge"),
        ("forstarkningslage", "Förstärkningsläge"),
        ("reinforcement", "Förstärkningsläge"),
        ("forsterkning", "Förstärkningsläge"),
        ("katastrofläge", "Katastrofläge"),
        ("disaster", "Katastrofläge"),
        ("katastrofe", "Katastrofläge"),
    ],
)
async def test_every_spelling_of_every_level_in_any_room(
    bot: Harness, level: str, shown: str
) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, f"!händelse {level} Brand i Uppsala"))
    assert f"{shown}, ”Brand i Uppsala”" in body


@pytest.mark.parametrize(
    ("alarm", "ack", "status", "standdown"),
    [
        ("!larma", "!kvittera 5", "!status", "!avlarma"),
        ("!alarm", "!ack 5", "!STATUS", "!standdown"),
        ("!varsle", "!kvitter 5", "!Status", "!avvarsle"),
    ],
)
async def test_chain_commands_in_every_language(
    bot: Harness, alarm: str, ack: str, status: str, standdown: str
) -> None:
    await bot.say(UPPSALA, UPPSALA_TIB, "!händelse stabsläge Brand")
    outcome = await bot.say(UPPSALA, UPPSALA_TIB, alarm)
    assert outcome is not None
    assert len([p for p in outcome.posts if p.purpose == "alarm"]) == 8
    assert "H-1" in only_reply(await bot.say(room("dalarna"), duty_officer("dalarna"), ack))
    assert "✅ Region Dalarna" in only_reply(await bot.say(UPPSALA, UPPSALA_TIB, status))
    outcome = await bot.say(UPPSALA, UPPSALA_TIB, standdown)
    assert outcome is not None
    assert len([p for p in outcome.posts if p.purpose == "standdown"]) == 8


async def test_a_shared_name_answers_in_the_rooms_language(polyglot: Harness) -> None:
    """Every language calls it !status, so the room's configured language decides."""
    await confirm_and_alarm(polyglot)
    for region, head in [
        ("gavleborg", ["🚨 H-1 · Reinforcement · Region Uppsala", "“Bussolycka”"]),
        ("dalarna", ["🚨 H-1 · Forsterkning · Region Uppsala", "«Bussolycka»"]),
        ("uppsala", ["🚨 H-1 · Förstärkningsläge · Region Uppsala", "”Bussolycka”"]),
    ]:
        for typed in ("!status", "!STATUS"):
            body = only_reply(await polyglot.say(room(region), duty_officer(region), typed))
            assert body.splitlines()[:2] == head, (region, typed)


async def test_a_name_of_one_language_answers_in_it_in_any_room(polyglot: Harness) -> None:
    """!ack is English, !kvitter Norwegian, !kvittera Swedish, whatever the room is set to.

    Only the reply follows the name: the boards the command updates, and the answer to a ✅,
    stay in each room's configured language.
    """
    await confirm_and_alarm(polyglot)
    en_in_nb_room = only_reply(
        await polyglot.say(room("dalarna"), duty_officer("dalarna"), "!ack 5")
    )
    assert en_in_nb_room == (
        "✅ Acknowledgement for Region Dalarna recorded on H-1 (@tib.dalarna, 04:00).\n"
        "Pledged secondary transports: 5."
    )
    sv_in_en_room = only_reply(
        await polyglot.say(room("gavleborg"), member("gavleborg"), "!kvittera 5")
    )
    assert sv_in_en_room == (
        "✅ Kvittens för Region Gävleborg registrerad på H-1 (@kansli.gavleborg, 04:00).\n"
        "Åtagande, sekundärtransporter: 5."
    )
    nb_in_sv_room = only_reply(
        await polyglot.say(room("varmland"), duty_officer("varmland"), "!KVITTER 5")
    )
    assert nb_in_sv_room == (
        "✅ Kvittering for Region Värmland registrert på H-1 (@tib.varmland, 04:00).\n"
        "Tilsagn, sekundærtransporter: 5."
    )
    board_sv = polyglot.boards[("H-1", UPPSALA)]
    assert "✅ Region Dalarna: @tib.dalarna 04:00 i rummet · sekundärtransporter: 5" in board_sv
    board_en = polyglot.boards[("H-1", COORDINATION_ROOM)]
    assert (
        "✅ Region Gävleborg: @kansli.gavleborg 04:00 in the room · secondary transports: 5"
        in board_en
    )
    alarm = await polyglot.alarm_event_id(room("gavleborg"), "H-1")
    outcome = await polyglot.react(room("gavleborg"), duty_officer("gavleborg"), alarm)
    reaction = only_reply(outcome)
    assert reaction.startswith("✅ Acknowledgement for Region Gävleborg recorded on H-1")

    help_en = only_reply(await polyglot.say(room("dalarna"), member("dalarna"), "!help"))
    assert help_en.splitlines() == [
        "larmkedja – commands for you:",
        "!help [command] – list the commands, or help on one command",
        "!ack [id] [number] [text…] – acknowledge the alarm, ideally with a number of "
        "secondary transports",
        "!log [id] <text…> – write a timed line in the incident's log",
        "More on one command: !help <command>. Commands also work in Swedish and Norwegian.",
    ]
    help_sv = only_reply(await polyglot.say(room("gavleborg"), member("gavleborg"), "!Hjalp"))
    assert help_sv.splitlines() == [
        "larmkedja – kommandon för dig:",
        "!hjälp [kommando] – visa kommandona, eller hjälp om ett kommando",
        "!kvittera [id] [antal] [text…] – kvittera larmet, gärna med antal sekundärtransporter",
        "!logg [id] <text…> – skriv en tidsstämplad rad i händelsens logg",
        "Mer om ett kommando: !hjälp <kommando>. Kommandona fungerar också på engelska och "
        "norska.",
    ]
    help_nb = only_reply(await polyglot.say(room("gavleborg"), member("gavleborg"), "!hjelp"))
    assert help_nb.splitlines() == [
        "larmkedja – kommandoer for deg:",
        "!hjelp [kommando] – vis kommandoene, eller hjelp til én kommando",
        "!kvitter [id] [antall] [tekst…] – kvitter for varselet, gjerne med antall "
        "sekundærtransporter",
        "!logg [id] <tekst…> – skriv en tidsstemplet linje i hendelsens logg",
        "Mer om en kommando: !hjelp <kommando>. Kommandoene virker også på svensk og engelsk.",
    ]


async def test_alarms_are_written_in_each_partys_language(polyglot: Harness) -> None:
    await polyglot.say(UPPSALA, UPPSALA_TIB, "!händelse katastrofläge Tågolycka")
    outcome = await polyglot.say(UPPSALA, UPPSALA_TIB, "!larma")
    assert outcome is not None
    alarms = {p.room_id: p.body for p in outcome.posts if p.purpose == "alarm"}
    assert alarms[room("dalarna")].startswith("🚨 MASSESKADEVARSEL H-1 – Katastrofe")
    assert "!kvitter <antall>" in alarms[room("dalarna")]
    assert alarms[room("gavleborg")].startswith("🚨 MASS-CASUALTY ALARM H-1 – Disaster")
    assert "!ack <number>" in alarms[room("gavleborg")]
    assert alarms[room("varmland")].startswith("🚨 MASSKADELARM H-1 – Katastrofläge")
    boards = {b.room_id: b.body for b in outcome.boards}
    assert boards[UPPSALA].startswith("🚨 H-1 · Katastrofläge · Region Uppsala")
    assert boards[COORDINATION_ROOM].startswith("🚨 H-1 · Disaster · Region Uppsala")


# -- unknown commands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [
        ("!larm", "!larma"),
        ("!kvitera", "!kvittera"),
        ("!stauts", "!status"),
        ("!hjälpp", "!hjälp"),
    ],
)
async def test_unknown_command_names_the_closest(bot: Harness, typed: str, suggested: str) -> None:
    outcome = await bot.say(UPPSALA, UPPSALA_TIB, typed)
    assert only_reply(outcome) == (
        f"Okänt kommando {typed}. Menade du {suggested}? Skriv !hjälp för alla kommandon."
    )
    assert outcome is not None
    assert outcome.reaction == "❌"
    assert await bot.audit_actions() == ["command.unknown"]


async def test_unknown_command_without_anything_close(polyglot: Harness) -> None:
    body = only_reply(await polyglot.say(room("gavleborg"), member("gavleborg"), "!xyzzy"))
    assert body == "Unknown command !xyzzy. Type !help for all commands."


async def test_future_commands_are_not_there_yet(bot: Harness) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!begar"))
    assert body.startswith("Okänt kommando !begar.")
    names = {n for d in build_registry() for n in d.names.all()}
    assert names.isdisjoint({"begär", "självtest"})


# -- wrong arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "problem", "usage"),
    [
        ("!händelse", "Det saknas nivå.", "!händelse <nivå> <rubrik…>"),
        ("!händelse stabsläge", "Det saknas rubrik.", "!händelse <nivå> <rubrik…>"),
        (
            "!händelse orange Brand",
            "”orange” är ingen beredskapsnivå. Välj stabsläge, förstärkningsläge eller "
            "katastrofläge.",
            "!händelse <nivå> <rubrik…>",
        ),
        ("!larma H-x", "”H-x” är inget händelse-id. Skriv t.ex. H-7.", "!larma [id]"),
        ("!larma H-1 nu", "Det här förstod jag inte: ”nu”.", "!larma [id]"),
        ("!status kalle", "”kalle” är inget händelse-id. Skriv t.ex. H-7.", "!status [id]"),
        (
            "!hjälp larma mer",
            "Det här förstod jag inte: ”mer”.",
            "!hjälp [kommando]",
        ),
    ],
)
async def test_wrong_arguments_say_what_and_show_usage(
    bot: Harness, command: str, problem: str, usage: str
) -> None:
    outcome = await bot.say(UPPSALA, UPPSALA_TIB, command)
    assert only_reply(outcome) == f"{problem}\nSå här: {usage}"
    assert await bot.audit_actions() == ["command.invalid"]


async def test_a_headline_that_is_too_long(bot: Harness) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!händelse stab " + "x" * 201))
    assert body.startswith("Rubriken är för lång (201 tecken, högst 200).")


async def test_usage_errors_in_english(polyglot: Harness) -> None:
    body = only_reply(
        await polyglot.say(room("gavleborg"), duty_officer("gavleborg"), "!incident")
    )
    assert body == "The level is missing.\nUsage: !incident <level> <headline…>"


@pytest.mark.parametrize(
    ("count", "answer"),
    [
        ("-3", "Antalet kan inte vara negativt (-3). Skriv 0 om ni inte kan ställa upp någon."),
        ("fem", "Skriv antalet med siffror, t.ex. 5 – inte ”fem”."),
        ("Fem", "Skriv antalet med siffror, t.ex. 5 – inte ”Fem”."),
        ("five", "Skriv antalet med siffror, t.ex. 5 – inte ”five”."),
        ("99999999999", f"”99999999999” är för stort; högst {MAX_COUNT}."),
        ("1000", f"”1000” är för stort; högst {MAX_COUNT}."),
        ("3.5", "Antalet måste vara ett heltal, inte ”3.5”."),
        ("3,5", "Antalet måste vara ett heltal, inte ”3,5”."),
        (
            "-2,5",
            "Antalet kan inte vara negativt (-2,5). Skriv 0 om ni inte kan ställa upp någon.",
        ),
        ("5st", "”5st” är inget antal. Skriv t.ex. 5."),
        ("+-3", "”+-3” är inget antal. Skriv t.ex. 5."),
        ("½", "”½” är inget antal. Skriv t.ex. 5."),
        ("٣", "”٣” är inget antal. Skriv t.ex. 5."),
        ("5²", "”5²” är inget antal. Skriv t.ex. 5."),
        (
            "007",
            "”007” börjar med 0 och ser ut som en kod, inte ett antal. Skriv antalet utan nolla "
            "först, t.ex. 5.",
        ),
        (
            "0184",
            "”0184” börjar med 0 och ser ut som en kod, inte ett antal. Skriv antalet utan nolla "
            "först, t.ex. 5.",
        ),
    ],
)
async def test_malformed_numbers_get_a_specific_answer_and_change_nothing(
    bot: Harness, count: str, answer: str
) -> None:
    await confirm_and_alarm(bot)
    before = await bot.audit_actions()
    board = dict(bot.boards)
    outcome = await bot.say(room("dalarna"), duty_officer("dalarna"), f"!kvittera {count} bilar")
    assert only_reply(outcome) == f"{answer}\nSå här: !kvittera [id] [antal] [text…]"
    assert outcome is not None
    assert outcome.boards == []
    assert await bot.audit_actions() == [*before, "command.invalid"]
    assert bot.boards == board
    status = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!status"))
    assert "⏳ Region Dalarna" in status


# "007" was a pledge of 7 until issue 10: a leading zero is how codes are printed, never a
# count, so it is asked about now (the malformed numbers above); fullwidth digits are digits on
# every channel.
@pytest.mark.parametrize("count", ["0", "5", "+5", "５", "＋５", str(MAX_COUNT)])
async def test_good_numbers_are_pledges(bot: Harness, count: str) -> None:
    await confirm_and_alarm(bot)
    body = only_reply(
        await bot.say(room("dalarna"), duty_officer("dalarna"), f"!kvittera {count}")
    )
    assert f"Åtagande, sekundärtransporter: {int(count.translate(FULL_WIDTH))}." in body


async def test_a_word_after_kvittera_is_a_remark_not_a_number(bot: Harness) -> None:
    await confirm_and_alarm(bot)
    body = only_reply(
        await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera mottaget, återkommer")
    )
    assert body.startswith("✅ Kvittens för Region Dalarna registrerad på H-1")
    board = bot.boards[("H-1", UPPSALA)]
    assert "inga sekundärtransporter angivna ⚠️ krav minst 5 · ”mottaget, återkommer”" in board


# -- who may do what, where ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "who", "command", "answer", "reason"),
    [
        (
            UPPSALA,
            OUTSIDER,
            "!händelse stab Brand",
            "Tyvärr, !händelse får bara användas av regionens TiB.",
            "refusal.who.region_duty_officer",
        ),
        (
            UPPSALA,
            member("uppsala"),
            "!händelse stab Brand",
            "Tyvärr, !händelse får bara användas av regionens TiB.",
            "refusal.who.region_duty_officer",
        ),
        (
            UPPSALA,
            duty_officer("dalarna"),
            "!larma",
            "Tyvärr, !larma får bara användas av regionens TiB.",
            "refusal.who.region_duty_officer",
        ),
        (
            COORDINATION_ROOM,
            UPPSALA_TIB,
            "!händelse stab Brand",
            "!händelse fungerar bara i en regions eget rum.",
            "refusal.where.region_room",
        ),
        (
            room("socialstyrelsen"),
            duty_officer("socialstyrelsen"),
            "!händelse stab Brand",
            "!händelse fungerar bara i en regions eget rum.",
            "refusal.where.region_room",
        ),
        (
            COORDINATION_ROOM,
            COORDINATOR,
            "!kvittera 5",
            "!kvittera fungerar bara i en larmad parts eget rum.",
            "refusal.where.party_room",
        ),
        (
            room("dalarna"),
            OUTSIDER,
            "!kvittera 5",
            "Tyvärr, !kvittera får bara användas av TiB och medarbetare hos Region Dalarna.",
            "refusal.who.party_member",
        ),
        (
            room("dalarna"),
            member("gavleborg"),
            "!kvittera 5",
            "Tyvärr, !kvittera får bara användas av TiB och medarbetare hos Region Dalarna.",
            "refusal.who.party_member",
        ),
        (
            UPPSALA,
            OUTSIDER,
            "!status",
            "Tyvärr, !status får bara användas av TiB och beredskapssamordnare.",
            "refusal.who.duty_officer_or_coordinator",
        ),
        (
            UPPSALA,
            member("uppsala"),
            "!avlarma",
            "Tyvärr, !avlarma får bara användas av regionens TiB.",
            "refusal.who.region_duty_officer",
        ),
    ],
)
async def test_refusals_are_polite_and_audited(
    bot: Harness, where: str, who: str, command: str, answer: str, reason: str
) -> None:
    await confirm_and_alarm(bot)
    outcome = await bot.say(where, who, command)
    assert only_reply(outcome) == answer
    assert outcome is not None
    assert outcome.reaction == "❌"
    assert outcome.boards == []
    refused = await bot.audit_entries("command.refused")
    assert len(refused) == 1
    assert refused[0].actor == who
    assert refused[0].detail["reason"] == reason
    assert refused[0].detail["room"] == where


async def test_only_the_incidents_own_region_may_alarm_or_stand_it_down(bot: Harness) -> None:
    await bot.say(UPPSALA, UPPSALA_TIB, "!händelse stab Brand")
    for command in ("!larma H-1", "!avlarma H-1"):
        body = only_reply(await bot.say(room("dalarna"), duty_officer("dalarna"), command))
        assert body.startswith("H-1 tillhör Region Uppsala.")
    refused = await bot.audit_entries("command.refused")
    assert [e.detail["reason"] for e in refused] == ["incident_of_other_region"] * 2
    assert {p.purpose for p in bot.take()} == {"reply"}  # nobody was alarmed
    status = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!status H-1"))
    assert "Larmkedjan är inte startad: !larma H-1" in status


async def test_coordinator_and_any_duty_officer_may_see_the_status(bot: Harness) -> None:
    await confirm_and_alarm(bot)
    for where, who in [
        (COORDINATION_ROOM, COORDINATOR),
        (room("socialstyrelsen"), duty_officer("socialstyrelsen")),
        (room("dalarna"), duty_officer("dalarna")),
        (COORDINATION_ROOM, duty_officer("orebro")),
    ]:
        body = only_reply(await bot.say(where, who, "!status"))
        assert body.startswith("🚨 H-1 · Förstärkningsläge · Region Uppsala"), (where, who)


async def test_a_board_is_shown_only_in_rooms_its_incident_concerns(bot: Harness) -> None:
    """Before the chain starts, H-1 concerns Uppsala (and the coordination room) only: its
    board, with every answer and remark to come, is refused in Dalarna's room and audited;
    once Dalarna is alarmed, it is part of the shared picture."""
    await bot.say(UPPSALA, UPPSALA_TIB, "!händelse stab Brand")
    bot.take()
    body = only_reply(await bot.say(room("dalarna"), duty_officer("dalarna"), "!status H-1"))
    assert body.startswith("H-1 rör inte det här rummet, så dess tavla visas inte här.")
    assert "🚨" not in body
    refused = await bot.audit_entries("command.refused")
    assert [(e.subject, e.detail["reason"]) for e in refused] == [("H-1", "board_not_for_room")]
    coordination = only_reply(await bot.say(COORDINATION_ROOM, COORDINATOR, "!status H-1"))
    assert coordination.startswith("🚨 H-1 ·")
    await bot.say(UPPSALA, UPPSALA_TIB, "!larma")
    bot.take()
    shown = only_reply(await bot.say(room("dalarna"), duty_officer("dalarna"), "!status H-1"))
    assert shown.startswith("🚨 H-1 ·")


# -- help ----------------------------------------------------------------------------------------


async def test_a_duty_officer_sees_every_implemented_command(bot: Harness) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!hjälp"))
    assert body.splitlines() == [
        "larmkedja – kommandon för dig:",
        "!hjälp [kommando] – visa kommandona, eller hjälp om ett kommando",
        "!händelse <nivå> <rubrik…> – bekräfta en särskild händelse",
        "!larma [id] – starta larmkedjan (masskadelarm)",
        "!kvittera [id] [antal] [text…] – kvittera larmet, gärna med antal sekundärtransporter",
        "!status [id] – visa statustavlan",
        "!lägesbild [id] [fält=text…] – skriv eller visa lägesbilden (METHANE)",
        "!logg [id] <text…> – skriv en tidsstämplad rad i händelsens logg",
        "!avlarma [id] [text…] – avlarma händelsen",
        "!rapport [id] – efterhandsrapport: tidslinje och tid till kvittens",
        "Mer om ett kommando: !hjälp <kommando>. Kommandona fungerar också på engelska och "
        "norska.",
    ]


@pytest.mark.parametrize(
    ("where", "who", "commands"),
    [
        (room("dalarna"), member("dalarna"), ["!hjälp", "!kvittera", "!logg"]),
        (
            COORDINATION_ROOM,
            COORDINATOR,
            ["!hjälp", "!status", "!logg", "!rapport", "!övning", "!larmprov"],
        ),
        (COORDINATION_ROOM, OUTSIDER, ["!hjälp"]),
        # a duty officer learns about their region's commands even in the coordination room
        (
            COORDINATION_ROOM,
            duty_officer("dalarna"),
            [
                "!hjälp",
                "!händelse",
                "!larma",
                "!kvittera",
                "!status",
                "!lägesbild",
                "!logg",
                "!avlarma",
                "!rapport",
            ],
        ),
        (
            room("blodcentralen-uppsala"),
            duty_officer("blodcentralen-uppsala"),
            ["!hjälp", "!kvittera", "!status", "!logg", "!rapport"],
        ),
    ],
)
async def test_help_lists_what_the_person_can_use(
    bot: Harness, where: str, who: str, commands: list[str]
) -> None:
    body = only_reply(await bot.say(where, who, "!hjälp"))
    listed = [line.split()[0] for line in body.splitlines()[1:-1]]
    assert listed == commands


async def test_help_on_one_command(bot: Harness) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!hjälp avlarma"))
    assert body.splitlines()[0] == "!avlarma [id] [text…]"
    assert "Vem: regionens TiB. Var: regionens eget rum." in body
    assert body.splitlines()[-1] == "Även: !standdown, !avvarsle"
    # the command asked about may be named in any language, with or without its !
    same = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!hjalp !STANDDOWN"))
    assert same == body
    # asked in English, answered in English, even in a Swedish room
    english = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!help !avlarma"))
    assert english.splitlines() == [
        "!standdown [id] [text…]",
        "Sends a stand-down to everyone alarmed and closes the incident. A remark is welcome.",
        "id: the incident's id, e.g. H-7",
        "text: optional remark",
        "Who: the region's duty officers. Where: the region's own room.",
        "Also: !avlarma, !avvarsle",
    ]


async def test_help_on_a_command_that_does_not_exist(bot: Harness) -> None:
    body = only_reply(await bot.say(UPPSALA, OUTSIDER, "!hjälp självtest"))
    assert body == "Det finns inget kommando !självtest. Skriv !hjälp för alla kommandon."


# -- which incident ------------------------------------------------------------------------------


async def test_alarm_without_an_open_incident(bot: Harness) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!larma"))
    assert body == (
        "Region Uppsala har ingen öppen händelse. Bekräfta en med !händelse <nivå> <rubrik>."
    )
    assert (await bot.audit_entries("command.rejected"))[0].detail["reason"] == "no_open_incident"


async def test_alarm_with_several_open_incidents_needs_the_id(bot: Harness) -> None:
    await bot.say(UPPSALA, UPPSALA_TIB, "!händelse stab Brand")
    await bot.say(UPPSALA, UPPSALA_TIB, "!händelse stab Gasutsläpp")
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!larma"))
    assert body == (
        "Region Uppsala har flera öppna händelser: H-1, H-2. Ange vilken, t.ex. !larma H-2."
    )
    outcome = await bot.say(UPPSALA, UPPSALA_TIB, "!larma h2")
    assert outcome is not None
    assert {p.incident_id for p in outcome.posts if p.purpose == "alarm"} == {"H-2"}


async def test_alarm_of_an_unknown_incident(bot: Harness) -> None:
    body = only_reply(await bot.say(UPPSALA, UPPSALA_TIB, "!larma H-99"))
    assert body == "Det finns ingen händelse H-99."


async def test_alarm_twice_sends_nothing_the_second_time(bot: Harness, clock: FakeClock) -> None:
    await bot.say(UPPSALA, UPPSALA_TIB, "!händelse stab Brand")
    first = await bot.say(UPPSALA, UPPSALA_TIB, "!larma")
    assert first is not None
    assert len(first.posts) == 9
    clock.advance(120)
    second = await bot.say(UPPSALA, UPPSALA_TIB, "!larma H-1")
    assert only_reply(second) == (
        "H-1 larmades redan 04:00 av @tib.uppsala. Inget nytt utskick. Se !status H-1."
    )
    assert second is not None
    assert second.boards == []
    rejected = await bot.audit_entries("command.rejected")
    assert rejected[0].detail["reason"] == "already_alarmed"


# -- reactions -----------------------------------------------------------------------------------


async def test_reactions_that_are_not_acknowledgements_are_ignored(bot: Harness) -> None:
    await confirm_and_alarm(bot)
    alarm = await bot.alarm_event_id(room("dalarna"), "H-1")
    assert await bot.react(room("dalarna"), duty_officer("dalarna"), alarm, key="👍") is None
    assert await bot.react(room("dalarna"), duty_officer("dalarna"), "$not-an-alarm") is None
    # the alarm to Dalarna, reacted to in another room, is not Gävleborg's alarm
    assert await bot.react(room("gavleborg"), duty_officer("gavleborg"), alarm) is None
    assert await bot.react(room("dalarna"), BOT, alarm) is None
    assert "⏳ Region Dalarna" in bot.boards[("H-1", UPPSALA)]


async def test_a_reaction_by_an_outsider_is_refused_and_audited(bot: Harness) -> None:
    await confirm_and_alarm(bot)
    alarm = await bot.alarm_event_id(room("dalarna"), "H-1")
    outcome = await bot.react(room("dalarna"), OUTSIDER, alarm)
    assert only_reply(outcome) == (
        "Tyvärr, bara TiB och medarbetare hos Region Dalarna kan kvittera H-1 för Region Dalarna."
    )
    assert outcome is not None
    assert outcome.posts[0].in_reply_to == alarm
    refused = await bot.audit_entries("command.refused")
    assert refused[0].actor == OUTSIDER


@pytest.mark.parametrize("key", ["✅", "✔️", "☑️"])
async def test_a_check_mark_acknowledges(bot: Harness, key: str) -> None:
    await confirm_and_alarm(bot)
    alarm = await bot.alarm_event_id(room("dalarna"), "H-1")
    outcome = await bot.react(room("dalarna"), member("dalarna"), alarm, key=key)
    assert only_reply(outcome).startswith("✅ Kvittens för Region Dalarna registrerad på H-1")
    assert "✅ Region Dalarna: @kansli.dalarna 04:00 med ✅" in bot.boards[("H-1", UPPSALA)]


# -- never raises --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "!händelse \x00 \x00",
        "!kvittera " + "9" * 5000,
        "!larma " + "H-" + "9" * 50,
        "!status H-0",
        "!hjälp " + "x" * 1000,
        "!avlarma H-1 " + "ord " * 300,
        "!" + "ä" * 300,
        "!kvittera H-1 H-2 H-3",
        "!händelse\tstab\nBrand",
    ],
)
async def test_odd_input_is_answered_not_raised(bot: Harness, body: str) -> None:
    for where, who in [(UPPSALA, UPPSALA_TIB), (room("dalarna"), member("dalarna"))]:
        outcome = await bot.say(where, who, body)
        assert outcome is not None
        assert outcome.posts
