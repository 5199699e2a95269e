"""Reading the bot's own messages back from a room's history, for ``audit verify``.

Read-only, and without disturbing the running bot's crypto store (DESIGN §5.2: device id,
token and store belong together, and a second process syncing with them would consume the
same one-time keys and fork the store). So this never syncs, uploads or claims keys:

- the crypto store is copied with SQLite's backup API (a consistent snapshot even while the
  bot writes to it) into a temporary folder, and only the copy is opened;
- the stored access token is used for ``GET /rooms/{room}/messages`` only, which changes
  nothing on the server (no sync token, no read marker, no keys);
- messages are decrypted with the copy's inbound group sessions, which the bot keeps for
  its own messages too; the copy is deleted afterwards.

What it cannot read: messages whose room key the bot's device never had (sent before this
device existed, after a store loss and a new device). Those are counted as undecryptable.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nio import (
    AsyncClient,
    MegolmEvent,
    MessageDirection,
    RoomMessageNotice,
    RoomMessagesResponse,
    RoomMessageText,
)

from bot.matrix.secret_files import read_json
from bot.matrix.session import SessionStore, client_config

#: Pages of 100 events read at most (the newest first): a year of anchors fits easily.
MAX_PAGES = 200


class HistoryUnavailable(Exception):
    """The room's history cannot be read; the message says why (no secret in it)."""


@dataclass(frozen=True)
class BotMessage:
    event_id: str
    body: str
    at: datetime


@dataclass(frozen=True)
class RoomHistory:
    messages: tuple[BotMessage, ...]  # the bot's own text messages, oldest first
    undecryptable: int  # the bot's own encrypted events it has no key for


def _snapshot(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


async def read_bot_messages(
    *,
    homeserver: str,
    user_id: str,
    store_passphrase: str,
    state_dir: Path,
    room_id: str,
    max_pages: int = MAX_PAGES,
) -> RoomHistory:
    paths = SessionStore(state_dir)
    creds = read_json(paths.credentials_file)
    if not creds or creds.get("user_id") != user_id:
        raise HistoryUnavailable(f"no stored session of {user_id} in {state_dir}")
    device_id = creds["device_id"]
    store = paths.store_file(user_id, device_id)
    if not store.exists():
        raise HistoryUnavailable(f"the crypto store of device {device_id} is missing")
    with tempfile.TemporaryDirectory(prefix="larmkedja-history-") as folder:
        copy = Path(folder)
        _snapshot(store, copy / store.name)
        client = AsyncClient(
            homeserver,
            user_id,
            device_id=device_id,
            store_path=str(copy),
            config=client_config(store_passphrase),
        )
        try:
            client.restore_login(user_id, device_id, creds["access_token"])
            if client.olm is None:
                raise HistoryUnavailable("the copy of the crypto store did not load")
            found: list[BotMessage] = []
            undecryptable = 0
            token: str | None = None
            for _ in range(max_pages):
                page = await client.room_messages(
                    room_id, start=token, direction=MessageDirection.back, limit=100
                )
                if not isinstance(page, RoomMessagesResponse):
                    raise HistoryUnavailable(
                        f"cannot read {room_id}: {getattr(page, 'message', page)}"
                    )
                for event in page.chunk:
                    if event.sender != user_id:
                        continue
                    if isinstance(event, RoomMessageText | RoomMessageNotice):
                        at = datetime.fromtimestamp(event.server_timestamp / 1000, tz=UTC)
                        found.append(BotMessage(event.event_id, event.body, at))
                    elif isinstance(event, MegolmEvent):
                        undecryptable += 1
                if not page.chunk or not page.end or page.end == token:
                    break
                token = page.end
        finally:
            await client.close()
    found.reverse()
    return RoomHistory(tuple(found), undecryptable)
