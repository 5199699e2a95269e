"""No message can hold up a room (issue 10, the critical item), against a real Synapse.

Found by a hostile-input campaign: ``!`` followed by 30,000 characters made the bot echo the
text into a reply the homeserver refused as too large (``413 M_TOO_LARGE``); the sender retried
it forever and the room's delivery lane held every later message behind it, so the blood
centre's alarm never arrived. The stories here: the same input from a member of the blood
centre's room, then the alarm, which must reach the room; a board that failed for good, whose
edits must not wait for it; and the homeserver's own 413 answer, which must be a permanent
failure.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.app import App
from bot.demo.script import board_saying, from_bot, say
from bot.event_size import MAX_EVENT_BYTES
from bot.matrix.sender import MatrixSender, Refused, Sent, build_content, classify_error
from storage import outbox
from storage.models import OutboxRow
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory

BLOOD = "blodcentralen-uppsala"


async def all_recorded(app: App, timeout: float = 15) -> list[OutboxRow]:
    """Every outbox row, once none is waiting or being sent (a phone may decrypt a message a
    moment before the bot has recorded it as sent): nothing is held up."""
    async with asyncio.timeout(timeout):
        while True:
            async with app.db.read() as session:
                rows = await outbox.all_rows(session)
            stuck = [r for r in rows if r.status in (outbox.QUEUED, outbox.SENDING)]
            if not stuck:
                return rows
            await asyncio.sleep(0.1)


async def test_thirty_thousand_characters_do_not_keep_the_alarm_from_the_blood_centre(
    make_world: WorldFactory,
) -> None:
    world = await make_world(blood_centre_of="uppsala")
    blood, room = world.officer(BLOOD), world.rooms[BLOOD]
    async with bot_in_process(world.config_path) as app:
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse stabsläge Brand i sjukhusets kök", "H-1")

        huge = await say(world, BLOOD, "!" + "x" * 30_000, "för långt")
        assert "30001 tecken" in huge.body
        assert len(huge.body) < 300
        status = await say(world, BLOOD, "!status H-1 " + "30 KB text " * 2_700, "för långt")
        assert len(status.body) < 300

        await say(world, "uppsala", "!larma", "Larmkedjan för H-1 är startad")
        alarm = await blood.wait_for(
            lambda m: m.sender == world.bot_user_id and "MASSKADELARM H-1" in m.body
        )
        assert alarm.encrypted
        await board_saying(world, world.officer("uppsala"), world.rooms["uppsala"], "0/2")
        rows = await all_recorded(app)
        assert not [r for r in rows if r.status == outbox.FAILED]

    # Nothing else reached the blood centre's room: two short answers and the alarm.
    bodies = [m.body for m in from_bot(world, blood, room) if not m.is_edit]
    assert bodies == [huge.body, status.body, alarm.body]


async def test_a_board_that_failed_for_good_holds_up_nothing_and_is_posted_afresh(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    uppsala, room = world.officer("uppsala"), world.rooms["uppsala"]
    async with bot_in_process(world.config_path) as app:
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse stabsläge Brand i sjukhusets kök", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1 är startad")
        await uppsala.wait_for(lambda m: m.sender == world.bot_user_id and m.body.startswith("🚨"))
        # The fault: the board in Uppsala's room failed for good (as a board refused by the
        # homeserver would), while an edit of it is waiting.
        async with app.db.write() as session:
            board = (
                await session.execute(
                    select(OutboxRow).where(OutboxRow.idempotency_key == f"board:H-1:{room}")
                )
            ).scalar_one()
            board.status, board.remote_id = outbox.FAILED, None
        await say(world, "dalarna", "!kvittera 5", "Kvittens för Region Dalarna")
        # The edit that followed Dalarna's acknowledgement failed with its original, and the
        # board was posted afresh with the acknowledgement on it: the room carried on.
        fresh = await uppsala.wait_for(
            lambda m: (
                m.sender == world.bot_user_id
                and not m.is_edit
                and m.body.startswith("🚨 H-1")
                and "kvitterat 1/1" in m.body
            )
        )
        assert "Region Dalarna" in fresh.body
        status = await say(world, "uppsala", "!status", "H-1")
        assert "kvitterat 1/1" in status.body
        await all_recorded(app)


async def test_the_homeservers_413_is_permanent_and_oversize_is_refused_before_sending(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    tib = world.officer("uppsala")
    plain = await tib.create_plain_room("Öppet rum")
    # The real part's answer to an event over its limit: 413 M_TOO_LARGE.
    too_big = {"msgtype": "m.text", "body": "x" * (MAX_EVENT_BYTES + 1_000)}
    response = await tib.client.room_send(plain, "m.room.message", too_big)
    transport = response.transport_response
    assert transport is not None
    assert transport.status == 413
    assert response.status_code == "M_TOO_LARGE"
    verdict = classify_error(response.status_code, transport.status)
    assert isinstance(verdict, Refused)

    # The bot's sender does not even try: an encrypted message over the limit is refused.
    sender = MatrixSender(tib.client, trust_all_devices=True)
    room = world.rooms["uppsala"]
    refused = await sender.send_content(
        key="oversize",
        room_id=room,
        content=build_content("å" * 20_000),
        purpose="reply",
    )
    assert isinstance(refused, Refused)
    assert "too large" in refused.reason
    fine = await sender.send_content(
        key="after-oversize", room_id=room, content=build_content("ok"), purpose="reply"
    )
    assert isinstance(fine, Sent)
