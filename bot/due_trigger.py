"""APScheduler as a trigger only: the database's due-time rows are the truth.

One job, armed at the earliest pending due time. When it runs, the engine fires every row
that is due by then and re-arms. At start the job is armed from the rows, so a due time
missed while the bot was down runs at once (and the domain marks it late); nothing lives only
in the scheduler's memory, which is why a crash or restart can lose nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

log = logging.getLogger(__name__)

JOB_ID = "larmkedja-next-due"


class DueTrigger:
    def __init__(self, fire: Callable[[], Awaitable[None]]) -> None:
        self._fire = fire
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self.armed_for: datetime | None = None

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def arm(self, when: datetime | None) -> None:
        """Run the engine's due pass at ``when`` (now if it is past); None disarms."""
        self.armed_for = when
        if when is None:
            if self._scheduler.get_job(JOB_ID) is not None:
                self._scheduler.remove_job(JOB_ID)
            return
        self._scheduler.add_job(
            self._fire,
            DateTrigger(run_date=when),
            id=JOB_ID,
            replace_existing=True,
            misfire_grace_time=None,  # late is never too late: run, the domain marks it late
            coalesce=True,
            max_instances=1,
        )
