"""Escalation in the domain: the policy's schedule, due times, firing, cancelling, pledge
reminders and the serialised record, with a fake clock and no I/O."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.clock import FakeClock
from bot.domain import (
    NO_ESCALATION,
    PLEDGE,
    STEP,
    Action,
    Due,
    EscalationPolicy,
    EscalationStep,
    Incident,
    Party,
    PartyKind,
    Pledge,
    ReadinessLevel,
    chain_template,
)

TIB = "@tib.uppsala:example.org"
MIN = timedelta(minutes=1)


def party(pid: str, kind: PartyKind = PartyKind.REGION, region: str | None = None) -> Party:
    return Party(
        id=pid,
        name=pid.title(),
        kind=kind,
        language="sv",
        room=f"!{pid}:example.org",
        duty_officers=(f"@tib.{pid}:example.org",),
        sms=("+46700000001",),
        region=region,
    )


PARTIES = [
    party("uppsala"),
    party("dalarna"),
    party("gavleborg"),
    party("socialstyrelsen", PartyKind.NATIONAL_DUTY_OFFICER),
]

POLICY = EscalationPolicy(
    steps=(
        EscalationStep(5 * MIN, Action.REMIND),
        EscalationStep(5 * MIN, Action.NOTIFY_INITIATOR),
        EscalationStep(10 * MIN, Action.SEND, ("sms", "email")),
    ),
    repeat_every=10 * MIN,
    max_repeats=2,
    pledge_reminder=10 * MIN,
)


def alarmed(clock: FakeClock, policies: dict[str, EscalationPolicy] | None = None) -> Incident:
    incident = Incident.confirm(
        number=1,
        region_id="uppsala",
        region_name="Region Uppsala",
        level=ReadinessLevel.DISASTER,
        headline="Tågurspårning Märsta",
        by=TIB,
        clock=clock,
    )
    if policies is None:
        policies = {p.id: POLICY for p in PARTIES}
    incident.start_alarm(chain_template("uppsala", PARTIES, 5, policies), by=TIB, clock=clock)
    return incident


def step_due(incident: Incident, party_id: str) -> Due:
    due = incident.next_due(party_id, STEP)
    assert due is not None
    return due


# -- the policy --------------------------------------------------------------------------------


def test_the_schedule_counts_each_step_from_the_one_before_and_repeats_the_last() -> None:
    clock = FakeClock()
    start = clock.now()
    schedule = []
    due = POLICY.first("H-1", "dalarna", start)
    while due is not None:
        schedule.append(((due.due_at - start) / MIN, due.step, due.repeat))
        due = POLICY.after(due)
    assert schedule == [(5, 0, 0), (10, 1, 0), (20, 2, 0), (30, 2, 1), (40, 2, 2)]


def test_no_repeat_without_an_interval_and_no_steps_no_dues() -> None:
    once = EscalationPolicy(steps=(EscalationStep(MIN, Action.REMIND),), max_repeats=5)
    first = once.first("H-1", "x", FakeClock().now())
    assert first is not None
    assert once.after(first) is None
    assert NO_ESCALATION.first("H-1", "x", FakeClock().now()) is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EscalationStep(-MIN, Action.REMIND), "before"),
        (lambda: EscalationStep(MIN, Action.SEND), "channel"),
        (lambda: EscalationStep(MIN, Action.SEND, ("fax",)), "unknown channels"),
        (lambda: EscalationStep(MIN, Action.REMIND, ("sms",)), "only a send step"),
        (lambda: EscalationStep(MIN, Action.PLEDGE_REMINDER), "not an escalation step"),
        (lambda: EscalationPolicy(max_repeats=-1), "negative"),
    ],
)
def test_impossible_policies_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


# -- due times ---------------------------------------------------------------------------------


def test_starting_the_chain_makes_every_party_s_first_step_due() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    dues = incident.pending_dues()
    assert [d.key for d in dues] == [
        "H-1:dalarna:step:0:0",
        "H-1:gavleborg:step:0:0",
        "H-1:socialstyrelsen:step:0:0",
    ]
    assert {d.due_at for d in dues} == {clock.now() + 5 * MIN}


def test_a_party_without_a_policy_has_no_dues() -> None:
    incident = alarmed(FakeClock(), {"dalarna": POLICY})
    assert [d.party_id for d in incident.pending_dues()] == ["dalarna"]


def test_firing_records_the_step_and_makes_the_next_one_due() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    first = step_due(incident, "dalarna")
    clock.advance(5 * MIN - timedelta(seconds=1))
    assert incident.fire_due(first.key, clock.now()) is None  # not yet
    assert incident.pending_due(first.key) == first
    clock.advance(timedelta(seconds=1))
    fired = incident.fire_due(first.key, clock.now())
    assert fired is not None
    assert (fired.action, fired.step, fired.repeat, fired.late_by) == (
        Action.REMIND,
        0,
        0,
        timedelta(0),
    )
    assert not fired.is_late
    assert incident.fired_of("dalarna") == (fired,)
    following = step_due(incident, "dalarna")
    assert (following.step, following.due_at) == (1, first.due_at + 5 * MIN)
    assert incident.fire_due(first.key, clock.now()) is None  # fires once


def test_a_late_firing_is_marked_late_and_does_not_shift_the_schedule() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    start = clock.now()
    clock.advance(27 * MIN)  # the bot was down across two due times
    first = incident.fire_due(step_due(incident, "dalarna").key, clock.now())
    second = incident.fire_due(step_due(incident, "dalarna").key, clock.now())
    third = incident.fire_due(step_due(incident, "dalarna").key, clock.now())
    assert first is not None
    assert second is not None
    assert third is not None
    assert [f.late_by for f in (first, second, third)] == [22 * MIN, 17 * MIN, 7 * MIN]
    assert all(f.is_late for f in (first, second, third))
    assert step_due(incident, "dalarna").due_at == start + 30 * MIN  # as always planned
    assert incident.fire_due(step_due(incident, "dalarna").key, clock.now()) is None


def test_repeats_stop_at_the_maximum() -> None:
    clock = FakeClock()
    incident = alarmed(clock, {"dalarna": POLICY})
    fired = []
    for _ in range(20):
        due = incident.next_due("dalarna")
        if due is None:
            break
        clock.set(due.due_at)
        record = incident.fire_due(due.key, clock.now())
        assert record is not None
        fired.append((record.step, record.repeat))
    assert fired == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]
    assert incident.pending_dues() == []


def test_an_acknowledgement_cancels_the_party_s_reminders_at_once() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    due = step_due(incident, "dalarna")
    clock.advance(5 * MIN)  # due now, but the acknowledgement is recorded first
    recorded = incident.acknowledge(
        "dalarna", by="@a:x.org", via="room", clock=clock, pledge=Pledge(5)
    )
    assert recorded.cancelled == (due,)
    assert incident.next_due("dalarna") is None
    assert incident.fire_due(due.key, clock.now()) is None
    assert incident.why_moot(due.key) == "acknowledged"
    assert step_due(incident, "gavleborg")  # the others go on


def test_a_stand_down_cancels_everything() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    pending = incident.pending_dues()
    clock.advance(5 * MIN)
    stood_down = incident.stand_down(by=TIB, clock=clock)
    assert stood_down.cancelled == tuple(pending)
    assert incident.pending_dues() == []
    assert all(incident.fire_due(d.key, clock.now()) is None for d in pending)
    assert incident.why_moot(pending[0].key) == "stood_down"


def test_a_key_that_is_not_pending_is_moot() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    clock.advance(60 * MIN)
    assert incident.fire_due("H-1:dalarna:step:2:0", clock.now()) is None  # not yet its turn
    assert incident.fire_due("H-1:nobody:step:0:0", clock.now()) is None
    assert incident.why_moot("nonsense") == "not_pending"
    key = step_due(incident, "dalarna").key
    assert incident.fire_due(key, clock.now()) is not None
    assert incident.why_moot(key) == "already_fired"


# -- the pledge reminder -----------------------------------------------------------------------


def test_a_short_pledge_arms_one_reminder_and_a_sufficient_one_clears_it() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    clock.advance(MIN)
    short = incident.acknowledge(
        "dalarna", by="@a:x.org", via="room", clock=clock, pledge=Pledge(2)
    )
    assert short.armed is not None
    assert (short.armed.kind, short.armed.key) == (PLEDGE, "H-1:dalarna:pledge:1:0")
    assert short.armed.due_at == clock.now() + 10 * MIN
    clock.advance(MIN)
    again = incident.acknowledge(
        "dalarna", by="@b:x.org", via="room", clock=clock, pledge=Pledge(3)
    )
    assert again.armed is None  # the first one still stands, not pushed back
    assert incident.next_due("dalarna", PLEDGE) == short.armed
    enough = incident.acknowledge(
        "dalarna", by="@b:x.org", via="room", clock=clock, pledge=Pledge(5)
    )
    assert enough.cancelled == (short.armed,)
    assert incident.next_due("dalarna") is None
    assert incident.why_moot(short.armed.key) == "pledge_met"
    # Lowered again: a new reminder with a new key (a key is never reused).
    lowered = incident.acknowledge(
        "dalarna", by="@b:x.org", via="room", clock=clock, pledge=Pledge(4)
    )
    assert lowered.armed is not None
    assert lowered.armed.key == "H-1:dalarna:pledge:4:0"


def test_the_pledge_reminder_fires_once() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    recorded = incident.acknowledge("dalarna", by="@a:x.org", via="reaction", clock=clock)
    assert recorded.armed is not None
    clock.advance(10 * MIN)
    fired = incident.fire_due(recorded.armed.key, clock.now())
    assert fired is not None
    assert (fired.kind, fired.action) == (PLEDGE, Action.PLEDGE_REMINDER)
    assert incident.next_due("dalarna") is None
    later = incident.acknowledge(
        "dalarna", by="@a:x.org", via="room", clock=clock, pledge=Pledge(1)
    )
    assert later.armed is None


def test_no_pledge_reminder_without_a_requirement_or_a_policy_for_it() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    national = incident.acknowledge("socialstyrelsen", by="@n:x.org", via="room", clock=clock)
    assert national.armed is None  # nothing is required of the national duty officer
    quiet = EscalationPolicy(steps=POLICY.steps)
    other = alarmed(FakeClock(), {"dalarna": quiet})
    assert other.acknowledge("dalarna", by="@a:x.org", via="room", clock=clock).armed is None


# -- the record --------------------------------------------------------------------------------


def test_policy_dues_and_fired_steps_survive_the_round_trip() -> None:
    clock = FakeClock()
    incident = alarmed(clock)
    clock.advance(12 * MIN)
    for party_id in ("dalarna", "gavleborg"):
        incident.fire_due(step_due(incident, party_id).key, clock.now())
    incident.acknowledge("gavleborg", by="@a:x.org", via="room", clock=clock, pledge=Pledge(1))
    restored = Incident.from_dict(json.loads(json.dumps(incident.to_dict())))
    assert restored == incident
    assert restored.pending_dues() == incident.pending_dues()
    assert restored.fired == incident.fired
    assert restored.chain is not None
    member = restored.chain.party("dalarna")
    assert member is not None
    assert member.escalation == POLICY


def test_a_chain_frozen_before_escalation_existed_has_none() -> None:
    clock = FakeClock()
    document = alarmed(clock).to_dict()
    del document["dues"], document["fired"]
    for member in document["chain"]["parties"]:
        del member["escalation"]
    restored = Incident.from_dict(document)
    assert restored.pending_dues() == []
    assert restored.chain is not None
    assert all(p.escalation == NO_ESCALATION for p in restored.chain.parties)
