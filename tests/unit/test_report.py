"""The after-action report: its figures from known event times, its timeline, and ``!rapport``
(summary in the room, the files, the anchor in the coordination room, who may ask)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from chain_world import (
    COORDINATION_ROOM,
    COORDINATOR,
    Harness,
    duty_officer,
    mellansverige,
    room,
)

from bot.clock import FakeClock
from bot.domain import (
    AuditHead,
    Incident,
    IncidentHistory,
    Pledge,
    ReadinessLevel,
    Recorded,
    SentMessage,
    chain_template,
)
from bot.i18n import Catalog
from commands.parties import domain_party
from commands.render import Voice
from commands.report import (
    Kind,
    build_timeline,
    render_report_csv,
    render_report_json,
    render_report_summary,
)
from storage.audit_verify import find_anchors

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 03:00 in Sweden
TIB = duty_officer("uppsala")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def known_night() -> IncidentHistory:
    """An incident whose every time is known: confirmed at 0, alarmed at 2, Dalarna acks in the
    room at 5 (alarm post sent at 2:30), Gävleborg by SMS at 14 (SMS sent at 3, after a retry)
    and again in the room at 20, Värmland never; stand-down at 30."""
    clock = FakeClock(T0)
    config = mellansverige(with_national=False, with_blood_centre=False)
    incident = Incident.confirm(
        number=7,
        region_id="uppsala",
        region_name="Region Uppsala",
        level=ReadinessLevel.DISASTER,
        headline="Bussolycka",
        by=TIB,
        clock=clock,
    )
    parties = [
        domain_party(p)
        for p in config.regions
        if p.id in ("uppsala", "dalarna", "gavleborg", "varmland")
    ]
    clock.set(at(2))
    incident.start_alarm(chain_template("uppsala", parties, 5), by=TIB, clock=clock)
    clock.set(at(5))
    incident.acknowledge(
        "dalarna", by=duty_officer("dalarna"), via="room", clock=clock, pledge=Pledge(5)
    )
    clock.set(at(14))
    incident.acknowledge("gavleborg", by="***1009", via="sms", clock=clock, pledge=Pledge(3))
    clock.set(at(20))
    incident.acknowledge(
        "gavleborg", by=duty_officer("gavleborg"), via="room", clock=clock, pledge=Pledge(4)
    )
    clock.set(at(30))
    incident.stand_down(by=TIB, clock=clock)

    def ack(
        seq: int, minutes: float, party: str, by: str, via: str, count: int, first: bool
    ) -> Recorded:
        return Recorded(
            seq,
            at(minutes),
            by,
            "ack.recorded",
            "H-7",
            {
                "party": party,
                "by": by,
                "channel": via,
                "at": at(minutes).isoformat(),
                "first": first,
                "pledge": {"secondary_transports": count, "remark": ""},
            },
        )

    recorded = (
        Recorded(1, at(0), TIB, "incident.confirmed", "H-7", {}),
        Recorded(
            2,
            at(2),
            TIB,
            "chain.started",
            "H-7",
            {"parties": ["dalarna", "gavleborg", "varmland"]},
        ),
        Recorded(
            3,
            at(2.5),
            "bridges",
            "outbox.retry",
            "***1009",
            {"key": "e:alarm-sms:gavleborg:0", "reason": "gateway 503", "attempts": 1},
        ),
        ack(4, 5, "dalarna", duty_officer("dalarna"), "room", 5, True),
        Recorded(
            5,
            at(7),
            "larmkedja",
            "escalation.fired",
            "H-7",
            {
                "party": "varmland",
                "action": "remind",
                "kind": "step",
                "fired_at": at(7).isoformat(),
                "late": False,
                "late_by_s": 0,
            },
        ),
        ack(6, 14, "gavleborg", "***1009", "sms", 3, True),
        ack(7, 20, "gavleborg", duty_officer("gavleborg"), "room", 4, False),
        Recorded(8, at(30), TIB, "incident.stood_down", "H-7", {"remark": ""}),
    )

    def sent(
        key: str, channel: str, party: str, minutes: float | None, purpose: str = "alarm"
    ) -> SentMessage:
        return SentMessage(
            key,
            channel,
            "***1009" if channel == "sms" else room(party),
            purpose,
            party,
            at(2),
            None if minutes is None else at(minutes),
            "sent",
        )

    messages = (
        sent("e:alarm:dalarna", "matrix", "dalarna", 2.5),
        sent("e:alarm:gavleborg", "matrix", "gavleborg", 2.5),
        sent("e:alarm:varmland", "matrix", "varmland", 2.5),
        sent("e:alarm-sms:gavleborg:0", "sms", "gavleborg", 3),
        sent("d:reminder:varmland", "matrix", "varmland", 7, "reminder"),
    )
    return IncidentHistory(incident, recorded, messages, AuditHead(8, "ab" * 32, at(30)))


def test_time_to_acknowledge_per_party_and_channel_from_known_times() -> None:
    timeline = build_timeline(known_night())
    parties = {p.party_id: p for p in timeline.parties}
    dalarna, gavleborg, varmland = parties["dalarna"], parties["gavleborg"], parties["varmland"]
    # per party: from the chain's start (2) to the first acknowledgement
    assert dalarna.time_to_ack == timedelta(minutes=3)
    assert gavleborg.time_to_ack == timedelta(minutes=12)
    assert varmland.time_to_ack is None
    # per channel: from the moment the alarm on that channel left the bot
    [room_figure] = dalarna.channels
    assert (room_figure.channel, room_figure.time_to_ack) == ("matrix", timedelta(minutes=2.5))
    by_channel = {c.channel: c for c in gavleborg.channels}
    assert by_channel["sms"].time_to_ack == timedelta(minutes=11)
    assert by_channel["sms"].acknowledged_as == "sms"
    assert by_channel["matrix"].time_to_ack == timedelta(minutes=17.5)  # its room ack at 20
    assert gavleborg.acknowledged_via == "sms"
    assert gavleborg.acknowledgements == 2
    assert gavleborg.pledged == 4  # the latest pledge stands
    assert gavleborg.short
    assert not dalarna.short
    assert gavleborg.problems == 1  # the SMS retry
    assert varmland.reminders == 1
    figures = timeline.figures
    assert figures.acknowledged == 2
    assert figures.parties == 3
    assert figures.median_time_to_ack == timedelta(minutes=3)
    assert figures.slowest is gavleborg
    assert figures.completed_at is None
    assert figures.time_to_complete is None
    assert (figures.pledged, figures.required) == (9, 15)
    assert (figures.problems, figures.reminders) == (1, 1)


def test_the_timeline_is_in_time_order_with_every_kind() -> None:
    timeline = build_timeline(known_night())
    kinds = [(e.at - T0, e.kind, e.party_id) for e in timeline.events]
    assert kinds == [
        (timedelta(0), Kind.CONFIRMED, None),
        (timedelta(minutes=2), Kind.CHAIN_STARTED, None),
        (timedelta(minutes=2.5), Kind.RETRY, "gavleborg"),
        (timedelta(minutes=2.5), Kind.SENT, "dalarna"),
        (timedelta(minutes=2.5), Kind.SENT, "gavleborg"),
        (timedelta(minutes=2.5), Kind.SENT, "varmland"),
        (timedelta(minutes=3), Kind.SENT, "gavleborg"),
        (timedelta(minutes=5), Kind.ACK, "dalarna"),
        (timedelta(minutes=7), Kind.ESCALATION, "varmland"),
        (timedelta(minutes=7), Kind.SENT, "varmland"),
        (timedelta(minutes=14), Kind.ACK, "gavleborg"),
        (timedelta(minutes=20), Kind.ACK, "gavleborg"),
        (timedelta(minutes=30), Kind.STOOD_DOWN, None),
    ]


def test_summary_csv_and_json_say_the_same(catalog: Catalog) -> None:
    timeline = build_timeline(known_night())
    voice = Voice(catalog, "sv", "example.org")
    summary = render_report_summary(timeline, voice)
    assert summary.splitlines() == [
        "📊 RAPPORT H-7 – Katastrofläge, Region Uppsala",
        "”Bussolycka”",
        "Bekräftad 03:00 av @tib.uppsala.",
        "Larmad 03:02 av @tib.uppsala till 3 parter.",
        "⚠️ 2 av 3 kvitterade; kedjan blev aldrig komplett.",
        "Tid till kvittens: median 3 min 0 s, längst Region Gävleborg (12 min 0 s).",
        "⚠️ Sekundärtransporter: 9 av 15.",
        "Leveransproblem: 1 (reservkanal 0 gånger). Påminnelser och eskaleringar: 1.",
        "Lägesbild: 0 versioner. Logg: 0 rader.",
        "Avlarmad 03:30 av @tib.uppsala.",
        "Per part (tid från larm till första kvittens):",
        "✅ Region Dalarna: 3 min 0 s i rummet · 5 av 5",
        "✅ Region Gävleborg: 12 min 0 s via sms · ⚠️ 4 av 5 · ⚠️ 1 leveransproblem",
        "⏳ Region Värmland: ingen kvittens · ⚠️ 0 av 5",
        "Granskningsloggen: post 8, abababababab…",
    ]
    rows = list(csv.DictReader(io.StringIO(render_report_csv(timeline, voice))))
    assert len(rows) == len(timeline.events)
    assert rows[2]["kind"] == "retry"
    assert rows[2]["text"] == (
        "⚠️ sms till Region Gävleborg ***1009 misslyckades, nytt försök: gateway 503"
    )
    assert rows[7]["local_time"] == "2026-11-26 03:05:00"
    assert rows[7]["text"] == (
        "Region Dalarna kvitterade i rummet (@tib.dalarna), 5 sekundärtransporter"
    )
    assert rows[11]["text"].endswith("4 sekundärtransporter – igen")
    data = json.loads(render_report_json(timeline, Voice(catalog, "en", "example.org")))
    gavleborg = next(p for p in data["parties"] if p["party"] == "gavleborg")
    assert gavleborg["time_to_ack_s"] == 720
    assert {c["channel"]: c["time_to_ack_s"] for c in gavleborg["channels"]} == {
        "matrix": 1050,
        "sms": 660,
    }
    assert data["figures"]["median_time_to_ack_s"] == 180
    assert data["audit_head"]["seq"] == 8
    assert data["timeline"][0]["text"] == "Major incident confirmed (Disaster) by @tib.uppsala"


# -- !rapport ------------------------------------------------------------------------------------


async def night(bot: Harness) -> None:
    uppsala = room("uppsala")
    await bot.say(uppsala, TIB, "!händelse katastrofläge Bussolycka E4")
    await bot.say(uppsala, TIB, "!lägesbild plats=E4 typ=Buss antal=40")
    bot.later(2)
    await bot.say(uppsala, TIB, "!larma")
    bot.later(3)
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera 5")
    await bot.say(uppsala, TIB, "!lägesbild antal=47")
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!logg Två ambulanser på väg")
    bot.later(10)
    await bot.say(uppsala, TIB, "!avlarma")
    bot.take()
    bot.take_deliveries()


async def test_the_report_in_the_room_with_its_files_and_an_anchor(bot: Harness) -> None:
    await night(bot)
    outcome = await bot.say(room("uppsala"), TIB, "!rapport")
    assert outcome is not None
    posts = bot.take()
    [summary] = [p for p in posts if p.purpose == "reply"]
    lines = summary.body.splitlines()
    assert lines[0] == "📊 RAPPORT H-1 – Katastrofläge, Region Uppsala"
    assert "Larmad 04:02 av @tib.uppsala till 8 parter." in lines
    assert "Tid till kvittens: median 3 min 0 s, längst Region Dalarna (3 min 0 s)." in lines
    assert "Lägesbild: 2 versioner. Logg: 1 rader." in lines
    assert "✅ Region Dalarna: 3 min 0 s i rummet · 5 av 5" in lines
    # the anchor in the coordination room names the head the report was built on
    [anchor] = [p for p in posts if p.room_id == COORDINATION_ROOM]
    entries = await bot.audit_entries()
    created = next(e for e in entries if e.action == "report.created")
    head = entries[created.seq - 2]  # the entry before the report's own
    assert find_anchors(anchor.body)[0].seq == created.detail["audit_seq"] == head.seq
    assert find_anchors(anchor.body)[0].digest == head.hash
    assert lines[-1] == f"Granskningsloggen: post {head.seq}, {head.hash[:12]}…"
    anchored = next(e for e in entries if e.action == "audit.anchored")
    assert anchored.detail["seq"] == head.seq
    assert anchored.detail["reason"] == "report"
    # the whole report as two files for the room it was asked in
    html, table = outcome.attachments
    assert (html.filename, html.mimetype) == ("rapport-H-1.html", "text/html; charset=utf-8")
    assert (table.filename, table.mimetype) == ("rapport-H-1.csv", "text/csv; charset=utf-8")
    assert {a.room_id for a in outcome.attachments} == {room("uppsala")}
    page = html.data.decode()
    assert "<title>Rapport H-1</title>" in page
    assert "Två ambulanser på väg" in page
    assert "Antal skadade" in page
    assert "http" not in page.replace('name="viewport"', "")  # nothing from outside
    rows = list(csv.DictReader(io.StringIO(table.data.decode())))
    assert {r["kind"] for r in rows} >= {
        "confirmed",
        "chain_started",
        "ack",
        "situation",
        "log",
        "stood_down",
    }


async def test_only_the_region_and_the_coordinators_get_the_report(bot: Harness) -> None:
    await night(bot)
    other = await bot.say(room("dalarna"), duty_officer("dalarna"), "!rapport H-1")
    assert other is not None
    assert other.posts[0].body == (
        "Tyvärr, rapporten om H-1 får bara Region Uppsalas TiB och beredskapssamordnare ta "
        "fram (!rapport)."
    )
    assert other.attachments == []
    assert (await bot.audit_entries("command.refused"))[-1].detail["reason"] == (
        "not_region_duty_officer"
    )
    coordinator = await bot.say(COORDINATION_ROOM, COORDINATOR, "!report")
    assert coordinator is not None
    assert coordinator.posts[0].body.startswith("📊 REPORT H-1 – Disaster, Region Uppsala")
    assert [a.filename for a in coordinator.attachments] == ["report-H-1.html", "report-H-1.csv"]
    nothing = await bot.say(COORDINATION_ROOM, COORDINATOR, "!rapport H-9")
    assert nothing is not None
    assert nothing.posts[0].body == "Det finns ingen händelse H-9."
