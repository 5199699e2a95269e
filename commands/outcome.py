"""What a command run returns: decisions, not side effects.

An executor never sends anything. It returns an :class:`Outcome`; the engine writes the posts
into the outbox, the audit entries into the audit log and the inbox row as handled, all in one
transaction, and only then does anything leave the bot. Texts are already rendered: a reply in
the language of the command as typed, anything for another room in that room's language
(executors render through :mod:`bot.i18n`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.domain import Party


@dataclass(frozen=True)
class Post:
    """One Matrix message to one room.

    ``key`` is unique within the outcome and stable across re-runs of the same inbound event:
    the engine builds the outbox idempotency key from the inbound event id and this key, so a
    replayed command never posts twice.
    """

    room_id: str
    body: str  # plain text; the sender escapes it and builds the HTML form
    key: str = "reply"
    purpose: str = "reply"  # reply | alarm | standdown | notice
    mentions: tuple[str, ...] = ()
    incident_id: str | None = None
    in_reply_to: str | None = None  # event id this answers (rendered as a Matrix reply)
    thread_root: str | None = None  # the thread it belongs in (a command typed in a thread)
    #: Whose alarm (or reminder, stand-down) this is: the outbox cancels it when moot, and a
    #: delivery failure moves this party on to its other channels.
    party_id: str | None = None
    #: Put first if the message goes out late (the room was unreachable until now), so that
    #: nobody mistakes a delayed alarm for a new one.
    late_note: str | None = None


@dataclass(frozen=True)
class DeliverySummary:
    """Ask for a report to ``room_id`` once the messages of this outcome with ``purpose``
    (the alarm, the stand-down) have all gone out, failed or were cancelled, or at the latest
    at the channel deadline: which parties were reached on which channel and which were not.
    Only what is true on each channel is said."""

    incident_id: str
    purpose: str  # alarm | standdown
    room_id: str


@dataclass(frozen=True)
class BoardPost:
    """The status board of an incident in one room: posted once, then edited in place.

    The engine posts it the first time and afterwards sends an ``m.replace`` edit of that first
    message; a newer version supersedes a queued, unsent older one.
    """

    incident_id: str
    room_id: str
    body: str


#: Placeholders in an SMS or e-mail body, filled in by the channel outbox when it sends: the
#: recipient's reply code, and the e-mail's acknowledge link.
CODE = "{code}"
LINK = "{link}"


@dataclass(frozen=True)
class Delivery:
    """One message on a non-Matrix channel (``sms``, ``email``) to one number or address.

    The engine writes it as an outbox row of that channel; the channel outbox sends it. A body
    with the placeholder ``{code}`` (and ``{link}`` in e-mail) can be answered: the outbox
    fills in the recipient's reply code for ``party_id`` when it sends.
    """

    channel: str
    destination: str
    body: str
    key: str
    incident_id: str | None = None
    party_id: str | None = None
    purpose: str = "escalation"  # alarm | escalation | reply | notice
    thread: tuple[str, ...] = ()  # e-mail: the Message-IDs this one answers, oldest first
    # The exercise marker it starts with (ÖVNING…), set by commands.exercise.marking: an
    # e-mail must carry it in its subject and body (bridges.email.message.build_mail).
    marker: str | None = None


def to_each(
    party: Party,
    channel: str,
    body: str,
    *,
    key: Callable[[str], str],
    incident_id: str | None,
    purpose: str,
) -> list[Delivery]:
    """The same message to each of ``party``'s numbers (``sms``) or addresses (``email``).

    ``key`` makes each outbox key from the destination's label: for a number its position,
    never the number itself (outbox keys reach log lines); for an address the address.
    """
    destinations = party.sms if channel == "sms" else party.email
    return [
        Delivery(
            channel,
            destination,
            body,
            key=key(str(i) if channel == "sms" else destination),
            incident_id=incident_id,
            party_id=party.id,
            purpose=purpose,
        )
        for i, destination in enumerate(destinations)
    ]


@dataclass(frozen=True)
class Attachment:
    """A file for one room: the after-action report's HTML page and CSV.

    Sent as an encrypted attachment (the file encrypted on the client, uploaded, and an
    ``m.file`` event carrying its key, inside the room's Megolm encryption), never as a plain
    upload: the report names parties, people and times. ``key`` is unique within the outcome,
    like a post's; ``body`` is the event's text, a catalogue text (the file's description).
    """

    room_id: str
    filename: str
    mimetype: str
    data: bytes
    body: str
    key: str
    incident_id: str | None = None
    in_reply_to: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    action: str  # e.g. command.refused, incident.confirmed, chain.started, ack.recorded
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    posts: list[Post] = field(default_factory=list)
    boards: list[BoardPost] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    # Files for rooms, sent as encrypted attachments (see Attachment).
    attachments: list[Attachment] = field(default_factory=list)
    summaries: list[DeliverySummary] = field(default_factory=list)
    # A reaction the bot puts on the command event: "✅" handled, "❌" refused/failed.
    reaction: str | None = None

    def extend(self, other: Outcome) -> Outcome:
        self.posts.extend(other.posts)
        self.boards.extend(other.boards)
        self.audit.extend(other.audit)
        self.deliveries.extend(other.deliveries)
        self.attachments.extend(other.attachments)
        self.summaries.extend(other.summaries)
        self.reaction = other.reaction or self.reaction
        return self
