"""The cleanup pass: what has outlived its use is deleted, so the database does not grow
without end with every alarm.

Today that is the reply codes: a code is kept for its lifetime and a grace period after it
(:attr:`bridges.reply_codes.ReplyCodePolicy.grace`, so that a late reply is answered "expired"
rather than "wrong", and the code is not issued again to the same number), and a wrong guess
for as long as the throttle looks back. The audit log, the inbox and the outbox are the
record of the response and are never cleaned up here.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bridges.reply_codes import ReplyCodePolicy
from storage import reply_codes
from storage.database import Database

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0


class CleanupPass:
    name = "cleanup"

    def __init__(self, db: Database, clock: Clock, policy: ReplyCodePolicy) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy
        self.purged = (0, 0)

    async def run_once(self) -> float:
        keep = max(self.policy.grace, self.policy.throttle_window)
        async with self.db.write() as session:
            self.purged = await reply_codes.purge(session, before=self.clock.now() - keep)
        codes, failures = self.purged
        if codes or failures:
            log.info(
                "cleanup: %d expired reply codes and %d old wrong guesses deleted", codes, failures
            )
        return INTERVAL_S
