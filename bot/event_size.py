"""How big a Matrix message becomes on the wire, against the homeserver's event size limit.

Synapse refuses an event whose canonical JSON exceeds 65,536 bytes (``MAX_PDU_SIZE``, the
spec's limit) with ``413 M_TOO_LARGE``. The limit counts the *encrypted* event: nio serialises
the plaintext with ``json.dumps`` (``ensure_ascii``: ``å`` becomes six bytes, an emoji twelve),
Megolm adds a few dozen bytes and base64 adds a third, and the homeserver wraps the content in
an envelope of ids, hashes, signatures and auth events. An edit carries its text twice
(``body``/``formatted_body`` and again in ``m.new_content``).

So a board that grows with every acknowledgement, or a reply that quotes what someone typed,
can cross the limit long before it looks long on a phone. The sender refuses such a message
itself (a permanent failure, never a retry that would hold up the room); the board renderer
keeps to :data:`BOARD_BUDGET_BYTES` so that it never gets there. Plain functions, no nio.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Synapse's ``MAX_PDU_SIZE`` (and the spec's limit on an event).
MAX_EVENT_BYTES = 65_536
#: What the homeserver adds around the content: event and room ids, sender, origin, depth,
#: hashes, signatures, auth and prev events. Measured at about 1.1 KB on Synapse; kept generous.
ENVELOPE_BYTES = 2_500
#: Megolm's own bytes around the ciphertext: version, index, padding, MAC, signature.
_MEGOLM_OVERHEAD = 16 + 16 + 8 + 64
#: What a board edit may cost, well under the limit: room for mention pills and for
#: estimates that are a little off.
BOARD_BUDGET_BYTES = 48_000


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode("ascii"))


def encrypted_event_bytes(event_type: str, content: dict[str, Any], room_id: str) -> int:
    """The size of ``content`` sent encrypted into ``room_id``, as the homeserver counts it."""
    plaintext = _json_bytes({"type": event_type, "content": content, "room_id": room_id})
    ciphertext = math.ceil((plaintext + _MEGOLM_OVERHEAD) / 3) * 4
    # The m.room.encrypted content: algorithm, sender key, session and device ids.
    return ciphertext + 400 + ENVELOPE_BYTES


def plaintext_event_bytes(content: dict[str, Any]) -> int:
    """The size of ``content`` sent unencrypted (only the content-free plaintext warning)."""
    return _json_bytes(content) + ENVELOPE_BYTES


def text_edit_bytes(body: str) -> int:
    """A conservative size of an encrypted *edit* whose text is ``body``: four copies of the
    text (``body``, its HTML form, and both again in ``m.new_content``), each as JSON-escaped
    as it can get (HTML escaping and ``<br>`` included)."""
    escaped = _json_bytes(body)
    html_extra = body.count("\n") * 3 + sum(body.count(c) for c in "&<>") * 4
    plaintext = 4 * escaped + 2 * html_extra + 600  # keys, relation, msgtype, room id
    return math.ceil((plaintext + _MEGOLM_OVERHEAD) / 3) * 4 + 400 + ENVELOPE_BYTES
