"""A real Synapse on loopback that lives only as long as a demo or a test session.

Why a real homeserver: the parts of larmkedja that fail in the field (Megolm key sharing, sync
resumption, rate limits, restarts) only show up against the real thing (DESIGN §6). Everything
the server needs is generated here, from code, into its own directory, so a fresh clone runs the
demo and the suite with nothing but the ``demo``/``test`` extras installed.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self
from urllib.parse import quote

import aiohttp

from bot.demo.ports import free_port, is_free

log = logging.getLogger(__name__)

#: Far above anything a test or the demo does: a 429 must never be the reason a test is slow or
#: flaky. Tests that are *about* rate limits configure their own server.
_GENEROUS = {"per_second": 1000, "burst_count": 10000}

_STATE_FILE = "harness.json"
_CONFIG_FILE = "homeserver.yaml"
_LOG_CONFIG_FILE = "log.config.yaml"
_SYNAPSE_LOG = "homeserver.log"
_CONSOLE_LOG = "console.log"


class HomeserverError(RuntimeError):
    """The throwaway homeserver failed to start, or refused an admin request."""


class ThrowawayHomeserver:
    """Synapse with SQLite, one plain-HTTP client listener on 127.0.0.1 and no federation.

    The port is chosen at the first start and then kept, so ``stop()`` / ``start()`` (an outage)
    and ``restart()`` bring back the same server at the same URL with the same data, and clients
    only see their connections fail for a while.

    Without ``workdir`` the server lives in a temporary directory that is removed by
    :meth:`aclose` (and by ``async with``). With a ``workdir`` it is kept, and a later
    ``ThrowawayHomeserver`` on the same directory resumes it (same port if still free, same
    secrets, same accounts).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        server_name: str = "localhost",
        startup_timeout: float = 60.0,
    ) -> None:
        self._owns_workdir = workdir is None
        self._workdir = (
            Path(tempfile.mkdtemp(prefix="larmkedja-synapse-")) if workdir is None else workdir
        )
        self._server_name = server_name
        self._startup_timeout = startup_timeout
        self._state: dict[str, Any] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._admin_token: str | None = None
        self._admin_lock = asyncio.Lock()
        #: Seconds the last :meth:`start` took until the client API answered.
        self.startup_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start Synapse and return once its client API answers.

        Raises :class:`HomeserverError` with the tail of Synapse's logs if it exits or does not
        answer within ``startup_timeout`` seconds: a bare timeout would hide the reason.
        """
        if self.running:
            return
        self._prepare()
        began = time.monotonic()
        # Synapse's own output goes to files: the demo's terminal and pytest stay quiet.
        with self._open_console_log() as console:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(self._workdir / _CONFIG_FILE),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=console,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self._workdir,
            )
        # A crashed test run must not leave a Synapse behind holding the port.
        atexit.register(self._kill_at_exit)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            await self._wait_until_up(began)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("Synapse at %s answered after %.2f s", self.url, self.startup_seconds)

    async def stop(self) -> None:
        """Stop Synapse (SIGTERM, then SIGKILL after 10 s); the data and the port are kept."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        process = self._process
        if process is None:
            return
        try:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=10)
                except TimeoutError:
                    log.warning("Synapse ignored SIGTERM for 10 s; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        except BaseException:
            # Cancelled half-way: never leave the process running.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise
        finally:
            self._process = None
            atexit.unregister(self._kill_at_exit)

    async def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        await self.stop()
        await self.start()

    async def aclose(self) -> None:
        """Stop, and remove the working directory if this object created it."""
        await self.stop()
        if self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _open_console_log(self) -> BinaryIO:
        return open(self._workdir / _CONSOLE_LOG, "ab")

    def _kill_at_exit(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        if self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    # -- where it is ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the client API, e.g. ``http://127.0.0.1:45123``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def log_path(self) -> Path:
        """Synapse's own log (WARNING and above): the first place to look when a test fails."""
        return self._workdir / _SYNAPSE_LOG

    def user_id(self, localpart: str) -> str:
        """The full Matrix user id of ``localpart`` on this server."""
        return f"@{localpart}:{self._server_name}"

    @property
    def _port(self) -> int:
        if self._state is None:
            raise HomeserverError("the homeserver has not been started yet, so it has no port")
        return int(self._state["port"])

    # -- accounts and admin API --------------------------------------------------------------

    async def register(
        self,
        localpart: str,
        password: str,
        admin: bool = False,
        *,
        displayname: str | None = None,
    ) -> str:
        """Create an account through the shared-secret admin API and return its user id.

        Shared-secret registration works with ``enable_registration: false``, so the server
        stays closed to anyone else on the machine.
        """
        return str((await self._register(localpart, password, admin, displayname))["user_id"])

    async def login(self, localpart: str, password: str) -> str:
        """Log ``localpart`` in as a new device and return the access token."""
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
            "initial_device_display_name": "larmkedja harness",
        }
        reply = await self._request("POST", "/_matrix/client/v3/login", body)
        return str(reply["access_token"])

    async def admin_token(self) -> str:
        """Access token of the harness's own server admin, created on first use."""
        async with self._admin_lock:
            if self._admin_token is None:
                self._admin_token = await self._obtain_admin_token()
            return self._admin_token

    async def exempt_from_ratelimit(self, user_id: str) -> None:
        """Lift the message rate limit for ``user_id``, as an operator does for the bot.

        The harness's config is already generous; this is the call the demo makes for the bot
        so that it runs against the same API a production operator uses (DESIGN §5.12).
        """
        await self.admin_request(
            "POST",
            f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/override_ratelimit",
            {"messages_per_second": 0, "burst_count": 0},
        )

    async def admin_request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call the Synapse admin API (or any client API) as the harness's admin."""
        return await self._request(method, path, body, token=await self.admin_token())

    async def _obtain_admin_token(self) -> str:
        state = self._require_state()
        admin = state.get("admin")
        if admin is not None:
            # A resumed workdir: the account exists already.
            return await self.login(admin["localpart"], admin["password"])
        localpart, password = "harness-admin", secrets.token_urlsafe(18)
        reply = await self._register(localpart, password, True, "Harness admin")
        state["admin"] = {"localpart": localpart, "password": password}
        self._save_state()
        return str(reply["access_token"])

    async def _register(
        self, localpart: str, password: str, admin: bool, displayname: str | None
    ) -> dict[str, Any]:
        path = "/_synapse/admin/v1/register"
        nonce = (await self._request("GET", path))["nonce"]
        mac = hmac.new(
            self._require_state()["registration_shared_secret"].encode(), digestmod=hashlib.sha1
        )
        for part in (nonce, localpart, password):
            mac.update(part.encode("utf-8"))
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            body["displayname"] = displayname
        return await self._request("POST", path, body)

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> dict[str, Any]:
        if self._http is None:
            raise HomeserverError(f"{method} {path}: the homeserver is not running")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            if response.status != 200:
                raise HomeserverError(f"{method} {path} -> {response.status}: {text[:500]}")
            reply: dict[str, Any] = json.loads(text) if text else {}
            return reply

    # -- start-up ----------------------------------------------------------------------------

    async def _wait_until_up(self, began: float) -> None:
        assert self._http is not None
        assert self._process is not None
        deadline = began + self._startup_timeout
        versions = self.url + "/_matrix/client/versions"
        while True:
            if self._process.returncode is not None:
                raise HomeserverError(
                    f"Synapse exited with code {self._process.returncode} while starting.\n"
                    + self._log_tail()
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._http.get(
                    versions, timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise HomeserverError(
                    f"Synapse did not answer at {versions} within {self._startup_timeout:g} s.\n"
                    + self._log_tail()
                )
            await asyncio.sleep(0.05)

    def _log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in (_SYNAPSE_LOG, _CONSOLE_LOG):
            path = self._workdir / name
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                tail = ["(missing)"]
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def _prepare(self) -> None:
        """Write the config, log config and signing key; decide the port on first start."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        if self._state is None:
            self._state = self._load_or_create_state()
        (self._workdir / "media_store").mkdir(exist_ok=True)
        key_path = self._workdir / "signing.key"
        if not key_path.exists():
            # Synapse's key file format: "<algorithm> <version> <unpadded base64 seed>"; any 32
            # random bytes are a valid ed25519 seed, so no crypto library is needed here.
            seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            key_path.write_text(f"ed25519 a_{secrets.token_hex(2)} {seed}\n")
        (self._workdir / _LOG_CONFIG_FILE).write_text(self._log_config())
        # JSON is YAML: no YAML library needed to write the config.
        config = json.dumps(self._config(key_path), indent=2)
        (self._workdir / _CONFIG_FILE).write_text(
            "# Generated by bot.demo.homeserver for a throwaway Synapse. Do not edit.\n" + config
        )

    def _load_or_create_state(self) -> dict[str, Any]:
        path = self._workdir / _STATE_FILE
        if path.exists():
            state: dict[str, Any] = json.loads(path.read_text())
            if not is_free(int(state["port"])):
                state["port"] = free_port()
        else:
            state = {
                "port": free_port(),
                "registration_shared_secret": secrets.token_urlsafe(32),
                "macaroon_secret_key": secrets.token_urlsafe(32),
                "form_secret": secrets.token_urlsafe(32),
            }
        self._state = state
        self._save_state()
        return state

    def _require_state(self) -> dict[str, Any]:
        if self._state is None:
            raise HomeserverError("the homeserver has not been started yet")
        return self._state

    def _save_state(self) -> None:
        path = self._workdir / _STATE_FILE
        path.write_text(json.dumps(self._require_state(), indent=2))
        path.chmod(0o600)

    def _config(self, key_path: Path) -> dict[str, Any]:
        state = self._require_state()
        work = self._workdir
        return {
            "server_name": self._server_name,
            "public_baseurl": self.url + "/",
            "pid_file": str(work / "homeserver.pid"),
            "listeners": [
                {
                    "port": state["port"],
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    # "client" also serves /_synapse/admin; no "federation" resource.
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(work / "homeserver.db")}},
            "log_config": str(work / _LOG_CONFIG_FILE),
            "media_store_path": str(work / "media_store"),
            "signing_key_path": str(key_path),
            "registration_shared_secret": state["registration_shared_secret"],
            "macaroon_secret_key": state["macaroon_secret_key"],
            "form_secret": state["form_secret"],
            "enable_registration": False,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "presence": {"enabled": False},
            "enable_metrics": False,
            "url_preview_enabled": False,
            # Password hashing is the slowest part of registering and logging in people.
            "bcrypt_rounds": 4,
            "rc_message": _GENEROUS,
            "rc_registration": _GENEROUS,
            "rc_registration_token_validity": _GENEROUS,
            "rc_login": {
                "address": _GENEROUS,
                "account": _GENEROUS,
                "failed_attempts": _GENEROUS,
            },
            "rc_joins": {"local": _GENEROUS, "remote": _GENEROUS},
            "rc_joins_per_room": _GENEROUS,
            "rc_invites": {"per_room": _GENEROUS, "per_user": _GENEROUS, "per_issuer": _GENEROUS},
            "rc_third_party_invite": _GENEROUS,
            "rc_3pid_validation": _GENEROUS,
            "rc_admin_redaction": _GENEROUS,
            "rc_key_requests": _GENEROUS,
            "rc_room_creation": _GENEROUS,
            "rc_media_create": _GENEROUS,
            "rc_presence": {"per_user": _GENEROUS},
            "rc_profile": _GENEROUS,
            "rc_reports": _GENEROUS,
            "rc_user_directory": _GENEROUS,
            "rc_delayed_event_mgmt": _GENEROUS,
        }

    def _log_config(self) -> str:
        config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "filters": {
                "context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filters": ["context"],
                    "filename": str(self._workdir / _SYNAPSE_LOG),
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        return json.dumps(config, indent=2)
