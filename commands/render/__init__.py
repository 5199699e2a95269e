"""Turning decisions into text, in one language, from catalogue fragments only.

Renderers may join catalogue messages with punctuation and line breaks but contain no words of
their own; the i18n tests enforce that by reading this package's source.
"""

from commands.render.board import render_board
from commands.render.messages import (
    render_ack_reply,
    render_alarm,
    render_chain_started,
    render_stand_down,
)
from commands.render.voice import Voice

__all__ = [
    "Voice",
    "render_ack_reply",
    "render_alarm",
    "render_board",
    "render_chain_started",
    "render_stand_down",
]
