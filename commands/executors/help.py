"""!hjälp: the command list a person can use, or one command in detail."""

from __future__ import annotations

from commands.access import refusal
from commands.context import CommandContext
from commands.declaration import Call, Declaration
from commands.outcome import Outcome
from commands.render.usage import render_command_help, render_help_overview
from commands.replies import answered, voice_for


def _relevant(call: Call, ctx: CommandContext) -> list[Declaration]:
    """Commands the sender may run here, or in a room of a party they belong to: a duty
    officer asking in the coordination room still learns about !händelse."""
    config = ctx.config
    own_rooms = [
        p.room
        for p in config.all_parties()
        if call.sender in p.duty_officers or call.sender in p.members
    ]
    rooms = [call.room_id, *own_rooms]
    return [
        d
        for d in call.registry
        if any(refusal(config, d.who, d.where, room, call.sender) is None for room in rooms)
    ]


async def execute_help(call: Call, ctx: CommandContext) -> Outcome:
    voice = voice_for(call, ctx)
    name = call.args.get("command")
    if name:
        declaration = call.registry.find(name)
        if declaration is None:
            return answered(
                call,
                voice.text("help.unknown", command="!" + name, help=call.command("help")),
                reaction=None,
            )
        return answered(call, render_command_help(declaration, voice), reaction=None)
    return answered(
        call,
        render_help_overview(_relevant(call, ctx), voice, help_command=call.command("help")),
        reaction=None,
    )
