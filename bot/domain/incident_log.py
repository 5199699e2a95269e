"""The incident log (*händelselogg*): timed entries written during the incident.

The Norwegian evaluation asks for evaluation from the first day instead of afterwards, and for
minutes shared with those absent. So anyone involved writes decisions, observations and lessons
as they happen (``!logg``); each entry is numbered and timed by the bot's clock, kept with the
incident, audited, and printed in the after-action report. Entries are never edited or removed:
a correction is a new entry, as in a paper log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Longest entry, in characters (the command's free text has the same limit).
MAX_ENTRY = 500


@dataclass(frozen=True)
class LogEntry:
    number: int  # 1, 2, … within the incident
    at: datetime
    by: str  # Matrix user id
    text: str
    party_id: str | None = None  # whose room it was written in; None: the coordination room

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "by": self.by,
            "text": self.text,
            "party_id": self.party_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogEntry:
        return cls(
            number=data["number"],
            at=datetime.fromisoformat(data["at"]),
            by=data["by"],
            text=data["text"],
            party_id=data.get("party_id"),
        )


def new_entry(
    entries: list[LogEntry], *, text: str, by: str, at: datetime, party_id: str | None
) -> LogEntry:
    """The next entry of ``entries`` (appended); raises ``ValueError`` on an empty or overlong
    text, which the command layer has refused before."""
    text = text.strip()
    if not text:
        raise ValueError("a log entry needs text")
    if len(text) > MAX_ENTRY:
        raise ValueError(f"a log entry is at most {MAX_ENTRY} characters")
    entry = LogEntry(len(entries) + 1, at, by, text, party_id)
    entries.append(entry)
    return entry
