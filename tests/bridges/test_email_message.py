"""The alarm e-mail as built: threading, reply code in the body, ÖVNING, no header injection.

These need no server; what the wire does to the message is in ``test_email_smtp``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import pytest

from bridges.email.message import (
    HEADER_EXERCISE,
    HEADER_INCIDENT,
    HEADER_KIND,
    HEADER_REPLY_CODE,
    MailKind,
    build_mail,
    envelope_of,
    make_message_id,
)

BOT = "larm@vgregion.example"
TIB = "tib@regionuppsala.example"
BODY = (
    "MASSKADELARM – katastrofläge\n"
    "Region Västra Götaland har bekräftat en särskild händelse: bussolycka på E6.\n"
    "Kvittera och ange antal sekundärtransporter (minst 5).\n"
    "Svara KVITTERA 4821 <antal>\n"
)


def alarm(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "kind": MailKind.ALARM,
        "sender": BOT,
        "recipients": [TIB],
        "subject": "[H-1] MASSKADELARM – Katastrofläge",
        "body": BODY,
        "message_id": make_message_id("vgregion.example"),
        "incident_id": "H-1",
        "reply_code": "KVITTERA 4821",
    }
    args.update(overrides)
    return args


def test_an_alarm_names_the_party_the_bot_and_the_incident_and_carries_the_code_in_text() -> None:
    msg = build_mail(**alarm(sender_name="larmkedja VGR"))

    assert str(msg["To"]) == TIB
    assert str(msg["From"]) == f"larmkedja VGR <{BOT}>"
    assert str(msg["Subject"]) == "[H-1] MASSKADELARM – Katastrofläge"
    assert msg[HEADER_INCIDENT] == "H-1"
    assert msg[HEADER_KIND] == "alarm"
    assert msg[HEADER_REPLY_CODE] == "KVITTERA 4821"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Importance"] == "high"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert "Svara KVITTERA 4821 <antal>" in msg.get_content()
    # 7-bit clean on the wire: no relay needs 8BITMIME for å ä ö.
    assert max(bytes(msg)) < 128


def test_a_reminder_and_a_stand_down_thread_under_the_alarm() -> None:
    first = make_message_id("vgregion.example")
    reminder_id = make_message_id("vgregion.example")
    reminder = build_mail(**alarm(kind=MailKind.REMINDER, message_id=reminder_id, thread=[first]))
    stand_down = build_mail(
        **alarm(
            kind=MailKind.STAND_DOWN,
            subject="[H-1] Avlarmering",
            body="Avlarmering: återgång till normalläge.\n",
            reply_code=None,
            message_id=make_message_id("vgregion.example"),
            thread=[first, reminder_id],
        )
    )

    assert reminder["In-Reply-To"] == first
    assert reminder["References"] == first
    assert stand_down["In-Reply-To"] == reminder_id
    assert stand_down["References"] == f"{first} {reminder_id}"
    assert stand_down["Importance"] is None
    assert stand_down[HEADER_REPLY_CODE] is None


def test_message_ids_are_unique_or_stable_per_outbox_key() -> None:
    ids = {make_message_id("vgregion.example") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("<") and i.endswith("@vgregion.example>") for i in ids)
    keyed = make_message_id("vgregion.example", key="outbox:42/email uppsala")
    assert keyed == make_message_id("vgregion.example", key="outbox:42/email uppsala")
    assert " " not in keyed
    assert keyed.count("@") == 1
    with pytest.raises(ValueError, match="domain"):
        make_message_id("not a domain")


def test_a_reply_code_only_in_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="body"):
        build_mail(**alarm(body="MASSKADELARM, svara med koden i rubriken"))


def test_exercise_mail_must_say_ovning_in_subject_and_body() -> None:
    exercise = alarm(
        subject="ÖVNING [H-2] MASSKADELARM – Stabsläge – ÖVNING",
        body="ÖVNING ÖVNING ÖVNING\n" + BODY,
        exercise_marker="ÖVNING",
    )
    msg = build_mail(**exercise)
    assert msg[HEADER_EXERCISE] == "yes"
    assert str(msg["Subject"]).startswith("ÖVNING")

    with pytest.raises(ValueError, match="ÖVNING"):
        build_mail(**{**exercise, "subject": "[H-2] MASSKADELARM – Stabsläge"})
    with pytest.raises(ValueError, match="ÖVNING"):
        build_mail(**{**exercise, "body": BODY})


def test_a_headline_typed_with_line_breaks_cannot_inject_a_header() -> None:
    msg = build_mail(**alarm(subject="[H-1] Buss\r\nBcc: evil@example.org\nX-Evil: 1"))
    parsed = message_from_bytes(bytes(msg), policy=policy.default)

    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None
    assert str(parsed["Subject"]) == "[H-1] Buss Bcc: evil@example.org X-Evil: 1"


@pytest.mark.parametrize(
    "bad",
    [
        {"recipients": []},
        {"recipients": ["tib@regionuppsala.example\r\nBcc: x@y.example"]},
        {"recipients": ["TiB Uppsala"]},
        {"sender": "larm"},
        {"message_id": "no-brackets@vgregion.example"},
        {"thread": ["<a b@c.example>"]},
    ],
)
def test_malformed_addresses_and_ids_are_bugs_not_mail(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build_mail(**alarm(**bad))


def test_the_envelope_is_read_from_the_message() -> None:
    msg = build_mail(
        **alarm(
            recipients=[TIB, "kansli@regionuppsala.example"],
            date=datetime(2026, 11, 26, 3, 12, tzinfo=UTC),
        )
    )
    assert envelope_of(msg) == (BOT, [TIB, "kansli@regionuppsala.example"])
    assert msg["Date"] == "Thu, 26 Nov 2026 03:12:00 +0000"
