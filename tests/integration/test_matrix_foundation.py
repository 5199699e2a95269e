"""The Matrix foundation against a real Synapse with real E2EE clients (issue: foundation).

Each test plays what a duty officer would see on their phone, then checks what the homeserver
stored, undecrypted: the bot must never put readable content into an encrypted room.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from bot.config import load_config
from bot.demo.people import Person
from bot.demo.world import World
from storage import audit
from storage.database import Database
from tests.integration.botctl import BotProcess, bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase


def bot_messages(person: Person, world: World, room_id: str) -> list[str]:
    return [m.body for m in person.messages_from(world.bot_user_id, room_id) if not m.is_edit]


async def assert_no_plaintext_from_bot(person: Person, world: World, room_id: str) -> int:
    """Every event the bot put into this encrypted room is m.room.encrypted (or a reaction,
    which Matrix never encrypts and which carries no content). Returns how many it sent."""
    count = 0
    for event in await person.raw_timeline(room_id):
        if event.get("sender") != world.bot_user_id or "state_key" in event:
            continue
        count += 1
        assert event["type"] in ("m.room.encrypted", "m.reaction"), event
    return count


async def audit_actions(world: World) -> list[tuple[str, str | None, dict]]:
    db = Database(load_config(world.config_path).database_url)
    try:
        async with db.read() as session:
            return [(e.action, e.subject, e.detail) for e in await audit.entries(session)]
    finally:
        await db.close()


async def test_help_in_three_languages_decrypted_by_the_duty_officer(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    tib = world.officer("uppsala")
    room = world.rooms["uppsala"]
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        await tib.send_text(room, "!hjälp")
        sv = await tib.wait_for(lambda m: m.sender == world.bot_user_id and m.room_id == room)
        await tib.send_text(room, "!help")
        en = await tib.wait_for(
            lambda m: (
                m.sender == world.bot_user_id and m.reply_to is not None and "!incident" in m.body
            )
        )
        await tib.send_text(room, "!hjelp")
        nb = await tib.wait_for(lambda m: m.sender == world.bot_user_id and "!hendelse" in m.body)
    assert sv.encrypted
    assert en.encrypted
    assert nb.encrypted
    assert sv.msgtype == "m.notice"
    assert "!händelse" in sv.body
    assert "!kvittera" in sv.body
    assert "!incident" in en.body
    assert "!ack" in en.body
    assert "!hendelse" in nb.body
    assert "!kvitter" in nb.body
    assert len({sv.body, en.body, nb.body}) == 3
    assert await assert_no_plaintext_from_bot(tib, world, room) >= 3


async def test_command_stored_then_sigkilled_is_answered_exactly_once_after_restart(
    make_world: WorldFactory,
) -> None:
    world = await make_world(regions=(("uppsala", "Region Uppsala"),))
    tib, room = world.officer("uppsala"), world.rooms["uppsala"]
    bot = BotProcess(world.config_path, fault="after-inbox-store")
    await bot.start()
    try:
        await world.wait_bot_joined()
        await tib.send_text(room, "!hjälp")
        code = await bot.wait(timeout=60)
        assert code == -9, bot.log()  # it died by SIGKILL right after storing the command
        assert "fault injection: SIGKILL at after-inbox-store" in bot.log()
        assert bot_messages(tib, world, room) == []
        restarted = BotProcess(world.config_path)
        await restarted.start()
        try:
            await tib.wait_for(
                lambda m: m.sender == world.bot_user_id and m.room_id == room, timeout=60
            )
            await tib.send_text(room, "!status")  # a later command, answered after the first
            await tib.wait_for_count(lambda m: m.sender == world.bot_user_id, 2, timeout=60)
            await asyncio.sleep(1.0)
        finally:
            await restarted.stop()
    finally:
        await bot.stop()
    helps = [b for b in bot_messages(tib, world, room) if "!händelse" in b]
    assert len(helps) == 1, bot_messages(tib, world, room)


async def test_restart_with_same_store_reads_and_answers_in_all_rooms(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    bot = BotProcess(world.config_path)
    await bot.start()
    try:
        await world.wait_bot_joined()
        device_before = await _own_device(world)
        for party in ("uppsala", "dalarna"):
            await world.officer(party).send_text(world.rooms[party], "!hjälp")
            await world.officer(party).wait_for(lambda m: m.sender == world.bot_user_id)
        assert await bot.stop() == 0
        await bot.start()
        for party in ("uppsala", "dalarna"):
            person, room = world.officer(party), world.rooms[party]
            await person.send_text(room, "!help")
            await person.wait_for(
                lambda m: m.sender == world.bot_user_id and "!incident" in m.body, timeout=60
            )
            assert await assert_no_plaintext_from_bot(person, world, room) == 2
        assert await _own_device(world) == device_before
    finally:
        await bot.stop()
    actions = [a for a, _, d in await audit_actions(world) if a == "bot.started"]
    assert len(actions) == 2


async def test_lost_store_comes_back_as_new_device_with_the_same_identity(
    make_world: WorldFactory,
) -> None:
    world = await make_world(regions=(("uppsala", "Region Uppsala"),))
    tib, room = world.officer("uppsala"), world.rooms["uppsala"]
    state_dir = load_config(world.config_path).state_dir
    async with bot_in_process(world.config_path) as app:
        await world.wait_bot_joined()
        first_device = app.session.client.device_id if app.session else None
        await tib.send_text(room, "!hjälp")
        await tib.wait_for(lambda m: m.sender == world.bot_user_id)
    keys_before = await tib.keys_query_raw(world.bot_user_id)
    master_before = keys_before["master_keys"][world.bot_user_id]["keys"]
    assert _signed_by_self_signing_key(keys_before, world.bot_user_id, first_device)

    shutil.rmtree(state_dir / "crypto")  # the crypto store is lost; credentials remain
    async with bot_in_process(world.config_path) as app:
        second_device = app.session.client.device_id if app.session else None
        assert app.session is not None
        assert app.session.how == "new-device-store-lost"
        await tib.send_text(room, "!help")
        await tib.wait_for(
            lambda m: m.sender == world.bot_user_id and "!incident" in m.body, timeout=60
        )
    assert second_device != first_device
    keys_after = await tib.keys_query_raw(world.bot_user_id)
    assert keys_after["master_keys"][world.bot_user_id]["keys"] == master_before
    assert _signed_by_self_signing_key(keys_after, world.bot_user_id, second_device)
    assert first_device not in keys_after["device_keys"][world.bot_user_id]  # retired
    assert await assert_no_plaintext_from_bot(tib, world, room) == 2, [
        (m.body[:60], m.reply_to) for m in tib.messages_from(world.bot_user_id)
    ]


async def test_device_is_cross_signed_after_first_start_and_after_restart(
    make_world: WorldFactory,
) -> None:
    world = await make_world(regions=(("uppsala", "Region Uppsala"),))
    tib = world.officer("uppsala")
    for _ in range(2):
        async with bot_in_process(world.config_path) as app:
            device = app.session.client.device_id if app.session else None
            keys = await tib.keys_query_raw(world.bot_user_id)
            assert _signed_by_self_signing_key(keys, world.bot_user_id, device)
    started = [d for a, _, d in await audit_actions(world) if a == "bot.started"]
    assert [d["cross_signing"] for d in started] == ["created", "unchanged"]


async def test_unencrypted_room_is_refused_and_explained_without_content(
    make_world: WorldFactory,
    tmp_path: Path,
) -> None:
    world = await make_world(regions=(("uppsala", "Region Uppsala"),))
    tib = world.officer("uppsala")
    plain = await tib.create_plain_room("Dalarna (okrypterat)", invite=[world.bot_user_id])
    world.config["regions"].append(
        {
            "id": "dalarna",
            "name": "Region Dalarna",
            "room": plain,
            "duty_officers": [tib.user_id],
        }
    )
    world.write_config()
    async with bot_in_process(world.config_path):
        warning = await tib.wait_for(
            lambda m: m.sender == world.bot_user_id and m.room_id == plain, timeout=60
        )
        for command in ("!hjälp", "!status", "!larma"):
            await tib.send_text(plain, command)
        # Each command refused (audited) and everything the bot decided on is out:
        db = BotDatabase(world)
        try:
            async with asyncio.timeout(60):
                while True:
                    refused = await db.audit("command.refused")
                    if len(refused) == 3:
                        break
                    await asyncio.sleep(0.2)
            await db.wait_until_quiet()
        finally:
            await db.close()
    # ... and the room was told once, when the bot joined (README: "once per room"), not after
    # every command: what the homeserver holds from the bot there is that one notice.
    from_the_bot = [e for e in await tib.raw_timeline(plain) if e["sender"] == world.bot_user_id]
    assert [e["type"] for e in from_the_bot] == ["m.room.member", "m.room.message"]
    assert [d["answered"] for d in (e.detail for e in refused)] == [False, False, False]
    replies = bot_messages(tib, world, plain)
    assert replies == [warning.body]
    assert not warning.encrypted
    assert "!händelse" not in warning.body  # no help, no alarm content
    assert "krypter" in warning.body.lower()
    actions = {a for a, _, _ in await audit_actions(world)}
    assert {"matrix.room.unencrypted", "command.refused"} <= actions


async def test_invite_to_a_room_not_in_config_is_declined_and_audited(
    make_world: WorldFactory,
    people,
) -> None:
    world = await make_world(regions=(("uppsala", "Region Uppsala"),))
    outsider = await people("outsider")
    async with bot_in_process(world.config_path) as app:
        await world.wait_bot_joined()
        foreign = await outsider.create_encrypted_room("Främmande rum", invite=[world.bot_user_id])
        for _ in range(100):
            members = await outsider.client.room_get_state_event(
                foreign, "m.room.member", world.bot_user_id
            )
            if getattr(members, "content", {}).get("membership") == "leave":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the bot did not decline the invite")
        assert foreign not in app.gateway.joined_rooms()  # type: ignore[union-attr]
    declined = [(s, d) for a, s, d in await audit_actions(world) if a == "matrix.invite.declined"]
    assert declined
    assert declined[0][0] == foreign
    assert declined[0][1]["inviter"] == outsider.user_id


async def _own_device(world: World) -> str:
    from bot.matrix.secret_files import read_json

    creds = read_json(load_config(world.config_path).state_dir / "credentials.json")
    assert creds is not None
    return str(creds["device_id"])


def _signed_by_self_signing_key(keys: dict, user_id: str, device_id: str | None) -> bool:
    ssk = keys["self_signing_keys"][user_id]
    ssk_id = next(iter(ssk["keys"]))
    master_id = next(iter(keys["master_keys"][user_id]["keys"]))
    device = keys["device_keys"][user_id][device_id]
    return ssk_id in device["signatures"][user_id] and master_id in ssk["signatures"][user_id]


async def test_rate_limited_sends_are_counted_retried_and_all_delivered(
    make_world: WorldFactory, homeserver
) -> None:
    world = await make_world(regions=(("uppsala", "Region Uppsala"),))
    tib, room = world.officer("uppsala"), world.rooms["uppsala"]
    async with bot_in_process(world.config_path) as app:
        await world.wait_bot_joined()
        # An operator who forgot the exemption: one message a second, no burst.
        await homeserver.admin_request(
            "POST",
            f"/_synapse/admin/v1/users/{world.bot_user_id}/override_ratelimit",
            {"messages_per_second": 1, "burst_count": 1},
        )
        for _ in range(4):
            await tib.send_text(room, "!hjälp")
        answers = await tib.wait_for_count(
            lambda m: m.sender == world.bot_user_id and "!händelse" in m.body, 4, timeout=60
        )
        assert app.gateway is not None
        stats = app.gateway.sender.stats
    assert len(answers) == 4
    assert stats.rate_limited >= 1  # every 429 counted, none lost
    assert stats.per_room_429[room] == stats.rate_limited
