"""What Element does with a message, the bot understands (issue 10 §2).

Element edits a message as ``m.replace`` with the new text in ``m.new_content`` (the outer body
is ``* …``), answers with ``m.in_reply_to`` (older versions put the quoted original first, as
``> <@user> …`` lines), and threads with ``rel_type: m.thread``. Played on a real Synapse in
encrypted rooms with the bodies Element sends:

- an edited ``!kvittera 3`` → ``!kvittera 5`` corrects the pledge (the board says 5); an edited
  ``!larma`` does not start anything twice and is answered with how to send it anew;
- a reply to the alarm with the fallback quote acknowledges as the command it carries;
- a command typed in a thread is answered in that thread.

Each test ends by checking that the phones got nothing else from the bot.
"""

from __future__ import annotations

from typing import Any

from bot.demo.people import Person, Received
from bot.demo.script import board_saying, from_bot, say
from bot.demo.world import World
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

THREE = (
    ("uppsala", "Region Uppsala"),
    ("dalarna", "Region Dalarna"),
    ("gavleborg", "Region Gävleborg"),
)


def edit(of: str, new_body: str) -> dict[str, Any]:
    """Element's edit event content."""
    return {
        "msgtype": "m.text",
        "body": "* " + new_body,
        "m.new_content": {"msgtype": "m.text", "body": new_body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": of},
    }


def reply(to: Received, body: str) -> dict[str, Any]:
    """A reply with the fallback quote older Element versions (and many clients) send."""
    quoted = "\n".join(f"> {line}" for line in to.body.splitlines())
    quoted = quoted.replace("> ", f"> <{to.sender}> ", 1)
    return {
        "msgtype": "m.text",
        "body": f"{quoted}\n\n{body}",
        "m.relates_to": {"m.in_reply_to": {"event_id": to.event_id}},
    }


def in_thread(root: str, last: str, body: str) -> dict[str, Any]:
    """A message in a thread, as Element sends it (no fallback quote in threads)."""
    return {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": last},
        },
    }


async def alarmed(world: World) -> tuple[str, dict[str, Received]]:
    """H-1 confirmed and alarmed by Uppsala: the ``!larma`` event id and each party's alarm."""
    await say(world, "uppsala", "!händelse katastrofläge Brand i vårdbyggnad", "H-1")
    started = await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
    assert started.reply_to is not None
    return started.reply_to, {
        party: await world.officer(party).wait_for(
            lambda m: m.sender == world.bot_user_id and "MASSKADELARM H-1" in m.body
        )
        for party in ("dalarna", "gavleborg")
    }


async def answer_to(world: World, person: Person, event_id: str, expect: str) -> Received:
    return await person.wait_for(
        lambda m: m.sender == world.bot_user_id and m.reply_to == event_id and expect in m.body,
        timeout=30,
    )


async def messages_held(world: World, person: Person, room: str) -> int:
    """How many messages from the bot the homeserver holds in ``room`` (the truth, whatever
    the phone has synced so far)."""
    timeline = await person.raw_timeline(room)
    return sum(
        1 for e in timeline if e["sender"] == world.bot_user_id and e["type"] == "m.room.encrypted"
    )


def party_line(board: str, name: str) -> str:
    return next(line for line in board.splitlines() if name in line)


async def test_an_edited_ack_corrects_the_pledge_and_an_edited_alarm_starts_nothing(
    make_world: WorldFactory,
) -> None:
    world = await make_world(regions=THREE)
    uppsala, dalarna = world.officer("uppsala"), world.officer("dalarna")
    room_u, room_d = world.rooms["uppsala"], world.rooms["dalarna"]
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        larma, _ = await alarmed(world)
        first = await dalarna.send_text(room_d, "!kvittera 3")
        await answer_to(world, dalarna, first, "Kvittens för Region Dalarna")
        board = await board_saying(world, uppsala, room_u, "kvitterat 1/2")
        assert "sekundärtransporter: 3" in party_line(board, "Region Dalarna")

        edited = await dalarna.send(room_d, edit(first, "!kvittera 5"))
        await answer_to(world, dalarna, edited, "Kvittens för Region Dalarna")
        board = await board_saying(world, uppsala, room_u, "Sekundärtransporter: 5 av")
        assert "sekundärtransporter: 5" in party_line(board, "Region Dalarna")

        again = await uppsala.send(room_u, edit(larma, "!larma"))
        told = await answer_to(world, uppsala, again, "Ett ändrat meddelande kör inte !larma")
        assert "Skicka kommandot som ett nytt meddelande" in told.body
        db = BotDatabase(world)
        try:
            await db.wait_until_sent()
            actions = [e.action for e in await db.audit()]
        finally:
            await db.close()
    assert actions.count("chain.started") == 1
    assert actions.count("command.edit_ignored") == 1
    # Dalarna got the alarm and its two acknowledgement answers, nothing more.
    assert await messages_held(world, dalarna, room_d) == 3
    assert len([m for m in from_bot(world, dalarna, room_d) if not m.is_edit]) == 3


async def test_a_reply_to_the_alarm_acknowledges_and_a_thread_is_answered_in_the_thread(
    make_world: WorldFactory,
) -> None:
    world = await make_world(regions=THREE)
    uppsala, dalarna, gavleborg = (world.officer(p) for p in ("uppsala", "dalarna", "gavleborg"))
    room_u, room_d, room_g = (world.rooms[p] for p in ("uppsala", "dalarna", "gavleborg"))
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        _, alarms = await alarmed(world)
        # Dalarna answers the alarm with Element's "Reply": the quote first, then the command.
        replied = await dalarna.send(room_d, reply(alarms["dalarna"], "!kvittera 6"))
        await answer_to(world, dalarna, replied, "Kvittens för Region Dalarna")
        board = await board_saying(world, uppsala, room_u, "kvitterat 1/2")
        assert "sekundärtransporter: 6" in party_line(board, "Region Dalarna")
        # Gävleborg opens a thread on the alarm and acknowledges there: answered in the thread.
        root = alarms["gavleborg"].event_id
        threaded = await gavleborg.send(room_g, in_thread(root, root, "!kvittera 5"))
        answer = await answer_to(world, gavleborg, threaded, "Kvittens för Region Gävleborg")
        relation = answer.content["m.relates_to"]
        assert relation["rel_type"] == "m.thread"
        assert relation["event_id"] == root
        assert relation["m.in_reply_to"] == {"event_id": threaded}
        assert relation["is_falling_back"] is False
        await board_saying(world, uppsala, room_u, "kvitterat 2/2")
        db = BotDatabase(world)
        try:
            await db.wait_until_sent()
        finally:
            await db.close()
    # Each party: the alarm and the one answer, nothing else.
    for person, room in ((dalarna, room_d), (gavleborg, room_g)):
        assert await messages_held(world, person, room) == 2
        assert len([m for m in from_bot(world, person, room) if not m.is_edit]) == 2
