"""Stories of the alarm chain, played at the command level against a real SQLite database.

Night of 26 November 2026 (times are Swedish local time; the fake clock starts at 04:00).
Each story ends by asserting that nothing else was sent.
"""

from __future__ import annotations

from chain_world import (
    BLOOD_CENTRE,
    COORDINATION_ROOM,
    NATIONAL,
    REGIONS,
    Harness,
    duty_officer,
    member,
    room,
)

from commands.outcome import Outcome, Post

UPPSALA = room("uppsala")
TIB = duty_officer("uppsala")
ALARMED = [r for r in REGIONS if r != "uppsala"] + [NATIONAL, BLOOD_CENTRE]


def replies(posts: list[Post]) -> list[str]:
    return [p.body for p in posts if p.purpose == "reply"]


def board(bot: Harness, incident: str = "H-1", where: str = UPPSALA) -> str:
    return bot.boards[(incident, where)]


async def test_mass_casualty_alarm_from_confirmation_to_stand_down(bot: Harness) -> None:
    # 04:00 — Uppsala's duty officer confirms a särskild händelse.
    await bot.say(UPPSALA, TIB, "!händelse förstärkningsläge Bussolycka E4 Knivsta")
    assert replies(bot.take()) == [
        "Särskild händelse H-1 bekräftad: Förstärkningsläge, ”Bussolycka E4 Knivsta”. "
        "Starta larmkedjan med !larma H-1."
    ]

    # 04:02 — and starts the chain.
    bot.later(2)
    await bot.say(UPPSALA, TIB, "!larma")
    sent = bot.take()
    alarms = {p.room_id: p for p in sent if p.purpose == "alarm"}
    assert sorted(alarms) == sorted(room(p) for p in ALARMED)
    assert UPPSALA not in alarms
    for party in ALARMED:
        alarm = alarms[room(party)]
        assert alarm.key == f"alarm:{party}"
        assert alarm.mentions == (duty_officer(party),)
        assert alarm.incident_id == "H-1"
    assert alarms[room("dalarna")].body == (
        "🚨 MASSKADELARM H-1 – Förstärkningsläge\n"
        "Region Uppsala har bekräftat en särskild händelse: Bussolycka E4 Knivsta\n"
        "Till Region Dalarna (TiB: @tib.dalarna)\n"
        "• Kvittera att ni har tagit emot larmet.\n"
        "• Ställ minst 5 sekundärtransporter till förfogande.\n"
        "Kvittera: skriv !kvittera <antal>, t.ex. !kvittera 5, eller reagera med ✅ på det här "
        "meddelandet."
    )
    assert alarms[room(BLOOD_CENTRE)].body.splitlines()[3:] == [
        "• Kvittera att ni har tagit emot larmet.",
        "• Larma landets blodcentraler.",
        "Kvittera: skriv !kvittera eller reagera med ✅ på det här meddelandet.",
    ]
    assert "sekundärtransporter" not in alarms[room(NATIONAL)].body
    assert replies(sent) == [
        "Larmkedjan för H-1 är startad. Larmet skickas till (8):\n"
        "• Region Dalarna – i sitt rum, till @tib.dalarna\n"
        "• Region Gävleborg – i sitt rum, till @tib.gavleborg\n"
        "• Region Värmland – i sitt rum, till @tib.varmland\n"
        "• Region Västmanland – i sitt rum, till @tib.vastmanland\n"
        "• Region Örebro län – i sitt rum, till @tib.orebro\n"
        "• Region Sörmland – i sitt rum, till @tib.sormland\n"
        "• Socialstyrelsen – i sitt rum, till @tib.socialstyrelsen\n"
        "• Blodcentralen Uppsala – i sitt rum, till @tib.blodcentralen-uppsala\n"
        "Dessutom via sms till 8 nummer och via e-post till 8 adresser, med svarskod.\n"
        "Leveransrapport följer när larmet har gått ut."
    ]
    # Once every alarm is out, the delivery report: what each channel took, nothing more.
    (report,) = [p for p in sent if p.key == "summary:alarm"]
    assert report.room_id == UPPSALA
    assert report.body.splitlines() == [
        "📨 Leveransrapport H-1, larmet:",
        "• Rum: 8 av 8 mottagna av servern",
        "• Sms: 8 av 8 lämnade till sms-gatewayen (0 rapporterade levererade)",
        "• E-post: 8 av 8 mottagna av e-postservern",
        "Allt gick ut.",
    ]
    assert len(sent) == 10
    assert board(bot).splitlines()[:5] == [
        "🚨 H-1 · Förstärkningsläge · Region Uppsala",
        "”Bussolycka E4 Knivsta”",
        "Larmad 04:02 av @tib.uppsala · kvitterat 0/8",
        "Läget kl. 04:02: 0 min efter larmet",
        "",
    ]
    assert board(bot, where=COORDINATION_ROOM) == board(bot)

    # 04:05 — Dalarna pledges five.
    bot.later(3)
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera 5 två ambulanser, en buss")
    assert replies(bot.take()) == [
        "✅ Kvittens för Region Dalarna registrerad på H-1 (@tib.dalarna, 04:05).\n"
        "Åtagande, sekundärtransporter: 5."
    ]

    # 04:06 — Dalarna's staff acknowledge again and raise it to six: both are recorded.
    # Typed in English, so answered in English; the boards below stay Swedish.
    bot.later(1)
    await bot.say(room("dalarna"), member("dalarna"), "!ack 6")
    assert replies(bot.take()) == [
        "✅ Acknowledgement for Region Dalarna recorded on H-1 (@kansli.dalarna, 04:06).\n"
        "Region Dalarna had already acknowledged at 04:05 (@tib.dalarna); this acknowledgement "
        "is recorded too.\n"
        "Pledged secondary transports: 6."
    ]

    # 04:07 — Gävleborg answers with a ✅ on the alarm: acknowledged, but nothing pledged.
    bot.later(1)
    alarm = await bot.alarm_event_id(room("gavleborg"), "H-1")
    reaction = await bot.react(room("gavleborg"), duty_officer("gavleborg"), alarm)
    assert isinstance(reaction, Outcome)
    assert reaction.posts[0].in_reply_to == alarm
    assert replies(bot.take()) == [
        "✅ Kvittens för Region Gävleborg registrerad på H-1 (@tib.gavleborg, 04:07).\n"
        "⚠️ Ange hur många sekundärtransporter ni kan ställa upp (minst 5): !kvittera <antal>."
    ]

    # 04:08 — Värmland can only spare two.
    bot.later(1)
    await bot.say(room("varmland"), member("varmland"), "!kvittera 2")
    assert replies(bot.take()) == [
        "✅ Kvittens för Region Värmland registrerad på H-1 (@kansli.varmland, 04:08).\n"
        "Åtagande, sekundärtransporter: 2.\n"
        "⚠️ Kravet är minst 5 sekundärtransporter. Kan ni ställa upp fler, kvittera igen: "
        "!kvittera <antal>."
    ]
    assert board(bot).splitlines()[2:] == [
        "Larmad 04:02 av @tib.uppsala · kvitterat 3/8",
        "Läget kl. 04:08: 6 min efter larmet",
        "",
        "✅ Region Dalarna: @tib.dalarna 04:05 i rummet · även @kansli.dalarna 04:06 · "
        "sekundärtransporter: 6 · ”två ambulanser, en buss”",
        # Each party shows its next reminder: this story runs no due times (see
        # test_escalation.py), so the 04:07 reminders are still "next".
        "✅ Region Gävleborg: @tib.gavleborg 04:07 med ✅ · inga sekundärtransporter angivna "
        "⚠️ krav minst 5 · nästa: påminnelse om åtagande 04:17",
        "✅ Region Värmland: @kansli.varmland 04:08 i rummet · sekundärtransporter: 2 "
        "⚠️ krav minst 5 · nästa: påminnelse om åtagande 04:18",
        "⏳ Region Västmanland · nästa: påminnelse 04:07",
        "⏳ Region Örebro län · nästa: påminnelse 04:07",
        "⏳ Region Sörmland · nästa: påminnelse 04:07",
        "⏳ Socialstyrelsen · nästa: påminnelse 04:07",
        "⏳ Blodcentralen Uppsala · nästa: påminnelse 04:07",
        "",
        "🚑 Sekundärtransporter: 8 av minst 30 ⚠️",
        "Saknas: Region Västmanland, Region Örebro län, Region Sörmland, Socialstyrelsen, "
        "Blodcentralen Uppsala",
    ]

    # 04:09–04:14 — the rest answer; the blood centre's ✅ is the last one.
    for party, command in [
        ("vastmanland", "!kvittera 5"),
        ("orebro", "!kvittera 7"),
        ("sormland", "!kvittera 5"),
        (NATIONAL, "!kvittera"),
    ]:
        bot.later(1)
        await bot.say(room(party), duty_officer(party), command)
    assert len(replies(bot.take())) == 4
    bot.later(2)
    alarm = await bot.alarm_event_id(room(BLOOD_CENTRE), "H-1")
    await bot.react(room(BLOOD_CENTRE), member(BLOOD_CENTRE), alarm)
    sent = bot.take()
    assert replies(sent) == [
        "✅ Kvittens för Blodcentralen Uppsala registrerad på H-1 "
        "(@kansli.blodcentralen-uppsala, 04:14).\n"
        "Alla parter har nu kvitterat H-1."
    ]
    notices = [p for p in sent if p.purpose == "notice"]
    assert [(p.room_id, p.body) for p in notices] == [
        (UPPSALA, "✅ Alla 8 parter har kvitterat H-1, 12 min efter larmet.")
    ]
    assert board(bot).splitlines()[2:4] + board(bot).splitlines()[-4:] == [
        "Larmad 04:02 av @tib.uppsala · kvitterat 8/8",
        "Läget kl. 04:14: 12 min efter larmet",
        "✅ Blodcentralen Uppsala: @kansli.blodcentralen-uppsala 04:14 med ✅ · larmar landets "
        "blodcentraler",
        "",
        "🚑 Sekundärtransporter: 25 av minst 30 ⚠️",
        "Alla har kvitterat. ✅",
    ]

    # 04:30 — the incident is over.
    bot.later(16)
    await bot.say(UPPSALA, TIB, "!avlarma Samtliga patienter omhändertagna")
    sent = bot.take()
    stand_downs = {p.room_id: p for p in sent if p.purpose == "standdown"}
    assert sorted(stand_downs) == sorted(room(p) for p in ALARMED)
    assert stand_downs[room("orebro")].body == (
        "⏹ AVLARMERING H-1 – Region Uppsala\n"
        "Den särskilda händelsen ”Bussolycka E4 Knivsta” är avslutad. Återgå till normalläge.\n"
        "Meddelande: Samtliga patienter omhändertagna"
    )
    assert replies(sent) == [
        "H-1 är avlarmad. Avlarmeringen skickas till larmade parter: 8. Leveransrapport följer."
    ]
    (report,) = [p for p in sent if p.key == "summary:standdown"]
    assert report.body.splitlines() == [
        "📨 Leveransrapport H-1, avlarmeringen:",
        "• Rum: 8 av 8 mottagna av servern",
        "• Sms: 8 av 8 lämnade till sms-gatewayen (0 rapporterade levererade)",
        "• E-post: 8 av 8 mottagna av e-postservern",
        "Allt gick ut.",
    ]
    assert board(bot).splitlines()[-2:] == [
        "⏹ Avlarmad 04:30 av @tib.uppsala.",
        "Avlarmering: ”Samtliga patienter omhändertagna”",
    ]
    final_board = board(bot)

    # 04:31 — a late acknowledgement, typed and by reaction, is told it is over.
    bot.later(1)
    await bot.say(room("varmland"), duty_officer("varmland"), "!kvittera 5")
    alarm = await bot.alarm_event_id(room("dalarna"), "H-1")
    await bot.react(room("dalarna"), duty_officer("dalarna"), alarm)
    await bot.say(UPPSALA, TIB, "!avlarma")
    await bot.say(UPPSALA, TIB, "!larma H-1")
    assert replies(bot.take()) == [
        "H-1 avlarmades redan 04:30; ingen kvittens behövs.",
        "H-1 avlarmades redan 04:30; ingen kvittens behövs.",
        "Region Uppsala har ingen öppen händelse. Bekräfta en med !händelse <nivå> <rubrik>.",
        "H-1 är redan avlarmad (04:30, @tib.uppsala).",
    ]
    assert board(bot) == final_board

    assert await bot.audit_actions() == [
        "incident.confirmed",
        "chain.started",
        "delivery.summary",  # the alarm's delivery report
        *["ack.recorded"] * 9,
        "chain.completed",
        "incident.stood_down",
        "delivery.summary",  # the stand-down's
        "command.rejected",
        "command.rejected",
        "command.rejected",
        "command.rejected",
    ]
    ack = (await bot.audit_entries("ack.recorded"))[1]
    assert ack.actor == member("dalarna")
    assert ack.subject == "H-1"
    assert ack.detail["first"] is False
    assert ack.detail["pledge"] == {"secondary_transports": 6, "remark": ""}
    assert bot.take() == []


async def test_the_final_board_reads_well_on_a_phone(bot: Harness) -> None:
    await bot.say(UPPSALA, TIB, "!händelse katastrofläge Tågurspårning Märsta")
    await bot.say(UPPSALA, TIB, "!larma")
    pledges = {"dalarna": 5, "gavleborg": 5, "varmland": 3, "vastmanland": 5, "orebro": 6}
    for party, count in pledges.items():
        await bot.tick(1)
        await bot.say(room(party), duty_officer(party), f"!kvittera {count}")
    await bot.tick(30)  # reminders and escalations run as they fall due
    await bot.say(room(NATIONAL), member(NATIONAL), "!kvittera Vi följer läget")
    bot.later(50)
    assert board(bot) == "\n".join(
        [
            "🚨 H-1 · Katastrofläge · Region Uppsala",
            "”Tågurspårning Märsta”",
            "Larmad 04:00 av @tib.uppsala · kvitterat 6/8",
            "Läget kl. 04:35: 35 min efter larmet",
            "",
            "✅ Region Dalarna: @tib.dalarna 04:01 i rummet · sekundärtransporter: 5",
            "✅ Region Gävleborg: @tib.gavleborg 04:02 i rummet · sekundärtransporter: 5",
            "✅ Region Värmland: @tib.varmland 04:03 i rummet · sekundärtransporter: 3 "
            "⚠️ krav minst 5 · påminnelse om åtagande 04:13",
            "✅ Region Västmanland: @tib.vastmanland 04:04 i rummet · sekundärtransporter: 5",
            "✅ Region Örebro län: @tib.orebro 04:05 i rummet · sekundärtransporter: 6",
            "⏳ Region Sörmland · påminnelse 04:05 · besked till larmande TiB 04:10 · "
            "nytt larm via sms/e-post 04:15, 04:25, 04:35 · nästa: nytt larm via sms/e-post 04:45",
            "✅ Socialstyrelsen: @kansli.socialstyrelsen 04:35 i rummet · ”Vi följer läget”",
            "⏳ Blodcentralen Uppsala · påminnelse 04:05 · besked till larmande TiB 04:10 · "
            "nytt larm via sms/e-post 04:15, 04:25, 04:35 · nästa: nytt larm via sms/e-post 04:45",
            "",
            "🚑 Sekundärtransporter: 24 av minst 30 ⚠️",
            "Saknas: Region Sörmland, Blodcentralen Uppsala",
        ]
    )
    # The board is rendered when it changes; !status renders it as of now.
    status = (await bot.say(UPPSALA, TIB, "!status")).posts[0].body  # type: ignore[union-attr]
    assert "Läget kl. 05:25: 1 h 25 min efter larmet" in status


async def test_two_incidents_from_two_regions_do_not_mix(bot: Harness) -> None:
    # 04:00 Uppsala and 04:01 Dalarna each have their own särskild händelse.
    await bot.say(UPPSALA, TIB, "!händelse förstärkningsläge Bussolycka E4")
    await bot.say(UPPSALA, TIB, "!larma")
    bot.later(1)
    dalarna = room("dalarna")
    await bot.say(dalarna, duty_officer("dalarna"), "!händelse stabsläge Hotellbrand Sälen")
    await bot.say(dalarna, duty_officer("dalarna"), "!larma")
    sent = bot.take()
    by_incident: dict[str, set[str]] = {}
    for post in sent:
        if post.purpose == "alarm":
            by_incident.setdefault(post.incident_id or "", set()).add(post.room_id)
    assert by_incident["H-1"] == {room(p) for p in ALARMED}
    # Dalarna has no blood centre of its own; Uppsala's is not alarmed for Dalarna's incident.
    assert by_incident["H-2"] == {room(p) for p in REGIONS if p != "dalarna"} | {room(NATIONAL)}

    # Värmland is alarmed for both: without an id the newest is meant, and the answer says so.
    bot.later(1)
    varmland = room("varmland")
    await bot.say(varmland, duty_officer("varmland"), "!kvittera 5")
    await bot.say(varmland, duty_officer("varmland"), "!kvittera H-1 3")
    assert replies(bot.take()) == [
        "✅ Kvittens för Region Värmland registrerad på H-2 (@tib.varmland, 04:02).\n"
        "Gäller H-2, den senaste av H-1, H-2. För en annan: !kvittera H-1 …\n"
        "Åtagande, sekundärtransporter: 5.",
        "✅ Kvittens för Region Värmland registrerad på H-1 (@tib.varmland, 04:02).\n"
        "Åtagande, sekundärtransporter: 3.\n"
        "⚠️ Kravet är minst 5 sekundärtransporter. Kan ni ställa upp fler, kvittera igen: "
        "!kvittera <antal>.",
    ]

    # Uppsala is alarmed only for Dalarna's incident, Dalarna only for Uppsala's.
    await bot.say(UPPSALA, member("uppsala"), "!kvittera 4")
    alarm = await bot.alarm_event_id(dalarna, "H-1")
    await bot.react(dalarna, member("dalarna"), alarm)
    await bot.say(room(BLOOD_CENTRE), duty_officer(BLOOD_CENTRE), "!kvittera")
    assert [r.splitlines()[0] for r in replies(bot.take())] == [
        "✅ Kvittens för Region Uppsala registrerad på H-2 (@kansli.uppsala, 04:02).",
        "✅ Kvittens för Region Dalarna registrerad på H-1 (@kansli.dalarna, 04:02).",
        "✅ Kvittens för Blodcentralen Uppsala registrerad på H-1 "
        "(@tib.blodcentralen-uppsala, 04:02).",
    ]

    # Each board lives in its own region's room (and the coordination room) and shows its own.
    assert set(bot.boards) == {
        ("H-1", UPPSALA),
        ("H-1", COORDINATION_ROOM),
        ("H-2", dalarna),
        ("H-2", COORDINATION_ROOM),
    }
    h1, h2 = board(bot, "H-1"), board(bot, "H-2", dalarna)
    assert "kvitterat 3/8" in h1
    assert "✅ Region Värmland: @tib.varmland 04:02 i rummet · sekundärtransporter: 3" in h1
    assert "✅ Region Dalarna: @kansli.dalarna 04:02 med ✅" in h1
    assert "kvitterat 2/7" in h2
    assert "✅ Region Värmland: @tib.varmland 04:02 i rummet · sekundärtransporter: 5" in h2
    assert "✅ Region Uppsala: @kansli.uppsala 04:02 i rummet · sekundärtransporter: 4" in h2
    assert "Blodcentralen" not in h2

    # Each region's commands without an id mean its own incident.
    await bot.say(UPPSALA, TIB, "!larma")
    assert replies(bot.take()) == [
        "H-1 larmades redan 04:00 av @tib.uppsala. Inget nytt utskick. Se !status H-1."
    ]
    await bot.say(dalarna, duty_officer("dalarna"), "!avlarma Branden släckt")
    sent = bot.take()
    assert {p.room_id for p in sent if p.purpose == "standdown"} == by_incident["H-2"]
    assert {p.incident_id for p in sent if p.purpose == "standdown"} == {"H-2"}

    # With H-2 over, Värmland's next acknowledgement goes to H-1, the only open one.
    await bot.say(varmland, duty_officer("varmland"), "!kvittera 5")
    assert replies(bot.take()) == [
        "✅ Kvittens för Region Värmland registrerad på H-1 (@tib.varmland, 04:02).\n"
        "Region Värmland hade redan kvitterat 04:02 (@tib.varmland); även den här kvittensen är "
        "registrerad.\n"
        "Åtagande, sekundärtransporter: 5."
    ]
    # The coordination room asks without an id and gets the open one.
    status = await bot.say(COORDINATION_ROOM, "@samordnare:example.org", "!status")
    assert status is not None
    assert status.posts[0].body.startswith("🚨 H-1 ·")
    assert bot.take() == [status.posts[0]]
    assert bot.take() == []


async def test_status_names_the_other_open_incidents(bot: Harness) -> None:
    await bot.say(UPPSALA, TIB, "!händelse stab Brand")
    await bot.say(UPPSALA, TIB, "!händelse stab Gasläcka")
    body = (await bot.say(UPPSALA, TIB, "!status")).posts[0].body  # type: ignore[union-attr]
    assert body.startswith("🚨 H-2 · Stabsläge · Region Uppsala\n”Gasläcka”\n")
    assert "Larmkedjan är inte startad: !larma H-2" in body
    assert body.endswith("Fler öppna händelser: H-1. Visa en med !status <id>.")
    bot.take()
    none = await bot.say(room("dalarna"), duty_officer("dalarna"), "!status")
    assert none is not None
    assert none.posts[0].body == "Det finns ingen öppen händelse här."


async def test_stand_down_of_an_incident_that_was_never_alarmed(bot: Harness) -> None:
    await bot.say(UPPSALA, TIB, "!händelse stab Falsklarm")
    bot.take()
    outcome = await bot.say(UPPSALA, TIB, "!avlarma")
    assert outcome is not None
    assert outcome.boards == []
    assert replies(bot.take()) == ["H-1 är avslutad. Ingen hade larmats."]
    acks = await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera")
    assert acks is not None
    assert acks.posts[0].body == "Region Dalarna har inget aktivt larm att kvittera."


async def test_acknowledging_by_id_an_incident_not_yet_alarmed(bot: Harness) -> None:
    await bot.say(UPPSALA, TIB, "!händelse stab Brand")
    bot.take()
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera H-1 5")
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera H-9")
    await bot.say(UPPSALA, member("uppsala"), "!kvittera H-1")
    assert replies(bot.take()) == [
        "H-1 är ännu inte larmad; det finns inget att kvittera.",
        "Det finns ingen händelse H-9.",
        "H-1 är ännu inte larmad; det finns inget att kvittera.",
    ]
    await bot.say(UPPSALA, TIB, "!larma")
    bot.take()
    await bot.say(UPPSALA, member("uppsala"), "!kvittera H-1")
    assert replies(bot.take()) == ["Region Uppsala är inte larmad för H-1."]
