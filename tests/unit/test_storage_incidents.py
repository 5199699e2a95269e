"""The SQL repositories of the alarm chain against a real, migrated SQLite file."""

from __future__ import annotations

from datetime import timedelta

from chain_world import mellansverige, room
from sqlalchemy import inspect, select

from bot.clock import FakeClock
from bot.domain import Incident, IncidentState, Pledge, ReadinessLevel
from commands.parties import chain_for
from storage.database import Database
from storage.incident_models import IncidentPartyRow, IncidentRow
from storage.incidents import SqlAlarms, SqlIncidents, make_repositories
from storage.models import OutboxRow

CONFIG = mellansverige()


def new_incident(number: int, region: str, clock: FakeClock) -> Incident:
    return Incident.confirm(
        number=number,
        region_id=region,
        region_name=region.title(),
        level=ReadinessLevel.STAFF,
        headline=f"Händelse {number}",
        by=f"@tib.{region}:example.org",
        clock=clock,
    )


async def test_migration_adds_the_tables(db: Database) -> None:
    await db.migrate()  # already at head: a no-op
    async with db.read() as session:
        tables = await session.run_sync(lambda s: inspect(s.connection()).get_table_names())
    assert {"incidents", "incident_parties", "due_times", "outbox", "audit_log"} <= set(tables)


async def test_numbers_start_at_one_and_are_never_reused(db: Database, clock: FakeClock) -> None:
    async with db.write() as session:
        repo = SqlIncidents(session)
        assert await repo.next_number() == 1
        await repo.save(new_incident(1, "uppsala", clock))
        assert await repo.next_number() == 2
        stood_down = new_incident(2, "dalarna", clock)
        stood_down.stand_down(by="@tib.dalarna:example.org", clock=clock)
        await repo.save(stood_down)
    async with db.write() as session:
        assert await SqlIncidents(session).next_number() == 3


async def test_an_incident_survives_the_round_trip(db: Database, clock: FakeClock) -> None:
    incident = new_incident(1, "uppsala", clock)
    clock.advance(60)
    incident.start_alarm(chain_for(CONFIG, "uppsala"), by="@tib.uppsala:example.org", clock=clock)
    clock.advance(60)
    incident.acknowledge(
        "dalarna", by="@tib.dalarna:example.org", via="room", clock=clock, pledge=Pledge(5, "ok")
    )
    async with db.write() as session:
        await SqlIncidents(session).save(incident)
    async with db.read() as session:
        loaded = await SqlIncidents(session).get("H-1")
        row = await session.get(IncidentRow, "H-1")
        assert row is not None
        assert row.state == "alarming"
        assert row.updated_at == clock.now()  # the time of the last acknowledgement
    assert loaded == incident
    assert loaded is not incident
    async with db.read() as session:
        assert await SqlIncidents(session).get("H-2") is None


async def test_saving_twice_in_one_transaction(db: Database, clock: FakeClock) -> None:
    incident = new_incident(1, "uppsala", clock)
    async with db.write() as session:
        repo = SqlIncidents(session)
        await repo.save(incident)
        incident.start_alarm(chain_for(CONFIG, "uppsala"), by="x", clock=clock)
        await repo.save(incident)
        incident.acknowledge("orebro", by="y", via="reaction", clock=clock)
        await repo.save(incident)
        again = await repo.get("H-1")
    assert again == incident
    async with db.read() as session:
        parties = list(
            await session.scalars(
                select(IncidentPartyRow.party_id).order_by(IncidentPartyRow.party_id)
            )
        )
    assert parties == sorted(chain_for(CONFIG, "uppsala").party_ids)


async def test_open_and_alarmed_queries(db: Database, clock: FakeClock) -> None:
    uppsala_1 = new_incident(1, "uppsala", clock)
    uppsala_2 = new_incident(2, "uppsala", clock)
    dalarna_3 = new_incident(3, "dalarna", clock)
    uppsala_1.start_alarm(chain_for(CONFIG, "uppsala"), by="x", clock=clock)
    dalarna_3.start_alarm(chain_for(CONFIG, "dalarna"), by="x", clock=clock)
    async with db.write() as session:
        repo = SqlIncidents(session)
        for incident in (dalarna_3, uppsala_2, uppsala_1):
            await repo.save(incident)
    async with db.read() as session:
        repo = SqlIncidents(session)
        assert [i.id for i in await repo.open_for_region("uppsala")] == ["H-1", "H-2"]
        assert [i.id for i in await repo.open_incidents()] == ["H-1", "H-2", "H-3"]
        # uppsala_2 is not alarmed; Uppsala is alarmed only for Dalarna's incident
        assert [i.id for i in await repo.alarmed_for_party("varmland")] == ["H-1", "H-3"]
        assert [i.id for i in await repo.alarmed_for_party("uppsala")] == ["H-3"]
        assert [i.id for i in await repo.alarmed_for_party("blodcentralen-uppsala")] == ["H-1"]
        assert await repo.alarmed_for_party("nobody") == []

    clock.advance(timedelta(hours=1))
    uppsala_1.stand_down(by="x", clock=clock)
    async with db.write() as session:
        await SqlIncidents(session).save(uppsala_1)
    async with db.read() as session:
        repo = SqlIncidents(session)
        assert [i.id for i in await repo.open_for_region("uppsala")] == ["H-2"]
        assert [i.id for i in await repo.alarmed_for_party("varmland")] == ["H-3"]
        assert [i.id for i in await repo.alarmed_for_party("blodcentralen-uppsala")] == []
        latest = await repo.latest_for_party("blodcentralen-uppsala")
        assert latest is not None
        assert latest.id == "H-1"
        assert latest.state is IncidentState.STOOD_DOWN
        newest = await repo.latest_for_party("varmland")
        assert newest is not None
        assert newest.id == "H-3"
        assert await repo.latest_for_party("nobody") is None


async def _outbox(db: Database, clock: FakeClock, **values: object) -> None:
    async with db.write() as session:
        session.add(
            OutboxRow(
                channel="matrix",
                payload={"body": "..."},
                status="sent",
                attempts=1,
                created_at=clock.now(),
                **values,
            )
        )


async def test_alarm_lookup_finds_the_alarm_by_its_event_in_its_room(
    db: Database, clock: FakeClock
) -> None:
    await _outbox(
        db,
        clock,
        idempotency_key="$cmd:alarm:dalarna",
        destination=room("dalarna"),
        purpose="alarm",
        remote_id="$alarm-dalarna",
        incident_id="H-4",
    )
    await _outbox(
        db,
        clock,
        idempotency_key="$cmd:reply",
        destination=room("uppsala"),
        purpose="reply",
        remote_id="$reply",
        incident_id="H-4",
    )
    await _outbox(
        db,
        clock,
        idempotency_key="$cmd:alarm:orebro",
        destination=room("orebro"),
        purpose="alarm",
        remote_id=None,
        incident_id="H-4",
    )
    async with db.read() as session:
        incidents, alarms = make_repositories(
            session, lambda r: p.id if (p := CONFIG.party_for_room(r)) else None
        )
        assert isinstance(incidents, SqlIncidents)
        ref = await alarms.resolve(room("dalarna"), "$alarm-dalarna")
        assert ref is not None
        assert (ref.incident_id, ref.party_id) == ("H-4", "dalarna")
        assert await alarms.resolve(room("varmland"), "$alarm-dalarna") is None
        assert await alarms.resolve(room("uppsala"), "$reply") is None
        assert await alarms.resolve(room("orebro"), "$unknown") is None
        without_config = await SqlAlarms(session).resolve(room("dalarna"), "$alarm-dalarna")
        assert without_config is not None
        assert without_config.party_id is None
