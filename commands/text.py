"""Reading what people type: command names, tokens, and the forgiving comparison of words.

People type on phones at night, on keyboards of the wrong language: ``!lagesbild`` must match
``!lägesbild`` and ``!HJALP`` must match ``!hjälp``. Folding is applied to command names and to
enumerated words (readiness levels), never to free text, which is kept as typed.
"""

from __future__ import annotations

from bot.domain.words import fold

__all__ = ["fold", "split_command", "strip_reply_fallback"]


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
