"""The log layer keeps secrets, codes, tokens, numbers and content out at every level."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.log_safety import CAPPED, SafetyFilter, configure, mask_number, scrub
from storage.database import Database

SCRUBBED = [
    ("GET /sms/inbound?secret=abc&from=%2B46701234567&text=KVITTERA+4821", "/sms/inbound?***"),
    ("dlr http://127.0.0.1:8080/sms/dlr?secret=s3cr3t&ref=x", "/sms/dlr?***"),
    ("opened /ack/v1.eyJpIjoiSC0xIn0.c2lnbmF0dXJl now", "/ack/*** now"),
    ("url?password=hunter2&user=u", "password=***&user=u"),
    ("login?access_token=syt_abc123&x=1", "access_token=***&x=1"),
    ("header Authorization: Bearer syt_0123456789abcdef", "Authorization: ***"),
    ("reply 'KVITTERA 4821 5' parsed", "KVITTERA ***"),
    ("kvittera 482193 3", "kvittera ***"),
    ("ack:4821", "ack:***"),
    ("SMS to +46701234567 accepted", "SMS to …4567 accepted"),
    ("from 0046701234567", "from …4567"),
    ("sender=46701234567;", "sender=…4567;"),
    ("{'sms': ['+46701234567', '+4790012345']}", "['…4567', '…2345']"),
]

KEPT = [
    "2026-12-07 15:07:36,123 INFO bot: started",  # dates and times are not numbers to mask
    "port 13013 on 127.0.0.1",
    "took 0.0001234 s",
    "event $AbC1234567890xyz in !room:localhost",  # ids are words
    "outbox 42 attempt 3",
    "uuid 5b430eaf-21d3-4ed9-963a-df1b3cf4c77b",
    "a 20-digit run 12345678901234567890 is no phone number",
]


@pytest.mark.parametrize(("raw", "expected"), SCRUBBED)
def test_scrub_replaces_secrets_codes_and_numbers(raw: str, expected: str) -> None:
    out = scrub(raw)
    assert expected in out, out
    for secret in ("abc&", "s3cr3t", "hunter2", "syt_", "4821 ", "482193", "46701234567"):
        assert secret not in out, out


@pytest.mark.parametrize("line", KEPT)
def test_scrub_keeps_what_is_not_secret(line: str) -> None:
    assert scrub(line) == line


def test_mask_number_keeps_four_digits() -> None:
    assert mask_number("+46 70-123 45 67") == "…4567"
    assert mask_number("123") == "…"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The bot's logging (configure) writing into a string; restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, {name: logging.getLogger(name).level for name in CAPPED})
    out = io.StringIO()
    handler = configure("DEBUG", out)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def test_the_filter_rewrites_message_exception_and_stack(stream: io.StringIO) -> None:
    log = logging.getLogger("larmkedja.test")
    try:
        raise ValueError("bad reply 'KVITTERA 4821 5' from +46701234567 at /ack/tok.en.sig")
    except ValueError:
        log.exception("handling %s failed", "/sms/inbound?secret=abc&text=KVITTERA+4821")
    log.info("bad args %s %s", "only one")  # an unformattable record is logged, not lost
    log.warning("stack of +46701234567", stack_info=True)
    out = stream.getvalue()
    assert "Traceback" in out
    assert "ValueError" in out
    for secret in ("4821", "46701234567", "tok.en.sig", "secret=abc"):
        assert secret not in out, out
    assert "unformattable log arguments: TypeError" in out
    assert "…4567" in out


def test_records_are_rewritten_for_every_handler_after_the_filter() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "to %s code %s", ("+46701234567", "KVITTERA 1234"), None
    )
    assert SafetyFilter().filter(record) is True
    assert record.getMessage() == "to …4567 code KVITTERA ***"
    assert record.args is None


async def test_sqlalchemy_at_debug_logs_no_parameter_or_row(stream: io.StringIO) -> None:
    """A real engine, the log at DEBUG: no statement parameter, no row value, and a database
    error names its statement without its values."""
    db = Database("sqlite+aiosqlite:///:memory:")
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (body TEXT UNIQUE)"))
            await conn.execute(text("INSERT INTO t VALUES (:b)"), {"b": "KVITTERA-SECRET-BODY"})
            rows = (await conn.execute(text("SELECT body FROM t"))).all()
            assert rows[0][0] == "KVITTERA-SECRET-BODY"
        with pytest.raises(IntegrityError) as failure:
            async with db.engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO t VALUES (:b)"), {"b": "KVITTERA-SECRET-BODY"}
                )
        logging.getLogger("larmkedja.test").error("store failed: %s", failure.value)
    finally:
        await db.close()
    out = stream.getvalue()
    assert "store failed" in out
    assert "INSERT INTO t" in out
    assert "SECRET-BODY" not in out, out
    assert "hidden due to hide_parameters=True" in out


def test_the_capped_loggers_stay_at_warning_at_debug(stream: io.StringIO) -> None:
    for name in CAPPED:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
    assert logging.getLogger("bot.engine").isEnabledFor(logging.DEBUG)
