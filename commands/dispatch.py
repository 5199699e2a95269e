"""The engine's way into the commands: one inbound message or reaction in, one Outcome out.

Never raises for bad input. Not a command → None. Unknown name → the closest command and the
help command. Wrong room or person → a polite refusal and an audit entry. Bad arguments → what
was wrong and the usage line. Only then does an executor run.
"""

from __future__ import annotations

from dataclasses import replace

from bot.i18n import Catalog
from commands.access import declaration_refusal
from commands.arguments import ArgumentProblem, parse_arguments
from commands.context import CommandContext, Invocation, Reaction
from commands.declaration import Call
from commands.executors.ack import acknowledge_by_reaction
from commands.outcome import AuditEntry, Outcome, Post
from commands.registry import Registry, build_registry
from commands.render import Voice
from commands.render.usage import render_usage_error
from commands.replies import NOT_HANDLED, call_detail, home_server, refused
from commands.text import split_command

#: The longest message read as a command. A situation report with every field filled in is
#: a few thousand characters; anything longer is answered without being parsed or echoed, so
#: that 30,000 characters typed after a ``!`` cannot make an answer the homeserver refuses.
MAX_COMMAND_CHARS = 4_000


def _catalog(ctx: CommandContext) -> Catalog:
    return ctx.catalog if ctx.catalog is not None else Catalog.load()


def _unknown(invocation: Invocation, name: str, registry: Registry, voice: Voice) -> Outcome:
    help_command = registry.display("help", voice.lang)
    closest = registry.closest(name)
    body = (
        voice.text(
            "unknown.command",
            command="!" + name,
            suggestion=registry.display(closest.key, voice.lang),
            help=help_command,
        )
        if closest is not None
        else voice.text("unknown.command_no_suggestion", command="!" + name, help=help_command)
    )
    audit = AuditEntry(
        "command.unknown",
        None,
        {
            "name": name,
            "room": invocation.room_id,
            "sender": invocation.sender,
        },
    )
    post = Post(room_id=invocation.room_id, body=body, in_reply_to=invocation.event_id)
    return Outcome(posts=[post], audit=[audit], reaction=NOT_HANDLED)


def _problem_text(problem: ArgumentProblem, voice: Voice) -> str:
    localized = {name: voice.text(key) for name, key in problem.localized.items()}
    return voice.text(problem.key, **problem.params, **localized)


def _invalid(call: Call, problem: ArgumentProblem, voice: Voice) -> Outcome:
    body = render_usage_error(_problem_text(problem, voice), call.declaration, voice)
    entry = AuditEntry(
        "command.invalid", None, call_detail(call, problem=problem.key, **problem.params)
    )
    post = Post(room_id=call.room_id, body=body, in_reply_to=call.event_id)
    return Outcome(posts=[post], audit=[entry], reaction=NOT_HANDLED)


def _render_refusal(call: Call, ctx: CommandContext, key: str, voice: Voice) -> str:
    party = ctx.config.party_for_room(call.room_id)
    return voice.text(
        key,
        command=call.command(call.declaration.key),
        party=party.name if party is not None else call.room_id,
    )


def _too_long(invocation: Invocation, ctx: CommandContext) -> Outcome | None:
    """A command too long to read: a short answer that quotes none of it, and an audit entry.
    Long text that is no command (no ``!`` at its start) is not the bot's business."""
    if split_command(invocation.body[:MAX_COMMAND_CHARS]) is None:
        return None
    registry = build_registry()
    lang = ctx.config.room_language(invocation.room_id)
    voice = Voice(_catalog(ctx), lang, home_server(ctx))
    body = voice.text(
        "command.too_long",
        length=len(invocation.body),
        max=MAX_COMMAND_CHARS,
        help=registry.display("help", lang),
    )
    audit = AuditEntry(
        "command.invalid",
        None,
        {
            "problem": "too_long",
            "length": len(invocation.body),
            "room": invocation.room_id,
            "sender": invocation.sender,
        },
    )
    post = Post(room_id=invocation.room_id, body=body, in_reply_to=invocation.event_id)
    return Outcome(posts=[post], audit=[audit], reaction=NOT_HANDLED)


async def handle_message(invocation: Invocation, ctx: CommandContext) -> Outcome | None:
    """Run the command in ``invocation``, if it is one; typed in a thread, the answers to it
    go into that thread."""
    outcome = await _handle_message(invocation, ctx)
    if outcome is None or invocation.thread_root is None:
        return outcome
    outcome.posts = [
        replace(post, thread_root=invocation.thread_root)
        if post.room_id == invocation.room_id and post.in_reply_to == invocation.event_id
        else post
        for post in outcome.posts
    ]
    return outcome


def _edited(call: Call, voice: Voice) -> Outcome:
    """An edit of a command that must not run twice: say how to run it, and audit it."""
    body = voice.text(
        "command.edited",
        command=call.command(call.declaration.key),
        ack=call.registry.display("ack", voice.lang),
    )
    audit = AuditEntry("command.edit_ignored", None, call_detail(call))
    post = Post(room_id=call.room_id, body=body, in_reply_to=call.event_id)
    return Outcome(posts=[post], audit=[audit], reaction=NOT_HANDLED)


async def _handle_message(invocation: Invocation, ctx: CommandContext) -> Outcome | None:
    if invocation.sender == ctx.config.matrix.user_id:
        return None
    if len(invocation.body) > MAX_COMMAND_CHARS:
        return _too_long(invocation, ctx)
    parsed = split_command(invocation.body)
    if parsed is None:
        return None
    name, tokens = parsed
    catalog = _catalog(ctx)
    registry = build_registry()
    lang = registry.language_of(name) or ctx.config.room_language(invocation.room_id)
    voice = Voice(catalog, lang, home_server(ctx))
    declaration = registry.find(name)
    if declaration is None:
        return _unknown(invocation, name, registry, voice)
    call = Call(
        declaration=declaration,
        room_id=invocation.room_id,
        sender=invocation.sender,
        event_id=invocation.event_id,
        at=invocation.at,
        lang=lang,
        args={},
        catalog=catalog,
        registry=registry,
    )
    reason = declaration_refusal(ctx.config, declaration, call)
    if reason is not None:
        return refused(call, _render_refusal(call, ctx, reason, voice), reason)
    if invocation.edit_of is not None and not declaration.acts_on_edit:
        return _edited(call, voice)
    try:
        args = parse_arguments(declaration.arguments, tokens)
    except ArgumentProblem as problem:
        return _invalid(call, problem, voice)
    return await declaration.execute(replace(call, args=args), ctx)


async def handle_reaction(reaction: Reaction, ctx: CommandContext) -> Outcome | None:
    """A ✅ on an alarm: the chat way in to the acknowledgement (see
    :func:`commands.executors.ack.acknowledge_by_reaction`); anything else is None."""
    return await acknowledge_by_reaction(reaction, ctx, build_registry())
