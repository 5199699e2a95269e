"""Why a domain operation was refused.

These are expected outcomes of people acting on stale information (a second ``!larma``, an
acknowledgement after the stand-down), not bugs: the command layer catches them and answers in
the room's language. Each carries the facts that answer needs, so no caller has to parse a
message. The ``str()`` is for logs and developers only.
"""

from __future__ import annotations

from datetime import datetime


class DomainError(Exception):
    """Base of every rule the domain enforces."""


class IllegalTransition(DomainError):
    """The incident's state machine does not allow ``action`` from ``state``."""

    def __init__(self, incident_id: str, state: str, action: str) -> None:
        super().__init__(f"{incident_id}: cannot {action} from state {state}")
        self.incident_id = incident_id
        self.state = state
        self.action = action


class AlreadyAlarmed(IllegalTransition):
    """The chain of this incident was started before; a second fan-out must not happen."""

    def __init__(self, incident_id: str, state: str, at: datetime | None, by: str | None) -> None:
        super().__init__(incident_id, state, "start_alarm")
        self.at = at
        self.by = by


class AlreadyStoodDown(IllegalTransition):
    """The incident is over; nothing more can happen to it."""

    def __init__(self, incident_id: str, action: str, at: datetime | None, by: str | None) -> None:
        super().__init__(incident_id, "stood_down", action)
        self.at = at
        self.by = by


class NotAlarmed(IllegalTransition):
    """An acknowledgement for an incident whose chain has not started."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(incident_id, "confirmed", "acknowledge")


class NotInChain(DomainError):
    """The party was not alarmed for this incident (e.g. the initiating region itself)."""

    def __init__(self, incident_id: str, party_id: str) -> None:
        super().__init__(f"{incident_id}: party {party_id} is not in the alarm chain")
        self.incident_id = incident_id
        self.party_id = party_id


class InvalidPledge(DomainError):
    """A pledge that cannot be true, e.g. a negative number of transports."""
