"""A real Kannel SMS gateway on loopback that lives only as long as a demo or a test module.

Why a real gateway: the SMS channel fails in ways a mock never shows (Kannel's answers when its
SMSC is down, delivery reports arriving out of order, a long text split into parts, UCS-2 for
one emoji), and the alarm must survive all of them (DESIGN §3, §6). ``bearerbox`` (the core),
``smsbox`` (HTTP ``sendsms`` and the MO/DLR callbacks) and ``fakesmsc`` (Kannel's stand-in for
an operator's SMSC, here playing Rakel's SMS side) run from the project's own config template,
``deploy/kannel/kannel.conf.template``, in a work directory of their own. Needs the Debian
packages ``kannel`` and ``kannel-extras``; nothing else, and no root.

The timings and gotchas this module works around were measured on Kannel 1.4.5 and are written
down in ``deploy/kannel/README.md``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import unquote_to_bytes

import aiohttp
from aiohttp import web

from bot.demo.ports import free_ports
from bridges.sms import gsm7
from bridges.sms.kannel import (
    CallbackRejected,
    DeliveryReport,
    Endpoint,
    InboundSms,
    dlr_url_template,
    mo_url,
    parse_dlr,
    parse_mo,
)

log = logging.getLogger(__name__)

INSTALL_HINT = "sudo apt-get install kannel kannel-extras"
DEFAULT_TEMPLATE = (
    Path(__file__).resolve().parents[2] / "deploy" / "kannel" / "kannel.conf.template"
)

#: fakesmsc reads MO lines into a 255-byte buffer; longer lines are cut, so they are refused.
MO_LINE_LIMIT = 255

_CONFIG = "kannel.conf"
_FIFO = "mo.fifo"
_MT_LOG = "fakesmsc.log"
_STORE = "kannel.store"
_POLL = 0.02
_NAMES = ("bearerbox", "smsbox", "fakesmsc")
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")
_GOT = re.compile(r"DEBUG: Got message \d+: <(.*)>$")
_FAKE_TYPES = ("text", "data", "ucs-2")

T = TypeVar("T")


class KannelError(RuntimeError):
    """The throwaway gateway failed to start, or a fault could not be injected."""


class KannelNotInstalledError(KannelError):
    """Kannel's programs are missing: the message says which and how to install them."""


@dataclass(frozen=True)
class KannelBinaries:
    """Where Kannel's programs are; the Debian paths unless ``BEARERBOX``/``SMSBOX``/``FAKESMSC``
    in the environment say otherwise (a Kannel built from source, another distribution)."""

    bearerbox: Path = Path("/usr/sbin/bearerbox")
    smsbox: Path = Path("/usr/sbin/smsbox")
    fakesmsc: Path = Path("/usr/lib/kannel/test/fakesmsc")

    @classmethod
    def from_env(cls) -> KannelBinaries:
        default = cls()
        return cls(
            Path(os.environ.get("BEARERBOX", default.bearerbox)),
            Path(os.environ.get("SMSBOX", default.smsbox)),
            Path(os.environ.get("FAKESMSC", default.fakesmsc)),
        )

    def missing(self) -> list[Path]:
        return [
            p for p in (self.bearerbox, self.smsbox, self.fakesmsc) if not os.access(p, os.X_OK)
        ]

    def check(self) -> None:
        """Raise :class:`KannelNotInstalledError` naming what is missing and the apt-get line."""
        missing = self.missing()
        if missing:
            raise KannelNotInstalledError(
                "Kannel is not installed (missing: "
                + ", ".join(str(p) for p in missing)
                + f"). Install it with: {INSTALL_HINT}"
            )


@dataclass(frozen=True)
class SentSms:
    """An SMS as the fake SMSC (the 'handset side') received it, parts already joined.

    ``coding`` is how it travelled: ``text`` (coding 0, GSM 7-bit), ``ucs-2`` or ``data``
    (8-bit); ``parts`` is the number of concatenated SMS it was split into.
    """

    sender: str
    receiver: str
    text: str
    coding: str = "text"
    parts: int = 1


@dataclass(frozen=True)
class KannelPorts:
    admin: int
    smsbox: int
    sendsms: int
    fakesmsc: int

    def all(self) -> tuple[int, ...]:
        return (self.admin, self.smsbox, self.sendsms, self.fakesmsc)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _decode_url_bytes(value: str) -> bytes:
    """Kannel's url-encoding (octstr_url_encode): ``+`` is a space, ``%XX`` an octet."""
    return unquote_to_bytes(value.replace("+", " "))


def _guess_text(data: bytes) -> tuple[str, str]:
    """(text, coding) of joined multipart octets, whose coding fakesmsc does not print.

    Coding-0 parts carry UTF-8 (our texts never contain NUL); UCS-2 parts carry UTF-16BE, which
    has NULs for Latin text and is invalid UTF-8 for emoji.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if "\x00" not in text:
            return text, "text"
    return data.decode("utf-16-be", "replace"), "ucs-2"


def parse_fakesmsc_log(log_text: str) -> list[SentSms]:
    """Every MT in a fakesmsc log, in order; concatenated parts joined once all have arrived.

    A text containing a line break reaches fakesmsc as two lines (smsc_fake sends text
    unescaped); the second, which has no sender/receiver/type, is joined back with ``\\n``.
    """
    messages: list[SentSms] = []
    pending: dict[tuple[str, str, int, int], dict[int, bytes]] = {}
    for line in log_text.splitlines():
        match = _GOT.search(line)
        if match is None:
            continue
        body = match.group(1)
        fields = body.split(" ", 3)
        if len(fields) < 4 or fields[2] not in (*_FAKE_TYPES, "udh"):
            if messages and messages[-1].coding == "text" and messages[-1].parts == 1:
                last = messages[-1]
                messages[-1] = SentSms(last.sender, last.receiver, last.text + "\n" + body)
            continue
        sender, receiver, kind, payload = fields
        if kind == "udh":
            udh_and_rest = payload.split(" ", 2)
            if len(udh_and_rest) < 3:
                continue
            udh = _decode_url_bytes(udh_and_rest[0])
            data = _decode_url_bytes(udh_and_rest[2])
            concat = _concat_info(udh)
            if concat is None:
                text, coding = _guess_text(data)
                messages.append(SentSms(sender, receiver, text, coding))
                continue
            ref, total, seq = concat
            key = (sender, receiver, ref, total)
            parts = pending.setdefault(key, {})
            parts[seq] = data
            if len(parts) == total and set(parts) == set(range(1, total + 1)):
                del pending[key]
                joined = b"".join(parts[i] for i in range(1, total + 1))
                text, coding = _guess_text(joined)
                messages.append(SentSms(sender, receiver, text, coding, total))
        elif kind == "text":
            messages.append(SentSms(sender, receiver, payload, "text"))
        elif kind == "ucs-2":
            text = _decode_url_bytes(payload).decode("utf-16-be", "replace")
            messages.append(SentSms(sender, receiver, text, "ucs-2"))
        else:
            data = _decode_url_bytes(payload)
            messages.append(SentSms(sender, receiver, data.decode("utf-8", "replace"), "data"))
    return messages


def _concat_info(udh: bytes) -> tuple[int, int, int] | None:
    """(reference, total, sequence) from a concatenation UDH (IEI 0 or 8), else None."""
    if len(udh) < 2:
        return None
    i, end = 1, min(len(udh), udh[0] + 1)
    while i + 1 < end:
        iei, length = udh[i], udh[i + 1]
        value = udh[i + 2 : i + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4 and len(value) == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        i += 2 + length
    return None


class CallbackRecorder:
    """A loopback HTTP listener that plays the bot's SMS endpoint: records MO and DLR callbacks.

    Everything that arrives goes through :func:`parse_mo` / :func:`parse_dlr`, the same parsers
    the bot uses, and is kept in :attr:`inbound`, :attr:`reports` and :attr:`rejected`. It
    answers 200 to what parses and 400 to the rest, as the bot does (Kannel tries any answer
    but 200/202 again, every ``http_retry_delay`` seconds).
    """

    def __init__(self) -> None:
        self.inbound: list[InboundSms] = []
        self.reports: list[DeliveryReport] = []
        self.rejected: list[tuple[str, CallbackRejected]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/sms/inbound", self._on_inbound)
        app.router.add_get("/sms/dlr", self._on_dlr)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        # The default backlog (128) matters: with 5, a burst of MOs took seconds (SYN retries).
        site = web.TCPSite(runner, "127.0.0.1", self._port or 0, backlog=128)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise KannelError("the callback recorder has not been started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def mo_url(self) -> str:
        """Kannel's ``get-url`` for inbound SMS, pointing here."""
        return mo_url(self.base_url + "/sms/inbound")

    @property
    def dlr_url_template(self) -> str:
        """A ``dlr_url_template`` for :class:`bridges.sms.kannel.KannelClient`, pointing here."""
        return dlr_url_template(self.base_url + "/sms/dlr")

    async def _on_inbound(self, request: web.Request) -> web.Response:
        parsed = parse_mo(request.query)
        return self._record(request.path, parsed, self.inbound)

    async def _on_dlr(self, request: web.Request) -> web.Response:
        parsed = parse_dlr(request.query)
        return self._record(request.path, parsed, self.reports)

    def _record(self, path: str, parsed: T | CallbackRejected, into: list[T]) -> web.Response:
        self._changed.set()
        if isinstance(parsed, CallbackRejected):
            self.rejected.append((path, parsed))
            return web.Response(status=400, text=parsed.reason)
        into.append(parsed)
        return web.Response(text="ok")

    async def _until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_inbound(
        self, count: int = 1, *, after: int = 0, timeout: float = 5.0
    ) -> list[InboundSms]:
        """The inbound SMS from index ``after`` on, once there are at least ``count`` of them."""

        def check() -> list[InboundSms] | None:
            return self.inbound[after:] if len(self.inbound) - after >= count else None

        return await self._until(check, timeout, f"{count} inbound SMS")

    async def wait_for_reports(
        self, ref: str, *, count: int | None = None, timeout: float = 5.0
    ) -> list[DeliveryReport]:
        """The reports for ``ref`` so far, once there are ``count`` of them or, without a
        count, once one is final (delivered or failed)."""

        def check() -> list[DeliveryReport] | None:
            mine = [r for r in self.reports if r.ref == ref]
            done = len(mine) >= count if count is not None else any(r.final for r in mine)
            return mine if done else None

        return await self._until(check, timeout, f"delivery report for {ref}")


class ThrowawayKannel:
    """bearerbox + smsbox + fakesmsc on free loopback ports, from the project's template.

    The ports are chosen at the first start and kept, so :meth:`stop_bearerbox_and_smsbox` /
    :meth:`start` (a gateway outage) bring the gateway back at the same URLs. Without a
    ``mo_url``, inbound SMS go to a built-in :class:`CallbackRecorder` (:attr:`recorder`),
    which also takes delivery reports; give the bot's URL (e.g. from
    :func:`bridges.sms.kannel.mo_url`) to send them to the bot instead.

    Without ``workdir`` the gateway lives in a temporary directory removed by :meth:`aclose`;
    with one, its config and logs stay there for reading after a failed test.

    The callbacks are retried as in production (``deploy/kannel/README.md``): an MO or DLR the
    MO URL does not answer 200/202 is tried again every ``http_retry_delay`` seconds, up to
    ``http_retries`` times, each attempt given ``http_timeout`` seconds; bearerbox keeps what
    it holds in a store file (:attr:`store_file`) across restarts.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        mo_url: str | None = None,
        username: str = "larmkedja",
        password: str | None = None,
        admin_password: str | None = None,
        global_sender: str = "4600",
        reject_regex: str = r"^[+]?46700000",
        queue_while_smsc_down: bool = True,
        max_parts: int = 10,
        http_retries: int = 17_280,
        http_retry_delay: int = 5,
        http_timeout: int = 30,
        template: Path | None = None,
        binaries: KannelBinaries | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self._owns_workdir = workdir is None
        self._workdir = workdir
        self._external_mo_url = mo_url
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.admin_password = admin_password or secrets.token_urlsafe(12)
        self._global_sender = global_sender
        self._reject_regex = reject_regex
        self._queue_limit = -1 if queue_while_smsc_down else 0
        self._max_parts = max_parts
        for name, value in (
            ("http_retries", http_retries),
            ("http_retry_delay", http_retry_delay),
            ("http_timeout", http_timeout),
        ):
            if not isinstance(value, int) or value < (0 if name == "http_retries" else 1):
                raise ValueError(f"{name} must be a whole number of at least 1 (retries: 0)")
        self._http_retries = http_retries
        self._http_retry_delay = http_retry_delay
        self._http_timeout = http_timeout
        self._template = template or DEFAULT_TEMPLATE
        self._binaries = binaries or KannelBinaries.from_env()
        self._startup_timeout = startup_timeout
        self._ports: KannelPorts | None = None
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._http: aiohttp.ClientSession | None = None
        self._recorder = CallbackRecorder() if mo_url is None else None
        self._atexit_registered = False
        #: Seconds the last :meth:`start` took until sendsms answered and the SMSC was online.
        self.startup_seconds: float | None = None
        #: Seconds the last :meth:`stop` took until all three processes had exited.
        self.stop_seconds: float | None = None
        for name, value in (("username", username), ("password", self.password)):
            if not re.fullmatch(r"[A-Za-z0-9._~-]+", value):
                raise ValueError(f"{name} may only contain [A-Za-z0-9._~-]")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.admin_password):
            raise ValueError("admin_password may only contain [A-Za-z0-9._-]")

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

    def _alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.returncode is None

    @property
    def running(self) -> bool:
        return all(self._alive(n) for n in _NAMES)

    async def start(self) -> None:
        """Start all three and return once sendsms answers and the fake SMSC is online.

        Does nothing if all three run; if only some do (after a fault), all are restarted.
        Raises :class:`KannelNotInstalledError` (with the apt-get line) if Kannel is missing,
        and :class:`KannelError` with the errors from Kannel's logs if it does not come up.
        """
        if self.running:
            return
        self._binaries.check()
        if shutil.which("stdbuf") is None:
            raise KannelNotInstalledError("stdbuf (coreutils) is needed to run fakesmsc")
        if not self._template.is_file():
            raise KannelError(f"Kannel config template not found: {self._template}")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="larmkedja-kannel-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        await self._stop_processes(kill=True)  # leftovers of a half-stopped gateway
        if self._recorder is not None:
            await self._recorder.start()
        if not self._atexit_registered:
            atexit.register(self._kill_at_exit)
            self._atexit_registered = True
        first_start = self._ports is None
        for attempt in range(3 if first_start else 1):
            if first_start:
                self._ports = KannelPorts(*free_ports(4))
            try:
                await self._start_once()
                return
            except KannelError:
                await self._stop_processes(kill=True)
                # Another program may have taken a port between choosing and binding it.
                if not first_start or attempt == 2:
                    raise
                log.info("Kannel did not start on %s; retrying on other ports", self._ports)

    async def _start_once(self) -> None:
        ports = self._require_ports()
        busy = [p for p in ports.all() if _port_in_use(p)]
        if busy:
            raise KannelError(f"port(s) {busy} on 127.0.0.1 already in use")
        workdir = self.workdir
        (workdir / _CONFIG).write_text(self._config(), encoding="utf-8")
        fifo = workdir / _FIFO
        if not fifo.exists():
            os.mkfifo(fifo)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        began = time.monotonic()
        deadline = began + self._startup_timeout
        await self._spawn_box("bearerbox", self._binaries.bearerbox)
        await self._wait(f"FAKE:{ports.fakesmsc}", deadline, "bearerbox")
        await self._spawn_fakesmsc()
        await self._spawn_box("smsbox", self._binaries.smsbox)
        await self._wait_sendsms(deadline)
        await self._wait("smsbox:.*on-line", deadline, "the smsbox connection", expect=_NAMES)
        await self._wait(
            rf"FAKE:{ports.fakesmsc} \(online", deadline, "the fake SMSC", expect=_NAMES
        )
        self.startup_seconds = time.monotonic() - began
        log.info("Kannel up on %s after %.2f s", self.sendsms_url, self.startup_seconds)

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop all three (SIGTERM, SIGKILL after ``grace``); ports and work dir are kept.

        Kannel's bearerbox takes about 1.1 s to shut down cleanly.
        """
        began = time.monotonic()
        await self._stop_processes(kill=False, grace=grace)
        self.stop_seconds = time.monotonic() - began
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def aclose(self) -> None:
        """Stop, stop the recorder, and remove the work directory if this object made it."""
        try:
            await self.stop()
        finally:
            if self._recorder is not None:
                await self._recorder.stop()
            if self._atexit_registered:
                atexit.unregister(self._kill_at_exit)
                self._atexit_registered = False
            if self._owns_workdir and self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)

    def _kill_at_exit(self) -> None:
        """A crashed test run must not leave a gateway holding ports."""
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)

    async def _stop_processes(self, *, kill: bool, grace: float = 5.0) -> None:
        # fakesmsc first (so it does not see bearerbox vanish), smsbox before bearerbox (an
        # orphaned smsbox re-spawns itself under a new pid).
        order = ("fakesmsc", "smsbox", "bearerbox")
        for name in order:
            proc = self._procs.get(name)
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        for name in order:
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            try:
                await asyncio.wait_for(proc.wait(), timeout=grace)
            except TimeoutError:
                log.warning("Kannel's %s ignored SIGTERM for %g s; killing it", name, grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                raise

    # -- processes ---------------------------------------------------------------------------

    async def _spawn_box(self, name: str, binary: Path) -> None:
        with open(self.workdir / f"{name}.stderr", "ab") as stderr:
            self._procs[name] = await asyncio.create_subprocess_exec(
                str(binary),
                "-v",
                "2",
                str(self.workdir / _CONFIG),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.workdir,
            )

    async def _spawn_fakesmsc(self) -> None:
        """fakesmsc reading MO lines from the FIFO, printing MT lines to fakesmsc.log.

        The FIFO is opened read-write, so fakesmsc itself holds a writer and never sees EOF
        between our writes; ``stdbuf -i0`` makes its stdin unbuffered, or lines written
        together would wait in its stdio buffer.
        """
        ports = self._require_ports()
        fifo = os.open(self.workdir / _FIFO, os.O_RDWR)
        try:
            with open(self.workdir / _MT_LOG, "ab") as out:
                self._procs["fakesmsc"] = await asyncio.create_subprocess_exec(
                    "stdbuf",
                    "-i0",
                    str(self._binaries.fakesmsc),
                    "-H",
                    "127.0.0.1",
                    "-r",
                    str(ports.fakesmsc),
                    "-i",
                    "0",
                    "-v",
                    "0",
                    stdin=fifo,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=self.workdir,
                )
        finally:
            os.close(fifo)

    def _config(self) -> str:
        values = {
            "WORKDIR": str(self.workdir),
            "ADMIN_PORT": str(self._require_ports().admin),
            "SMSBOX_PORT": str(self._require_ports().smsbox),
            "SENDSMS_PORT": str(self._require_ports().sendsms),
            "FAKESMSC_PORT": str(self._require_ports().fakesmsc),
            "ADMIN_PASSWORD": self.admin_password,
            "SENDSMS_USER": self.username,
            "SENDSMS_PASSWORD": self.password,
            "GLOBAL_SENDER": self._global_sender,
            "REJECT_REGEX": self._reject_regex,
            "OUTGOING_QUEUE_LIMIT": str(self._queue_limit),
            "MAX_PARTS": str(self._max_parts),
            "HTTP_RETRIES": str(self._http_retries),
            "HTTP_RETRY_DELAY": str(self._http_retry_delay),
            "HTTP_TIMEOUT": str(self._http_timeout),
            "MO_URL": self.mo_url,
        }
        for key, value in values.items():
            if any(c in value for c in '"\\\n\r'):
                raise KannelError(f"{key} must not contain a quote, backslash or line break")
        text = self._template.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        for line in text.splitlines():
            if not line.lstrip().startswith("#") and _PLACEHOLDER.search(line):
                raise KannelError(f"unreplaced placeholder in {self._template}: {line.strip()}")
        return text

    async def _status(self) -> str:
        assert self._http is not None
        try:
            async with self._http.get(
                f"{self.admin_url}/status.txt", params={"password": self.admin_password}
            ) as response:
                return await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return ""

    async def _admin(self, command: str) -> str:
        if self._http is None:
            raise KannelError("the gateway is not running")
        try:
            async with self._http.get(
                f"{self.admin_url}/cgi-bin/{command}",
                params={"smsc": "fake", "password": self.admin_password},
            ) as response:
                body = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KannelError(f"admin {command} failed: {type(exc).__name__}") from None
        if response.status != 200:
            raise KannelError(f"admin {command} answered {response.status}: {body.strip()}")
        return body

    def _check_alive(self, what: str, names: tuple[str, ...]) -> None:
        for name in names:
            proc = self._procs.get(name)
            if proc is not None and proc.returncode is not None:
                raise KannelError(
                    f"Kannel's {name} exited ({proc.returncode}) while waiting for {what}"
                    + self._log_errors()
                )

    async def _wait(
        self,
        pattern: str,
        deadline: float,
        what: str,
        *,
        absent: bool = False,
        expect: tuple[str, ...] = ("bearerbox", "smsbox"),
    ) -> None:
        """Poll the admin status until ``pattern`` shows (or, ``absent``, no longer shows),
        failing early if one of the ``expect`` processes has died."""
        regex = re.compile(pattern)
        while True:
            found = regex.search(await self._status()) is not None
            if found != absent:
                return
            self._check_alive(what, expect)
            if time.monotonic() > deadline:
                raise KannelError(f"timed out waiting for {what}" + self._log_errors())
            await asyncio.sleep(_POLL)

    async def _wait_sendsms(self, deadline: float) -> None:
        assert self._http is not None
        while True:
            try:
                async with self._http.get(self.sendsms_url):
                    return  # any HTTP answer (403 without credentials) means it listens
            except (aiohttp.ClientError, TimeoutError):
                pass
            self._check_alive("sendsms", _NAMES)
            if time.monotonic() > deadline:
                raise KannelError("timed out waiting for sendsms" + self._log_errors())
            await asyncio.sleep(_POLL)

    def _log_errors(self) -> str:
        lines: list[str] = []
        for name in ("bearerbox.stderr", "smsbox.stderr", "bearerbox.log", "smsbox.log"):
            path = self.workdir / name
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                lines += [ln for ln in text.splitlines() if "ERROR:" in ln or "PANIC:" in ln]
        tail = "\n  ".join(lines[-6:])
        return f"; logs in {self.workdir}" + (f":\n  {tail}" if tail else "")

    def _require_ports(self) -> KannelPorts:
        if self._ports is None:
            raise KannelError("the gateway has not been started")
        return self._ports

    # -- where it is ------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise KannelError("the gateway has not been started")
        return self._workdir

    @property
    def ports(self) -> KannelPorts:
        return self._require_ports()

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self._require_ports().sendsms}/cgi-bin/sendsms"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self._require_ports().admin}"

    @property
    def mo_url(self) -> str:
        """Where smsbox sends inbound SMS (Kannel expands the ``%`` escapes)."""
        if self._external_mo_url is not None:
            return self._external_mo_url
        assert self._recorder is not None
        return self._recorder.mo_url

    @property
    def recorder(self) -> CallbackRecorder:
        """The built-in MO/DLR listener; only when no ``mo_url`` was given."""
        if self._recorder is None:
            raise KannelError("this gateway sends MO to an external mo_url; no recorder")
        return self._recorder

    @property
    def mo_fifo(self) -> Path:
        return self.workdir / _FIFO

    @property
    def mt_log(self) -> Path:
        return self.workdir / _MT_LOG

    @property
    def store_file(self) -> Path:
        """bearerbox's store (``store-type = file``): messages it holds, kept across restarts."""
        return self.workdir / _STORE

    def log_files(self) -> list[Path]:
        """Every log the gateway's own processes wrote: bearerbox's and smsbox's log files,
        access log and console output. Not fakesmsc.log: that is the handset side (what the
        test SMSC received), which has every text by design."""
        return sorted(
            p
            for p in self.workdir.iterdir()
            if p.is_file()
            and p.name != _MT_LOG
            and p.name.startswith(("bearerbox", "smsbox"))
            and p.suffix in (".log", ".stderr")
        )

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the running processes, by name (for tests that check nothing is left)."""
        return {n: p.pid for n, p in self._procs.items() if p.returncode is None}

    def endpoint(self, name: str = "kannel") -> Endpoint:
        """This gateway as an endpoint of :class:`bridges.sms.kannel.KannelClient`."""
        return Endpoint(self.sendsms_url, self.username, self.password, name)

    # -- the handset side ---------------------------------------------------------------------

    def _write_fifo(self, data: bytes) -> bool:
        """Write without blocking; False if no fakesmsc reads the FIFO (ENXIO)."""
        try:
            fd = os.open(self.mo_fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return False
            raise
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True

    def inject_mo(self, sender: str, receiver: str, text: str) -> None:
        """A phone ``sender`` sends ``text`` to our number ``receiver`` (through the fake SMSC).

        GSM-7 text on one line goes as fakesmsc ``text``; anything else (emoji, a line break)
        as ``ucs2``, which is what a phone would do. Raises ``ValueError`` if the line would
        exceed fakesmsc's 255-byte buffer (about 250 GSM-7 or 40 UCS-2 characters) rather
        than let fakesmsc cut it, and :class:`KannelError` if fakesmsc is not running.
        """
        for label, address in (("sender", sender), ("receiver", receiver)):
            if not address or any(c.isspace() for c in address):
                raise ValueError(f"{label} must be non-empty without spaces")
        if gsm7.is_gsm7(text) and "\n" not in text and "\r" not in text and text == text.strip():
            line = f"{sender} {receiver} text {text}\n"
        else:
            encoded = "".join(f"%{b:02X}" for b in text.encode("utf-16-be"))
            line = f"{sender} {receiver} ucs2 {encoded}\n"
        data = line.encode("utf-8")
        if len(data) > MO_LINE_LIMIT:
            raise ValueError(
                f"MO line of {len(data)} bytes exceeds fakesmsc's {MO_LINE_LIMIT}-byte limit"
            )
        if not self._write_fifo(data):
            raise KannelError("fakesmsc is not running: nobody reads the MO FIFO")

    def poke(self) -> bool:
        """Make fakesmsc print waiting MTs now (it reads its socket only when stdin is idle
        for 1 s or gets a line; empty lines are not sent as MO). False if fakesmsc is gone."""
        return self._write_fifo(b"\n")

    def sent_messages(self) -> list[SentSms]:
        """Every SMS the fake SMSC has received so far (across fakesmsc restarts)."""
        try:
            text = self.mt_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return parse_fakesmsc_log(text)

    async def wait_for_sent(
        self,
        count: int = 1,
        *,
        after: int = 0,
        receiver: str | None = None,
        timeout: float = 5.0,
    ) -> list[SentSms]:
        """The SMS from index ``after`` on (to ``receiver`` only, if given), once there are at
        least ``count``. Pokes fakesmsc meanwhile, so this takes milliseconds, not a second."""
        deadline = time.monotonic() + timeout
        while True:
            self.poke()
            messages = self.sent_messages()[after:]
            if receiver is not None:
                messages = [m for m in messages if m.receiver == receiver]
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(messages)} of {count} SMS reached the fake SMSC in {timeout:g} s"
                )
            await asyncio.sleep(_POLL)

    # -- faults --------------------------------------------------------------------------------

    async def stop_smsc(self) -> None:
        """Take the SMSC link down through the admin interface (sendsms then answers
        ``403 Not routable``); fakesmsc exits by itself when bearerbox drops it."""
        await self._admin("stop-smsc")
        await self._wait(
            rf"FAKE:{self.ports.fakesmsc} \(online", time.monotonic() + 5, "SMSC stop", absent=True
        )

    async def start_smsc(self) -> None:
        """Bring the SMSC link back after :meth:`stop_smsc` with a new fakesmsc."""
        await self._admin("start-smsc")
        await self._replace_fakesmsc()

    async def kill_fakesmsc(self) -> None:
        """The SMSC vanishes without a word: MT is then queued (``202 3: Queued``)."""
        proc = self._procs.pop("fakesmsc", None)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._wait(
            rf"FAKE:{self.ports.fakesmsc} \(online",
            time.monotonic() + 5,
            "the SMSC to go offline",
            absent=True,
        )

    async def restart_fakesmsc(self) -> None:
        """A new fakesmsc connects; MT queued meanwhile is delivered within ~0.1 s."""
        await self._replace_fakesmsc()

    async def _replace_fakesmsc(self) -> None:
        # After stop-smsc the old fakesmsc needs up to 1 s to notice; no need to wait for it.
        proc = self._procs.pop("fakesmsc", None)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()
        if self._http is None:
            raise KannelError("the gateway is not running")
        await self._spawn_fakesmsc()
        await self._wait(
            rf"FAKE:{self.ports.fakesmsc} \(online",
            time.monotonic() + self._startup_timeout,
            "the fake SMSC",
        )

    async def kill_smsbox(self) -> None:
        """smsbox dies (SIGKILL): bearerbox keeps inbound SMS in its queue and store file
        until an smsbox connects again (:meth:`start_smsbox`); sendsms refuses connections.
        What smsbox held for a retry is lost with it."""
        proc = self._procs.pop("smsbox", None)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._wait(
            "smsbox:.*on-line", time.monotonic() + 5, "smsbox to go offline", absent=True
        )

    async def start_smsbox(self) -> None:
        """A new smsbox after :meth:`kill_smsbox`; returns once it is connected."""
        if self._alive("smsbox"):
            return
        deadline = time.monotonic() + self._startup_timeout
        await self._spawn_box("smsbox", self._binaries.smsbox)
        await self._wait_sendsms(deadline)
        await self._wait("smsbox:.*on-line", deadline, "the smsbox connection", expect=_NAMES)

    async def stop_bearerbox_and_smsbox(self) -> None:
        """A gateway outage: smsbox and bearerbox die (SIGKILL, like a crash), and fakesmsc
        with them; sendsms refuses connections. :meth:`start` brings it back on the same
        ports."""
        await self._stop_processes(kill=True)
