"""A party whose room Matrix cannot reach is a delivery failure, told as it is (issue 10, §1).

Reproduced on a real Synapse with the bridges on a real Kannel and mailbox: a party room that is
unencrypted, or that the bot was never invited to. Before the fix the answer to ``!larma``
listed such a party as alarmed "in its room", the board showed only "⏳ … next: reminder", the
outbox row sat failed or queued forever and the stand-down was counted for rooms that never got
anything; when the bot was invited later it first sent the old alarm (with a mention, minutes
after the incident had ended), then the stand-down. Now:

- ``!larma`` says at once which rooms cannot be reached, and why;
- the initiating duty officer is told, the board shows it with where the alarm went instead,
  and the delivery report counts what each channel really took;
- a room that becomes reachable while the incident runs gets the alarm marked as late; after
  the stand-down it gets neither the old alarm nor the stand-down, and the next alarm arrives
  as the first thing there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.demo.people import Person
from bot.demo.rig import BridgeRig
from bot.demo.script import board_saying, from_bot, say
from bot.demo.world import World
from storage import outbox
from tests.integration.botctl import bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.escalation_support import BotDatabase

TWO = (("uppsala", "Region Uppsala"), ("dalarna", "Region Dalarna"))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BridgeRig]:
    async with BridgeRig(tmp_path / "rig") as started:
        yield started


async def with_gavleborg(
    world: World, rig: BridgeRig, *, encrypted: bool, invite_bot: bool
) -> tuple[Person, str]:
    """Region Gävleborg joins the config with a room that is unencrypted or without the bot."""
    tib = await world.cast("tib-gavleborg", display_name="TiB Region Gävleborg")
    invite = [world.bot_user_id] if invite_bot else []
    room = (
        await tib.create_encrypted_room("Region Gävleborg", invite=invite)
        if encrypted
        else await tib.create_plain_room("Region Gävleborg", invite=invite)
    )
    world.officers["gavleborg"] = tib
    world.config["regions"].append(
        {
            "id": "gavleborg",
            "name": "Region Gävleborg",
            "room": room,
            "duty_officers": [tib.user_id],
            "sms": [rig.number("gavleborg")],
            "email": [rig.address("gavleborg")],
        }
    )
    world.config["escalation"] = {"steps": []}
    world.config["matrix"]["late_after_s"] = 1.0
    world.write_config()
    return tib, room


async def notice(world: World, person: Person, room: str, text: str) -> str:
    message = await person.wait_for(
        lambda m: m.sender == world.bot_user_id and m.room_id == room and text in m.body,
        timeout=30,
    )
    return message.body


async def test_an_unencrypted_party_room_is_a_delivery_failure_told_at_once(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await make_world(regions=TWO, rig=rig)
    tib_gavleborg, plain = await with_gavleborg(world, rig, encrypted=False, invite_bot=True)
    uppsala, uppsala_room = world.officer("uppsala"), world.rooms["uppsala"]
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        await tib_gavleborg.wait_for(  # the bot's one content-free warning in the plain room
            lambda m: m.sender == world.bot_user_id and m.room_id == plain, timeout=60
        )
        await say(world, "uppsala", "!händelse katastrofläge Brand i vårdbyggnad", "H-1")
        started = await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
        assert "• Region Dalarna – i sitt rum, till @tib-dalarna" in started.body
        assert "• Region Gävleborg – ⚠️ rummet nås inte (ej krypterat)" in started.body
        assert "i sitt rum" not in started.body.split("Region Gävleborg")[1].splitlines()[0]

        told = await notice(world, uppsala, uppsala_room, "Region Gävleborgs rum nås inte")
        assert "(ej krypterat)" in told
        assert "gick i stället via sms, e-post" in told
        board = await board_saying(world, uppsala, uppsala_room, "rummet nås inte")
        line = next(x for x in board.splitlines() if "Region Gävleborg" in x and "⏳" in x)
        assert "⚠️ rummet nås inte (ej krypterat)" in line
        assert line.endswith("→ sms, e-post"), line
        report = await notice(world, uppsala, uppsala_room, "Leveransrapport H-1, larmet")
        assert "• Rum: 1 av 2 mottagna av servern" in report
        assert "• Sms: 2 av 2 lämnade till sms-gatewayen" in report
        assert "• E-post: 2 av 2 mottagna av e-postservern" in report
        assert "⚠️ Nådde inte fram: Region Gävleborg (rummet) (ej krypterat)" in report
        # Gävleborg was alarmed where it can be: by SMS and e-mail.
        await rig.kannel.wait_for_sent(receiver=rig.number("gavleborg"), timeout=30)
        await rig.mail.wait_for(lambda m: rig.address("gavleborg") in m.rcpt_tos, timeout=30)

        done = await say(world, "uppsala", "!avlarma", "H-1 är avlarmad")
        assert "larmade parter: 2" in done.body
        down = await notice(world, uppsala, uppsala_room, "Leveransrapport H-1, avlarmeringen")
        assert "• Rum: 1 av 1 mottagna av servern" in down  # not to the room that never had it
    # Nothing of the alarm ever went into the unencrypted room: only the warning.
    plain_bodies = [m.body for m in from_bot(world, tib_gavleborg, plain)]
    assert len(plain_bodies) == 1
    assert "H-1" not in plain_bodies[0]


async def test_a_room_the_bot_is_not_in_gets_the_alarm_late_and_marked_when_it_is_invited(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await make_world(regions=TWO, rig=rig)
    tib_gavleborg, room = await with_gavleborg(world, rig, encrypted=True, invite_bot=False)
    uppsala, uppsala_room = world.officer("uppsala"), world.rooms["uppsala"]
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Tågurspårning", "H-1")
        started = await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
        assert "• Region Gävleborg – ⚠️ rummet nås inte (boten är inte med i rummet)" in (
            started.body
        )
        told = await notice(world, uppsala, uppsala_room, "Region Gävleborgs rum nås inte")
        assert "(boten är inte med i rummet)" in told
        report = await notice(world, uppsala, uppsala_room, "Leveransrapport H-1, larmet")
        assert "⚠️ Nås inte nu, försöker ännu: Region Gävleborg (rummet)" in report
        await asyncio.sleep(1.2)  # past late_after_s: the alarm will be late when it arrives
        await tib_gavleborg.invite(room, world.bot_user_id)
        late = await tib_gavleborg.wait_for(
            lambda m: m.sender == world.bot_user_id and "MASSKADELARM H-1" in m.body, timeout=60
        )
        assert late.encrypted
        assert late.body.startswith("⏱ FÖRSENAT: larmet om H-1 från ")
        assert "når rummet först nu" in late.body.splitlines()[0]


async def test_after_the_stand_down_a_room_joined_late_gets_nothing_of_it_and_the_next_alarm_first(
    make_world: WorldFactory, rig: BridgeRig
) -> None:
    world = await make_world(regions=TWO, rig=rig)
    tib_gavleborg, room = await with_gavleborg(world, rig, encrypted=True, invite_bot=False)
    db = BotDatabase(world)
    try:
        async with bot_in_process(world.config_path):
            await world.wait_bot_joined()
            await say(world, "uppsala", "!händelse stabsläge Vattenläcka", "H-1")
            await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
            await say(world, "uppsala", "!avlarma", "H-1 är avlarmad")
            await tib_gavleborg.invite(room, world.bot_user_id)

            async def settled() -> bool:
                rows = [r for r in await db.outbox_rows() if r.destination == room]
                return bool(rows) and all(
                    r.status in (outbox.CANCELLED, outbox.SENT, outbox.FAILED) for r in rows
                )

            async with asyncio.timeout(60):
                while True:
                    if await settled():
                        break
                    await asyncio.sleep(0.2)
            rows = {r.purpose: r for r in await db.outbox_rows() if r.destination == room}
            assert rows["alarm"].status == outbox.CANCELLED
            assert rows["alarm"].last_error == "stood down"
            assert rows["standdown"].status == outbox.CANCELLED
            assert rows["standdown"].last_error == "the alarm never reached this destination"

            await say(world, "uppsala", "!händelse katastrofläge Bussolycka", "H-2")
            await say(world, "uppsala", "!larma H-2", "Larmkedjan för H-2")
            first = await tib_gavleborg.wait_for(
                lambda m: m.sender == world.bot_user_id and m.room_id == room, timeout=60
            )
            assert "MASSKADELARM H-2" in first.body
            assert not first.body.startswith("⏱")
    finally:
        await db.close()
    bodies = [m.body for m in from_bot(world, tib_gavleborg, room) if not m.is_edit]
    assert all("H-1" not in b for b in bodies), bodies


async def test_at_start_the_coordination_room_and_check_config_name_the_rooms_no_alarm_reaches(
    make_world: WorldFactory, rig: BridgeRig, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any incident: the bot's start and ``check-config`` both say which configured
    rooms cannot receive an alarm (here one unencrypted), and the coordination room is told."""
    world = await make_world(regions=TWO, rig=rig, coordination=True)
    tib_gavleborg, plain = await with_gavleborg(world, rig, encrypted=False, invite_bot=True)
    coordinator, coordination = world.coordinator, world.coordination_room
    assert coordinator is not None
    assert coordination is not None
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        told = await notice(world, coordinator, coordination, "konfigurerade rum nås inte")
        assert "1 av 4 konfigurerade rum nås inte" in told
        assert "• Region Gävleborg: ej krypterat" in told
        assert "Region Dalarna" not in told
        assert "Region Uppsala" not in told
        db = BotDatabase(world)
        try:
            checked = await db.audit("bot.rooms_checked")
        finally:
            await db.close()
        assert [e.detail["unreachable"] for e in checked] == [
            [["gavleborg", plain, "not_encrypted"]]
        ]
        # check-config, as the bot's stored device, names the same room (a warning, exit 0).
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["check-config", str(world.config_path)]) == 0
        out, err = capsys.readouterr()
        warning = f"warning: room {plain} (gavleborg) cannot receive alarms: it is not encrypted"
        assert warning in err
        assert err.count("warning:") == 1, err
        assert "OK (3 regions" in out
    # The plain room got only the content-free warning; the coordination room only the notice.
    assert len(from_bot(world, tib_gavleborg, plain)) == 1
    assert [m.body for m in from_bot(world, coordinator, coordination)] == [told]
