"""The one outbox's SMS and e-mail channels against a real Kannel, a real SMTP sink and a real
SQLite database (the delivery pass with the SMS and e-mail senders, as the bot builds them).

Time that matters (backoff, rate limits, delivery timeouts) is a :class:`FakeClock`; the wire
is real: what the fake SMSC and the mail sink received is what a handset and a mailbox got.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.demo.kannel import ThrowawayKannel
from bot.demo.mailsink import MailSink
from bot.demo.ports import free_port
from bot.engine.delivery import DeliveryPass
from bot.engine.delivery_reports import DeliveryReports, reported_delivered
from bot.engine.prepare import Preparer
from bot.engine.retry import ChannelPolicy, TokenBucket
from bot.engine.supervisor import Supervisor
from bridges.email.message import make_message_id
from bridges.email.sender import EmailChannelSettings, EmailSender
from bridges.email.smtp import Relay, SmtpSender
from bridges.sms import gsm7
from bridges.sms.kannel import DeliveryReport, DeliveryStatus, Endpoint, KannelClient
from bridges.sms.sender import SmsSender, sms_ref, sms_text
from storage import audit, outbox
from storage.database import Database
from storage.models import AuditRow, OutboxRow

BOT = "larm@vgregion.example"
DOMAIN = "vgregion.example"
TIB = "tib@regionuppsala.example"
SMTP_SECRET = "smtp-Hemligt-7c1d"  # noqa: S105 - a test credential, the point of one test
REPLY = "Svara KVITTERA 4821 <antal>"
LONG_BODY = (
    "MASSKADELARM H-1 katastrofläge: bussolycka vid Ånge, räddningstjänsten på plats.\n"
    + "Många skadade; förstärkning från Östersund och Härnösand behövs – sekundärtransporter. " * 6
    + "\n"
    + REPLY
)

_numbers = itertools.count(46702000001)
_keys = itertools.count(1)


class ChannelOutbox:
    """The delivery pass as these tests drive it: one pass at a time, recorded when it
    returns (the bot's own loop starts lanes and lets them record while it goes on)."""

    def __init__(self, delivery: DeliveryPass, reports: DeliveryReports) -> None:
        self.delivery = delivery
        self.reports = reports

    async def deliver_due(self) -> int:
        claimed = await self.delivery.deliver_due()
        await self.delivery.wait_idle()
        return claimed

    async def record_dlr(self, report: DeliveryReport) -> None:
        await self.reports.record(report)


Factory = Callable[..., ChannelOutbox]


def new_number() -> str:
    return str(next(_numbers))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sms(kannel: ThrowawayKannel) -> AsyncIterator[KannelClient]:
    async with KannelClient(
        [kannel.endpoint("kannel")], "Larmkedja", kannel.recorder.dlr_url_template, timeout=2
    ) as client:
        yield client


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink(credentials={"larmkedja": SMTP_SECRET}) as mailbox:
        yield mailbox


def email_settings(*ports: int) -> EmailChannelSettings:
    relays = [
        Relay(
            "127.0.0.1", p, username="larmkedja", password=SMTP_SECRET, starttls=False, timeout=2
        )
        for p in ports
    ]
    return EmailChannelSettings(BOT, DOMAIN, SmtpSender(relays, local_hostname="bot.localhost"))


@pytest.fixture
def worker(
    db: Database, clock: FakeClock, sms: KannelClient, sink: MailSink
) -> Callable[..., ChannelOutbox]:
    def make(
        *,
        sms: KannelClient | None = sms,
        email: EmailChannelSettings | None = None,
        rate_per_s: dict[str, float] | None = None,
        max_attempts: int = 3,
        preparer: Preparer | None = None,
    ) -> ChannelOutbox:
        senders: dict[str, Any] = {}
        if sms is not None:
            senders["sms"] = SmsSender(sms)
        senders["email"] = EmailSender(email or email_settings(sink.port), clock)
        policies = {
            channel: ChannelPolicy(
                backoff_initial_s=10,
                backoff_max_s=60,
                max_attempts=max_attempts,
                bucket=TokenBucket(clock, rate)
                if (rate := (rate_per_s or {}).get(channel))
                else None,
                max_concurrent=8,
                rng=random.Random(7),
            )
            for channel in senders
        }
        delivery = DeliveryPass(
            db, clock, senders=senders, policies=policies, preparer=preparer or Preparer()
        )
        return ChannelOutbox(delivery, DeliveryReports(db, clock))

    return make


async def queue(
    db: Database,
    clock: FakeClock,
    channel: str,
    destination: str,
    body: str,
    *,
    status: str | None = None,
    attempts: int = 0,
    purpose: str = "escalation",
) -> OutboxRow:
    async with db.write() as session:
        row = await outbox.enqueue(
            session,
            key=f"due:H-1:step1:{channel}:{next(_keys)}",
            channel=channel,
            destination=destination,
            purpose=purpose,
            payload={"body": body},
            now=clock.now(),
            incident_id="H-1",
        )
        assert row is not None
        if status is not None:
            row.status, row.attempts = status, attempts
    return row


async def reload(db: Database, row_id: int) -> OutboxRow:
    async with db.read() as session:
        row = await session.get(OutboxRow, row_id)
        assert row is not None
        return row


async def texts_to(kannel: ThrowawayKannel, to: str, expected: list[str]) -> list[str]:
    """The texts the handset ``to`` got, once they equal ``expected`` (or after 3 s).

    A one-part text with a line break reaches fakesmsc's log as two lines, so a read between
    them sees only the first: wait for the whole text, not only for the count.
    """
    deadline = asyncio.get_running_loop().time() + 3
    while True:
        got = [m.text for m in await kannel.wait_for_sent(len(expected), receiver=to)]
        if got == expected or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.02)


async def audits(db: Database, action: str | None = None) -> list[AuditRow]:
    async with db.read() as session:
        return await audit.entries(session, action)


async def test_an_sms_goes_out_fitted_with_swedish_letters_and_its_dlr_is_recorded(
    db: Database, clock: FakeClock, kannel: ThrowawayKannel, worker: Factory
) -> None:
    to = new_number()
    row = await queue(db, clock, "sms", to, LONG_BODY)
    ob = worker()

    assert await ob.deliver_due() == 1
    (got,) = await kannel.wait_for_sent(receiver=to)
    assert got.text == sms_text(LONG_BODY)
    assert got.text.endswith("\n" + REPLY), "the reply instruction is kept whole"
    for word in ("katastrofläge", "Ånge", "Östersund"):
        assert word in got.text
    assert "–" not in got.text, "typographic dash normalised to GSM-7"
    assert (got.coding, got.parts) == ("text", 3)
    assert gsm7.segments(LONG_BODY) > 3

    sent = await reload(db, row.id)
    assert (sent.status, sent.attempts, sent.remote_id) == ("sent", 1, sms_ref(row.id))
    assert sent.sent_at == clock.now()
    assert not reported_delivered(sent)  # the fallback watch counts it as not delivered yet

    for report in await kannel.recorder.wait_for_reports(sms_ref(row.id)):
        await ob.record_dlr(report)
    delivered = await reload(db, row.id)
    assert delivered.status == "sent"
    assert delivered.payload["delivery"]["status"] == "delivered"
    assert delivered.payload["body"] == LONG_BODY
    assert reported_delivered(delivered)
    assert await ob.deliver_due() == 0


async def test_an_email_arrives_with_subject_and_a_message_id_from_the_key(
    db: Database, clock: FakeClock, sink: MailSink, worker: Factory
) -> None:
    body = "[H-1] MASSKADELARM – Katastrofläge\nBussolycka vid Ånge.\n" + REPLY
    row = await queue(db, clock, "email", TIB, body)

    assert await worker().deliver_due() == 1
    got = await sink.wait_for(lambda m: TIB in m.rcpt_tos, timeout=2)
    expected_id = make_message_id(DOMAIN, row.idempotency_key)
    assert got.subject == "[H-1] MASSKADELARM – Katastrofläge"
    assert got.message_id == expected_id
    assert got.login == "larmkedja"
    assert "Bussolycka vid Ånge." in got.text
    assert REPLY in got.text
    assert got.header("X-Larmkedja-Incident") == "H-1"
    sent = await reload(db, row.id)
    assert (sent.status, sent.remote_id, sent.last_error) == ("sent", expected_id, None)


async def test_a_gateway_outage_is_retried_with_backoff_and_sent_exactly_once(
    db: Database, clock: FakeClock, kannel: ThrowawayKannel, worker: Factory
) -> None:
    to = new_number()
    row = await queue(db, clock, "sms", to, "LARM H-2 Ånge\n" + REPLY)
    ob = worker()
    await kannel.stop_bearerbox_and_smsbox()
    try:
        assert await ob.deliver_due() == 1
        waiting = await reload(db, row.id)
        assert (waiting.status, waiting.attempts) == ("queued", 1)
        assert waiting.next_attempt_at is not None
        delay = (waiting.next_attempt_at - clock.now()).total_seconds()
        assert 5 <= delay <= 10  # initial 10 s with 50-100 % jitter
        assert waiting.last_error
        assert await ob.deliver_due() == 0, "not before its backoff"
    finally:
        await kannel.start()
    clock.advance(delay)
    assert await ob.deliver_due() == 1
    assert await texts_to(kannel, to, ["LARM H-2 Ånge\n" + REPLY]) == ["LARM H-2 Ånge\n" + REPLY]
    clock.advance(600)
    assert await ob.deliver_due() == 0
    await asyncio.sleep(0.2)
    assert len(await kannel.wait_for_sent(receiver=to)) == 1
    done = await reload(db, row.id)
    assert (done.status, done.attempts, done.last_error) == ("sent", 2, None)
    (retry,) = await audits(db, "outbox.retry")
    assert retry.subject == "***" + to[-4:]
    assert retry.detail["key"] == row.idempotency_key
    assert to not in str(retry.detail)


async def test_an_answer_that_keeps_failing_is_given_up_after_max_attempts(
    db: Database, clock: FakeClock, worker: Factory
) -> None:
    # An answer to a reply may expire, visibly: failed, audited.
    row = await queue(db, clock, "email", TIB, "Kvittens H-3 mottagen", purpose="reply")
    ob = worker(email=email_settings(free_port()), max_attempts=2)
    assert await ob.deliver_due() == 1
    assert (await reload(db, row.id)).status == "queued"
    clock.advance(60)
    assert await ob.deliver_due() == 1
    failed = await reload(db, row.id)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert [a.action for a in await audits(db)] == ["outbox.retry", "outbox.failed"]
    clock.advance(3600)
    assert await ob.deliver_due() == 0


async def test_an_alarm_is_never_given_up_while_the_gateway_is_down(
    db: Database, clock: FakeClock, kannel: ThrowawayKannel, worker: Factory
) -> None:
    # Issue 10: Kannel down for a while during a new alarm lost every alarm SMS after
    # max_attempts. An alarm keeps being retried, at most backoff_max_s apart, until it is out.
    to = new_number()
    row = await queue(db, clock, "sms", to, "LARM H-3 Ånge\n" + REPLY, purpose="alarm")
    ob = worker(max_attempts=2)
    await kannel.stop_bearerbox_and_smsbox()
    try:
        for _ in range(6):  # three times max_attempts
            assert await ob.deliver_due() == 1
            waiting = await reload(db, row.id)
            assert waiting.status == "queued", waiting.last_error
            assert waiting.next_attempt_at is not None
            assert (waiting.next_attempt_at - clock.now()).total_seconds() <= 60
            clock.set(waiting.next_attempt_at)
    finally:
        await kannel.start()
    assert await ob.deliver_due() == 1
    assert await texts_to(kannel, to, ["LARM H-3 Ånge\n" + REPLY]) == ["LARM H-3 Ånge\n" + REPLY]
    done = await reload(db, row.id)
    assert (done.status, done.attempts) == ("sent", 7)
    assert [a.action for a in await audits(db)] == ["outbox.retry"] * 6


async def test_permanent_refusals_fail_the_row_and_are_audited(
    db: Database, clock: FakeClock, sink: MailSink, worker: Factory
) -> None:
    blocked = "46700000123"  # the gateway's reject-regex: 403 Not routable
    refused = "okand@regionuppsala.example"
    sink.refuse_recipient(refused, "550 5.1.1 No such mailbox")
    sms_row = await queue(db, clock, "sms", blocked, "Larm H-4\n" + REPLY)
    mail_row = await queue(db, clock, "email", refused, "Larm H-4\n" + REPLY)

    assert await worker().deliver_due() == 2
    sms_failed, mail_failed = await reload(db, sms_row.id), await reload(db, mail_row.id)
    assert (sms_failed.status, sms_failed.attempts) == ("failed", 1)
    assert "Not routable" in (sms_failed.last_error or "")
    assert mail_failed.status == "failed"
    assert "550" in (mail_failed.last_error or "")
    entries = {e.detail["key"]: e for e in await audits(db, "outbox.failed")}
    assert entries[sms_row.idempotency_key].subject == "***0123"
    assert entries[mail_row.idempotency_key].subject == "o***@regionuppsala.example"
    assert blocked not in str(entries[sms_row.idempotency_key].detail)
    clock.advance(3600)
    assert await worker().deliver_due() == 0


async def test_a_failed_delivery_report_fails_a_sent_sms(
    db: Database, clock: FakeClock, worker: Factory
) -> None:
    to = new_number()
    row = await queue(db, clock, "sms", to, "Larm H-5\n" + REPLY)
    ob = worker()
    assert await ob.deliver_due() == 1
    await ob.record_dlr(DeliveryReport(sms_ref(row.id), DeliveryStatus.FAILED, 2, "NACK/"))
    # A late intermediate report does not undo the final one.
    await ob.record_dlr(DeliveryReport(sms_ref(row.id), DeliveryStatus.ACCEPTED_BY_SMSC, 8))
    await ob.record_dlr(DeliveryReport("o999999", DeliveryStatus.DELIVERED, 1))
    await ob.record_dlr(DeliveryReport("ob-foreign", DeliveryStatus.DELIVERED, 1))
    failed = await reload(db, row.id)
    assert failed.status == "failed"
    assert failed.payload["delivery"]["status"] == "failed"
    (entry,) = await audits(db, "outbox.undelivered")
    assert entry.detail["key"] == row.idempotency_key
    assert entry.subject == "***" + to[-4:]


async def test_a_late_delivered_report_stops_the_retry_of_a_queued_sms(
    db: Database, clock: FakeClock, worker: Factory
) -> None:
    # The first attempt's answer was lost (a timeout), yet the handset got the SMS.
    row = await queue(db, clock, "sms", new_number(), "Larm H-5b", status="queued", attempts=1)
    ob = worker()
    await ob.record_dlr(DeliveryReport(sms_ref(row.id), DeliveryStatus.DELIVERED, 1))
    done = await reload(db, row.id)
    assert (done.status, done.remote_id) == ("sent", sms_ref(row.id))
    assert done.payload["delivery"]["status"] == "delivered"
    assert await ob.deliver_due() == 0


async def test_a_row_left_sending_by_a_crash_is_resent_and_marked_possible_duplicate(
    db: Database, clock: FakeClock, kannel: ThrowawayKannel, sink: MailSink, worker: Factory
) -> None:
    to = new_number()
    # As after a SIGKILL between the claim and the record: 'sending', one attempt counted.
    sms_row = await queue(db, clock, "sms", to, "Larm H-6\n" + REPLY, status="sending", attempts=1)
    mail_row = await queue(
        db, clock, "email", TIB, "Larm H-6\n" + REPLY, status="sending", attempts=1
    )

    assert await worker().deliver_due() == 2
    assert len(await kannel.wait_for_sent(receiver=to)) == 1
    got = await sink.wait_for(lambda m: "H-6" in m.subject, timeout=2)
    assert got.message_id == make_message_id(DOMAIN, mail_row.idempotency_key)
    for row_id in (sms_row.id, mail_row.id):
        resent = await reload(db, row_id)
        assert (resent.status, resent.attempts) == ("sent", 2)
        assert resent.last_error == outbox.POSSIBLE_DUPLICATE


async def test_a_burst_is_held_to_the_rate_limit_and_the_rest_stays_queued(
    db: Database, clock: FakeClock, kannel: ThrowawayKannel, worker: Factory
) -> None:
    numbers = [new_number() for _ in range(20)]
    rows = [
        await queue(db, clock, "sms", n, f"Larm H-7 {i}\n{REPLY}") for i, n in enumerate(numbers)
    ]
    ob = worker(rate_per_s={"sms": 5})

    assert await ob.deliver_due() == 5
    states = [await reload(db, r.id) for r in rows]
    assert [s.status for s in states] == ["sent"] * 5 + ["queued"] * 15
    assert all(s.attempts == 0 for s in states[5:]), "held back for rate is not an attempt"
    assert await ob.deliver_due() == 0, "no tokens until the clock moves"
    clock.advance(1)
    assert await ob.deliver_due() == 5
    clock.advance(10)
    assert await ob.deliver_due() == 5, "the bucket holds at most its burst"
    clock.advance(1)
    assert await ob.deliver_due() == 5
    assert await audits(db) == []
    for n in numbers:
        assert len(await kannel.wait_for_sent(receiver=n)) == 1


async def test_no_secret_or_full_number_in_logs_audit_or_rows(
    db: Database,
    clock: FakeClock,
    kannel: ThrowawayKannel,
    sink: MailSink,
    worker: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The database driver's DEBUG log echoes SQL parameters (the stored destination itself):
    # that is storage, not logging, and never runs at DEBUG in production.
    caplog.set_level(logging.INFO, logger="aiosqlite")
    dead = Endpoint(
        f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms",
        kannel.username,
        kannel.password,
        "dead",
    )
    async with KannelClient(
        [dead, kannel.endpoint("kannel")], "Larmkedja", kannel.recorder.dlr_url_template
    ) as failing_over:
        ob = worker(
            sms=failing_over,
            email=email_settings(free_port(), sink.port),
        )
        ok_number, blocked = new_number(), "46700000456"
        await queue(db, clock, "sms", ok_number, "Larm H-8\n" + REPLY)
        await queue(db, clock, "sms", blocked, "Larm H-8\n" + REPLY)
        await queue(db, clock, "email", TIB, "Larm H-8\n" + REPLY)
        sink.refuse_recipient("fel@regionuppsala.example", f"550 5.7.1 bad {SMTP_SECRET}")
        await queue(db, clock, "email", "fel@regionuppsala.example", "Larm H-8\n" + REPLY)
        assert await ob.deliver_due() == 4
        await kannel.wait_for_sent(receiver=ok_number)

    async with db.read() as session:
        rows = await outbox.all_rows(session)
    assert {r.status for r in rows} == {"sent", "failed"}
    texts = [r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records]
    texts += [f"{e.subject} {e.detail}" for e in await audits(db)]
    texts += [r.last_error or "" for r in rows]
    assert any("outbox" in t for t in texts), "the log is not simply empty"
    for text in texts:
        assert kannel.password not in text
        assert SMTP_SECRET not in text
        assert ok_number not in text
        assert blocked not in text


async def test_the_loop_wakes_up_survives_an_error_and_stops(
    db: Database, clock: FakeClock, sink: MailSink, worker: Factory
) -> None:
    ob = worker()
    delivery = ob.delivery
    real_claim = delivery._claim
    calls = 0

    async def flaky_claim() -> list:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return await real_claim()

    delivery._claim = flaky_claim  # type: ignore[method-assign]
    supervisor = Supervisor()
    supervisor.add(delivery)
    supervisor.start()
    await queue(db, clock, "email", TIB, "Larm H-9 via loopen\n" + REPLY)
    supervisor.wake("delivery")
    got = await sink.wait_for(lambda m: "H-9" in m.subject, timeout=5)
    assert got.subject == "Larm H-9 via loopen"
    assert calls >= 2
    await asyncio.wait_for(supervisor.stop(), 2)
    assert not supervisor.stopped.is_set(), "a failed round is retried, not the end of the bot"


async def test_a_row_that_cannot_be_prepared_fails_alone_and_the_others_go_out(
    db: Database, clock: FakeClock, kannel: ThrowawayKannel, worker: Factory
) -> None:
    good = await queue(db, clock, "sms", "+46701234001", "Larm H-1 {code}")
    bad = await queue(db, clock, "sms", "+46701234002", "Larm H-1 {code}")
    later = await queue(db, clock, "sms", "+46701234003", "Larm H-1 {code}")

    class Failing(Preparer):
        async def prepare(self, session: Any, row: OutboxRow, now: datetime) -> Any:
            # Writes first (as issuing a reply code does), then fails for one row only.
            await audit.append(session, at=now, actor="t", action="t.prepared", detail={})
            if row.id == bad.id:
                raise ValueError("no code for this destination")
            return {**row.payload, "body": row.payload["body"].replace("{code}", "4821")}

    channel = worker(preparer=Failing())
    assert await channel.deliver_due() == 2
    assert (await reload(db, good.id)).status == outbox.SENT
    assert (await reload(db, later.id)).status == outbox.SENT
    failed = await reload(db, bad.id)
    assert failed.status == outbox.FAILED
    assert failed.last_error == "cannot prepare the message: ValueError"
    assert len(await audits(db, "t.prepared")) == 2  # the failed row's write was undone
    assert [a.detail["key"] for a in await audits(db, "outbox.failed")] == [bad.idempotency_key]
    assert await channel.deliver_due() == 0
