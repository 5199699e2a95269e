"""Which way in an inbox row takes, and the decisions that need no command.

An inbox row is a Matrix message (a command, perhaps), a reaction (a ✅ acknowledges), an
invite, or an SMS or e-mail reply. :meth:`Router.decide` turns it into an
:class:`commands.outcome.Outcome` and the row's new status, inside the inbox pass's write
transaction; invites also yield the join or leave to do *after* that transaction is committed.
Rooms the config does not name are not the bot's business (ignored, audited); a command in an
unencrypted room is refused without any content, and the room is told so once (the notice it
got when the bot joined, or at its first command), not after every command typed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from bot.engine.context import ContextFactory
from bot.engine.replies import CHANNEL_KINDS, ChannelReplies
from bot.i18n import Catalog
from bot.matrix.gateway import MatrixGateway
from bot.matrix.sender import PLAINTEXT_WARNING
from commands import dispatch
from commands.context import Invocation, Reaction
from commands.outcome import AuditEntry, Outcome, Post
from storage import inbox, outbox
from storage.models import InboxRow


@dataclass(frozen=True)
class MembershipAction:
    kind: str  # join | decline
    room_id: str
    inviter: str


@dataclass
class Decision:
    outcome: Outcome
    status: str
    membership: MembershipAction | None = None


class Router:
    def __init__(
        self,
        *,
        config: Config,
        catalog: Catalog,
        gateway: MatrixGateway,
        make_context: ContextFactory,
        replies: ChannelReplies | None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.gateway = gateway
        self.make_context = make_context
        self.replies = replies

    async def decide(self, session: AsyncSession, row: InboxRow, now: datetime) -> Decision:
        at = datetime.fromtimestamp(row.origin_ts / 1000, tz=now.tzinfo)
        if row.kind == "invite":
            return self._invite(row)
        if row.kind in CHANNEL_KINDS:
            if self.replies is None:  # stored while bridges were on, now off
                audit = AuditEntry(
                    "inbound_reply.ignored", None, {"reason": "bridge not configured"}
                )
                return Decision(Outcome(audit=[audit]), inbox.IGNORED)
            outcome = await self.replies.decide(session, row, self.make_context(session), at)
            return Decision(outcome, inbox.HANDLED)
        room_id = row.room_id or ""
        if room_id not in self.config.known_rooms():
            audit = AuditEntry(
                "matrix.event.ignored", room_id, {"reason": "room not in config", "kind": row.kind}
            )
            return Decision(Outcome(audit=[audit]), inbox.IGNORED)
        ctx = self.make_context(session)
        if row.kind == "message":
            body = str(row.payload.get("body", ""))
            if not self.gateway.room_facts(room_id).encrypted:
                told = await outbox.any_to(session, room_id, PLAINTEXT_WARNING)
                return Decision(self._unencrypted_refusal(row, body, told), inbox.HANDLED)
            result = await dispatch.handle_message(
                Invocation(
                    event_id=row.event_id,
                    room_id=room_id,
                    sender=row.sender,
                    body=body,
                    at=at,
                    thread_root=_text(row.payload.get("thread_root")),
                    edit_of=_text(row.payload.get("edit_of")),
                ),
                ctx,
            )
        elif row.kind == "reaction":
            result = await dispatch.handle_reaction(
                Reaction(
                    event_id=row.event_id,
                    room_id=room_id,
                    sender=row.sender,
                    key=str(row.payload.get("key", "")),
                    reacts_to=str(row.payload.get("reacts_to", "")),
                    at=at,
                ),
                ctx,
            )
        else:
            return Decision(Outcome(), inbox.IGNORED)
        if result is None:
            return Decision(Outcome(), inbox.IGNORED)
        return Decision(result, inbox.HANDLED)

    def _unencrypted_refusal(self, row: InboxRow, body: str, told: bool) -> Outcome:
        """Audited every time; answered only if the room was never told (``told``)."""
        outcome = Outcome(
            audit=[
                AuditEntry(
                    "command.refused",
                    row.room_id,
                    {"reason": "room not encrypted", "sender": row.sender, "answered": not told},
                )
            ]
        )
        if body.strip().startswith("!") and not told:
            text = self.catalog.text(
                self.config.room_language(row.room_id or ""), "bot.unencrypted_room"
            )
            outcome.posts.append(
                Post(
                    room_id=row.room_id or "",
                    body=text,
                    key="unencrypted",
                    purpose=PLAINTEXT_WARNING,
                )
            )
        return outcome

    def _invite(self, row: InboxRow) -> Decision:
        """Join rooms the config names, decline all others. Only the decision is made here,
        inside the transaction; the join or leave happens after it is committed."""
        room_id = row.room_id or ""
        if room_id in self.gateway.joined_rooms() or room_id not in self.gateway.invited_rooms():
            return Decision(Outcome(), inbox.HANDLED)  # already done, or a stale invite
        if room_id in self.config.known_rooms():
            audit = AuditEntry("matrix.invite.accepted", room_id, {"inviter": row.sender})
            return Decision(
                Outcome(audit=[audit]),
                inbox.HANDLED,
                MembershipAction("join", room_id, row.sender),
            )
        audit = AuditEntry(
            "matrix.invite.declined",
            room_id,
            {"inviter": row.sender, "reason": "room not in config"},
        )
        return Decision(
            Outcome(audit=[audit]), inbox.HANDLED, MembershipAction("decline", room_id, row.sender)
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
