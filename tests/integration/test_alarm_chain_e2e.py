"""The alarm chain played end to end in encrypted rooms on a real Synapse (issue: alarm chain).

The scenario reads like the night it plays: Uppsala's duty officer confirms a katastrofläge,
starts the chain, the other six regions, the national duty officer and the blood centre
acknowledge (some with pledges, one pledging too few, one late, one by ✅), the board follows
in Uppsala's room and the coordination room, and the stand-down reaches everyone. It ends by
checking that nobody received anything the scenario did not expect.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from bot.config import load_config
from bot.demo.people import Received
from bot.demo.scenario import ALARMED
from bot.demo.script import board_saying, from_bot, say
from bot.demo.world import World
from storage import audit
from storage.database import Database
from storage.inbox import InboundEvent
from tests.integration.botctl import BotProcess, bot_in_process
from tests.integration.conftest import WorldFactory
from tests.integration.test_matrix_foundation import assert_no_plaintext_from_bot, audit_actions

FULL = dict(regions=None, national=True, blood_centre_of="uppsala", coordination=True)


async def full_world(make_world: WorldFactory) -> World:
    from bot.demo.world import MELLANSVERIGE

    return await make_world(**{**FULL, "regions": MELLANSVERIGE})


async def test_mass_casualty_alarm_from_confirmation_to_stand_down(
    make_world: WorldFactory,
) -> None:
    world = await full_world(make_world)
    uppsala, coordinator = world.officer("uppsala"), world.coordinator
    assert coordinator is not None
    assert world.coordination_room is not None
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        confirmed = await say(
            world, "uppsala", "!händelse katastrofläge Bussolycka E4 Knivsta", "H-1"
        )
        assert "Katastrofläge" in confirmed.body

        started = await say(world, "uppsala", "!larma", "Larmkedjan för H-1 är startad")
        assert "Larmet skickas till (8)" in started.body

        alarms: dict[str, Received] = {}
        for party in ALARMED:
            person = world.officer(party)
            alarms[party] = await person.wait_for(
                lambda m: m.sender == world.bot_user_id and "MASSKADELARM H-1" in m.body
            )
            assert alarms[party].encrypted
            assert alarms[party].content["m.mentions"]["user_ids"] == [person.user_id]
            assert "Bussolycka E4 Knivsta" in alarms[party].body
        assert "Ställ minst 5 sekundärtransporter" in alarms["dalarna"].body
        assert "Larma landets blodcentraler" in alarms["blodcentralen-uppsala"].body
        assert "sekundärtransporter" not in alarms["socialstyrelsen"].body

        board = await board_saying(world, uppsala, world.rooms["uppsala"], "kvitterat 0/8")
        assert "Saknas:" in board
        await board_saying(world, coordinator, world.coordination_room, "kvitterat 0/8")

        await say(world, "dalarna", "!kvittera 5", "Kvittens för Region Dalarna")
        short = await say(world, "gavleborg", "!kvittera 3", "Kvittens för Region Gävleborg")
        assert "Kravet är minst 5" in short.body
        await world.officer("varmland").react(
            world.rooms["varmland"], alarms["varmland"].event_id, "✅"
        )
        await board_saying(world, uppsala, world.rooms["uppsala"], "kvitterat 3/8")
        await say(world, "vastmanland", "!ack 6", "Acknowledgement for Region Västmanland")
        await say(world, "orebro", "!kvittera 5 två ambulanser på väg", "Region Örebro län")
        await say(world, "socialstyrelsen", "!kvittera", "Kvittens för Socialstyrelsen")
        await say(world, "blodcentralen-uppsala", "!kvittera", "Kvittens för Blodcentralen")
        await say(world, "dalarna", "!kvittera 6", "hade redan kvitterat")  # twice: recorded

        board = await board_saying(world, uppsala, world.rooms["uppsala"], "· även @tib-dalarna")
        assert "kvitterat 7/8" in board
        assert "Saknas: Region Sörmland" in board
        assert "⚠️ krav minst 5" in board  # Gävleborg pledged too few
        assert "”två ambulanser på väg”" in board
        dalarna_line = next(line for line in board.splitlines() if "Region Dalarna" in line)
        assert "· även @tib-dalarna" in dalarna_line  # acknowledged twice: both shown
        assert "sekundärtransporter: 6" in dalarna_line  # the latest pledge counts

        await asyncio.sleep(1.0)  # Sörmland acknowledges only after a while
        await say(world, "sormland", "!kvittera 7", "Kvittens för Region Sörmland")
        await uppsala.wait_for(
            lambda m: m.sender == world.bot_user_id and "parter har kvitterat H-1" in m.body
        )
        board = await board_saying(world, uppsala, world.rooms["uppsala"], "kvitterat 8/8")
        assert "Alla har kvitterat. ✅" in board
        assert "Sekundärtransporter: 27 av minst 30 ⚠️" in board  # 6+3+0+6+5+7: Värmland gave none
        for name in ("Region Värmland", "Region Gävleborg", "Socialstyrelsen"):
            assert f"✅ {name}" in board
        coordination_board = await board_saying(
            world, coordinator, world.coordination_room, "kvitterat 8/8"
        )
        assert coordination_board == board

        status = await say(world, "uppsala", "!status", "kvitterat 8/8")
        assert status.body == board

        await say(world, "uppsala", "!avlarma Alla patienter omhändertagna", "H-1")
        for party in ALARMED:
            stand_down = await world.officer(party).wait_for(
                lambda m: (
                    m.sender == world.bot_user_id
                    and "H-1" in m.body
                    and "Alla patienter omhändertagna" in m.body
                )
            )
            assert stand_down.encrypted
        await board_saying(world, uppsala, world.rooms["uppsala"], "⏹ Avlarmad")
        late = await say(world, "dalarna", "!kvittera 2", "avlarmades redan")
        assert "H-1" in late.body

    # Nothing unexpected: each alarmed party saw its alarm, its ack replies and the stand-down.
    expected_replies = Counter(
        {
            "dalarna": 3,
            "gavleborg": 1,
            "varmland": 1,
            "vastmanland": 1,
            "orebro": 1,
            "socialstyrelsen": 1,
            "blodcentralen-uppsala": 1,
            "sormland": 1,
        }
    )
    for party in ALARMED:
        person = world.officer(party)
        got = from_bot(world, person, world.rooms[party])
        assert len(got) == 2 + expected_replies[party], [m.body for m in got]
        assert await assert_no_plaintext_from_bot(person, world, world.rooms[party]) >= 2
    for region in ("uppsala",):  # the initiator: replies, completion notice, board and edits
        assert all(m.encrypted for m in from_bot(world, uppsala, world.rooms[region]))
    actions = Counter(a for a, _, _ in await audit_actions(world))
    assert actions["incident.confirmed"] == 1
    assert actions["chain.started"] == 1
    assert actions["ack.recorded"] == 9
    assert actions["incident.stood_down"] == 1


async def test_two_incidents_from_two_regions_do_not_mix(make_world: WorldFactory) -> None:
    world = await make_world(
        regions=(
            ("uppsala", "Region Uppsala"),
            ("dalarna", "Region Dalarna"),
            ("orebro", "Region Örebro län"),
        )
    )
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        await asyncio.gather(
            say(world, "uppsala", "!händelse stabsläge Brand på sjukhus", "H-"),
            say(world, "dalarna", "!händelse förstärkningsläge Tågolycka Borlänge", "H-"),
        )
        await asyncio.gather(
            say(world, "uppsala", "!larma", "Larmkedjan för"),
            say(world, "dalarna", "!larma", "Larmkedjan för"),
        )
        orebro = world.officer("orebro")
        await orebro.wait_for_count(lambda m: "MASSKADELARM" in m.body, 2)
        ids = {m.body.split()[2]: m for m in orebro.received if "MASSKADELARM" in m.body}
        uppsala_id = next(i for i, m in ids.items() if "Brand på sjukhus" in m.body)
        dalarna_id = next(i for i, m in ids.items() if "Tågolycka" in m.body)
        await say(world, "orebro", f"!kvittera {uppsala_id} 5", f"på {uppsala_id}")
        await say(world, "uppsala", "!kvittera 4", f"på {dalarna_id}")
        board_u = await board_saying(
            world,
            world.officer("uppsala"),
            world.rooms["uppsala"],
            incident=uppsala_id,
            expect="kvitterat 1/2",
        )
        board_d = await board_saying(
            world,
            world.officer("dalarna"),
            world.rooms["dalarna"],
            incident=dalarna_id,
            expect="kvitterat 1/2",
        )
        assert "Tågolycka" not in board_u
        assert "Brand på sjukhus" not in board_d
        assert "✅ Region Örebro län" in board_u
        assert "⏳ Region Dalarna" in board_u
        assert "✅ Region Uppsala" in board_d
        assert "⏳ Region Örebro län" in board_d


async def test_bad_input_gets_specific_answers_and_changes_nothing(
    make_world: WorldFactory,
    people,
) -> None:
    world = await make_world()
    outsider = await people("outsider")
    async with bot_in_process(world.config_path):
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Explosion", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
        twice = await say(world, "uppsala", "!larma", "larmades redan")
        assert "Inget nytt utskick" in twice.body
        for text, expect in [
            ("!kvittera -3", "-3"),
            ("!kvittera fem", "fem"),
            ("!kvittera 99999999999", "99999999999"),
        ]:
            answer = await say(world, "dalarna", text, expect)
            assert "Kvittens" not in answer.body
        unknown = await say(world, "dalarna", "!kvittera H-99 5", "H-99")
        assert "Kvittens" not in unknown.body
        wrong_room = await say(world, "uppsala", "!kvittera 5", "")  # Uppsala is not alarmed
        assert "Kvittens" not in wrong_room.body
        await world.officer("dalarna").invite(world.rooms["dalarna"], outsider.user_id)
        await outsider.join(world.rooms["dalarna"])
        event_id = await outsider.send_text(world.rooms["dalarna"], "!kvittera 5")
        not_member = await outsider.wait_for(
            lambda m: m.sender == world.bot_user_id and m.reply_to == event_id
        )
        assert "Kvittens" not in not_member.body
        event_id = await outsider.send_text(world.rooms["dalarna"], "!händelse stabsläge Test")
        refused = await outsider.wait_for(
            lambda m: m.sender == world.bot_user_id and m.reply_to == event_id
        )
        assert "H-2" not in refused.body
        await board_saying(
            world, world.officer("uppsala"), world.rooms["uppsala"], "kvitterat 0/1"
        )
    actions = Counter(a for a, _, _ in await audit_actions(world))
    assert actions["ack.recorded"] == 0
    assert actions["incident.confirmed"] == 1
    assert actions["command.refused"] >= 2  # the non-duty officer and the non-member
    assert actions["command.invalid"] + actions["command.rejected"] >= 5


async def test_replayed_command_event_has_one_effect(make_world: WorldFactory) -> None:
    world = await make_world()
    async with bot_in_process(world.config_path) as app:
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse stabsläge Gasläcka", "H-1")
        confirmed = await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
        assert app.inbox is not None
        # The same event arrives again, as after a replayed sync or a redelivery.
        replay = InboundEvent(
            event_id=confirmed.reply_to or "",
            source="matrix",
            kind="message",
            room_id=world.rooms["uppsala"],
            sender=world.officer("uppsala").user_id,
            origin_ts=0,
            payload={"body": "!larma"},
        )
        await app.inbox.store_batch([replay], "replayed-token-ignored")
        await app.inbox.drain()
        await asyncio.sleep(1.0)
    dalarna = world.officer("dalarna")
    assert len([m for m in dalarna.received if "MASSKADELARM" in m.body]) == 1
    assert Counter(a for a, _, _ in await audit_actions(world))["chain.started"] == 1


async def test_sigkill_mid_chain_keeps_chain_board_and_acknowledgements(
    make_world: WorldFactory,
) -> None:
    world = await make_world(
        regions=(
            ("uppsala", "Region Uppsala"),
            ("dalarna", "Region Dalarna"),
            ("orebro", "Region Örebro län"),
        )
    )
    bot = BotProcess(world.config_path)
    await bot.start()
    try:
        await world.wait_bot_joined()
        await say(world, "uppsala", "!händelse katastrofläge Flygolycka Arlanda", "H-1")
        await say(world, "uppsala", "!larma", "Larmkedjan för H-1")
        await say(world, "dalarna", "!kvittera 5", "Kvittens för Region Dalarna")
        await board_saying(
            world, world.officer("uppsala"), world.rooms["uppsala"], "kvitterat 1/2"
        )
        bot.process.kill()  # type: ignore[union-attr]
        assert await bot.wait() == -9
        await bot.start()
        await say(world, "orebro", "!kvittera 6", "Kvittens för Region Örebro län", timeout=60)
        board = await board_saying(
            world, world.officer("uppsala"), world.rooms["uppsala"], "kvitterat 2/2", timeout=60
        )
        assert "✅ Region Dalarna" in board
        assert "✅ Region Örebro län" in board
        assert "Sekundärtransporter: 11 av minst 10" in board
    finally:
        await bot.stop()
    uppsala = world.officer("uppsala")
    originals = [
        m
        for m in from_bot(world, uppsala, world.rooms["uppsala"])
        if not m.is_edit and m.body.startswith("🚨 H-1 ·")
    ]
    assert len(originals) == 1  # the board was edited in place across the restart
    db = Database(load_config(world.config_path).database_url)
    try:
        async with db.read() as session:
            assert await audit.verify_chain(session) is None
    finally:
        await db.close()
