"""The configuration model: one TOML file, validated completely before anything starts.

Why a model and not a dict: every error must name the key path and what is wrong (an operator
editing the file at 3 a.m. needs ``regions[2].duty_officers: must name at least one duty
officer``, not a traceback), unknown keys are rejected (a typo must not silently disable a
party), and the sample config in ``deploy/`` is generated from this same model so it can never
drift from the code.

Secrets (the bot's password, the crypto-store passphrase, gateway credentials) are
:class:`SecretRef` values: they name an environment variable or a private file, are resolved
at start and by ``check-config`` through the same code (:meth:`LoadedConfig.check_secrets`),
checked against the rules of their kind (length, characters), and never printed, logged or
echoed in an error. A config file may not hold a secret itself.

Why strict types: TOML has real integers and booleans, so ``"5"`` or ``true`` where a number
belongs is a mistake to point at, not to guess at; a NaN or infinite delay is refused too.
Files are checked before they are opened and read to a limit, so a FIFO, a device or a
bomb of nested arrays is one line of error, not a hang or a traceback.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import stat
import tomllib
import unicodedata
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url

from bot.domain.exercise import Recurrence, RecurrenceError
from bridges.destinations import normalize_destination

LANGUAGES = ("sv", "nb", "en")
Language = Literal["sv", "nb", "en"]

_USER_ID = re.compile(r"^@[a-z0-9._=/+\-]+:[A-Za-z0-9.\-]+(:\d{1,5})?$")
# Room version 12 ids are a bare hash ("!abc…"); older ones carry ":server".
_ROOM_ID = re.compile(r"^![A-Za-z0-9._=/+\-]{1,255}(:[A-Za-z0-9.\-]+(:\d{1,5})?)?$")
_SLUG = re.compile(r"^[a-z][a-z0-9\-]{0,39}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{5,15}$")


def _matches(pattern: re.Pattern[str], what: str) -> Any:
    # fullmatch: "$" alone would let a trailing line break through.
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not {what}")
        return value

    return check


def _shown(value: str) -> str:
    """A value as an error message quotes it: repr (line breaks visible), at most 60 chars."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…'"


def _printable(value: str) -> str:
    """Names go into SMS, mail headers and boards: no line breaks or control characters."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise ValueError("must not contain line breaks or control characters")
    if value != value.strip():
        raise ValueError("must not begin or end with spaces")
    return value


def _no_duplicates(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{_shown(str(value))} is listed twice")
        seen.add(value)
    return values


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")


def _host(value: str) -> str:
    """An IP address or a host name, as a listen address or a relay."""
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not an IP address or host name") from None
    return value


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a network like 127.0.0.1/32") from None
    return value


UserId = Annotated[
    str, AfterValidator(_matches(_USER_ID, "a Matrix user id like @tib:example.org"))
]
RoomId = Annotated[
    str, AfterValidator(_matches(_ROOM_ID, "a Matrix room id like !abc:example.org"))
]
Slug = Annotated[
    str, AfterValidator(_matches(_SLUG, "a lower-case id of letters, digits and '-'"))
]
Email = Annotated[str, AfterValidator(_matches(_EMAIL, "an e-mail address"))]
Phone = Annotated[str, AfterValidator(_matches(_PHONE, "a phone number like +46701234567"))]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Host = Annotated[str, AfterValidator(_host)]
Network = Annotated[str, AfterValidator(_network)]
#: Kannel config values may not hold a quote, backslash or line break; user names are plain.
_KANNEL_WORD = re.compile(r"[A-Za-z0-9._~-]{1,64}")


def _address_or_domain(value: str) -> str:
    """An entry of ``accept``: an address, or a domain (optionally ``@domain``)."""
    if "@" in value.lstrip("@"):
        return _matches(_EMAIL, "an e-mail address or a domain")(value)
    return _matches(_HOSTNAME, "an e-mail address or a domain")(value.lstrip("@"))


class RecipientAddresses:
    """The addresses the bot's reply listener takes (exact, ``+`` subaddress, or domain), as
    ``bridges.email.address`` and ``accept`` name them."""

    def __init__(self, entries: list[str]) -> None:
        self.addresses = {e.lower() for e in entries if "@" in e.lstrip("@")}
        self.domains = {e.lower().lstrip("@") for e in entries if "@" not in e.lstrip("@")}

    def covers(self, address: str) -> bool:
        address = (normalize_destination("email", address) or address).lower()
        local, _, domain = address.rpartition("@")
        base = local.split("+", 1)[0]
        return (
            domain in self.domains
            or address in self.addresses
            or (f"{base}@{domain}" in self.addresses)
        )


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is one line per problem, no secrets."""


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt key must not silently fall back to a default.
    # strict: "5" or true is not an integer, 1 is not a boolean (TOML has real types, so a
    # quoted number is a mistake to report, not to guess at); no NaN or infinity.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


#: A secret file is one line; anything larger is not what the operator meant to point at.
MAX_SECRET_FILE = 64 * 1024
#: A config file of the largest healthcare region is tens of KiB.
MAX_CONFIG_FILE = 1024 * 1024
#: Secrets may only be named in a config file, never written into it.
INLINE_REFUSED = (
    'an inline secret is refused in a config file; use { env = "NAME" } or '
    '{ file = "path" } (README, "Running it for real")'
)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def read_private_file(path: Path, what: str, limit: int, *, private: bool) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or a :class:`ConfigError`.

    Checked before it is opened (a FIFO would block the reader, a device like /dev/zero never
    ends), opened non-blocking and checked again (so a file swapped meanwhile cannot hang us),
    and read to at most ``limit`` bytes. ``private``: refused if group or others have any
    permission on it (like ssh with a private key), because a secret readable by others is
    not secret.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{what} is {_kind(mode)}, not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} is {_kind(info.st_mode)}, not a regular file")
        if private and info.st_mode & 0o077:
            raise ConfigError(
                f"{what} is open to group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); make it private: chmod 600 {path}"
            )
        if info.st_size > limit:
            raise ConfigError(f"{what} is larger than {limit // 1024} KiB")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ConfigError(f"{what} is larger than {limit // 1024} KiB")
    return b"".join(chunks)


class SecretRef(_Strict):
    """Where a secret comes from: exactly one of ``env`` or ``file``. ``value`` (the secret
    itself) exists for configs built in code by tests; a config file may not carry one.

    Subclasses set the rules the secret itself must keep (:attr:`min_length`,
    :attr:`allowed`), checked by :meth:`resolve`: the same check at start and in
    ``check-config``."""

    #: Shortest secret accepted (0: any non-empty one).
    min_length: ClassVar[int] = 0
    #: Characters the secret may consist of, and what to call them (None: any).
    allowed: ClassVar[tuple[re.Pattern[str], str] | None] = None

    env: str | None = Field(None, description="name of an environment variable holding it")
    file: Path | None = Field(
        None,
        strict=False,
        description="path of a private (chmod 600) regular file holding it (first line; "
        "relative to the config file)",
    )
    value: SecretStr | None = Field(
        None,
        description="the secret itself; only in configs built by tests, refused in a file",
        repr=False,
    )

    @model_validator(mode="after")
    def _exactly_one(self, info: ValidationInfo) -> SecretRef:
        given = [k for k in ("env", "file", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env or file")
        if self.value is not None and (info.context or {}).get("from_file"):
            raise ValueError(INLINE_REFUSED)
        if self.env is not None and not _ENV_NAME.match(self.env):
            raise ValueError(f"{self.env!r} is not an environment variable name")
        if self.file is not None and not str(self.file).strip():
            raise ValueError("file: give a path")
        return self

    def describe(self) -> str:
        """Where the secret lives, for messages; never the secret itself."""
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return "inline value"

    def resolve(self, base_dir: Path | None = None) -> SecretStr:
        """The secret, checked against this kind's rules; :class:`ConfigError` otherwise
        (naming where it comes from and what is wrong, never the secret)."""
        secret = self._fetch(base_dir)
        value = secret.get_secret_value()
        if len(value) < self.min_length:
            raise ConfigError(
                f"{self.describe()}: the secret must be at least {self.min_length} characters"
            )
        if self.allowed is not None and not self.allowed[0].fullmatch(value):
            raise ConfigError(f"{self.describe()}: the secret may only contain {self.allowed[1]}")
        return secret

    def _fetch(self, base_dir: Path | None) -> SecretStr:
        if self.value is not None:
            return self.value
        if self.env is not None:
            raw = os.environ.get(self.env)
            if not raw:
                raise ConfigError(f"environment variable {self.env} is not set or empty")
            return SecretStr(raw)
        assert self.file is not None
        path = self.file if self.file.is_absolute() or base_dir is None else base_dir / self.file
        data = read_private_file(path, f"secret file {path}", MAX_SECRET_FILE, private=True)
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise ConfigError(f"secret file {path} is not UTF-8 text") from None
        raw = lines[0].strip() if lines else ""
        if not raw:
            raise ConfigError(f"secret file {path} is empty")
        return SecretStr(raw)


class LongSecretRef(SecretRef):
    """A secret that signs or derives something: at least 16 characters."""

    min_length: ClassVar[int] = 16


class UrlSecretRef(LongSecretRef):
    """A secret that travels in a URL Kannel calls (and in Kannel's config, which allows no
    quote or backslash): at least 16 characters of ``[A-Za-z0-9._~-]``, which need no
    escaping and contain no ``%`` for Kannel to take for one of its escapes."""

    allowed: ClassVar[tuple[re.Pattern[str], str] | None] = (
        re.compile(r"[A-Za-z0-9._~-]+"),
        "letters, digits and . _ ~ -",
    )


class MatrixConfig(_Strict):
    """How the bot reaches its homeserver and how it treats encryption."""

    homeserver: Annotated[
        str, AfterValidator(_matches(re.compile(r"^https?://[^\s/]+(/.*)?$"), "an http(s) URL"))
    ] = Field(description="base URL of the homeserver", examples=["https://matrix.example.org"])
    user_id: UserId = Field(
        description="the bot's own account", examples=["@larmkedja:example.org"]
    )
    password: SecretRef = Field(
        description="the bot account's password, used for the first login, when the crypto "
        "store is lost, and to upload cross-signing keys",
        examples=[{"env": "LARMKEDJA_PASSWORD"}],
    )
    store_passphrase: SecretRef | None = Field(
        None,
        description="passphrase that encrypts the crypto store's pickled keys",
        examples=[{"env": "LARMKEDJA_STORE_PASSPHRASE"}],
    )
    device_name: Name = Field("larmkedja", description="display name of the bot's device")
    trust_policy: Literal["all-devices", "verified-only"] = Field(
        "all-devices",
        description="which devices of room members get the room key. 'all-devices': every "
        "device, verified or not (a duty officer's new phone can read alarms at once); "
        "'verified-only': only devices verified in the bot's store, the bot refuses to send "
        "to a room with unverified devices. Commands are authorised by sender, never by device.",
    )
    sync_timeout_ms: int = Field(30_000, ge=0, le=120_000, description="long-poll timeout")
    first_sync_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="limit for the first, full-state sync after start"
    )
    backoff_initial_s: float = Field(1.0, gt=0, le=60, description="first retry delay")
    backoff_max_s: float = Field(300.0, gt=0, le=3600, description="longest retry delay")
    undecryptable_grace_s: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="how long to wait for the key of an undecryptable command before asking "
        "the sender to send it again",
    )
    delivery_deadline_s: float = Field(
        90.0,
        ge=5,
        le=3600,
        description="an alarm the homeserver has not accepted for a party's room by then is a "
        "delivery failure (shown, told to the initiating duty officer, fallen back from), and "
        "the delivery report of an alarm or stand-down comes by then at the latest",
    )
    late_after_s: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="an alarm that reaches a room this long after it was decided is marked as "
        "late (the room was unreachable until then)",
    )

    @model_validator(mode="after")
    def _backoff_in_order(self) -> MatrixConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s: must not be longer than backoff_max_s")
        return self


#: The async drivers the bot runs on, and the module each needs.
_ASYNC_DRIVERS = {"sqlite+aiosqlite": "aiosqlite", "postgresql+asyncpg": "asyncpg"}


class StorageConfig(_Strict):
    """Where the bot keeps its state. Relative paths are relative to the config file."""

    database_url: str = Field(
        "sqlite+aiosqlite:///larmkedja.db",
        description="SQLAlchemy async URL; SQLite by default (sqlite+aiosqlite:///file), "
        "PostgreSQL supported (postgresql+asyncpg://…, needs the asyncpg package)",
    )
    state_dir: Path = Field(
        Path("state"),
        strict=False,
        description="crypto store, device credentials and cross-signing keys (keep private)",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        try:
            parsed = make_url(url)
        except Exception:
            raise ValueError(f"{_shown(url)} is not a database URL") from None
        module = _ASYNC_DRIVERS.get(parsed.drivername)
        if module is None:
            raise ValueError(
                f"{parsed.drivername!r} is not supported; use sqlite+aiosqlite:///file or "
                "postgresql+asyncpg://user@host/db"
            )
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"{parsed.drivername} needs the {module} package (pip install it)")
        return url


class HealthcareRegionConfig(_Strict):
    """The healthcare region (sjukvårdsregion) whose alarm chain this bot runs."""

    id: Slug = Field(examples=["mellansverige"])
    name: Name = Field(examples=["Sjukvårdsregion Mellansverige"])
    coordination_room: RoomId | None = Field(
        None,
        description="room of the preparedness coordinators",
        examples=["!samordning:example.org"],
    )
    coordinators: list[UserId] = Field(
        default_factory=list,
        description="preparedness coordinators: own exercises, see every status board",
        examples=[["@samordnare:example.org"]],
    )
    language: Language = Field("sv", description="language of the coordination room")


EscalationAction = Literal["remind", "send", "notify_backup", "notify_initiator"]
EscalationChannel = Literal["room", "sms", "email"]


class EscalationStepConfig(_Strict):
    """One step of an escalation policy: after a delay, do one thing."""

    after_min: float = Field(
        ge=0,
        le=1440,
        description="minutes after the previous step (the first step: after the chain started)",
        examples=[5],
    )
    action: EscalationAction = Field(
        description="'remind': a reminder in the party's room, mentioning its duty officers; "
        "'send': the alarm again on 'channels'; 'notify_backup': mention the party's "
        "backup_contacts in its room; 'notify_initiator': tell the initiating region's duty "
        "officers that the party has not acknowledged",
        examples=["remind"],
    )
    channels: list[EscalationChannel] = Field(
        default_factory=list,
        validate_default=True,
        description="for 'send' only: any of room, sms, email (sms and email are skipped for a "
        "party without numbers or addresses, and recorded as skipped)",
        examples=[["sms", "email"]],
    )

    @field_validator("channels")
    @classmethod
    def _channels_fit_action(cls, channels: list[str], info: ValidationInfo) -> list[str]:
        action = info.data.get("action")
        if action == "send" and not channels:
            raise ValueError("a 'send' step must name at least one channel (room, sms, email)")
        if action is not None and action != "send" and channels:
            raise ValueError(f"only a 'send' step has channels, not {action!r}")
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is named twice")
        return channels


def _default_steps() -> list[EscalationStepConfig]:
    return [
        EscalationStepConfig(after_min=5, action="remind"),
        EscalationStepConfig(after_min=5, action="notify_initiator"),
        EscalationStepConfig(after_min=5, action="send", channels=["sms", "email"]),
    ]


class EscalationConfig(_Strict):
    """Reminders and escalation of a party that has not acknowledged. The policy is copied into
    the chain when it starts: editing it does not change an alarm already running."""

    steps: list[EscalationStepConfig] = Field(
        description="the steps, in order; an empty list turns reminders off",
        examples=[
            [
                {"after_min": 5, "action": "remind"},
                {"after_min": 5, "action": "notify_initiator"},
                {"after_min": 10, "action": "notify_backup"},
                {"after_min": 5, "action": "send", "channels": ["sms", "email"]},
            ]
        ],
    )
    repeat_every_min: float = Field(
        0, ge=0, le=1440, description="the last step repeats this often (0: it does not repeat)"
    )
    max_repeats: int = Field(
        0, ge=0, le=100, description="how many times the last step repeats after its first run"
    )
    pledge_reminder_min: float | None = Field(
        None,
        ge=0,
        le=1440,
        description="minutes after an acknowledgement without enough secondary transports "
        "until one reminder to pledge (absent: no pledge reminder)",
        examples=[10],
    )


def default_escalation() -> EscalationConfig:
    """The policy of a config without ``[escalation]``: remind after 5 min, tell the initiating
    duty officer after 10, send the alarm by SMS and e-mail after 15 and again every 10 min
    three more times; a pledge reminder 10 min after a short acknowledgement."""
    return EscalationConfig(
        steps=_default_steps(), repeat_every_min=10, max_repeats=3, pledge_reminder_min=10
    )


class PartyConfig(_Strict):
    """Anyone the chain alarms: a region, the national duty officer, a blood centre."""

    id: Slug = Field(examples=["uppsala"])
    name: Name = Field(examples=["Region Uppsala"])
    language: Language = Field("sv", description="language of this party's room and messages")
    room: RoomId = Field(
        description="this party's encrypted room", examples=["!uppsala:example.org"]
    )
    duty_officers: list[UserId] = Field(
        min_length=1,
        description="on-call duty officers (TiB): mentioned in alarms, may acknowledge; for a "
        "region also the only people who may confirm incidents and start its chain",
        examples=[["@tib.uppsala:example.org"]],
    )
    members: list[UserId] = Field(
        default_factory=list,
        description="other staff who may acknowledge for this party",
        examples=[["@kansli.uppsala:example.org"]],
    )
    email: list[Email] = Field(
        default_factory=list,
        description="function addresses (SDK stand-in), never personal addresses",
        examples=[["tib@regionuppsala.example"]],
    )
    sms: list[Phone] = Field(
        default_factory=list,
        description="numbers for short text alarms (Rakel stand-in)",
        examples=[["+46701234567"]],
    )
    backup_contacts: list[UserId] = Field(
        default_factory=list,
        description="people mentioned by a 'notify_backup' escalation step, in this party's "
        "room (invite them to it); required if this party's escalation has such a step",
        examples=[["@beredskapschef.uppsala:example.org"]],
    )
    escalation: EscalationConfig | None = Field(
        None,
        description="this party's own escalation policy, replacing the [escalation] table",
        examples=[
            {
                "steps": [
                    {"after_min": 3, "action": "remind"},
                    {"after_min": 5, "action": "notify_backup"},
                ],
                "repeat_every_min": 10,
                "max_repeats": 2,
            }
        ],
    )

    @field_validator("duty_officers", "members", "backup_contacts", "email", "sms")
    @classmethod
    def _each_once(cls, values: list[str], info: ValidationInfo) -> list[str]:
        channel = {"email": "email", "sms": "sms"}.get(info.field_name or "")
        keys = [normalize_destination(channel, v) or v for v in values] if channel else values
        _no_duplicates(keys)
        return values


class RegionConfig(PartyConfig):
    """A region: a party whose duty officers can also confirm incidents and start the chain."""


class OtherPartyConfig(PartyConfig):
    """A party that is not a region: the national duty officer or a region's blood centre."""

    kind: Literal["national_duty_officer", "blood_centre"] = Field(
        description="what this party is", examples=["blood_centre"]
    )
    region: Slug | None = Field(
        None, description="for a blood centre: the region it belongs to", examples=["uppsala"]
    )


class ChainConfig(_Strict):
    """The decided content of the alarm chain (masskadelarm)."""

    required_transports: int = Field(
        5,
        ge=0,
        le=999,
        description="secondary transports each alarmed region must pledge "
        "(a pledge is at most 999)",
    )


_HTTP_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
HttpUrl = Annotated[str, AfterValidator(_matches(_HTTP_URL, "an http(s) URL without query"))]


def _sender_id(value: str) -> str:
    if re.fullmatch(r"\+?[0-9]{1,16}", value) or re.fullmatch(r"[A-Za-z0-9]{1,11}", value):
        return value
    raise ValueError(
        f"{_shown(value)} is neither a number (up to 16 digits) nor a name of up to 11 "
        "letters and digits (longer sender names are cut or refused by SMS centres)"
    )


class SmsGatewayConfig(_Strict):
    """One SMS gateway (Kannel's ``sendsms`` interface). Several are tried in order."""

    url: HttpUrl = Field(
        description="the gateway's sendsms URL, without credentials or query",
        examples=["http://127.0.0.1:13013/cgi-bin/sendsms"],
    )
    username: Annotated[str, AfterValidator(_matches(_KANNEL_WORD, "a Kannel user name"))] = Field(
        description="sendsms user", examples=["larmkedja"]
    )
    password: SecretRef = Field(
        description="sendsms password", examples=[{"env": "LARMKEDJA_SMS_PASSWORD"}]
    )
    name: Annotated[str, Field(max_length=100), AfterValidator(_printable)] = Field(
        "", description="what logs call this gateway (default: host:port)"
    )


class SmsBridgeConfig(_Strict):
    """Short text alarms through an SMS gateway (Rakel stand-in); replies acknowledge."""

    gateways: list[SmsGatewayConfig] = Field(
        min_length=1,
        description="gateways in order of preference; the next one is used when one fails",
        examples=[
            [
                {
                    "url": "http://127.0.0.1:13013/cgi-bin/sendsms",
                    "username": "larmkedja",
                    "password": {"env": "LARMKEDJA_SMS_PASSWORD"},
                }
            ]
        ],
    )
    sender_id: Annotated[str, AfterValidator(_sender_id)] = Field(
        "larmkedja",
        description="the sender number (up to 16 digits, + allowed) or name (up to 11 letters "
        "and digits, the GSM limit) the gateway puts on our SMS (replies come to the number "
        "the gateway routes to the bot)",
    )
    delivery_reports: bool = Field(
        True, description="ask the gateway for delivery reports (needs [bridges.http])"
    )
    delivery_timeout_s: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description="an alarm SMS not reported delivered this long after it was written moves "
        "the party on to its next channel",
    )
    rate_per_s: float = Field(10.0, gt=0, le=1000, description="SMS per second at most")
    budget_segments: int = Field(
        3, ge=1, le=10, description="longest SMS in segments; longer texts are shortened"
    )


class SmtpRelayConfig(_Strict):
    """One SMTP relay (submission server); several are tried in order."""

    host: Host = Field(examples=["smtp.region.example"])
    port: int = Field(587, ge=1, le=65535)
    username: Annotated[str, Field(min_length=1), AfterValidator(_printable)] | None = Field(
        None, description="login, if the relay wants one"
    )
    password: SecretRef | None = Field(
        None, description="the login's password", examples=[{"env": "LARMKEDJA_SMTP_PASSWORD"}]
    )
    starttls: bool = Field(
        True, description="require STARTTLS (never send credentials in clear text)"
    )
    timeout_s: float = Field(10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _login_complete(self) -> SmtpRelayConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self


class EmailBridgeConfig(_Strict):
    """E-mail to function addresses (SDK stand-in); replies come to the bot's own listener."""

    address: Email = Field(
        description="the bot's function address: From of every alarm mail, where replies go",
        examples=["larm@larmkedja.region.example"],
    )
    sender_name: Name = Field("larmkedja", description="display name in From")
    message_id_domain: Annotated[str, AfterValidator(_matches(_HOSTNAME, "a domain"))] | None = (
        Field(None, description="domain of Message-IDs (default: the domain of 'address')")
    )
    relays: list[SmtpRelayConfig] = Field(
        min_length=1,
        description="outgoing relays in order of preference",
        examples=[[{"host": "smtp.region.example", "port": 587}]],
    )
    listen_host: Host = Field(
        "127.0.0.1",
        description="where the reply listener (SMTP) listens; the organisation's mail server "
        "relays mail for 'address' here",
    )
    listen_port: int = Field(
        2525, ge=1, le=65535, description="port of the reply listener; not bridges.http.port"
    )
    accept: list[Annotated[str, AfterValidator(_address_or_domain)]] = Field(
        default_factory=list,
        description="addresses or domains the listener takes mail for (default: 'address')",
    )
    allowed_clients: list[Network] = Field(
        default_factory=list,
        description="networks that may deliver replies (default: any); e.g. the mail server",
        examples=[["127.0.0.1/32"]],
    )
    rate_per_s: float = Field(10.0, gt=0, le=1000, description="mails per second at most")


class HttpConfig(_Strict):
    """The bot's HTTP endpoints: health, metrics, SMS gateway callbacks, acknowledge-by-link."""

    host: Host = Field("127.0.0.1", description="listen address (loopback by default)")
    port: int = Field(
        8080,
        ge=1,
        le=65535,
        description="listen port; Kannel's get-url and the reverse proxy name it",
    )
    public_base_url: HttpUrl | None = Field(
        None,
        description="how recipients reach these endpoints (behind a reverse proxy); without "
        "it e-mail carries no acknowledge link",
        examples=["https://larmkedja.region.example"],
    )
    gateway_secret: UrlSecretRef | None = Field(
        None,
        description="shared secret in the SMS gateway's callback URLs (at least 16 "
        "characters: letters, digits and . _ ~ -); needed for SMS replies and delivery reports",
        examples=[{"env": "LARMKEDJA_GATEWAY_SECRET"}],
    )


def _same_interface(a: str, b: str) -> bool:
    """Could two listeners on ``a`` and ``b`` collide on one port (same host, or any)?"""
    wildcard = {"0.0.0.0", "::", "", "[::]"}
    return a == b or a in wildcard or b in wildcard


def _raise(problems: list[str]) -> None:
    """One ValueError with a line per problem (each line names its key path)."""
    if problems:
        raise ValueError("\n".join(problems))


class BridgesConfig(_Strict):
    """Channels besides Matrix: every alarm also goes out by SMS and e-mail, and a reply with
    the message's code (or the e-mail's link) acknowledges."""

    secret: LongSecretRef = Field(
        description="signs acknowledge links and derives reply codes (keep it private, at "
        "least 16 characters)",
        examples=[{"env": "LARMKEDJA_BRIDGE_SECRET"}],
    )
    reply_code_ttl_min: float = Field(
        240, gt=0, le=10_080, description="how long a reply code or link acknowledges"
    )
    max_attempts: int = Field(
        8, ge=1, le=100, description="tries per message before it counts as failed"
    )
    backoff_initial_s: float = Field(5.0, gt=0, le=600, description="first retry delay")
    backoff_max_s: float = Field(300.0, gt=0, le=3600, description="longest retry delay")
    http: HttpConfig = Field(default_factory=HttpConfig)
    sms: SmsBridgeConfig | None = None
    email: EmailBridgeConfig | None = None

    @model_validator(mode="after")
    def _needs(self) -> BridgesConfig:
        problems: list[str] = []
        if self.sms is not None and self.http.gateway_secret is None:
            problems.append(
                "bridges.http.gateway_secret: SMS replies and delivery reports need it"
            )
        if self.backoff_initial_s > self.backoff_max_s:
            problems.append("bridges.backoff_initial_s: must not be longer than backoff_max_s")
        mail = self.email
        if (
            mail is not None
            and mail.listen_port == self.http.port
            and _same_interface(mail.listen_host, self.http.host)
        ):
            problems.append(
                f"bridges.email.listen_port: {mail.listen_port} is also bridges.http.port; "
                "the reply listener and the HTTP endpoints need a port each"
            )
        _raise(problems)
        return self

    def channels(self) -> tuple[str, ...]:
        return tuple(c for c in ("sms", "email") if getattr(self, c) is not None)


_FIELD_KEY = re.compile(r"^[a-z][a-z_]{0,39}$")
_FIELD_NAME = re.compile(r"^[^\W\d_]+(?:[_\-][^\W\d_]+)*$")


class ReportFieldConfig(_Strict):
    """One field of the situation report's template."""

    key: str = Field(
        description="stable id of the field (lower-case letters and '_'); also accepted as "
        "its name in '!lägesbild key=text'",
        examples=["location"],
    )
    names: dict[Language, str] = Field(
        default_factory=dict,
        description="the field's name as shown, per language (sv, nb, en; a missing language "
        "shows the Swedish name); may be left out only for the METHANE keys (major_incident, "
        "location, type, hazards, access, casualties, services, note), which have names in "
        "the message catalogue",
        examples=[{"sv": "Plats", "nb": "Sted", "en": "Location"}],
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="other names people may type for it, in any language (letters, '-' and "
        "'_'; case and diacritics do not matter)",
        examples=[["plats", "sted"]],
    )
    required: bool = Field(
        False,
        description="the initial situation report must have it, and no later version may clear it",
    )

    @field_validator("key")
    @classmethod
    def _key_form(cls, key: str) -> str:
        if not _FIELD_KEY.match(key):
            raise ValueError(f"{key!r} is not lower-case letters and '_'")
        return key

    @field_validator("aliases")
    @classmethod
    def _alias_form(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            if not _FIELD_NAME.match(alias):
                raise ValueError(f"{alias!r} must be letters (and '-' or '_'), without spaces")
        return aliases

    @field_validator("names")
    @classmethod
    def _names_given(cls, names: dict[str, str]) -> dict[str, str]:
        for lang, name in names.items():
            if not name.strip():
                raise ValueError(f"the {lang} name is empty")
        return names


#: Keys of the built-in METHANE template, whose names are in the message catalogue.
METHANE_KEYS = (
    "major_incident",
    "location",
    "type",
    "hazards",
    "access",
    "casualties",
    "services",
    "note",
)


class SituationReportConfig(_Strict):
    """The situation report (lägesbild, '!lägesbild'): its template and limits. Without
    'fields' the template is METHANE (Major incident, Exact location, Type, Hazards, Access,
    Number of casualties, Emergency services, and free text; location, type and casualties
    required in the initial report)."""

    fields: list[ReportFieldConfig] | None = Field(
        None,
        min_length=1,
        description="the template's fields in the order they are shown, replacing METHANE",
        examples=[
            [
                {"key": "location", "aliases": ["plats", "sted"], "required": True},
                {
                    "key": "patients",
                    "names": {"sv": "Patienter", "nb": "Pasienter", "en": "Patients"},
                    "aliases": ["patienter", "pasienter"],
                    "required": True,
                },
                {"key": "note", "aliases": ["ovrigt", "annet"]},
            ]
        ],
    )
    max_field_length: int = Field(
        300, ge=20, le=2000, description="longest value of one field, in characters"
    )
    max_report_length: int = Field(
        2000, ge=20, le=10_000, description="longest report (all values together), in characters"
    )

    @model_validator(mode="after")
    def _template_consistent(self) -> SituationReportConfig:
        from bot.domain.words import fold

        if self.max_report_length < self.max_field_length:
            raise ValueError(
                "situation_report.max_report_length: must be at least max_field_length"
            )
        spellings: dict[str, str] = {}
        for i, item in enumerate(self.fields or ()):
            where = f"situation_report.fields[{i}]"
            if not item.names and item.key not in METHANE_KEYS:
                raise ValueError(
                    f"{where}.names: '{item.key}' is not a METHANE key, so it needs a name"
                )
            for j, spelling in enumerate((item.key, *item.aliases)):
                path = f"{where}.key" if j == 0 else f"{where}.aliases[{j - 1}]"
                owner = spellings.get(fold(spelling))
                if owner is not None:
                    raise ValueError(f"{path}: {spelling!r} already names {owner}")
                spellings[fold(spelling)] = f"{where} ({item.key})"
        return self


_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
ClockTime = Annotated[str, AfterValidator(_matches(_CLOCK_TIME, "a time of day HH:MM"))]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception:
        raise ValueError(f"{_shown(value)} is not a time zone (e.g. Europe/Stockholm)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_zone)]


class ExerciseScheduleConfig(_Strict):
    """A recurring exercise or test alarm: an RFC 5545 rule at a time of day."""

    id: Slug = Field(description="the schedule's own id (in lists and the audit)")
    kind: Literal["exercise", "test"] = Field(
        "exercise", description="'exercise' (the whole chain) or 'test' (a test alarm)"
    )
    rule: str = Field(
        description="RFC 5545 recurrence rule parts (python-dateutil), local to "
        "exercises.time_zone; FREQ is YEARLY, MONTHLY, WEEKLY or DAILY, the time of day is "
        "'time' (no BYHOUR/BYMINUTE)",
        examples=["FREQ=MONTHLY;BYDAY=1TU"],
    )
    time: ClockTime = Field(description="local time of day", examples=["09:00"])
    starting: date = Field(
        date(2026, 1, 1),
        description="the rule's first possible day (sets the phase of INTERVAL rules)",
    )
    region: Slug | None = Field(
        None, description="the initiating region (exercises.default_region if left out)"
    )
    parties: list[Slug] = Field(
        default_factory=list,
        description="the parties that take part (the whole chain if empty)",
    )
    announced: bool = Field(
        False,
        description="the parties are told in advance (at the first reminder); otherwise only "
        "the coordinators know",
    )
    scenario: str = Field("", max_length=200, description="the scenario's headline")

    def recurrence(self, zone: str) -> Recurrence:
        hour, minute = (int(p) for p in self.time.split(":"))
        return Recurrence(self.rule, dt_time(hour, minute), zone, self.starting)


class ExercisesConfig(_Strict):
    """Exercises (!övning) and test alarms (!larmprov) of the coordinators."""

    default_region: Slug | None = Field(
        None,
        description="initiating region of an exercise that names none (the first region if "
        "left out)",
        examples=["uppsala"],
    )
    time_zone: TimeZone = Field(
        "Europe/Stockholm", description="the zone schedules and typed times are local to"
    )
    level: Literal["staff", "reinforcement", "disaster"] = Field(
        "staff", description="the readiness level an exercise is played at"
    )
    reminders_before_min: list[int] = Field(
        default_factory=lambda: [1440, 60],
        description="the coordinators are reminded this many minutes before each scheduled "
        "exercise (default one day and one hour)",
    )
    deadline_min: int = Field(
        60, ge=1, le=1440, description="an exercise not complete this long after it started ends"
    )
    start_grace_min: int = Field(
        15,
        ge=0,
        le=1440,
        description="a scheduled exercise whose time passed more than this long ago (the bot "
        "was down) is not started late: the coordinators are asked instead",
    )
    trend_count: int = Field(
        5, ge=1, le=50, description="previous exercises the report's trend compares with"
    )
    email: list[Email] = Field(
        default_factory=list,
        description="the coordinators' function addresses: reminders and results by e-mail",
        examples=[["beredskap@regionuppsala.example"]],
    )
    schedules: list[ExerciseScheduleConfig] = Field(
        default_factory=list,
        description="recurring exercises and test alarms",
        examples=[
            [
                {
                    "id": "manadsprov",
                    "kind": "test",
                    "rule": "FREQ=MONTHLY;BYDAY=1TU",
                    "time": "09:00",
                }
            ]
        ],
    )

    @field_validator("reminders_before_min")
    @classmethod
    def _reminders(cls, values: list[int]) -> list[int]:
        if any(v < 1 or v > 30 * 24 * 60 for v in values):
            raise ValueError("each reminder is 1 minute to 30 days before the exercise")
        _no_duplicates(values)
        return values

    @model_validator(mode="after")
    def _schedules_fire(self) -> ExercisesConfig:
        problems: list[str] = []
        seen: set[str] = set()
        now = datetime.now(UTC)
        for i, schedule in enumerate(self.schedules):
            where = f"exercises.schedules[{i}]"
            if schedule.id in seen:
                problems.append(f"{where}.id: duplicate id {schedule.id!r}")
            seen.add(schedule.id)
            try:
                recurrence = schedule.recurrence(self.time_zone)
            except RecurrenceError as problem:
                problems.append(f"{where}.rule: {problem}")
                continue
            if not recurrence.fires_within_horizon(now):
                problems.append(
                    f"{where}.rule: never fires (no occurrence in the next five years)"
                )
        _raise(problems)
        return self


class Config(_Strict):
    """The whole configuration file."""

    matrix: MatrixConfig
    storage: StorageConfig = Field(default_factory=StorageConfig)
    healthcare_region: HealthcareRegionConfig
    chain: ChainConfig = Field(default_factory=ChainConfig)
    escalation: EscalationConfig = Field(
        default_factory=default_escalation,
        description="the default escalation policy of every party without its own. Without "
        "this table: remind after 5 min, tell the initiating duty officer after 10, send the "
        "alarm by SMS and e-mail after 15 and again every 10 min three more times, and remind "
        "a party to pledge 10 min after an acknowledgement without enough transports",
    )
    regions: list[RegionConfig] = Field(min_length=1)
    parties: list[OtherPartyConfig] = Field(default_factory=list)
    bridges: BridgesConfig | None = Field(
        None,
        description="SMS and e-mail; without this table alarms go to Matrix rooms only",
    )
    situation_report: SituationReportConfig = Field(default_factory=SituationReportConfig)
    exercises: ExercisesConfig = Field(default_factory=ExercisesConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        problems: list[str] = []
        seen_ids: dict[str, str] = {}
        seen_rooms: dict[str, str] = {}
        for where, party in self._parties_with_paths():
            if party.id in seen_ids:
                problems.append(
                    f"{where}.id: duplicate id {party.id!r} (also {seen_ids[party.id]})"
                )
            seen_ids.setdefault(party.id, where)
            if party.room in seen_rooms:
                problems.append(
                    f"{where}.room: room {party.room} is already the room of "
                    f"{seen_rooms[party.room]}"
                )
            seen_rooms.setdefault(party.room, where)
        coordination = self.healthcare_region.coordination_room
        if coordination is not None and coordination in seen_rooms:
            problems.append(
                "healthcare_region.coordination_room: must be its own room, not the room of "
                + seen_rooms[coordination]
            )
        region_ids = {r.id for r in self.regions}
        national = [p for p in self.parties if p.kind == "national_duty_officer"]
        if len(national) > 1:
            problems.append("parties: at most one national_duty_officer")
        blood_regions: set[str] = set()
        for i, party in enumerate(self.parties):
            if party.kind == "blood_centre":
                if party.region is None:
                    problems.append(f"parties[{i}].region: a blood centre must name its region")
                elif party.region not in region_ids:
                    problems.append(f"parties[{i}].region: unknown region {party.region!r}")
                elif party.region in blood_regions:
                    problems.append(
                        f"parties[{i}].region: region {party.region!r} already has a blood centre"
                    )
                else:
                    blood_regions.add(party.region)
            elif party.region is not None:
                problems.append(f"parties[{i}].region: only a blood centre belongs to a region")
        problems += self._the_bot_is_nobody_else()
        problems += self._check_backup_contacts()
        problems += self._check_exercises(seen_ids, region_ids)
        _raise(problems)
        return self

    def _check_exercises(self, party_ids: dict[str, str], region_ids: set[str]) -> list[str]:
        """Exercises name regions and parties that exist."""
        problems: list[str] = []
        ex = self.exercises
        if ex.default_region is not None and ex.default_region not in region_ids:
            problems.append(f"exercises.default_region: unknown region {ex.default_region!r}")
        for i, schedule in enumerate(ex.schedules):
            where = f"exercises.schedules[{i}]"
            if schedule.region is not None and schedule.region not in region_ids:
                problems.append(f"{where}.region: unknown region {schedule.region!r}")
            problems += [
                f"{where}.parties[{j}]: unknown party {p!r}"
                for j, p in enumerate(schedule.parties)
                if p not in party_ids
            ]
        return problems

    def exercise_region(self, region_id: str | None = None) -> str:
        """The initiating region of an exercise: the one given, else the config's default."""
        return region_id or self.exercises.default_region or self.regions[0].id

    def _parties_with_paths(self) -> list[tuple[str, PartyConfig]]:
        return [
            *((f"regions[{i}]", p) for i, p in enumerate(self.regions)),
            *((f"parties[{i}]", p) for i, p in enumerate(self.parties)),
        ]

    def _the_bot_is_nobody_else(self) -> list[str]:
        """The bot's own account, address and number are not a person's or a party's: the bot
        would answer itself, alarm itself, or take its own mail for a reply."""
        problems: list[str] = []
        bot = self.matrix.user_id
        people = [
            (f"healthcare_region.coordinators[{j}]", u)
            for j, u in enumerate(self.healthcare_region.coordinators)
        ]
        for where, party in self._parties_with_paths():
            for key in ("duty_officers", "members", "backup_contacts"):
                people += [(f"{where}.{key}[{j}]", u) for j, u in enumerate(getattr(party, key))]
        problems += [
            f"{where}: {bot} is the bot itself (matrix.user_id)"
            for where, user in people
            if user == bot
        ]
        bridges = self.bridges
        mail = bridges.email if bridges is not None else None
        if mail is not None:
            own = RecipientAddresses([mail.address, *mail.accept])
            for where, party in self._parties_with_paths():
                problems += [
                    f"{where}.email[{j}]: {address} is the bot's own address "
                    "(bridges.email.address or accept): alarms would come back as replies"
                    for j, address in enumerate(party.email)
                    if own.covers(address)
                ]
        sms = bridges.sms if bridges is not None else None
        if sms is not None:
            own_number = normalize_destination("sms", sms.sender_id)
            for where, party in self._parties_with_paths():
                problems += [
                    f"{where}.sms[{j}]: {number} is the bot's own number (bridges.sms.sender_id)"
                    for j, number in enumerate(party.sms)
                    if normalize_destination("sms", number) == own_number
                ]
        return problems

    def _check_backup_contacts(self) -> list[str]:
        """A 'notify_backup' step needs someone to notify: a config error, not a silent gap."""
        problems: list[str] = []
        for where, party in self._parties_with_paths():
            if party.backup_contacts:
                continue
            own = party.escalation is not None
            policy = self.policy_for(party)
            for j, step in enumerate(policy.steps):
                if step.action != "notify_backup":
                    continue
                if own:
                    problems.append(
                        f"{where}.escalation.steps[{j}].action: 'notify_backup' needs "
                        f"{where}.backup_contacts, which is empty"
                    )
                else:
                    problems.append(
                        f"{where}.backup_contacts: escalation.steps[{j}] is 'notify_backup', "
                        "so this party needs backup contacts (or an escalation of its own)"
                    )
                break
        return problems

    # Convenience look-ups used all over the bot; cheap enough to compute on demand.
    def all_parties(self) -> list[PartyConfig]:
        return [*self.regions, *self.parties]

    def bridge_channels(self) -> tuple[str, ...]:
        """The non-Matrix channels the bot can send on: ``sms`` and/or ``email``."""
        return () if self.bridges is None else self.bridges.channels()

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every secret of the config with its key path, to check they resolve before start."""
        refs: list[tuple[str, SecretRef]] = [("matrix.password", self.matrix.password)]
        if self.matrix.store_passphrase is not None:
            refs.append(("matrix.store_passphrase", self.matrix.store_passphrase))
        b = self.bridges
        if b is not None:
            refs.append(("bridges.secret", b.secret))
            if b.http.gateway_secret is not None:
                refs.append(("bridges.http.gateway_secret", b.http.gateway_secret))
            if b.sms is not None:
                refs += [
                    (f"bridges.sms.gateways[{i}].password", g.password)
                    for i, g in enumerate(b.sms.gateways)
                ]
            if b.email is not None:
                refs += [
                    (f"bridges.email.relays[{i}].password", r.password)
                    for i, r in enumerate(b.email.relays)
                    if r.password is not None
                ]
        return refs

    def links_enabled(self) -> bool:
        """Alarm e-mail carries an acknowledge link (needs the public URL of the endpoints)."""
        return (
            self.bridges is not None
            and self.bridges.email is not None
            and self.bridges.http.public_base_url is not None
        )

    def party_for_destination(self, channel: str, destination: str) -> PartyConfig | None:
        """The party a number or address belongs to (for the language of an answer), compared
        in the form reply codes are bound to."""
        wanted = normalize_destination(channel, destination)
        if wanted is None:
            return None
        for party in self.all_parties():
            mine = party.sms if channel == "sms" else party.email
            if any(normalize_destination(channel, d) == wanted for d in mine):
                return party
        return None

    def policy_for(self, party: PartyConfig) -> EscalationConfig:
        """The escalation policy of ``party``: its own, or the default."""
        return party.escalation if party.escalation is not None else self.escalation

    def party(self, party_id: str) -> PartyConfig | None:
        return next((p for p in self.all_parties() if p.id == party_id), None)

    def party_for_room(self, room_id: str) -> PartyConfig | None:
        return next((p for p in self.all_parties() if p.room == room_id), None)

    def region(self, region_id: str) -> RegionConfig | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def known_rooms(self) -> set[str]:
        rooms = {p.room for p in self.all_parties()}
        if self.healthcare_region.coordination_room:
            rooms.add(self.healthcare_region.coordination_room)
        return rooms

    def room_language(self, room_id: str) -> str:
        party = self.party_for_room(room_id)
        if party is not None:
            return party.language
        return self.healthcare_region.language


class LoadedConfig:
    """A validated config together with the folder its relative paths are relative to."""

    def __init__(self, config: Config, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.base_dir / p)

    def secret_problems(self) -> list[str]:
        """Every secret resolved where the bot runs, checked against its rules (length,
        characters, a private regular file); one line per secret that fails, with its key
        path, never the secret."""
        problems = []
        for key, ref in self.config.secret_refs():
            try:
                ref.resolve(self.base_dir)
            except ConfigError as exc:
                problems.append(f"{key}: {exc}")
        return problems

    def check_secrets(self) -> None:
        """:meth:`secret_problems` as a :class:`ConfigError`: the start-up check of the bot
        and of ``check-config`` alike."""
        problems = self.secret_problems()
        if problems:
            raise ConfigError("\n".join(problems))

    @property
    def state_dir(self) -> Path:
        return self.path(self.config.storage.state_dir)

    @property
    def database_url(self) -> str:
        url = self.config.storage.database_url
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str(self.base_dir / rest)
        return url


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(
            ("function-", "tagged-union")
        ):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_KEYED = re.compile(r"^[a-z_]+(\[\d+\])*(\.[a-z_]+(\[\d+\])*)*: ")


def _describe(error: dict[str, Any]) -> list[str]:
    """One pydantic error as lines ``key.path: what is wrong``. A model's own check may report
    several problems, one per line, each naming its key: absolute (``bridges.http.port: …``,
    as the top-level checks do) or relative to the model (``backoff_initial_s: …``)."""
    loc = error.get("loc", ())
    where = _key_path(loc)
    kind = error.get("type")
    if kind == "missing":
        return [f"{where}: missing required key"]
    if kind == "extra_forbidden":
        return [f"{where}: unknown key"]
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    lines = []
    for line in msg.split("\n"):
        if _KEYED.match(line) and (not loc or line.startswith(where + ".")):
            lines.append(line)  # names its key path from the top
        elif loc and _KEYED.match(line):
            lines.append(f"{where}.{line}")  # names a key of the model that checked it
        else:
            lines.append(f"{where}: {line}")
    return lines


def parse_config(data: dict[str, Any], *, from_file: bool = False) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` with one line per problem.

    ``from_file``: the document is a config file, which may not carry inline secrets (a
    config built in code by a test may)."""
    try:
        return Config.model_validate(data, context={"from_file": from_file})
    except ValidationError as exc:
        lines = [
            line
            for e in exc.errors(include_input=False, include_url=False)
            for line in _describe(e)
        ]
        raise ConfigError("\n".join(lines)) from None
    except (RecursionError, MemoryError):
        raise ConfigError("the config is nested too deeply or too large to check") from None


def load_config(path: Path | str) -> LoadedConfig:
    """Read and validate a config file; every failure is a :class:`ConfigError` whose lines
    name the key path (or the file) and what is wrong, never a traceback."""
    path = Path(path)
    raw = read_private_file(path, "the config file", MAX_CONFIG_FILE, private=False)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("the config file is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    except (RecursionError, MemoryError):
        raise ConfigError("not usable TOML: nested too deeply") from None
    return LoadedConfig(parse_config(data, from_file=True), path.resolve().parent)


def redacted_dump(config: Config) -> dict[str, Any]:
    """The config as logged at start: every secret replaced by where it comes from."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretRef):
            return f"<secret from {value.describe()}>"
        if isinstance(value, BaseModel):
            return {k: walk(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return walk(config)
