"""Reading what people type: command names, tokens, and the forgiving comparison of words.

People type on phones at night, on keyboards of the wrong language: ``!lagesbild`` must match
``!lägesbild`` and ``!HJALP`` must match ``!hjälp``. Folding is applied to command names and to
enumerated words (readiness levels), never to free text, which is kept as typed. Folding and
the excerpts of typed text that answers quote live in :mod:`bot.domain.user_text`, shared with
the SMS and e-mail bridges.
"""

from __future__ import annotations

from bot.domain.user_text import excerpt
from bot.domain.words import fold

__all__ = ["ECHO", "excerpt", "fold", "split_command", "strip_reply_fallback"]

#: How much of what a person typed an answer quotes back, by catalogue parameter: the name of an
#: unknown command, a value that did not parse, the words left over, a remark, a headline.
#: :class:`commands.render.Voice` cuts every parameter of these names to its excerpt
#: (:func:`bot.domain.user_text.excerpt`: no controls, no bidi overrides, one line, ``…``), so no
#: call site can forget it; the parsers cut at the source too, which keeps the audit small.
ECHO: dict[str, int] = {
    "command": 40,
    "value": 40,
    "extra": 60,
    "remark": 500,
    "headline": 200,
}


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted ``> <@user> ...`` lines some clients put before a reply's text."""
    lines = body.splitlines()
    if not lines or not lines[0].startswith("> "):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    return "\n".join(lines[index:]).strip()


def split_command(body: str) -> tuple[str, list[str]] | None:
    """``"!kvittera 5  bilar"`` → ``("kvittera", ["5", "bilar"])``; None if not a command.

    A command is a ``!`` directly followed by a name at the start of the (trimmed) message.
    """
    text = strip_reply_fallback(body).strip()
    if len(text) < 2 or text[0] != "!" or text[1].isspace() or text[1] == "!":
        return None
    name, *tokens = text[1:].split()
    return name, tokens
