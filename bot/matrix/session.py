"""Log in once, then restore device id + access token + crypto store on every start.

The three belong together (DESIGN §5.2): a device id reused with a new, empty crypto store gets
new identity keys under an old name and nobody can decrypt it any more. So:

- credentials and store present: restore them;
- credentials present, store gone or unreadable: log in as a NEW device, log the old one out
  (so nobody keeps encrypting for a dead device) and say so in the audit log;
- nothing present: first login.

After that the crypto store must be loaded (``client.olm``), or the bot refuses to start: nio
would otherwise send plaintext into encrypted rooms (DESIGN §5.1).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse
from nio.store import SqliteStore

from bot.matrix.raw_api import RawApi, RawApiError
from bot.matrix.secret_files import read_json, write_json

log = logging.getLogger(__name__)


class StartupRefused(Exception):
    """The bot cannot start safely; the message says why and what to do. No secrets in it."""


@dataclass
class SessionInfo:
    client: AsyncClient
    device_id: str
    # What happened at start, for the audit log: restored, first-login, new-device-store-lost,
    # relogin-token-invalid.
    how: str


def client_config(store_passphrase: str) -> AsyncClientConfig:
    return AsyncClientConfig(
        encryption_enabled=True,
        store=SqliteStore,
        store_sync_tokens=False,  # the sync token lives in our database, beside the inbox
        pickle_key=store_passphrase,
        max_limit_exceeded=0,  # 429s come back to us, to count, back off and report
        max_timeouts=0,  # connection errors come back to us, to retry with our own backoff
        request_timeout=30,
    )


class SessionStore:
    """Where the session lives: ``<state_dir>/credentials.json`` and ``<state_dir>/crypto/``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.credentials_file = state_dir / "credentials.json"
        self.crypto_dir = state_dir / "crypto"
        self.cross_signing_file = state_dir / "cross-signing.json"

    def store_file(self, user_id: str, device_id: str) -> Path:
        return self.crypto_dir / f"{user_id}_{device_id}.db"


async def open_session(
    *,
    homeserver: str,
    user_id: str,
    password: str,
    device_name: str,
    store_passphrase: str,
    paths: SessionStore,
) -> SessionInfo:
    paths.crypto_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds = read_json(paths.credentials_file)
    if creds and creds.get("user_id") != user_id:
        raise StartupRefused(
            f"{paths.credentials_file} belongs to {creds.get('user_id')}, not {user_id}: "
            "point storage.state_dir at a fresh folder for another account"
        )

    how = "first-login"
    if creds:
        device_id = creds["device_id"]
        store_file = paths.store_file(user_id, device_id)
        if store_file.exists():
            client = AsyncClient(
                homeserver,
                user_id,
                device_id=device_id,
                store_path=str(paths.crypto_dir),
                config=client_config(store_passphrase),
            )
            try:
                client.restore_login(user_id, device_id, creds["access_token"])
            except Exception as exc:  # corrupt store or wrong passphrase
                await client.close()
                log.error(
                    "crypto store of device %s cannot be loaded (%s); logging in as a new device",
                    device_id,
                    type(exc).__name__,
                )
                _set_aside(store_file)
                how = "new-device-store-unreadable"
            else:
                whoami = await client.whoami()
                if isinstance(whoami, WhoamiResponse):
                    _require_store(client)
                    return SessionInfo(client, device_id, "restored")
                # Token gone (logged out elsewhere): log in again as the SAME device, which is
                # safe because its store is intact.
                resp = await client.login(password=password, device_name=device_name)
                if not isinstance(resp, LoginResponse):
                    await client.close()
                    raise StartupRefused(f"login failed: {getattr(resp, 'message', resp)}")
                _save_credentials(paths, client)
                _require_store(client)
                return SessionInfo(client, device_id, "relogin-token-invalid")
        else:
            how = "new-device-store-lost"
            log.warning(
                "crypto store for device %s is missing; logging in as a new device", device_id
            )
        # Retire the old device: its keys would otherwise keep receiving room keys.
        try:
            await RawApi(homeserver, creds["access_token"]).logout_token()
        except (RawApiError, OSError):
            log.warning("could not log out the old device %s; remove it by hand", device_id)

    client = AsyncClient(
        homeserver,
        user_id,
        store_path=str(paths.crypto_dir),
        config=client_config(store_passphrase),
    )
    resp = await client.login(password=password, device_name=device_name)
    if not isinstance(resp, LoginResponse):
        await client.close()
        raise StartupRefused(f"login as {user_id} failed: {getattr(resp, 'message', 'error')}")
    _save_credentials(paths, client)
    _require_store(client)
    return SessionInfo(client, client.device_id, how)


def _save_credentials(paths: SessionStore, client: AsyncClient) -> None:
    write_json(
        paths.credentials_file,
        {
            "user_id": client.user_id,
            "device_id": client.device_id,
            "access_token": client.access_token,
        },
    )


def _require_store(client: AsyncClient) -> None:
    if client.olm is None or client.store is None:
        raise StartupRefused(
            "the crypto store did not load: refusing to start, because Matrix messages would "
            "go out unencrypted. Check storage.state_dir permissions and disk space."
        )


def _set_aside(store_file: Path) -> None:
    target = store_file.with_suffix(".unreadable")
    shutil.move(str(store_file), str(target))
