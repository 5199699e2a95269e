"""What the send choke point puts on the wire: notices, escaped user text, explicit mentions,
edits that do not ping again, stable transaction ids."""

from bot.matrix.sender import build_content, render_html, transaction_id


def test_user_text_is_escaped_and_mentions_become_pills() -> None:
    content = build_content("<b>Dalarna</b> & @tib:localhost\nrad 2", mentions=["@tib:localhost"])
    assert content["msgtype"] == "m.notice"
    assert content["body"] == "<b>Dalarna</b> & @tib:localhost\nrad 2"
    assert "<b>" not in content["formatted_body"]
    assert "&lt;b&gt;Dalarna&lt;/b&gt; &amp; " in content["formatted_body"]
    assert (
        '<a href="https://matrix.to/#/@tib:localhost">@tib:localhost</a>'
        in (content["formatted_body"])
    )
    assert content["formatted_body"].endswith("<br>rad 2")
    assert content["m.mentions"] == {"user_ids": ["@tib:localhost"]}


def test_edit_replaces_and_does_not_mention_again() -> None:
    content = build_content("tavla v2", mentions=["@a:localhost"], replaces="$board")
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$board"}
    assert content["m.new_content"]["body"] == "tavla v2"
    assert content["m.mentions"] == {}


def test_reply_relation_and_stable_transaction_ids() -> None:
    assert build_content("svar", in_reply_to="$cmd")["m.relates_to"] == {
        "m.in_reply_to": {"event_id": "$cmd"}
    }
    assert transaction_id("$e:reply") == transaction_id("$e:reply")
    assert transaction_id("$e:reply") != transaction_id("$e:alarm:dalarna")
    assert transaction_id("$e:reply").isalnum()
    assert render_html("a", []) == "a"
