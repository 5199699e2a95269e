"""An anchor post: the audit chain's head, published in the coordination room.

The audit log is hash-chained, so an entry edited, deleted, inserted or moved inside the
database breaks the chain, unless whoever edited it also recomputed every hash after it (or
cut the newest entries off). Against that the bot posts the chain's head (sequence number and
hash) into the coordination room: the room's history lives on the homeserver and in every
member's client, out of reach of someone who edits the bot's database, and a rewritten chain
no longer matches the hash the room saw (``larmkedja audit verify``, see
:mod:`storage.audit_verify`, which also reads the token back).

The post's text is the catalogue's ``audit.anchor``; every language ends it with the same
machine-readable token ``[larmkedja-audit seq=<n> sha256=<hash>]`` (a test checks that the
verifier reads it in each). The post is an ordinary notice of the outcome, so it goes out
through the outbox like everything else, and an ``audit.anchored`` entry records it. The head
is the one the caller read in its transaction: the entries of the outcome that carries the
anchor come after it and are covered by the next anchor.
"""

from __future__ import annotations

from bot.domain import AuditHead
from bot.i18n import Catalog
from commands.context import CommandContext
from commands.outcome import AuditEntry, Outcome, Post
from commands.render import Voice
from commands.replies import home_server

PURPOSE = "notice"


def anchor_outcome(
    ctx: CommandContext,
    head: AuditHead | None,
    catalog: Catalog,
    *,
    reason: str,
    key: str = "anchor",
) -> Outcome:
    """The anchor post for ``head`` (nothing without a coordination room or an empty log).

    ``reason`` says what occasioned it in the audit entry: ``report``, ``standdown``,
    ``schedule``.
    """
    room = ctx.config.healthcare_region.coordination_room
    if room is None or head is None:
        return Outcome()
    voice = Voice(catalog, ctx.config.room_language(room), home_server(ctx))
    post = Post(
        room_id=room,
        body=voice.text(
            "audit.anchor",
            seq=head.seq,
            time=voice.time(head.at),
            hash=head.hash,
        ),
        key=key,
        purpose=PURPOSE,
    )
    entry = AuditEntry(
        "audit.anchored",
        None,
        {"seq": head.seq, "hash": head.hash, "room": room, "reason": reason},
    )
    return Outcome(posts=[post], audit=[entry])
