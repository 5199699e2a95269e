"""Small verbs for scripting people in a world: type a command and await its answer, read the
status board as a phone shows it now. The demo and the scenario tests speak the same verbs
(GoAlert's "expect → reply → expect" device style)."""

# The waits take a ``timeout`` on purpose, as in bot.demo.people.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio

from bot.demo.people import Person, Received
from bot.demo.world import World


def from_bot(world: World, person: Person, room: str | None = None) -> list[Received]:
    return person.messages_from(world.bot_user_id, room)


async def say(
    world: World, party: str, text: str, expect: str = "", timeout: float = 30
) -> Received:
    """``party``'s duty officer types ``text`` in its room and awaits the bot's answer to it."""
    return await say_as(world, world.officer(party), world.rooms[party], text, expect, timeout)


async def say_as(
    world: World, person: Person, room: str, text: str, expect: str = "", timeout: float = 30
) -> Received:
    event_id = await person.send_text(room, text)
    return await person.wait_for(
        lambda m: m.sender == world.bot_user_id and m.reply_to == event_id and expect in m.body,
        timeout=timeout,
    )


def board_text(world: World, person: Person, room: str, incident: str) -> str | None:
    """The incident's status board as ``person`` sees it now: the original or its newest edit."""
    for message in reversed(from_bot(world, person, room)):
        text = message.new_body if message.is_edit else message.body
        if text and text.startswith(f"🚨 {incident} ·"):
            return text
    return None


async def board_saying(
    world: World,
    person: Person,
    room: str,
    expect: str,
    incident: str = "H-1",
    timeout: float = 30,
) -> str:
    """Wait until the board of ``incident`` in ``room`` says ``expect``; return it."""
    async with asyncio.timeout(timeout):
        while True:
            text = board_text(world, person, room, incident)
            if text is not None and expect in text:
                return text
            await asyncio.sleep(0.05)
