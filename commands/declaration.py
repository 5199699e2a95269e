"""A command is a declaration plus an executor (the Draupnir/maubot shape).

The declaration says everything the dispatcher and the help need: names in each language,
typed arguments, who may run it and where, and the catalogue keys of its help. Usage lines,
argument errors, refusals and the help text are all generated from it, so they cannot drift
from what the command actually accepts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.i18n import Catalog
from commands.arguments import Argument
from commands.context import CommandContext
from commands.outcome import Outcome

if TYPE_CHECKING:
    from commands.registry import Registry


class Audience(StrEnum):
    """Who may run a command."""

    ANYONE = "anyone"
    PARTY_MEMBER = "party_member"  # a duty officer or member of this room's party
    REGION_DUTY_OFFICER = "region_duty_officer"  # a duty officer of this room's region
    DUTY_OFFICER_OR_COORDINATOR = "duty_officer_or_coordinator"  # of any party
    STAFF = "staff"  # a duty officer or member of any party, or a coordinator
    COORDINATOR = "coordinator"  # a preparedness coordinator named in the config


class Place(StrEnum):
    """Where a command may be run."""

    ANY_ROOM = "any_room"
    PARTY_ROOM = "party_room"
    REGION_ROOM = "region_room"
    COORDINATION_ROOM = "coordination_room"  # the healthcare region's coordination room


@dataclass(frozen=True)
class Names:
    """The command's name in each language; Swedish is primary and shown by default."""

    sv: str
    nb: str
    en: str

    def in_language(self, lang: str) -> str:
        return {"sv": self.sv, "nb": self.nb, "en": self.en}.get(lang, self.sv)

    def all(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.sv, self.en, self.nb)))


@dataclass(frozen=True)
class Call:
    """One run of a command: the parsed arguments and where they came from."""

    declaration: Declaration
    room_id: str
    sender: str
    event_id: str  # the command event (or the reaction) this answers
    at: datetime  # when the homeserver received it
    lang: str  # the reply's: the typed name's language if only it uses the name, else the room's
    args: Mapping[str, Any]
    catalog: Catalog
    registry: Registry
    reply_to: str | None = None  # event a reply should thread to

    def text(self, key: str, **params: Any) -> str:
        return self.catalog.text(self.lang, key, **params)

    def command(self, key: str) -> str:
        """A command's display form in this call's language, e.g. ``!kvittera``."""
        return self.registry.display(key, self.lang)


Executor = Callable[[Call, CommandContext], Awaitable[Outcome]]


@dataclass(frozen=True)
class Declaration:
    key: str  # stable id used in code and audit: "ack"
    names: Names
    who: Audience
    where: Place
    summary_key: str  # one line in the command list
    details_key: str  # a paragraph in the command's own help
    execute: Executor
    arguments: tuple[Argument, ...] = field(default=())
    #: An edited message (Element's "Edit") with this command runs again, the newest text
    #: winning: right for an acknowledgement (editing ``!kvittera 3`` to ``!kvittera 5``
    #: corrects the pledge), wrong for a command that starts or ends something, which an edit
    #: must not do twice. Those are answered with how to send it anew.
    acts_on_edit: bool = False
