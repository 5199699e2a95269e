"""How the one outbox paces each channel: retries with backoff, rate limits, when to give up.

Each channel has a :class:`ChannelPolicy`. What a failure means depends on what the message is:

- an **alarm, reminder, escalation or stand-down** is retried, with a capped backoff, until it
  is delivered, moot (the party acknowledged, the incident was stood down: the preparer cancels
  it) or :data:`URGENT_GIVE_UP` after it was written (a stand-down nobody could receive for a
  day is reported failed). Giving such a message up after a few attempts would be silence on
  the worst day: a gateway down for 40 s must not lose five alarms;
- anything else (an answer to a reply, a notice) is given up after ``max_attempts``, visibly:
  failed, logged and audited.

A permanent refusal fails any message at once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock

URGENT_PURPOSES = frozenset({"alarm", "reminder", "escalation", "standdown"})
URGENT_GIVE_UP = timedelta(hours=24)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``, refilled by the injected clock."""

    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be above zero")
        self._clock = clock
        self.rate = rate
        self.burst = burst if burst is not None else float(max(1, math.ceil(rate)))
        self._tokens = self.burst
        self._at = clock.now()

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = max(0.0, (now - self._at).total_seconds())
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._at = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def seconds_until_token(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate


@dataclass
class ChannelPolicy:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    max_attempts: int | None = None  # for messages that are not urgent; None: no limit
    bucket: TokenBucket | None = None
    max_concurrent: int = 64
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least one")
        self._rng = self.rng or random.Random()

    def backoff(self, attempts: int) -> float:
        """Seconds until the next try: doubling from the initial value, capped, with jitter
        (50-100 %) so a recovered gateway is not hit by every row at once."""
        base = min(self.backoff_initial_s * 2 ** min(max(attempts - 1, 0), 30), self.backoff_max_s)
        return base * self._rng.uniform(0.5, 1.0)

    def gives_up(self, purpose: str, attempts: int, created_at: datetime, now: datetime) -> bool:
        """Whether a message that failed again is failed for good: nothing is retried longer
        than :data:`URGENT_GIVE_UP`; what is not urgent, not more than ``max_attempts``."""
        if now - created_at >= URGENT_GIVE_UP:
            return True
        if purpose in URGENT_PURPOSES:
            return False
        return self.max_attempts is not None and attempts >= self.max_attempts
