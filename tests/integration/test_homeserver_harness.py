"""The harness every integration test stands on: a real Synapse and real E2EE people.

If these fail, nothing else in the integration suite means anything, so they check the harness
itself: messages really are end-to-end encrypted on the server, people really decrypt them,
plain rooms and reactions work, and the homeserver can go down and come back.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import quote

from bot.demo.homeserver import ThrowawayHomeserver
from bot.demo.people import Cast


async def test_encrypted_message_is_read_by_the_other_person_and_stored_only_as_ciphertext(
    people: Cast,
) -> None:
    uppsala = await people("tib-uppsala")
    orebro = await people("tib-orebro")
    room = await uppsala.create_encrypted_room("TiB Uppsala", invite=[orebro.user_id])
    await orebro.join(room)

    event_id = await uppsala.send_text(room, "Särskild händelse, stabsläge: buss i diket vid E4")

    got = await orebro.wait_for(lambda m: m.event_id == event_id, timeout=20)
    assert got.sender == uppsala.user_id
    assert got.body == "Särskild händelse, stabsläge: buss i diket vid E4"
    assert got.msgtype == "m.text"
    assert got.encrypted
    assert orebro.undecryptable == []

    timeline = await orebro.raw_timeline(room)
    stored = next(e for e in timeline if e["event_id"] == event_id)
    assert stored["type"] == "m.room.encrypted"
    assert stored["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert not [e for e in timeline if e["type"] == "m.room.message"]
    assert "buss i diket" not in json.dumps(timeline, ensure_ascii=False)


async def test_answer_and_reaction_travel_back(people: Cast) -> None:
    uppsala = await people("tib-uppsala")
    orebro = await people("tib-orebro")
    room = await uppsala.create_encrypted_room("Larmkedja", invite=[orebro.user_id])
    await orebro.join(room)
    alarm = await uppsala.send_text(room, "LARM H-7", notice=True)
    await orebro.wait_for(lambda m: m.event_id == alarm)

    ack = await orebro.send_text(room, "!kvittera 5")
    reaction = await orebro.react(room, alarm, "✅")

    got = await uppsala.wait_for(lambda m: m.event_id == ack)
    assert (got.body, got.encrypted) == ("!kvittera 5", True)
    seen = await uppsala.wait_for_reaction(lambda r: r.event_id == reaction)
    assert (seen.sender, seen.relates_to, seen.key) == (orebro.user_id, alarm, "✅")
    assert orebro.messages_from(uppsala.user_id, room)[0].msgtype == "m.notice"


async def test_plain_room_carries_readable_messages(people: Cast) -> None:
    outsider = await people("outsider")
    coordinator = await people("coordinator")
    room = await outsider.create_plain_room("Not encrypted", invite=[coordinator.user_id])
    await coordinator.join(room)

    event_id = await outsider.send_text(room, "hello in the clear")

    got = await coordinator.wait_for(lambda m: m.event_id == event_id)
    assert (got.body, got.encrypted) == ("hello in the clear", False)
    stored = await coordinator.raw_event(room, event_id)
    assert stored["type"] == "m.room.message"


async def test_newcomer_and_new_phone_read_what_is_sent_after_they_arrive(people: Cast) -> None:
    uppsala = await people("tib-uppsala")
    orebro = await people("tib-orebro")
    room = await uppsala.create_encrypted_room("TiB", invite=[orebro.user_id])
    await orebro.join(room)
    first = await uppsala.send_text(room, "before")
    await orebro.wait_for(lambda m: m.event_id == first)

    # Typed right after the newcomers arrive: the sender must not reuse the old room key.
    coordinator = await people("coordinator")
    await uppsala.invite(room, coordinator.user_id)
    await coordinator.join(room)
    new_phone = await people.new_device(orebro)
    second = await uppsala.send_text(room, "after")

    for reader in (coordinator, new_phone, orebro):
        got = await reader.wait_for(lambda m: m.event_id == second)
        assert got.body == "after"


async def test_key_that_arrives_late_still_decrypts_the_earlier_message(
    people: Cast, tmp_path: Path
) -> None:
    uppsala = await people("tib-uppsala")
    orebro = await people("tib-orebro")
    room = await uppsala.create_encrypted_room("TiB", invite=[orebro.user_id])
    await orebro.join(room)
    event_id = await uppsala.send_text(room, "only the first phone has this key")
    await orebro.wait_for(lambda m: m.event_id == event_id)

    # A phone that joins later sees the message in its history but has no key for it...
    new_phone = await people.new_device(orebro, sync=False)
    await new_phone.sync_once()
    assert [e.event_id for e in new_phone.undecryptable] == [event_id]

    # ...until the key arrives (here by key import, as after a restore from key backup).
    keys = tmp_path / "keys.txt"
    await orebro.client.export_keys(str(keys), "passphrase")
    await new_phone.client.import_keys(str(keys), "passphrase")

    got = await new_phone.wait_for(lambda m: m.event_id == event_id, timeout=10)
    assert got.late
    assert new_phone.undecryptable == []


async def test_people_carry_on_after_a_homeserver_outage(
    homeserver: ThrowawayHomeserver, people: Cast
) -> None:
    uppsala = await people("tib-uppsala")
    orebro = await people("tib-orebro")
    room = await uppsala.create_encrypted_room("TiB", invite=[orebro.user_id])
    await orebro.join(room)
    url = homeserver.url

    await homeserver.stop()
    await homeserver.start()

    assert homeserver.url == url
    event_id = await uppsala.send_text(room, "back again")
    got = await orebro.wait_for(lambda m: m.event_id == event_id, timeout=30)
    assert got.body == "back again"


async def test_rate_limit_exemption_is_recorded(homeserver: ThrowawayHomeserver) -> None:
    bot = await homeserver.register(f"larmkedja-{secrets.token_hex(3)}", "secret-password")

    await homeserver.exempt_from_ratelimit(bot)

    override = await homeserver.admin_request(
        "GET", f"/_synapse/admin/v1/users/{quote(bot, safe='')}/override_ratelimit"
    )
    assert override == {"messages_per_second": 0, "burst_count": 0}
