"""Crash points for the crash tests: the one fault a real part cannot produce on demand.

Armed only through the environment (``LARMKEDJA_FAULT``); never set it in production.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


class Faults:
    """Crash points for the crash tests (a fault a real part cannot produce on demand).

    ``LARMKEDJA_FAULT`` names a point, optionally with the hit to die at: ``before-send@3``
    SIGKILLs the process the third time it passes ``before-send``. With
    ``LARMKEDJA_FAULT_DIR`` set, a marker file makes it fire once only, so that the same
    environment after a restart runs normally.
    """

    POINTS = (
        "after-inbox-store",
        "before-handle",
        "before-send",
        "after-send",
        "before-due",
        "after-due",
        "before-channel-send",
        "after-channel-send",
    )

    def __init__(self, point: str | None, marker_dir: str | None) -> None:
        self.at_hit = 1
        if point and "@" in point:
            point, _, count = point.partition("@")
            self.at_hit = max(1, int(count))
        self.point = point
        self.marker_dir = marker_dir
        self.hits = 0

    @staticmethod
    def from_env() -> Faults:
        return Faults(os.environ.get("LARMKEDJA_FAULT"), os.environ.get("LARMKEDJA_FAULT_DIR"))

    def hit(self, point: str) -> None:
        if self.point != point:
            return
        self.hits += 1
        if self.hits < self.at_hit:
            return
        if self.marker_dir:
            marker = os.path.join(self.marker_dir, f"fault-{point}.done")
            if os.path.exists(marker):
                return
            with open(marker, "w") as handle:
                handle.write("1")
        log.critical("fault injection: SIGKILL at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)
