"""The tolerant SMS/e-mail reply parser: what it accepts, and what it refuses specifically."""

from __future__ import annotations

import pytest

from bridges.reply_parser import (
    MAX_EMAIL_CHARS,
    MAX_SMS_CHARS,
    ParsedReply,
    ParseProblem,
    parse_reply,
    strip_quoted,
)
from commands.arguments import MAX_TEXT


@pytest.mark.parametrize(
    ("text", "pledge", "remark"),
    [
        ("KVITTERA 4821 5", 5, ""),
        ("kvittera 4821", None, ""),
        ("Kvittera  4821   5 ambulanser", 5, "ambulanser"),
        ("ack 4821 3", 3, ""),
        ("ok 4821", None, ""),
        ("OK, 4821", None, ""),
        ("KVITTER 4821", None, ""),
        ("kvitterer 4821 2", 2, ""),
        ("4821 5", 5, ""),  # the code first needs no keyword
        ("4821", None, ""),
        ("!kvittera 4821 5", 5, ""),
        ("Kvíttéra 4821 5", 5, ""),  # diacritics where there are none
        ("KVITTERA ４８２１ ５", 5, ""),  # full-width digits
        ("KVITTERA 4821\u200b 5", 5, ""),  # a zero-width space from a copy-paste
        ("kvittera\n4821\n5\nbilar", 5, "bilar"),
        ("kod:4821 4", 4, ""),
        ("KVITTERA H-7 4821 2", 2, ""),  # the incident id is allowed, the code decides
        ("KVITTERA 4821 <antal>", None, ""),  # the alarm's instruction copied as it stands
        ("Svara KVITTERA 4821 0", 0, ""),
        ("KVITTERA 4821 +7 st", 7, "st"),
        ("KVITTERA 4821 5 men inte förrän 04.30", 5, "men inte förrän 04.30"),
        ("Kvitterar 4821. 2 bilar, inte fler", 2, "bilar, inte fler"),
        ("ack 4821 en bil kommer", None, "en bil kommer"),  # "en" starts a remark (as in chat)
    ],
)
def test_accepted(text: str, pledge: int | None, remark: str) -> None:
    parsed = parse_reply(text)
    assert isinstance(parsed, ParsedReply), parsed
    assert parsed.code == "4821"
    assert parsed.pledge == pledge
    assert parsed.remark == remark


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("kvittera", "no_code"),
        ("kvittera 5", "no_code"),
        ("kvittera 482", "no_code"),
        ("Hej 4821", "no_keyword"),
        ("Ring mig på 4821", "no_keyword"),
        ("KVITTERA 4821 fem", "count_word"),
        ("KVITTERA 4821 five", "count_word"),
        ("KVITTERA 4821 -3", "count_negative"),
        ("KVITTERA 4821 −3", "count_negative"),
        ("KVITTERA 4821 2,5", "count_not_whole"),
        ("KVITTERA 4821 100000", "count_too_large"),
        ("KVITTERA 4821 " + "9" * 5000, "too_long"),
        ("KVITTERA 4821 5x", "count_invalid"),
        ("KVITTERA 5 4821", "count_before_code"),
        ("kvitterar inte 4821", "negated"),
        ("Vi kan ikke kvittere 4821", "negated"),
        ("4821 nej", "negated"),
        ("4821 no", "negated"),
        ("4821 5512", "ambiguous_code"),
        ("Kvitterar 4821 och kod 5512", "ambiguous_code"),
    ],
)
def test_refused_specifically(text: str, kind: str) -> None:
    parsed = parse_reply(text)
    assert isinstance(parsed, ParseProblem), parsed
    assert parsed.kind == kind


def test_pledge_problems_use_the_chat_commands_keys() -> None:
    problem = parse_reply("KVITTERA 4821 fem")
    assert isinstance(problem, ParseProblem)
    assert problem.key == "arg.count.word"
    assert problem.params == {"value": "fem"}
    assert "4821" not in repr(problem)


def test_the_code_is_not_in_the_repr() -> None:
    parsed = parse_reply("KVITTERA 4821 5")
    assert "4821" not in repr(parsed)


def test_email_sentence() -> None:
    parsed = parse_reply("Vi kvitterar, kod 482193, 5 transporter", channel="email")
    assert parsed == ParsedReply("482193", 5, "transporter")


def test_email_two_numbers_the_announced_one_wins() -> None:
    parsed = parse_reply("Kvitterar kod 482193. Vi har 1200 patienter.", channel="email")
    assert isinstance(parsed, ParsedReply)
    assert parsed.code == "482193"


def test_email_quote_is_not_read() -> None:
    body = (
        "Kvitterar 482193, 3 transporter\n\n"
        "Den 26 nov. 2026 kl. 03:15 skrev Larmkedja <larm@example.org>:\n"
        "> LARM H-7 ... Svara KVITTERA 111111 <antal>\n"
    )
    assert parse_reply(body, channel="email") == ParsedReply("482193", 3, "transporter")


def test_email_that_only_quotes_the_alarm_does_not_acknowledge() -> None:
    auto_reply = (
        "Jag är på semester till måndag.\n\n"
        "From: Larmkedja <larm@example.org>\nSent: 26 November 2026 03:15\n\n"
        "LARM H-7. Svara KVITTERA 482193 <antal>\n"
    )
    assert isinstance(parse_reply(auto_reply, channel="email"), ParseProblem)
    outlook_only = "-----Original Message-----\nSvara KVITTERA 482193 <antal>"
    assert isinstance(parse_reply(outlook_only, channel="email"), ParseProblem)
    quoted_only = "> Svara KVITTERA 482193 <antal>\n> Mvh"
    assert isinstance(parse_reply(quoted_only, channel="email"), ParseProblem)


def test_email_bottom_posted_reply() -> None:
    body = "On Thu, 26 Nov 2026 Larmkedja wrote:\n> Svara KVITTERA 111111\n\nKvitterar 482193"
    assert parse_reply(body, channel="email") == ParsedReply("482193", None, "")


def test_signature_is_dropped() -> None:
    assert strip_quoted("ok 482193\n-- \nTiB Uppsala 4444") == "ok 482193"


def test_long_remark_is_cut_not_refused() -> None:
    parsed = parse_reply("KVITTERA 4821 5 " + "ord " * 300)
    assert isinstance(parsed, ParsedReply)
    assert parsed.pledge == 5
    assert parsed.remark_truncated
    assert len(parsed.remark) == MAX_TEXT
    assert parsed.remark.endswith("…")


@pytest.mark.parametrize(
    ("value", "channel"),
    [
        ("x" * (MAX_SMS_CHARS + 1), "sms"),
        ("x" * (MAX_EMAIL_CHARS + 1), "email"),
        (b"\xff" * (4 * MAX_EMAIL_CHARS + 1), "email"),
    ],
)
def test_oversized_is_refused_before_reading(value: str | bytes, channel: str) -> None:
    parsed = parse_reply(value, channel=channel)
    assert isinstance(parsed, ParseProblem)
    assert parsed.kind == "too_long"


@pytest.mark.parametrize("value", [None, 4821, ["KVITTERA", "4821"], object()])
def test_not_text(value: object) -> None:
    parsed = parse_reply(value)
    assert isinstance(parsed, ParseProblem)
    assert parsed.kind == "not_text"


def test_bytes_are_decoded_leniently() -> None:
    parsed = parse_reply(b"\xff\xfeKVITTERA 4821 2")
    assert isinstance(parsed, ParsedReply)
    assert (parsed.code, parsed.pledge) == ("4821", 2)


def test_an_email_remark_is_the_code_paragraph_not_the_greeting_under_it() -> None:
    parsed = parse_reply("KVITTERA 482193 6\n\nMvh TiB Dalarna", channel="email")
    assert isinstance(parsed, ParsedReply)
    assert (parsed.pledge, parsed.remark) == (6, "")
    parsed = parse_reply("KVITTERA 482193 6 två från Mora\nvia riksväg 70\n\nMvh", channel="email")
    assert isinstance(parsed, ParsedReply)
    assert parsed.remark == "två från Mora via riksväg 70"
    sms = parse_reply("KVITTERA 4821 6 två\n\nfrån Mora", channel="sms")
    assert isinstance(sms, ParsedReply)
    assert sms.remark == "två från Mora"  # an SMS has no signature to drop
