"""The body forms Element sends, read as the text a person typed (issue 10 §2)."""

from __future__ import annotations

from typing import Any

import pytest
from nio import RoomMessageText

from bot.matrix.inbound import message_payload, strip_reply_fallback


def event(content: dict[str, Any]) -> RoomMessageText:
    source = {
        "type": "m.room.message",
        "event_id": "$e",
        "sender": "@tib:example.org",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", **content},
    }
    parsed = RoomMessageText.from_dict(source)
    assert isinstance(parsed, RoomMessageText)
    return parsed


def test_an_edit_is_read_as_its_new_text_and_names_what_it_edits() -> None:
    payload = message_payload(
        event(
            {
                "body": "* !kvittera 5",
                "m.new_content": {"msgtype": "m.text", "body": "!kvittera 5"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$first"},
            }
        )
    )
    assert payload == {"body": "!kvittera 5", "edit_of": "$first"}


def test_an_edit_without_new_content_drops_the_star() -> None:
    payload = message_payload(
        event({"body": "* !ack 4", "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}})
    )
    assert payload["body"] == "!ack 4"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("> <@bot:example.org> MASSKADELARM H-1\n> Brand\n\n!kvittera 6", "!kvittera 6"),
        ("> <@bot:example.org> LARM\n!kvittera", "!kvittera"),  # no blank line
        ("!kvittera 6", "!kvittera 6"),  # newer Element: no fallback at all
        ("> just a quote", "> just a quote"),  # all quote: left as it is
        ("> <@a:b> x\n\n> my own quote\nand text", "> my own quote\nand text"),
    ],
)
def test_a_reply_loses_its_fallback_quote_only(body: str, text: str) -> None:
    payload = message_payload(
        event({"body": body, "m.relates_to": {"m.in_reply_to": {"event_id": "$alarm"}}})
    )
    assert payload["body"] == text
    assert strip_reply_fallback(body) == text


def test_a_quote_typed_without_being_a_reply_is_kept() -> None:
    assert message_payload(event({"body": "> !kvittera\n\nhej"}))["body"] == "> !kvittera\n\nhej"


def test_a_thread_message_names_its_root() -> None:
    payload = message_payload(
        event(
            {
                "body": "!status",
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": "$root",
                    "is_falling_back": True,
                    "m.in_reply_to": {"event_id": "$last"},
                },
            }
        )
    )
    assert payload == {"body": "!status", "thread_root": "$root"}


@pytest.mark.parametrize(
    "relates",
    [None, "x", 5, {"rel_type": "m.replace"}, {"m.in_reply_to": "x"}, {"rel_type": "m.thread"}],
)
def test_odd_relations_never_raise(relates: object) -> None:
    payload = message_payload(event({"body": "!hjälp", "m.relates_to": relates}))
    assert payload["body"] == "!hjälp"
    assert not payload.get("thread_root")
