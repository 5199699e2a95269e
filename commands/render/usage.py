"""Usage lines and help, generated from the declarations so they match what is parsed."""

from __future__ import annotations

from collections.abc import Iterable

from commands.declaration import Audience, Declaration, Place
from commands.render.voice import Voice

_WHO_KEYS = {
    Audience.ANYONE: "who.anyone",
    Audience.PARTY_MEMBER: "who.party_member",
    Audience.REGION_DUTY_OFFICER: "who.region_duty_officer",
    Audience.DUTY_OFFICER_OR_COORDINATOR: "who.duty_officer_or_coordinator",
    Audience.STAFF: "who.staff",
    Audience.COORDINATOR: "who.coordinator",
}
_WHERE_KEYS = {
    Place.ANY_ROOM: "where.any_room",
    Place.PARTY_ROOM: "where.party_room",
    Place.REGION_ROOM: "where.region_room",
    Place.COORDINATION_ROOM: "where.coordination_room",
}


def render_usage(declaration: Declaration, voice: Voice) -> str:
    """``!händelse <nivå> <rubrik…>``: <required>, [optional], … for the rest of the text."""
    parts = ["!" + declaration.names.in_language(voice.lang)]
    for argument in declaration.arguments:
        name = voice.text(argument.type.name_key)
        if argument.type.greedy:
            name += "…"
        parts.append("[" + name + "]" if argument.optional else "<" + name + ">")
    return " ".join(parts)


def render_usage_error(problem: str, declaration: Declaration, voice: Voice) -> str:
    return voice.lines(problem, voice.text("usage.line", usage=render_usage(declaration, voice)))


def render_help_overview(
    declarations: Iterable[Declaration], voice: Voice, *, help_command: str
) -> str:
    entries = [
        voice.text(
            "help.entry",
            usage=render_usage(d, voice),
            summary=voice.text(d.summary_key),
        )
        for d in declarations
    ]
    return voice.lines(
        voice.text("help.header"), *entries, voice.text("help.footer", command=help_command)
    )


def render_command_help(declaration: Declaration, voice: Voice) -> str:
    own = declaration.names.in_language(voice.lang)
    aliases = [n for n in declaration.names.all() if n != own]
    return voice.lines(
        render_usage(declaration, voice),
        voice.text(declaration.details_key),
        *(
            voice.text(
                "help.argument",
                name=voice.text(a.type.name_key),
                hint=voice.text(a.type.hint_key),
            )
            for a in declaration.arguments
        ),
        voice.text(
            "help.who",
            who=voice.text(_WHO_KEYS[declaration.who]),
            where=voice.text(_WHERE_KEYS[declaration.where]),
        ),
        voice.text("help.aliases", names=voice.join("!" + n for n in aliases))
        if aliases
        else None,
    )
