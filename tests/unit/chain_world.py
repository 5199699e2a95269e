"""The test world: Sjukvårdsregion Mellansverige and a stand-in for the engine.

``mellansverige()`` builds a config through :func:`bot.config.parse_config` (seven regions,
Socialstyrelsen as national duty officer, Uppsala's blood centre, a coordination room).
:class:`Harness` drives the command layer through the engine's own writer and delivery pass
(one write transaction per inbound event) to recording senders at the edge, and records what
was sent, so a story can end with "and nothing else was sent".
Due times fire only when a test says so (:meth:`Harness.run_due`, :meth:`Harness.tick`), the
way the engine's due pass does: read the rows due by now, fire each in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Config, parse_config
from bot.contracts import Outgoing, SendResult
from bot.contracts import Sent as ContractSent
from bot.engine.context import ContextFactory
from bot.engine.delivery import DeliveryPass
from bot.engine.due import DuePass
from bot.engine.fallback import Fallback
from bot.engine.prepare import Preparer
from bot.engine.summaries import Summaries
from bot.engine.writer import OutcomeWriter
from bot.i18n import Catalog
from commands.context import CommandContext, Invocation, Reaction
from commands.dispatch import handle_message, handle_reaction
from commands.escalation import fire_due
from commands.exercise.marking import ExerciseMarking
from commands.outcome import Delivery, Outcome, Post
from storage import audit
from storage.database import Database
from storage.incidents import due_now, dues_of
from storage.models import OutboxRow

SERVER = "example.org"
BOT = f"@larmkedja:{SERVER}"
COORDINATOR = f"@samordnare:{SERVER}"
COORDINATION_ROOM = f"!samordning:{SERVER}"
OUTSIDER = f"@utomstaende:{SERVER}"
ENGINE = "larmkedja"  # the actor of what the bot decides by itself (due times)

REGIONS = {
    "uppsala": "Region Uppsala",
    "dalarna": "Region Dalarna",
    "gavleborg": "Region Gävleborg",
    "varmland": "Region Värmland",
    "vastmanland": "Region Västmanland",
    "orebro": "Region Örebro län",
    "sormland": "Region Sörmland",
}
NATIONAL = "socialstyrelsen"
BLOOD_CENTRE = "blodcentralen-uppsala"


def duty_officer(party_id: str) -> str:
    return f"@tib.{party_id}:{SERVER}"


def member(party_id: str) -> str:
    return f"@kansli.{party_id}:{SERVER}"


def room(party_id: str) -> str:
    return f"!{party_id}:{SERVER}"


def _party(party_id: str, name: str, language: str) -> dict[str, Any]:
    return {
        "id": party_id,
        "name": name,
        "language": language,
        "room": room(party_id),
        "duty_officers": [duty_officer(party_id)],
        "members": [member(party_id)],
        "email": [f"tib@{party_id}.example"],
        "sms": ["+4670000" + str(1000 + len(party_id))],
    }


def mellansverige(
    languages: dict[str, str] | None = None,
    coordination_language: str = "sv",
    required_transports: int = 5,
    with_national: bool = True,
    with_blood_centre: bool = True,
    escalation: dict[str, Any] | None = None,
    party_overrides: dict[str, dict[str, Any]] | None = None,
    bridges: bool = True,
    exercises: dict[str, Any] | None = None,
) -> Config:
    """Sjukvårdsregion Mellansverige: seven regions, Socialstyrelsen as national duty officer
    and Uppsala's blood centre. ``languages`` overrides a party's language by id;
    ``escalation`` is the ``[escalation]`` table (the built-in default if None);
    ``party_overrides`` adds or replaces keys of a party by id."""
    languages = languages or {}
    overrides = party_overrides or {}
    parties = []
    if with_national:
        parties.append(
            {
                **_party(NATIONAL, "Socialstyrelsen", languages.get(NATIONAL, "sv")),
                "kind": "national_duty_officer",
            }
        )
    if with_blood_centre:
        parties.append(
            {
                **_party(BLOOD_CENTRE, "Blodcentralen Uppsala", languages.get(BLOOD_CENTRE, "sv")),
                "kind": "blood_centre",
                "region": "uppsala",
            }
        )
    regions = [_party(pid, name, languages.get(pid, "sv")) for pid, name in REGIONS.items()]
    for party in [*regions, *parties]:
        party.update(overrides.get(party["id"], {}))
    data: dict[str, Any] = {
        "matrix": {
            "homeserver": "https://matrix.example.org",
            "user_id": BOT,
            "password": {"value": "not-a-secret"},
        },
        "healthcare_region": {
            "id": "mellansverige",
            "name": "Sjukvårdsregion Mellansverige",
            "coordination_room": COORDINATION_ROOM,
            "coordinators": [COORDINATOR],
            "language": coordination_language,
        },
        "chain": {"required_transports": required_transports},
        "regions": regions,
        "parties": parties,
    }
    if escalation is not None:
        data["escalation"] = escalation
    if exercises is not None:
        data["exercises"] = exercises
    if bridges:  # SMS and e-mail configured (nothing is started: executors only decide)
        data["bridges"] = {
            "secret": {"value": "unit-test-bridge-secret"},
            "http": {"gateway_secret": {"value": "unit-test-gateway-secret"}},
            "sms": {
                "gateways": [
                    {
                        "url": "http://127.0.0.1:1/cgi-bin/sendsms",
                        "username": "u",
                        "password": {"value": "p"},
                    }
                ]
            },
            "email": {"address": "larm@larmkedja.example", "relays": [{"host": "127.0.0.1"}]},
        }
    return parse_config(data)


@dataclass
class Sent:
    """What the harness's senders were handed, in order, as the decision that wrote it."""

    post: Post
    event_id: str  # the Matrix event id it got


class RecordingSender:
    """A channel's edge: accepts every message and remembers it (the one fake the harness
    has; everything from the decision to the send is the bot's own code)."""

    def __init__(self, channel: str, harness: Harness) -> None:
        self.channel = channel
        self.harness = harness

    async def send(self, message: Outgoing) -> SendResult:
        return self.harness._sent_by(message)


class _RecordingWriter(OutcomeWriter):
    """The engine's writer, which also tells the harness what was decided (so that what the
    senders are handed maps back to the decided post or delivery)."""

    def __init__(self, harness: Harness, writer: OutcomeWriter) -> None:
        super().__init__(
            marking=writer.marking,
            delivery_deadlines=writer.deadlines,
            summary_after_s=writer.summary_after_s,
        )
        self.harness = harness

    async def write(self, session: Any, **kwargs: Any) -> list[OutboxRow]:
        kwargs["outcome"] = self.marking(kwargs["outcome"])  # what the writer writes
        self.harness._decide(kwargs["source_id"], kwargs["outcome"])
        return await super().write(session, **kwargs)


@dataclass
class Harness:
    """Drives the command layer through the engine's own parts and remembers what went out.

    Every outcome is written by the real :class:`bot.engine.writer.OutcomeWriter` (outbox rows,
    board posts and edits coalesced, delivery deadlines) and sent by the real delivery pass
    (:mod:`bot.engine.delivery`: claim, prepare, lanes, record) to :class:`RecordingSender`s.
    What a sender was handed is mapped back to the post or delivery that was decided, so a
    story reads the decisions it expects, in the order they went out.
    """

    db: Database
    config: Config
    clock: FakeClock
    catalog: Catalog
    sent: list[Sent] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)  # sms and e-mail, in order
    boards: dict[tuple[str, str], str] = field(default_factory=dict)  # (incident, room) → body
    outcomes: list[Outcome] = field(default_factory=list)
    _events: int = 0
    _decided: dict[str, Post | Delivery] = field(default_factory=dict)
    _delivery: DeliveryPass | None = None

    def __post_init__(self) -> None:
        self.writer = OutcomeWriter(marking=ExerciseMarking(self.config, self.catalog))
        self._writer = _RecordingWriter(self, self.writer)
        channels = ("matrix", *self.config.bridge_channels())
        self._delivery = DeliveryPass(
            self.db,
            self.clock,
            senders={c: RecordingSender(c, self) for c in channels},
            policies={},
            preparer=Preparer(party_for_room=lambda r: self.make_context.party_for_room(r)),
            on_problem=lambda *a: self._fallback().on_problem(*a),
            after_record=lambda *a: self._summaries().after_record(*a),
        )

    @property
    def make_context(self) -> ContextFactory:
        """Built from the config as it is now (a test may edit it during an incident)."""
        return ContextFactory(self.config, self.clock, self.catalog)

    def _event_id(self, prefix: str) -> str:
        self._events += 1
        return f"${prefix}{self._events}"

    def _context(self, session: Any) -> CommandContext:
        return self.make_context(session)

    def _sent_by(self, message: Outgoing) -> SendResult:
        event_id = self._event_id("sent")
        decided = self._decided.pop(message.key, None)
        if isinstance(decided, Post):
            self.sent.append(Sent(decided, event_id))
        elif isinstance(decided, Delivery):
            self.deliveries.append(decided)
        return ContractSent(event_id)

    def _decide(self, inbound: str, outcome: Outcome) -> None:
        keys = [p.key for p in outcome.posts] + [d.key for d in outcome.deliveries]
        assert len(keys) == len(set(keys)), f"post keys not unique: {keys}"
        for post in outcome.posts:
            self._decided[f"{inbound}:{post.key}"] = post
        for delivery in outcome.deliveries:
            self._decided[f"{inbound}:{delivery.key}"] = delivery
        for board in outcome.boards:
            self.boards[(board.incident_id, board.room_id)] = board.body
        self.outcomes.append(outcome)

    async def _record(self, session: Any, inbound: str, sender: str, outcome: Outcome) -> Outcome:
        """Write ``outcome`` as the engine does; returns it as written (exercises marked)."""
        outcome = self.writer.marking(outcome)
        self._decide(inbound, outcome)
        await self.writer.write(
            session, source_id=inbound, actor=sender, outcome=outcome, now=self.clock.now()
        )
        return outcome

    async def deliver(self) -> None:
        """Everything written goes out: delivery passes until nothing is due."""
        assert self._delivery is not None
        while await self._delivery.deliver_due():
            await self._delivery.wait_idle()

    async def say(self, room_id: str, sender: str, body: str) -> Outcome | None:
        event_id = self._event_id("cmd")
        invocation = Invocation(event_id, room_id, sender, body, self.clock.now())
        async with self.db.write() as session:
            outcome = await handle_message(invocation, self._context(session))
            if outcome is not None:
                outcome = await self._record(session, event_id, sender, outcome)
        await self.deliver()
        return outcome

    async def react(
        self, room_id: str, sender: str, reacts_to: str, key: str = "✅"
    ) -> Outcome | None:
        event_id = self._event_id("reaction")
        reaction = Reaction(event_id, room_id, sender, key, reacts_to, self.clock.now())
        async with self.db.write() as session:
            outcome = await handle_reaction(reaction, self._context(session))
            if outcome is not None:
                outcome = await self._record(session, event_id, sender, outcome)
        await self.deliver()
        return outcome

    def later(self, minutes: float) -> None:
        """Let time pass; due times do not fire (see :meth:`tick`)."""
        self.clock.advance(timedelta(minutes=minutes))

    async def run_due(self) -> list[Outcome]:
        """Fire every due time due by now through the engine's own due-time pass (each in its
        own write transaction, again until none is due: firing one late makes the next step
        due at once); returns the outcomes of the reminders and escalation steps."""
        outcomes: list[Outcome] = []
        seen: set[int] = set()
        while True:
            async with self.db.read() as session:
                rows = [r.id for r in await due_now(session, self.clock.now())]
            if not rows:
                return outcomes
            for row_id in rows:
                assert row_id not in seen, f"due time {row_id} is still pending after it fired"
                seen.add(row_id)
                outcome = await self._due_pass().fire(row_id)
                if outcome is not None:
                    outcomes.append(outcome)
                await self.deliver()

    async def fire(self, key: str, incident_id: str) -> Outcome:
        """Fire the due time ``key`` now, whatever its row says (a trigger that comes late,
        twice or for nothing): the decision :func:`commands.escalation.fire_due` in its own
        write transaction, written by the engine's writer. :meth:`run_due` is the pass."""
        async with self.db.write() as session:
            outcome = await fire_due(key, incident_id, self._context(session))
            await self._writer.write(
                session,
                source_id=f"due:{key}",
                actor=ENGINE,
                outcome=outcome,
                now=self.clock.now(),
            )
        await self.deliver()
        return outcome

    def _due_pass(self) -> DuePass:
        return DuePass(
            self.db,
            self.clock,
            writer=self._writer,
            make_context=self.make_context,
            fallback=self._fallback(),
            summaries=self._summaries(),
        )

    def _fallback(self) -> Fallback:
        return Fallback(writer=self._writer, make_context=self.make_context)

    def _summaries(self) -> Summaries:
        return Summaries(
            writer=self._writer,
            make_context=self.make_context,
            on_problem=self._fallback().on_problem,
        )

    async def due_rows(self, incident_id: str = "H-1") -> list[Any]:
        """Every due-time row of an incident, in order of due time."""
        async with self.db.read() as session:
            return await dues_of(session, incident_id)

    async def tick(self, minutes: float, step_s: float = 60.0) -> list[Outcome]:
        """Let ``minutes`` pass in steps of ``step_s`` seconds, running due times after each
        step (the fake-clock technique: move time, run one engine tick, assert)."""
        outcomes: list[Outcome] = []
        end = self.clock.now() + timedelta(minutes=minutes)
        while self.clock.now() < end:
            self.clock.set(min(end, self.clock.now() + timedelta(seconds=step_s)))
            outcomes += await self.run_due()
        return outcomes

    # -- reading what was sent ---------------------------------------------------------------

    def take(self) -> list[Post]:
        """Everything sent since the last take (so a story can assert 'and nothing else')."""
        posts = [s.post for s in self.sent]
        self.sent.clear()
        return posts

    def untaken(self) -> list[str]:
        """What went out since the last take, on any channel, that the story did not take:
        the teardown fails on it (GoAlert's "no message nobody expected")."""
        return [f"matrix {s.post.room_id}: {s.post.body[:80]}" for s in self.sent] + [
            f"{d.channel} {d.destination}: {d.body[:80]}" for d in self.deliveries
        ]

    def take_deliveries(self) -> list[Delivery]:
        """SMS and e-mail decided since the last call."""
        deliveries = list(self.deliveries)
        self.deliveries.clear()
        return deliveries

    async def alarm_event_id(self, room_id: str, incident_id: str) -> str:
        """The Matrix event id the alarm to ``room_id`` got (to react to it)."""
        async with self.db.read() as session:
            value = await session.scalar(
                select(OutboxRow.remote_id).where(
                    OutboxRow.destination == room_id,
                    OutboxRow.purpose == "alarm",
                    OutboxRow.incident_id == incident_id,
                )
            )
        assert value is not None, f"no alarm to {room_id} for {incident_id}"
        return value

    async def audit_actions(self) -> list[str]:
        async with self.db.read() as session:
            return [row.action for row in await audit.entries(session)]

    async def audit_entries(self, action: str | None = None) -> list[Any]:
        async with self.db.read() as session:
            return await audit.entries(session, action)
