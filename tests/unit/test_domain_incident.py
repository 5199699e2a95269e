"""The incident's state machine, acknowledgements and pledges, with a fake clock (no I/O)."""

from __future__ import annotations

import ast
import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.domain import (
    AlarmChain,
    AlreadyAlarmed,
    AlreadyStoodDown,
    DomainError,
    IllegalTransition,
    Incident,
    IncidentState,
    InvalidPledge,
    NotAlarmed,
    NotInChain,
    Party,
    PartyKind,
    Pledge,
    ReadinessLevel,
    chain_template,
    format_incident_id,
    parse_incident_number,
)

TIB = "@tib.uppsala:example.org"


def party(pid: str, kind: PartyKind = PartyKind.REGION, region: str | None = None) -> Party:
    return Party(
        id=pid,
        name=pid.title(),
        kind=kind,
        language="sv",
        room=f"!{pid}:example.org",
        duty_officers=(f"@tib.{pid}:example.org",),
        members=(f"@kansli.{pid}:example.org",),
        email=(f"tib@{pid}.example",),
        sms=("+46700000001",),
        region=region,
    )


PARTIES = [
    party("uppsala"),
    party("dalarna"),
    party("gavleborg"),
    party("socialstyrelsen", PartyKind.NATIONAL_DUTY_OFFICER),
    party("blod-uppsala", PartyKind.BLOOD_CENTRE, region="uppsala"),
    party("blod-dalarna", PartyKind.BLOOD_CENTRE, region="dalarna"),
]


def chain(initiator: str = "uppsala", required: int = 5) -> AlarmChain:
    return chain_template(initiator, PARTIES, required)


def confirmed(clock: FakeClock, number: int = 7) -> Incident:
    return Incident.confirm(
        number=number,
        region_id="uppsala",
        region_name="Region Uppsala",
        level=ReadinessLevel.REINFORCEMENT,
        headline="  Bussolycka E4 Knivsta ",
        by=TIB,
        clock=clock,
    )


def alarmed(clock: FakeClock) -> Incident:
    incident = confirmed(clock)
    incident.start_alarm(chain(), by=TIB, clock=clock)
    return incident


# -- chain template ----------------------------------------------------------------------------


def test_chain_alarms_other_regions_national_and_own_blood_centre() -> None:
    result = chain("uppsala")
    assert result.initiator.id == "uppsala"
    assert result.party_ids == ("dalarna", "gavleborg", "socialstyrelsen", "blod-uppsala")
    requirements = {p.id: p.requirement for p in result.parties}
    assert requirements["dalarna"].secondary_transports == 5
    assert requirements["gavleborg"].secondary_transports == 5
    assert requirements["socialstyrelsen"].secondary_transports == 0
    assert requirements["blod-uppsala"].alarm_blood_centres
    assert not requirements["dalarna"].alarm_blood_centres
    assert result.required_transports == 10


def test_chain_of_another_region_takes_its_own_blood_centre_only() -> None:
    assert chain("dalarna").party_ids == (
        "uppsala",
        "gavleborg",
        "socialstyrelsen",
        "blod-dalarna",
    )


def test_chain_without_national_or_blood_centre() -> None:
    regions = [p for p in PARTIES if p.kind is PartyKind.REGION]
    assert chain_template("gavleborg", regions, 5).party_ids == ("uppsala", "dalarna")


def test_chain_of_unknown_or_non_region_initiator_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not a region"):
        chain_template("socialstyrelsen", PARTIES, 5)
    with pytest.raises(ValueError, match="not a region"):
        chain_template("nowhere", PARTIES, 5)


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [("H-7", 7), ("h-7", 7), ("h7", 7), ("#7", 7), ("7", 7), (" H-12 ", 12), ("H-0", 0)],
)
def test_incident_ids_people_type(text: str, number: int) -> None:
    assert parse_incident_number(text) == number


@pytest.mark.parametrize("text", ["H-", "H-x", "HH-7", "7a", "", "H--7", "-7", "H-1234567890"])
def test_not_incident_ids(text: str) -> None:
    assert parse_incident_number(text) is None


def test_id_format() -> None:
    assert format_incident_id(7) == "H-7"


# -- state machine -----------------------------------------------------------------------------


def test_confirm_takes_now_from_the_clock() -> None:
    clock = FakeClock()
    incident = confirmed(clock)
    assert incident.id == "H-7"
    assert incident.state is IncidentState.CONFIRMED
    assert incident.confirmed_at == clock.now()
    assert incident.headline == "Bussolycka E4 Knivsta"
    assert incident.is_open
    assert not incident.is_alarmed


def test_confirm_needs_a_headline() -> None:
    with pytest.raises(ValueError, match="headline"):
        Incident.confirm(
            number=1,
            region_id="uppsala",
            region_name="Region Uppsala",
            level=ReadinessLevel.STAFF,
            headline="   ",
            by=TIB,
            clock=FakeClock(),
        )


def test_start_alarm_freezes_the_chain_and_happens_once() -> None:
    clock = FakeClock()
    incident = confirmed(clock)
    clock.advance(60)
    started = incident.start_alarm(chain(), by=TIB, clock=clock)
    assert incident.state is IncidentState.ALARMING
    assert [p.id for p in started.parties] == list(chain().party_ids)
    assert started.at == clock.now() == incident.alarmed_at
    assert not started.completed
    clock.advance(60)
    with pytest.raises(AlreadyAlarmed) as error:
        incident.start_alarm(chain(), by="@someone:example.org", clock=clock)
    assert error.value.at == started.at
    assert error.value.by == TIB
    assert isinstance(error.value, IllegalTransition)
    assert isinstance(error.value, DomainError)
    assert incident.alarmed_at == started.at


def test_chain_of_another_region_is_rejected() -> None:
    with pytest.raises(ValueError, match="chain of dalarna"):
        confirmed(FakeClock()).start_alarm(chain("dalarna"), by=TIB, clock=FakeClock())


def test_empty_chain_is_complete_at_once() -> None:
    clock = FakeClock()
    incident = confirmed(clock)
    lonely = chain_template("uppsala", [party("uppsala")], 5)
    started = incident.start_alarm(lonely, by=TIB, clock=clock)
    assert started.completed
    assert incident.state is IncidentState.ALL_ACKNOWLEDGED


def test_ack_before_alarm_is_refused() -> None:
    clock = FakeClock()
    incident = confirmed(clock)
    with pytest.raises(NotAlarmed):
        incident.acknowledge("dalarna", by="@tib.dalarna:example.org", via="room", clock=clock)
    assert incident.acks == []


def test_ack_by_a_party_outside_the_chain_is_refused() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    with pytest.raises(NotInChain) as error:
        incident.acknowledge("uppsala", by=TIB, via="room", clock=clock)
    assert error.value.party_id == "uppsala"
    assert incident.acks == []


def test_last_ack_completes_the_chain_once() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    ids = list(incident.chain.party_ids)  # type: ignore[union-attr]
    for pid in ids[:-1]:
        clock.advance(30)
        recorded = incident.acknowledge(pid, by=f"@tib.{pid}:example.org", via="room", clock=clock)
        assert not recorded.chain_completed
        assert incident.state is IncidentState.ALARMING
    recorded = incident.acknowledge(ids[-1], by="@x:example.org", via="reaction", clock=clock)
    assert recorded.chain_completed
    assert incident.state is IncidentState.ALL_ACKNOWLEDGED
    assert incident.missing() == ()
    again = incident.acknowledge(ids[0], by="@y:example.org", via="room", clock=clock)
    assert not again.chain_completed
    assert not again.is_first
    assert incident.state is IncidentState.ALL_ACKNOWLEDGED


def test_every_ack_is_recorded_first_counts_latest_pledge_wins() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    clock.advance(timedelta(minutes=2))
    first = incident.acknowledge(
        "dalarna", by="@kansli.dalarna:example.org", via="reaction", clock=clock
    )
    assert first.is_first
    assert first.pledge is None
    assert first.short_of_requirement  # a region that pledged nothing is short
    clock.advance(timedelta(minutes=1))
    second = incident.acknowledge(
        "dalarna",
        by="@tib.dalarna:example.org",
        via="room",
        clock=clock,
        pledge=Pledge(3, "två på väg"),
    )
    assert not second.is_first
    assert second.first is first.ack
    assert second.pledge == Pledge(3, "två på väg")
    assert second.short_of_requirement
    clock.advance(timedelta(minutes=1))
    third = incident.acknowledge(
        "dalarna", by="@tib.dalarna:example.org", via="room", clock=clock, pledge=Pledge(6)
    )
    assert not third.short_of_requirement
    # A later ack without a number keeps the pledge; its remark becomes the party's remark.
    incident.acknowledge(
        "dalarna",
        by="@kansli.dalarna:example.org",
        via="room",
        clock=clock,
        pledge=Pledge(None, "bilarna rullar"),
    )
    assert len(incident.acks_of("dalarna")) == 4
    assert incident.first_ack("dalarna") == first.ack
    assert incident.pledge_of("dalarna") == Pledge(6)
    assert incident.remark_of("dalarna") == "bilarna rullar"
    assert incident.total_pledged() == 6
    assert [p.id for p in incident.acknowledged()] == ["dalarna"]
    assert "dalarna" not in [p.id for p in incident.missing()]


def test_short_of_requirement_lists_acknowledged_regions_below_it() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    incident.acknowledge("dalarna", by="@a:x.org", via="room", clock=clock, pledge=Pledge(2))
    incident.acknowledge("gavleborg", by="@b:x.org", via="room", clock=clock, pledge=Pledge(5))
    incident.acknowledge("socialstyrelsen", by="@c:x.org", via="room", clock=clock)
    incident.acknowledge("blod-uppsala", by="@d:x.org", via="reaction", clock=clock)
    assert [p.id for p in incident.short_of_requirement()] == ["dalarna"]
    assert incident.total_pledged() == 7


def test_ack_time_is_the_event_time_kept_between_alarm_and_now() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    assert incident.alarmed_at is not None
    clock.advance(600)
    late = incident.acknowledge(
        "dalarna", by="@a:x.org", via="sms", clock=clock, at=clock.now() + timedelta(minutes=5)
    )
    assert late.ack.at == clock.now()  # a timestamp from the future is capped at now
    early = incident.acknowledge(
        "gavleborg", by="@a:x.org", via="room", clock=clock, at=clock.now() - timedelta(days=1)
    )
    assert early.ack.at == incident.alarmed_at
    real = incident.acknowledge(
        "socialstyrelsen",
        by="@a:x.org",
        via="room",
        clock=clock,
        at=clock.now() - timedelta(seconds=300),
    )
    assert real.ack.at == clock.now() - timedelta(seconds=300)


def test_the_earliest_ack_by_time_is_the_first_even_if_processed_later() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    clock.advance(600)
    incident.acknowledge("dalarna", by="@late:x.org", via="room", clock=clock)
    early = incident.acknowledge(
        "dalarna",
        by="@early:x.org",
        via="sms",
        clock=clock,
        at=clock.now() - timedelta(seconds=500),
    )
    assert early.is_first
    assert incident.first_ack("dalarna").person == "@early:x.org"  # type: ignore[union-attr]


def test_negative_pledge_is_impossible() -> None:
    with pytest.raises(InvalidPledge):
        Pledge(-1)


def test_stand_down_from_alarming_names_every_alarmed_party() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    clock.advance(3600)
    stood_down = incident.stand_down(by=TIB, clock=clock, remark=" Insatsen avslutad ")
    assert incident.state is IncidentState.STOOD_DOWN
    assert not incident.is_open
    assert [p.id for p in stood_down.parties] == list(chain().party_ids)
    assert stood_down.remark == "Insatsen avslutad"
    assert incident.stood_down_at == clock.now()


def test_stand_down_of_an_unalarmed_incident_tells_nobody() -> None:
    clock = FakeClock()
    incident = confirmed(clock)
    stood_down = incident.stand_down(by=TIB, clock=clock)
    assert stood_down.parties == ()
    assert incident.state is IncidentState.STOOD_DOWN


def test_nothing_happens_after_stand_down() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    incident.stand_down(by=TIB, clock=clock)
    with pytest.raises(AlreadyStoodDown) as error:
        incident.acknowledge("dalarna", by="@a:x.org", via="room", clock=clock)
    assert error.value.at == incident.stood_down_at
    with pytest.raises(AlreadyStoodDown):
        incident.stand_down(by=TIB, clock=clock)
    with pytest.raises(AlreadyStoodDown):
        incident.start_alarm(chain(), by=TIB, clock=clock)
    assert incident.acks == []


def test_start_alarm_after_stand_down_of_unalarmed_incident_is_refused() -> None:
    clock = FakeClock()
    incident = confirmed(clock)
    incident.stand_down(by=TIB, clock=clock)
    with pytest.raises(AlreadyStoodDown):
        incident.start_alarm(chain(), by=TIB, clock=clock)
    assert incident.chain is None


# -- serialisation -------------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    clock.advance(90)
    incident.acknowledge("dalarna", by="@a:x.org", via="room", clock=clock, pledge=Pledge(5, "ok"))
    incident.acknowledge("gavleborg", by="@b:x.org", via="reaction", clock=clock)
    incident.stand_down(by=TIB, clock=clock, remark="klart")
    document = json.loads(json.dumps(incident.to_dict()))
    restored = Incident.from_dict(document)
    assert restored == incident
    assert restored.to_dict() == incident.to_dict()
    assert restored.acks[0].at.tzinfo is not None
    assert restored.chain == incident.chain


def test_unknown_document_version_is_refused() -> None:
    document = confirmed(FakeClock()).to_dict()
    document["version"] = 99
    with pytest.raises(ValueError, match="version"):
        Incident.from_dict(document)


# -- the domain stays plain Python ---------------------------------------------------------------

FORBIDDEN = ("nio", "sqlalchemy", "aiohttp", "storage", "commands", "alembic", "bot.")
ALLOWED = ("bot.domain", "bot.clock")


def test_domain_imports_no_transport_storage_or_commands() -> None:
    root = Path(__file__).resolve().parents[2] / "bot" / "domain"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith(ALLOWED):
                    continue
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
