"""What every decision gets to work with: a :class:`commands.context.CommandContext` bound to
the write transaction it runs in (the repositories), with the config, the clock and the
catalogues the composition root built once. The engine and the unit harness build contexts the
same way, here.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.config import Config
from bot.i18n import Catalog
from commands.context import CommandContext
from storage.exercises import SqlSchedules
from storage.incidents import make_repositories


class ContextFactory:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        catalog: Catalog,
        *,
        room_problem: Callable[[str], str | None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.catalog = catalog
        self.room_problem = room_problem

    def party_for_room(self, room_id: str) -> str | None:
        party = self.config.party_for_room(room_id)
        return party.id if party is not None else None

    def __call__(self, session: AsyncSession) -> CommandContext:
        incidents, alarms = make_repositories(session, self.party_for_room)
        return CommandContext(
            config=self.config,
            clock=self.clock,
            incidents=incidents,
            alarms=alarms,
            schedules=SqlSchedules(session),
            catalog=self.catalog,
            room_problem=self.room_problem,
        )
