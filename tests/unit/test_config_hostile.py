"""A hostile config table: everything the bot would refuse or mishandle, check-config refuses.

Each case is a config (or a config file, or a secret file) that is wrong in one way. For every
one ``larmkedja check-config`` must exit 2 with one line per problem, each naming the file and
the key path (or the file itself), never a traceback, never a hang, never a secret; and
``larmkedja run`` must refuse it with exactly the same lines before it starts anything (one
code path: ``load_config`` and ``LoadedConfig.check_secrets``). Cases that could hang or exhaust
memory (a FIFO or /dev/zero as a file, deeply nested TOML) run as a subprocess with a timeout.
A second table holds configs that are right and must pass.

The test runs both tables and prints the counts: configs tried,
crashes (a traceback or an exit other than 0/2), hangs, accepted-but-wrong (a broken config
that passed, or a good one refused) and unclear (refused, but not with the expected lines).
All must be 0.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import tomli_w

from bot.cli import EXIT_CONFIG, main
from tests.unit.test_config_validation import valid

BOT = "@larmkedja:localhost"
ENV = {
    "LK_TEST_PASSWORD": "matrix-SECRET-password-0042",
    "LK_BRIDGE": "bridge-SECRET-0123456789abcdef",
    "LK_GATEWAY": "gateway-SECRET-0123456789abcd",
    "LK_KANNEL": "kannel-SECRET-pw",
}
SECRETS = tuple(ENV.values()) + ("inline-SECRET-value-0123456789", "short-SECRET")
TIMEOUT = 30.0


def base() -> dict[str, Any]:
    """A valid config with every bridge, its secrets in the environment (:data:`ENV`)."""
    data = valid()
    data["regions"][0].update(sms=["+46701234567"], email=["tib@uppsala.example"])
    data["regions"][1].update(sms=["+46701234568"], email=["tib@dalarna.example"])
    data["bridges"] = {
        "secret": {"env": "LK_BRIDGE"},
        "http": {"port": 8080, "gateway_secret": {"env": "LK_GATEWAY"}},
        "sms": {
            "gateways": [
                {
                    "url": "http://127.0.0.1:13013/cgi-bin/sendsms",
                    "username": "larmkedja",
                    "password": {"env": "LK_KANNEL"},
                }
            ],
            "sender_id": "4600",
        },
        "email": {
            "address": "larm@region.example",
            "relays": [{"host": "smtp.region.example"}],
            "listen_port": 2525,
        },
    }
    return data


@dataclass(frozen=True)
class Case:
    """One config to try. ``change`` edits :func:`base`; ``files`` writes files next to the
    config (gets the folder and the data, may edit the data); ``config`` replaces the config
    file by something else (gets the folder, returns the path to check); ``expect`` has one
    entry per line the refusal must have, in order: text the line contains (pieces joined
    by " … " must appear in that order)."""

    name: str
    expect: tuple[str, ...] = ()
    change: Callable[[dict[str, Any]], Any] | None = None
    files: Callable[[Path, dict[str, Any]], Any] | None = None
    config: Callable[[Path], Path] | None = None
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    subprocess: bool = False


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """``_set("bridges.sms.sender_id", "x")``; ``[n]`` indexes a list."""

    def change(data: dict[str, Any]) -> None:
        keys: list[Any] = []
        for part in path.split("."):
            name, _, index = part.partition("[")
            keys.append(name)
            if index:
                keys.append(int(index.rstrip("]")))
        target: Any = data
        for key in keys[:-1]:
            target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
        target[keys[-1]] = value

    return change


def _secret_file(
    name: str, content: bytes, mode: int = 0o600, key: str = "bridges.secret"
) -> Callable[[Path, dict[str, Any]], None]:
    def files(folder: Path, data: dict[str, Any]) -> None:
        path = folder / name
        path.write_bytes(content)
        path.chmod(mode)
        _set(key, {"file": name})(data)

    return files


def _secret_at(path: Path | str, key: str = "bridges.secret") -> Callable[[Path, dict], None]:
    def files(folder: Path, data: dict[str, Any]) -> None:
        target = Path(path) if Path(path).is_absolute() else folder / path
        if str(path) == "fifo" and not target.exists():
            os.mkfifo(target)
        if str(path) == "dir":
            target.mkdir(exist_ok=True)
        if str(path) == "link-to-fifo":
            os.mkfifo(folder / "real-fifo")
            target.symlink_to(folder / "real-fifo")
        _set(key, {"file": str(target)})(data)

    return files


def _raw(content: bytes) -> Callable[[Path], Path]:
    def config(folder: Path) -> Path:
        path = folder / "raw.toml"
        path.write_bytes(content)
        return path

    return config


def _fifo_config(folder: Path) -> Path:
    path = folder / "config.fifo"
    os.mkfifo(path)
    return path


def _deep_arrays(depth: int) -> bytes:
    return b"regions = " + b"[" * depth + b"]" * depth + b"\n"


def _deep_tables(depth: int) -> bytes:
    return b"matrix = " + b"{ a = " * depth + b"1" + b" }" * depth + b"\n"


def _both(*changes: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for c in changes:
            c(data)

    return change


_REFUSED_BASE = "matrix.password: an inline secret is refused in a config file"
HAS_ASYNCPG = importlib.util.find_spec("asyncpg") is not None

REFUSED: list[Case] = [
    # -- secrets: the bot's own rules, inline values, environment -------------------------
    Case(
        "bridge secret shorter than 16",
        ("bridges.secret: environment variable LK_BRIDGE: the secret must be at least 16",),
        env={"LK_BRIDGE": "short-SECRET"},
    ),
    Case(
        "gateway secret shorter than 16",
        ("bridges.http.gateway_secret: environment variable LK_GATEWAY: the secret must be",),
        env={"LK_GATEWAY": "short-SECRET"},
    ),
    Case(
        "gateway secret with characters a URL or Kannel config cannot carry",
        ("bridges.http.gateway_secret: environment variable LK_GATEWAY: the secret may only",),
        env={"LK_GATEWAY": "gateway&SECRET%41=0123456789"},
    ),
    Case(
        "two secrets wrong: two lines",
        (
            "bridges.secret: environment variable LK_BRIDGE: the secret must be at least 16",
            "bridges.http.gateway_secret: environment variable LK_GATEWAY is not set",
        ),
        env={"LK_BRIDGE": "short-SECRET"},
        unset=("LK_GATEWAY",),
    ),
    Case(
        "inline Matrix password",
        (_REFUSED_BASE,),
        _set("matrix.password", {"value": "inline-SECRET-value-0123456789"}),
    ),
    Case(
        "inline Kannel password",
        ("bridges.sms.gateways[0].password: an inline secret is refused",),
        _set("bridges.sms.gateways[0].password", {"value": "inline-SECRET-value-0123456789"}),
    ),
    Case(
        "inline store passphrase",
        ("matrix.store_passphrase: an inline secret is refused",),
        _set("matrix.store_passphrase", {"value": "inline-SECRET-value-0123456789"}),
    ),
    Case(
        "a secret from two places",
        ("bridges.secret: give exactly one of env or file",),
        _set("bridges.secret", {"env": "LK_BRIDGE", "file": "x"}),
    ),
    Case(
        "a secret from nowhere",
        ("bridges.secret: give exactly one of env or file",),
        _set("bridges.secret", {}),
    ),
    Case(
        "a secret reference with an unknown key",
        ("bridges.secret.path: unknown key",),
        _set("bridges.secret", {"env": "LK_BRIDGE", "path": "x"}),
    ),
    Case(
        "not an environment variable name",
        ("bridges.secret: 'LK-BRIDGE' is not an environment variable name",),
        _set("bridges.secret", {"env": "LK-BRIDGE"}),
    ),
    Case(
        "environment variable not set",
        ("bridges.secret: environment variable LK_BRIDGE is not set or empty",),
        unset=("LK_BRIDGE",),
    ),
    Case(
        "secret file is a FIFO",
        ("bridges.secret: secret file … is a FIFO, not a regular file",),
        files=_secret_at("fifo"),
        subprocess=True,
    ),
    Case(
        "secret file is a symlink to a FIFO",
        ("is a FIFO, not a regular file",),
        files=_secret_at("link-to-fifo"),
        subprocess=True,
    ),
    Case(
        "secret file is /dev/zero",
        ("bridges.secret: secret file /dev/zero is a character device, not a regular file",),
        files=_secret_at("/dev/zero"),
        subprocess=True,
    ),
    Case(
        "secret file is a directory",
        ("is a directory, not a regular file",),
        files=_secret_at("dir"),
    ),
    Case(
        "secret file readable by everyone",
        ("bridges.secret: secret file … open to group or others (mode 0644); make it private",),
        files=_secret_file("bridge.secret", b"bridge-SECRET-0123456789abcdef\n", 0o644),
    ),
    Case(
        "secret file readable by the group",
        ("open to group or others (mode 0640)",),
        files=_secret_file("bridge.secret", b"bridge-SECRET-0123456789abcdef\n", 0o640),
    ),
    Case(
        "secret file empty",
        ("bridges.secret: secret file … is empty",),
        files=_secret_file("bridge.secret", b"\n\n"),
    ),
    Case(
        "secret file larger than 64 KiB",
        ("is larger than 64 KiB",),
        files=_secret_file("bridge.secret", b"x" * 100_000),
    ),
    Case(
        "secret file not UTF-8",
        ("is not UTF-8 text",),
        files=_secret_file("bridge.secret", b"\xff\xfe\x00secret\n"),
    ),
    Case(
        "secret file missing",
        ("cannot be read (No such file or directory)",),
        files=_secret_at("nowhere.secret"),
    ),
    Case(
        "secret file too short a secret",
        ("bridges.secret: file bridge.secret: the secret must be at least 16 characters",),
        files=_secret_file("bridge.secret", b"short-SECRET\n"),
    ),
    # -- the config file itself --------------------------------------------------------------
    Case(
        "config file is a FIFO",
        ("the config file is a FIFO, not a regular file",),
        config=_fifo_config,
        subprocess=True,
    ),
    Case(
        "config file is /dev/zero",
        ("the config file is a character device, not a regular file",),
        config=lambda _folder: Path("/dev/zero"),
        subprocess=True,
    ),
    Case(
        "config file is a directory",
        ("the config file is a directory",),
        config=lambda folder: folder,
    ),
    Case(
        "config file larger than 1 MiB",
        ("the config file is larger than 1024 KiB",),
        config=_raw(b"# " + b"x" * 1_100_000 + b"\n"),
    ),
    Case(
        "arrays nested 100 000 deep",
        ("not usable TOML: nested too deeply",),
        config=_raw(_deep_arrays(100_000)),
        subprocess=True,
    ),
    Case(
        "inline tables nested 50 000 deep",
        ("not usable TOML: nested too deeply",),
        config=_raw(_deep_tables(50_000)),
        subprocess=True,
    ),
    Case("not UTF-8", ("the config file is not UTF-8 text",), config=_raw(b"name = '\xff'\n")),
    Case("not TOML", ("not valid TOML: ",), config=_raw(b"[matrix\nhomeserver = \n")),
    Case(
        "empty file",
        (
            "matrix: missing required key",
            "healthcare_region: missing required key",
            "regions: missing required key",
        ),
        config=_raw(b""),
    ),
    Case(
        "[regions] as a table instead of [[regions]]",
        ("regions: Input should be a valid list",),
        _set("regions", {"id": "uppsala"}),
    ),
    # -- strict types: no coercion --------------------------------------------------------
    Case(
        "a number in quotes",
        ("matrix.sync_timeout_ms: Input should be a valid integer",),
        _set("matrix.sync_timeout_ms", "5000"),
    ),
    Case(
        "a boolean for an integer",
        ("bridges.max_attempts: Input should be a valid integer",),
        _set("bridges.max_attempts", True),
    ),
    Case(
        "a float for an integer",
        ("chain.required_transports: Input should be a valid integer",),
        _set("chain.required_transports", 5.0),
    ),
    Case(
        "a fraction of a repeat",
        ("escalation.max_repeats: Input should be a valid integer",),
        _set("escalation", {"steps": [], "max_repeats": 1.5}),
    ),
    Case(
        "delay in quotes",
        ("escalation.steps[0].after_min: Input should be a valid number",),
        _set("escalation", {"steps": [{"after_min": "5", "action": "remind"}]}),
    ),
    Case(
        "an integer for a boolean",
        ("bridges.sms.delivery_reports: Input should be a valid boolean",),
        _set("bridges.sms.delivery_reports", 1),
    ),
    Case(
        "'yes' for a boolean",
        ("bridges.email.relays[0].starttls: Input should be a valid boolean",),
        _set("bridges.email.relays[0].starttls", "yes"),
    ),
    Case(
        "a date for a name",
        ("regions[0].name: Input should be a valid string",),
        _set("regions[0].name", date(2026, 1, 1)),
    ),
    Case(
        "NaN delay",
        ("escalation.steps[0].after_min: Input should be a finite number",),
        _set("escalation", {"steps": [{"after_min": float("nan"), "action": "remind"}]}),
    ),
    Case(
        "infinite timeout",
        ("bridges.sms.delivery_timeout_s: Input should be a finite number",),
        _set("bridges.sms.delivery_timeout_s", float("inf")),
    ),
    Case(
        "a huge integer",
        ("matrix.sync_timeout_ms: Input should be less than or equal to 120000",),
        _set("matrix.sync_timeout_ms", 10**30),
    ),
    Case(
        "a list for a string",
        ("bridges.email.address: Input should be a valid string",),
        _set("bridges.email.address", ["larm@region.example"]),
    ),
    # -- the bot is not a party, a person, an address or a number of its own ---------------
    Case(
        "party address is the bot's own",
        ("regions[0].email[0]: LARM@Region.example is the bot's own address",),
        _set("regions[0].email", ["LARM@Region.example"]),
    ),
    Case(
        "party address in a domain the bot takes mail for",
        ("regions[1].email[0]: tib@larm.region.example is the bot's own address",),
        _both(
            _set("bridges.email.accept", ["larm@region.example", "larm.region.example"]),
            _set("regions[1].email", ["tib@larm.region.example"]),
        ),
    ),
    Case(
        "party address is a subaddress of the bot's",
        ("regions[0].email[0]: larm+uppsala@region.example is the bot's own address",),
        _set("regions[0].email", ["larm+uppsala@region.example"]),
    ),
    Case(
        "party number is the bot's sender number",
        ("regions[1].sms[0]: 0046700000001 is the bot's own number",),
        _both(
            _set("bridges.sms.sender_id", "+46700000001"),
            _set("regions[1].sms", ["0046700000001"]),
        ),
    ),
    Case(
        "HTTP port is the mail listener's port",
        ("bridges.email.listen_port: 8080 is also bridges.http.port",),
        _set("bridges.email.listen_port", 8080),
    ),
    Case(
        "the bot as a member",
        (f"regions[0].members[0]: {BOT} is the bot itself",),
        _set("regions[0].members", [BOT]),
    ),
    Case(
        "the bot as a duty officer",
        (f"parties[0].duty_officers[1]: {BOT} is the bot itself",),
        _set("parties[0].duty_officers", ["@blod:localhost", BOT]),
    ),
    Case(
        "the bot as a backup contact",
        (f"regions[1].backup_contacts[0]: {BOT} is the bot itself",),
        _set("regions[1].backup_contacts", [BOT]),
    ),
    Case(
        "the bot as a coordinator",
        (f"healthcare_region.coordinators[0]: {BOT} is the bot itself",),
        _set("healthcare_region.coordinators", [BOT]),
    ),
    # -- ports, hosts, URLs -------------------------------------------------------------
    Case(
        "HTTP port 0",
        ("bridges.http.port: Input should be greater than or equal to 1",),
        _set("bridges.http.port", 0),
    ),
    Case(
        "listen port out of range",
        ("bridges.email.listen_port: Input should be less than or equal to 65535",),
        _set("bridges.email.listen_port", 70_000),
    ),
    Case(
        "negative relay port",
        ("bridges.email.relays[0].port: Input should be greater than or equal to 1",),
        _set("bridges.email.relays[0].port", -1),
    ),
    Case(
        "listen host that is no host",
        ("bridges.http.host: 'not a host!' is not an IP address or host name",),
        _set("bridges.http.host", "not a host!"),
    ),
    Case(
        "relay host with an empty label",
        ("bridges.email.relays[0].host: 'smtp..example' is not an IP address or host name",),
        _set("bridges.email.relays[0].host", "smtp..example"),
    ),
    Case(
        "allowed client that is no network",
        ("bridges.email.allowed_clients[0]: 'mailserver' is not a network",),
        _set("bridges.email.allowed_clients", ["mailserver"]),
    ),
    Case(
        "accept entry that is neither address nor domain",
        ("bridges.email.accept[0]: 'a b@c' is not an e-mail address or a domain",),
        _set("bridges.email.accept", ["a b@c"]),
    ),
    Case(
        "public URL that is not http(s)",
        ("bridges.http.public_base_url: 'ftp://larm.example' is not an http(s) URL",),
        _set("bridges.http.public_base_url", "ftp://larm.example"),
    ),
    Case(
        "homeserver without scheme",
        ("matrix.homeserver: 'matrix.example.org' is not an http(s) URL",),
        _set("matrix.homeserver", "matrix.example.org"),
    ),
    Case(
        "Kannel user name with a quote",
        ("bridges.sms.gateways[0].username: 'lar\"m' is not a Kannel user name",),
        _set("bridges.sms.gateways[0].username", 'lar"m'),
    ),
    Case(
        "sender name longer than the GSM limit",
        ("bridges.sms.sender_id: 'Larmkedjan-Uppsala' is neither a number",),
        _set("bridges.sms.sender_id", "Larmkedjan-Uppsala"),
    ),
    Case(
        "Message-ID domain with a space",
        ("bridges.email.message_id_domain: 'region example' is not a domain",),
        _set("bridges.email.message_id_domain", "region example"),
    ),
    Case(
        "database URL that is no URL",
        ("storage.database_url: 'larmkedja.db' is not a database URL",),
        _set("storage.database_url", "larmkedja.db"),
    ),
    Case(
        "database driver the bot does not run on",
        ("storage.database_url: 'mysql' is not supported",),
        _set("storage.database_url", "mysql://u@h/db"),
    ),
    Case(
        "synchronous SQLite driver",
        ("storage.database_url: 'sqlite' is not supported",),
        _set("storage.database_url", "sqlite:///larmkedja.db"),
    ),
    # -- Matrix ids, rooms, names, languages ----------------------------------------------
    Case(
        "user id in capitals",
        ("regions[0].duty_officers[0]: '@TiB:localhost' is not a Matrix user id",),
        _set("regions[0].duty_officers", ["@TiB:localhost"]),
    ),
    Case(
        "user id with a trailing line break",
        ("regions[0].duty_officers[0]: '@tib:localhost\\n' is not a Matrix user id",),
        _set("regions[0].duty_officers", ["@tib:localhost\n"]),
    ),
    Case(
        "user id without server",
        ("regions[0].members[0]: '@kansli' is not a Matrix user id",),
        _set("regions[0].members", ["@kansli"]),
    ),
    Case(
        "room alias instead of room id",
        ("regions[1].room: '#dalarna:localhost' is not a Matrix room id",),
        _set("regions[1].room", "#dalarna:localhost"),
    ),
    Case(
        "room id with a line break",
        ("regions[1].room: '!dalarna:localhost\\nx' is not a Matrix room id",),
        _set("regions[1].room", "!dalarna:localhost\nx"),
    ),
    Case(
        "e-mail with a trailing line break",
        ("regions[0].email[0]: 'tib@uppsala.example\\n' is not an e-mail address",),
        _set("regions[0].email", ["tib@uppsala.example\n"]),
    ),
    Case(
        "phone number with spaces",
        ("regions[0].sms[0]: '070-123 45 67' is not a phone number",),
        _set("regions[0].sms", ["070-123 45 67"]),
    ),
    Case(
        "the same duty officer twice",
        ("regions[0].duty_officers: '@tib.uppsala:localhost' is listed twice",),
        _set("regions[0].duty_officers", ["@tib.uppsala:localhost", "@tib.uppsala:localhost"]),
    ),
    Case(
        "the same number twice, written two ways",
        ("regions[0].sms: '46701234567' is listed twice",),
        _set("regions[0].sms", ["+46701234567", "0046701234567"]),
    ),
    Case(
        "duplicate party id across regions and parties",
        ("parties[0].id: duplicate id 'uppsala' (also regions[0])",),
        _set("parties[0].id", "uppsala"),
    ),
    Case(
        "duplicate room",
        ("regions[1].room: room !uppsala:localhost is already the room of regions[0]",),
        _set("regions[1].room", "!uppsala:localhost"),
    ),
    Case(
        "duplicate party id and duplicate room: two lines",
        ("regions[1].id: duplicate id 'uppsala'", "regions[1].room: room !uppsala:localhost"),
        _both(_set("regions[1].id", "uppsala"), _set("regions[1].room", "!uppsala:localhost")),
    ),
    Case(
        "two national duty officers",
        ("parties: at most one national_duty_officer",),
        lambda d: d["parties"].extend(
            [
                {
                    "id": f"nationell-{n}",
                    "name": "Nationell TiB",
                    "kind": "national_duty_officer",
                    "room": f"!nat{n}:localhost",
                    "duty_officers": [f"@nat{n}:localhost"],
                }
                for n in (1, 2)
            ]
        ),
    ),
    Case(
        "blood centre without its region",
        ("parties[0].region: a blood centre must name its region",),
        lambda d: d["parties"][0].pop("region"),
    ),
    Case(
        "a region with a region",
        ("regions[0].region: unknown key",),
        _set("regions[0].region", "uppsala"),
    ),
    Case(
        "language outside sv/nb/en",
        ("regions[0].language: Input should be 'sv', 'nb' or 'en'",),
        _set("regions[0].language", "de"),
    ),
    Case(
        "language in capitals",
        ("regions[1].language: Input should be 'sv', 'nb' or 'en'",),
        _set("regions[1].language", "SV"),
    ),
    Case(
        "coordination room language",
        ("healthcare_region.language: Input should be 'sv', 'nb' or 'en'",),
        _set("healthcare_region.language", "fi"),
    ),
    Case(
        "a name with a line break (it goes into mail headers)",
        ("bridges.email.sender_name: must not contain line breaks or control characters",),
        _set("bridges.email.sender_name", "larm\nBcc: all@region.example"),
    ),
    Case(
        "a party name with a leading space",
        ("regions[0].name: must not begin or end with spaces",),
        _set("regions[0].name", " Region Uppsala"),
    ),
    Case(
        "an empty name",
        ("regions[0].name: String should have at least 1 character",),
        _set("regions[0].name", ""),
    ),
    Case(
        "log level in lower case",
        ("log_level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'",),
        _set("log_level", "debug"),
    ),
    Case(
        "unknown trust policy",
        ("matrix.trust_policy: Input should be 'all-devices' or 'verified-only'",),
        _set("matrix.trust_policy", "none"),
    ),
    # -- delays and their order --------------------------------------------------------
    Case(
        "negative delay",
        ("escalation.steps[0].after_min: Input should be greater than or equal to 0",),
        _set("escalation", {"steps": [{"after_min": -5, "action": "remind"}]}),
    ),
    Case(
        "negative repeat interval",
        ("escalation.repeat_every_min: Input should be greater than or equal to 0",),
        _set("escalation", {"steps": [], "repeat_every_min": -1}),
    ),
    Case(
        "pledge reminder after a week",
        ("escalation.pledge_reminder_min: Input should be less than or equal to 1440",),
        _set("escalation", {"steps": [], "pledge_reminder_min": 10_080}),
    ),
    Case(
        "first sync timeout 0",
        ("matrix.first_sync_timeout_s: Input should be greater than 0",),
        _set("matrix.first_sync_timeout_s", 0),
    ),
    Case(
        "Matrix backoff starts above its maximum",
        ("matrix.backoff_initial_s: must not be longer than backoff_max_s",),
        _both(_set("matrix.backoff_initial_s", 60), _set("matrix.backoff_max_s", 10)),
    ),
    Case(
        "bridge backoff starts above its maximum",
        ("bridges.backoff_initial_s: must not be longer than backoff_max_s",),
        _both(_set("bridges.backoff_initial_s", 600), _set("bridges.backoff_max_s", 60)),
    ),
    Case(
        "unknown key in a party",
        ("regions[1].duty_officer: unknown key",),
        _set("regions[1].duty_officer", ["@x:localhost"]),
    ),
    Case("unknown top-level key", ("regoins: unknown key",), _set("regoins", [])),
]
if not HAS_ASYNCPG:
    REFUSED.append(
        Case(
            "PostgreSQL without its driver installed",
            ("storage.database_url: postgresql+asyncpg needs the asyncpg package",),
            _set("storage.database_url", "postgresql+asyncpg://larm@db/larmkedja"),
        )
    )

ACCEPTED: list[Case] = [
    Case("the base config"),
    Case("a UTF-8 byte order mark", config=None, files=None),
    Case("IPv6 loopback listen address", change=_set("bridges.http.host", "::1")),
    Case("an alphanumeric sender", change=_set("bridges.sms.sender_id", "Larmkedja")),
    Case(
        "accepting a domain without party addresses in it",
        change=_set("bridges.email.accept", ["@larm.region.example"]),
    ),
    Case(
        "a private secret file",
        files=_secret_file("bridge.secret", b"bridge-SECRET-0123456789abcdef\n", 0o600),
    ),
    Case(
        "a secret file relative to the config, through a symlink",
        files=lambda folder, data: (
            (folder / "real.secret").write_bytes(b"bridge-SECRET-0123456789abcdef\n"),
            (folder / "real.secret").chmod(0o400),
            (folder / "link.secret").symlink_to(folder / "real.secret"),
            _set("bridges.secret", {"file": "link.secret"})(data),
        ),
    ),
    Case("a float delay written as an integer", change=_set("bridges.backoff_initial_s", 5)),
]
if HAS_ASYNCPG:
    ACCEPTED.append(
        Case(
            "PostgreSQL",
            change=_set("storage.database_url", "postgresql+asyncpg://larm@db/larmkedja"),
        )
    )


@dataclass
class Result:
    verdict: str  # ok, crash, hang, accepted-but-wrong, unclear
    detail: str = ""


def _write(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if case.config is not None:
        return case.config(folder)
    data = copy.deepcopy(base())
    if case.change is not None:
        case.change(data)
    if case.files is not None:
        case.files(folder, data)
    text = tomli_w.dumps(data).encode("utf-8")
    if case.name == "a UTF-8 byte order mark":
        text = b"\xef\xbb\xbf" + text
    path = folder / "larmkedja.toml"
    path.write_bytes(text)
    return path


@contextlib.contextmanager
def _environment(case: Case) -> Iterator[dict[str, str]]:
    env = {**os.environ, **ENV, **case.env}
    for name in case.unset:
        env.pop(name, None)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _in_process(argv: list[str]) -> tuple[int | str, str]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code: int | str = main(argv)
    except BaseException as exc:  # a crash is a finding, reported, not raised
        return f"raised {type(exc).__name__}: {exc}", err.getvalue()
    return code, err.getvalue()


def _subprocess(argv: list[str], env: dict[str, str]) -> tuple[int | str, str]:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bot", *argv],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "hang", ""
    return proc.returncode, proc.stderr


def _in_order(pieces: list[str], line: str) -> bool:
    at = 0
    for piece in pieces:
        at = line.find(piece, at)
        if at < 0:
            return False
        at += len(piece)
    return True


def run_case(case: Case, folder: Path, *, refused: bool) -> Result:
    with _environment(case) as env:
        path = _write(case, folder)
        runs = {}
        for argv in (["check-config", str(path)], ["run", "--config", str(path)]):
            if argv[0] == "run" and not refused:
                continue  # a good config would start the bot
            code, err = _subprocess(argv, env) if case.subprocess else _in_process(argv)
            runs[argv[0]] = (code, err)
            if code == "hang":
                return Result("hang", argv[0])
            if isinstance(code, str) or "Traceback" in err or code not in (0, EXIT_CONFIG):
                return Result("crash", f"{argv[0]}: {code} {err[-1500:]}")
    code, err = runs["check-config"]
    if any(secret in err for secret in SECRETS):
        return Result("unclear", f"a secret in the output: {err}")
    if not refused:
        return Result("ok") if code == 0 else Result("accepted-but-wrong", f"refused: {err}")
    if code == 0:
        return Result("accepted-but-wrong", "check-config passed it")
    lines = err.strip().splitlines()
    if len(lines) != len(case.expect):
        return Result("unclear", f"{len(lines)} lines, {len(case.expect)} expected: {lines}")
    for line, fragment in zip(lines, case.expect, strict=True):
        if not line.startswith(f"{path}: ") or not _in_order(fragment.split(" … "), line):
            return Result("unclear", f"{line!r} does not name {fragment!r}")
    if runs["run"][1].strip().splitlines() != lines:
        return Result("unclear", f"run refused otherwise: {runs['run'][1]!r} vs {lines}")
    return Result("ok")


def test_hostile_configs_are_refused_with_their_key_path_and_good_ones_pass(
    tmp_path: Path,
) -> None:
    """Every case, counted; the failure lists each case that went wrong and how."""
    verdicts: Counter[str] = Counter()
    failures: list[str] = []
    for index, case in enumerate(REFUSED + ACCEPTED):
        result = run_case(case, tmp_path / f"c{index}", refused=case in REFUSED)
        verdicts[result.verdict] += 1
        if result.verdict != "ok":
            failures.append(f"{case.name}: {result.verdict}: {result.detail}")
    tried = len(REFUSED) + len(ACCEPTED)
    print(
        f"\nhostile configs: {tried} tried ({len(REFUSED)} broken, {len(ACCEPTED)} good), "
        f"{verdicts['crash']} crashes/tracebacks, {verdicts['hang']} hangs, "
        f"{verdicts['accepted-but-wrong']} accepted-but-wrong, {verdicts['unclear']} unclear"
    )
    assert not failures, "\n".join(failures)
