"""The configuration model: one TOML file, validated completely before anything starts.

Why a model and not a dict: every error must name the key path and what is wrong (an operator
editing the file at 3 a.m. needs ``regions[2].duty_officers: must name at least one duty
officer``, not a traceback), unknown keys are rejected (a typo must not silently disable a
party), and the sample config in ``deploy/`` is generated from this same model so it can never
drift from the code.

Secrets (the bot's password, the crypto-store passphrase, later gateway credentials) are
:class:`SecretRef` values: they name an environment variable or a file, are resolved at start
and are never printed, logged or echoed in an error.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

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
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return check


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


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is one line per problem, no secrets."""


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt key must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """Where a secret comes from: exactly one of ``env`` or ``file`` (or, for tests, ``value``)."""

    env: str | None = Field(None, description="name of an environment variable holding it")
    file: Path | None = Field(None, description="path of a file holding it (first line)")
    value: SecretStr | None = Field(
        None, description="the secret itself; only for throwaway setups", repr=False
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("env", "file", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env, file or value")
        return self

    def describe(self) -> str:
        """Where the secret lives, for messages; never the secret itself."""
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return "inline value"

    def resolve(self, base_dir: Path | None = None) -> SecretStr:
        if self.value is not None:
            return self.value
        if self.env is not None:
            raw = os.environ.get(self.env)
            if not raw:
                raise ConfigError(f"environment variable {self.env} is not set or empty")
            return SecretStr(raw)
        assert self.file is not None
        path = self.file if self.file.is_absolute() or base_dir is None else base_dir / self.file
        try:
            raw = path.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError):
            raise ConfigError(f"secret file {path} cannot be read or is empty") from None
        if not raw:
            raise ConfigError(f"secret file {path} is empty")
        return SecretStr(raw)


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
    device_name: str = Field("larmkedja", description="display name of the bot's device")
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


class StorageConfig(_Strict):
    """Where the bot keeps its state. Relative paths are relative to the config file."""

    database_url: str = Field(
        "sqlite+aiosqlite:///larmkedja.db",
        description="SQLAlchemy async URL; SQLite by default, PostgreSQL supported",
    )
    state_dir: Path = Field(
        Path("state"),
        description="crypto store, device credentials and cross-signing keys (keep private)",
    )


class HealthcareRegionConfig(_Strict):
    """The healthcare region (sjukvårdsregion) whose alarm chain this bot runs."""

    id: Slug = Field(examples=["mellansverige"])
    name: str = Field(min_length=1, examples=["Sjukvårdsregion Mellansverige"])
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
    name: str = Field(min_length=1, examples=["Region Uppsala"])
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


class SmsGatewayConfig(_Strict):
    """One SMS gateway (Kannel's ``sendsms`` interface). Several are tried in order."""

    url: HttpUrl = Field(
        description="the gateway's sendsms URL, without credentials or query",
        examples=["http://127.0.0.1:13013/cgi-bin/sendsms"],
    )
    username: str = Field(min_length=1, description="sendsms user", examples=["larmkedja"])
    password: SecretRef = Field(
        description="sendsms password", examples=[{"env": "LARMKEDJA_SMS_PASSWORD"}]
    )
    name: str = Field("", description="what logs call this gateway (default: host:port)")


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
    sender_id: str = Field(
        "larmkedja",
        min_length=1,
        max_length=16,
        description="the sender number or name the gateway puts on our SMS (replies come to "
        "the number the gateway routes to the bot)",
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

    host: str = Field(min_length=1, examples=["smtp.region.example"])
    port: int = Field(587, ge=1, le=65535)
    username: str | None = Field(None, description="login, if the relay wants one")
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
    sender_name: str = Field("larmkedja", description="display name in From")
    message_id_domain: str | None = Field(
        None, description="domain of Message-IDs (default: the domain of 'address')"
    )
    relays: list[SmtpRelayConfig] = Field(
        min_length=1,
        description="outgoing relays in order of preference",
        examples=[[{"host": "smtp.region.example", "port": 587}]],
    )
    listen_host: str = Field(
        "127.0.0.1",
        description="where the reply listener (SMTP) listens; the organisation's mail server "
        "relays mail for 'address' here",
    )
    listen_port: int = Field(2525, ge=0, le=65535, description="0: any free port")
    accept: list[str] = Field(
        default_factory=list,
        description="addresses or domains the listener takes mail for (default: 'address')",
    )
    allowed_clients: list[str] = Field(
        default_factory=list,
        description="networks that may deliver replies (default: any); e.g. the mail server",
        examples=[["127.0.0.1/32"]],
    )
    rate_per_s: float = Field(10.0, gt=0, le=1000, description="mails per second at most")


class HttpConfig(_Strict):
    """The bot's HTTP endpoints: health, metrics, SMS gateway callbacks, acknowledge-by-link."""

    host: str = Field("127.0.0.1", description="listen address (loopback by default)")
    port: int = Field(8080, ge=0, le=65535, description="0: any free port")
    public_base_url: HttpUrl | None = Field(
        None,
        description="how recipients reach these endpoints (behind a reverse proxy); without "
        "it e-mail carries no acknowledge link",
        examples=["https://larmkedja.region.example"],
    )
    gateway_secret: SecretRef | None = Field(
        None,
        description="shared secret in the SMS gateway's callback URLs (at least 16 characters)"
        "; needed for SMS replies and delivery reports",
        examples=[{"env": "LARMKEDJA_GATEWAY_SECRET"}],
    )


class BridgesConfig(_Strict):
    """Channels besides Matrix: every alarm also goes out by SMS and e-mail, and a reply with
    the message's code (or the e-mail's link) acknowledges."""

    secret: SecretRef = Field(
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
        if self.sms is not None and self.http.gateway_secret is None:
            raise ValueError(
                "bridges.http.gateway_secret: SMS replies and delivery reports need it"
            )
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        seen_ids: dict[str, str] = {}
        seen_rooms: dict[str, str] = {}
        for section, parties in (("regions", self.regions), ("parties", self.parties)):
            for i, party in enumerate(parties):
                where = f"{section}[{i}]"
                if party.id in seen_ids:
                    raise ValueError(
                        f"{where}.id: duplicate id {party.id!r} (also {seen_ids[party.id]})"
                    )
                seen_ids[party.id] = where
                if party.room in seen_rooms:
                    owner = seen_rooms[party.room]
                    raise ValueError(
                        f"{where}.room: room {party.room} is already the room of {owner}"
                    )
                seen_rooms[party.room] = where
        coordination = self.healthcare_region.coordination_room
        if coordination is not None and coordination in seen_rooms:
            raise ValueError(
                "healthcare_region.coordination_room: must be its own room, not the room of "
                + seen_rooms[coordination]
            )
        region_ids = {r.id for r in self.regions}
        national = [p for p in self.parties if p.kind == "national_duty_officer"]
        if len(national) > 1:
            raise ValueError("parties: at most one national_duty_officer")
        blood_regions: set[str] = set()
        for i, party in enumerate(self.parties):
            if party.kind == "blood_centre":
                if party.region is None:
                    raise ValueError(f"parties[{i}].region: a blood centre must name its region")
                if party.region not in region_ids:
                    raise ValueError(f"parties[{i}].region: unknown region {party.region!r}")
                if party.region in blood_regions:
                    raise ValueError(
                        f"parties[{i}].region: region {party.region!r} already has a blood centre"
                    )
                blood_regions.add(party.region)
            elif party.region is not None:
                raise ValueError(f"parties[{i}].region: only a blood centre belongs to a region")
        if self.matrix.user_id in {u for p in self.all_parties() for u in p.duty_officers}:
            raise ValueError("matrix.user_id: the bot cannot be one of the duty officers")
        self._check_backup_contacts()
        return self

    def _check_backup_contacts(self) -> None:
        """A 'notify_backup' step needs someone to notify: a config error, not a silent gap."""
        for section, parties in (("regions", self.regions), ("parties", self.parties)):
            for i, party in enumerate(parties):
                if party.backup_contacts:
                    continue
                own = party.escalation is not None
                policy = self.policy_for(party)
                for j, step in enumerate(policy.steps):
                    if step.action != "notify_backup":
                        continue
                    where = f"{section}[{i}]"
                    if own:
                        raise ValueError(
                            f"{where}.escalation.steps[{j}].action: 'notify_backup' needs "
                            f"{where}.backup_contacts, which is empty"
                        )
                    raise ValueError(
                        f"{where}.backup_contacts: escalation.steps[{j}] is 'notify_backup', so "
                        "this party needs backup contacts (or an escalation of its own)"
                    )

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


def _describe(error: dict[str, Any]) -> str:
    loc = error.get("loc", ())
    msg = str(error.get("msg", "invalid"))
    kind = error.get("type")
    if kind == "missing":
        return f"{_key_path(loc)}: missing required key"
    if kind == "extra_forbidden":
        return f"{_key_path(loc)}: unknown key"
    msg = msg.removeprefix("Value error, ")
    if not loc and re.match(r"^[a-z_]+(\[\d+\])?[.:]", msg):
        return msg  # a cross-field check that already names its key path
    if loc and msg.startswith(_key_path(loc) + "."):
        return msg  # a check of a sub-table that names the key inside it
    return f"{_key_path(loc)}: {msg}"


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` with one line per problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors(include_input=False, include_url=False)]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: Path | str) -> LoadedConfig:
    """Read and validate a config file; every failure is a :class:`ConfigError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return LoadedConfig(parse_config(data), path.resolve().parent)


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
