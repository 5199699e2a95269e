"""What a claimed outbox row becomes at the moment it is sent, on every channel.

Called for each row inside the claim transaction (a savepoint per row, so a row that cannot be
prepared fails alone). It returns the payload to send, or why the row is not sent any more:

- **moot**: a message that asks for an acknowledgement (an alarm, a reminder, an escalation,
  on any channel) is cancelled when its party has acknowledged or the incident was stood down
  by the time its turn comes: an alarm after the answer, or after the stand-down, only
  confuses;
- **late**: an alarm that goes out long after it was decided (its room was unreachable until
  now) says so first, and a stand-down is not sent where the alarm never arrived;
- **the edited message**: an edit carries the event id of the message it edits, looked up now
  (:data:`WAIT` while that message is not out yet, :data:`ORPHAN` if it never will be);
- **reply codes and links**: an SMS or e-mail body with ``{code}`` gets the recipient's own
  single-use code, issued now (the database keeps only the placeholder and the code's HMAC),
  and ``{link}`` its signed acknowledge link (or the line is dropped without a public URL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import IncidentState
from bridges.reply_codes import ReplyCodes
from bridges.signed_links import SignedLinks
from commands.outcome import CODE, LINK
from storage import outbox
from storage.incidents import SqlIncidents
from storage.models import OutboxRow

#: Purposes that ask for an acknowledgement: sent only while one is still wanted.
ASKING = frozenset({"alarm", "escalation", "reminder"})


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The row must wait (an edit of a message not out yet); it keeps its place in its lane.
WAIT = _Marker("WAIT")
#: The row edits a message that failed for good: it fails too.
ORPHAN = _Marker("ORPHAN")

Prepared = dict[str, Any] | str | _Marker


@dataclass(frozen=True)
class Links:
    signer: SignedLinks
    public_base_url: str | None
    ttl: timedelta


class Preparer:
    def __init__(
        self,
        *,
        party_for_room: Any = None,
        codes: ReplyCodes | None = None,
        links: Links | None = None,
        late_after: timedelta = timedelta(seconds=60),
    ) -> None:
        """``party_for_room(room_id) -> party id | None`` finds whose room a post goes to
        when it does not say; ``codes`` and ``links`` only with SMS or e-mail; a message that
        carries a ``late_note`` and goes out ``late_after`` after it was written gets it first.
        """
        self.party_for_room = party_for_room
        self.codes = codes
        self.links = links
        self.late_after = late_after

    async def prepare(self, session: AsyncSession, row: OutboxRow, now: datetime) -> Prepared:
        payload = dict(row.payload or {})
        if row.purpose in ASKING and row.incident_id:
            why_not = await self._moot(session, row, payload)
            if why_not is not None:
                return why_not
        if (
            row.purpose == "standdown"
            and row.incident_id
            and await outbox.alarm_never_reached(session, row.incident_id, row.destination)
        ):
            return "the alarm never reached this destination"
        note = payload.pop("late_note", None)
        if note and now - row.created_at >= self.late_after:
            payload["body"] = f"{note}\n{payload.get('body', '')}"
        if payload.get("replaces_key"):
            original = await outbox.by_key(session, payload["replaces_key"])
            if original is None or original.status in (outbox.FAILED, outbox.CANCELLED):
                return ORPHAN
            if original.remote_id is None:
                return WAIT
            payload["replaces"] = original.remote_id
        body = payload.get("body")
        if isinstance(body, str) and (CODE in body or LINK in body):
            payload = await self._fill_in(session, row, payload, now)
        return payload

    async def _moot(
        self, session: AsyncSession, row: OutboxRow, payload: dict[str, Any]
    ) -> str | None:
        party_id = payload.get("party_id")
        if not party_id and row.channel == "matrix" and self.party_for_room is not None:
            party_id = self.party_for_room(row.destination)
        if not party_id:
            return None
        incident = await SqlIncidents(session).get(str(row.incident_id))
        if incident is None:
            return "unknown incident"
        if incident.state is IncidentState.STOOD_DOWN:
            return "stood down"
        if incident.first_ack(str(party_id)) is not None:
            return "acknowledged"
        return None

    async def _fill_in(
        self, session: AsyncSession, row: OutboxRow, payload: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        body = str(payload["body"])
        party_id = payload.get("party_id")
        if CODE in body and self.codes is not None and party_id and row.incident_id:
            code = await self.codes.issue(
                session,
                channel=row.channel,
                destination=row.destination,
                incident_id=row.incident_id,
                party_id=str(party_id),
                outbox_key=row.idempotency_key,
                now=now,
            )
            body = body.replace(CODE, code)
            payload["reply_code"] = code
        if LINK in body:
            links = self.links
            if links is not None and links.public_base_url and party_id and row.incident_id:
                url = links.signer.url(
                    links.public_base_url,
                    incident_id=row.incident_id,
                    party_id=str(party_id),
                    outbox_key=row.idempotency_key,
                    expires_at=now + links.ttl,
                )
                body = body.replace(LINK, url)
            else:
                body = "\n".join(line for line in body.split("\n") if LINK not in line)
        payload["body"] = body
        return payload
