"""What the engine hands a command executor: who, where, when, and the stores it may touch.

Everything an executor may read or change comes in through here (injected capabilities, as in
Draupnir); it imports no database, Matrix or HTTP code itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.clock import Clock
from bot.config import Config
from bot.i18n import Catalog


@dataclass(frozen=True)
class Invocation:
    """An inbound text message that may be a command."""

    event_id: str
    room_id: str
    sender: str
    body: str
    at: datetime  # when the homeserver received it
    thread_root: str | None = None  # typed in a thread: the answer goes into it
    edit_of: str | None = None  # an edit (m.replace) of this earlier message; body is the new text


@dataclass(frozen=True)
class Reaction:
    """An inbound reaction (e.g. ✅) on one of the bot's messages."""

    event_id: str
    room_id: str
    sender: str
    key: str  # the emoji
    reacts_to: str  # event id of the bot message it annotates
    at: datetime


@dataclass
class CommandContext:
    config: Config
    clock: Clock
    # Repositories bound to the engine's current write transaction (see storage/).
    # ``incidents`` implements bot.domain's repository protocol; ``alarms`` maps a bot message's
    # event id back to (incident id, party id) for reaction acknowledgements.
    incidents: Any = None
    alarms: Any = None
    # Planned exercises and their due rows (storage.exercises.SqlSchedules), same transaction.
    schedules: Any = None
    # The message catalogues, built once by the app. Left out, the dispatcher loads them for
    # each run (a few milliseconds), which keeps older callers working.
    catalog: Catalog | None = None
    # Why a room cannot be reached now ("not_encrypted", "not_joined"), or None: what the
    # Matrix layer knows, so that !larma says so at once instead of claiming an alarm.
    room_problem: Callable[[str], str | None] | None = None
