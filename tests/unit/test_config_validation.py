"""A malformed config is one specific line with its key path and a non-zero exit, never a
traceback; the generated sample config is valid and identical to deploy/sample-config.toml."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from bot.cli import EXIT_CONFIG, main
from bot.config import ConfigError, parse_config, redacted_dump
from bot.sample_config import generate
from commands.parties import chain_for

ROOT = Path(__file__).resolve().parents[2]


def valid() -> dict[str, Any]:
    return {
        "matrix": {
            "homeserver": "http://127.0.0.1:8008",
            "user_id": "@larmkedja:localhost",
            "password": {"env": "LK_TEST_PASSWORD"},
        },
        "healthcare_region": {
            "id": "mellansverige",
            "name": "Sjukvårdsregion Mellansverige",
            "coordination_room": "!samordning:localhost",
        },
        "regions": [
            {
                "id": "uppsala",
                "name": "Region Uppsala",
                "room": "!uppsala:localhost",
                "duty_officers": ["@tib.uppsala:localhost"],
            },
            {
                "id": "dalarna",
                "name": "Region Dalarna",
                "room": "!dalarna:localhost",
                "duty_officers": ["@tib.dalarna:localhost"],
                "language": "sv",
            },
        ],
        "parties": [
            {
                "id": "blodcentralen-uppsala",
                "name": "Blodcentralen",
                "kind": "blood_centre",
                "region": "uppsala",
                "room": "!blod:localhost",
                "duty_officers": ["@blod:localhost"],
            },
        ],
    }


def _with(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(valid())
    change(data)
    return data


_GATEWAY = {
    "url": "http://127.0.0.1:13013/cgi-bin/sendsms",
    "username": "u",
    "password": {"env": "P"},
}
_SMS = {"gateways": [_GATEWAY]}
_EMAIL = {"address": "larm@region.example", "relays": [{"host": "smtp.region.example"}]}
_BRIDGES = {"secret": {"env": "S"}, "http": {"gateway_secret": {"env": "G"}}}

MALFORMED: list[tuple[str, Any, str]] = [
    ("missing key", lambda d: d["matrix"].pop("user_id"), "matrix.user_id: missing required key"),
    ("missing section", lambda d: d.pop("healthcare_region"), "healthcare_region: missing"),
    (
        "wrong type",
        lambda d: d["matrix"].__setitem__("sync_timeout_ms", "fast"),
        "matrix.sync_timeout_ms:",
    ),
    (
        "unknown key",
        lambda d: d["regions"][1].__setitem__("duty_officer", ["@x:localhost"]),
        "regions[1].duty_officer: unknown key",
    ),
    ("unknown top-level key", lambda d: d.__setitem__("regoins", []), "regoins: unknown key"),
    (
        "duplicate region id",
        lambda d: d["regions"][1].__setitem__("id", "uppsala"),
        "regions[1].id: duplicate id 'uppsala'",
    ),
    (
        "room shared by two parties",
        lambda d: d["regions"][1].__setitem__("room", "!uppsala:localhost"),
        "regions[1].room:",
    ),
    (
        "bad room id",
        lambda d: d["regions"][0].__setitem__("room", "uppsala-room"),
        "regions[0].room:",
    ),
    (
        "unknown region of a blood centre",
        lambda d: d["parties"][0].__setitem__("region", "skane"),
        "parties[0].region: unknown region 'skane'",
    ),
    (
        "bad Matrix id",
        lambda d: d["regions"][0].__setitem__("duty_officers", ["tib.uppsala"]),
        "regions[0].duty_officers[0]:",
    ),
    (
        "empty duty officer list",
        lambda d: d["regions"][0].__setitem__("duty_officers", []),
        "regions[0].duty_officers:",
    ),
    (
        "unknown language",
        lambda d: d["regions"][0].__setitem__("language", "de"),
        "regions[0].language:",
    ),
    ("no regions", lambda d: d.__setitem__("regions", []), "regions:"),
    (
        "negative requirement",
        lambda d: d.__setitem__("chain", {"required_transports": -1}),
        "chain.required_transports:",
    ),
    (
        "secret with two sources",
        lambda d: d["matrix"].__setitem__("password", {"env": "A", "file": "b"}),
        "matrix.password: give exactly one of env or file",
    ),
    (
        "bad phone number",
        lambda d: d["regions"][0].__setitem__("sms", ["call me"]),
        "regions[0].sms[0]:",
    ),
    (
        "coordination room is a party room",
        lambda d: d["healthcare_region"].__setitem__("coordination_room", "!dalarna:localhost"),
        "healthcare_region.coordination_room:",
    ),
    # -- escalation ------------------------------------------------------------------------
    (
        "unknown escalation action",
        lambda d: d.__setitem__("escalation", {"steps": [{"after_min": 5, "action": "call"}]}),
        "escalation.steps[0].action: Input should be 'remind', 'send', 'notify_backup' or "
        "'notify_initiator'",
    ),
    (
        "unknown escalation channel",
        lambda d: d.__setitem__(
            "escalation", {"steps": [{"after_min": 5, "action": "send", "channels": ["fax"]}]}
        ),
        "escalation.steps[0].channels[0]: Input should be 'room', 'sms' or 'email'",
    ),
    (
        "negative delay",
        lambda d: d.__setitem__("escalation", {"steps": [{"after_min": -1, "action": "remind"}]}),
        "escalation.steps[0].after_min: Input should be greater than or equal to 0",
    ),
    (
        "send without channels",
        lambda d: d.__setitem__("escalation", {"steps": [{"after_min": 5, "action": "send"}]}),
        "escalation.steps[0].channels: a 'send' step must name at least one channel",
    ),
    (
        "channels on a reminder",
        lambda d: d.__setitem__(
            "escalation", {"steps": [{"after_min": 5, "action": "remind", "channels": ["sms"]}]}
        ),
        "escalation.steps[0].channels: only a 'send' step has channels, not 'remind'",
    ),
    (
        "a step without a delay",
        lambda d: d.__setitem__("escalation", {"steps": [{"action": "remind"}]}),
        "escalation.steps[0].after_min: missing required key",
    ),
    (
        "misspelt escalation key",
        lambda d: d.__setitem__("escalation", {"steps": [], "repeat_every": 10}),
        "escalation.repeat_every: unknown key",
    ),
    (
        "negative repeats",
        lambda d: d.__setitem__("escalation", {"steps": [], "max_repeats": -1}),
        "escalation.max_repeats:",
    ),
    (
        "default notify_backup and a party without backup contacts",
        lambda d: (
            d.__setitem__("escalation", {"steps": [{"after_min": 5, "action": "notify_backup"}]}),
            d["regions"][1].__setitem__("backup_contacts", ["@reserv:localhost"]),
            d["parties"][0].__setitem__("backup_contacts", ["@reserv:localhost"]),
        ),
        "regions[0].backup_contacts: escalation.steps[0] is 'notify_backup', so this party "
        "needs backup contacts",
    ),
    (
        "own notify_backup without backup contacts",
        lambda d: d["regions"][1].__setitem__(
            "escalation",
            {
                "steps": [
                    {"after_min": 5, "action": "remind"},
                    {"after_min": 5, "action": "notify_backup"},
                ]
            },
        ),
        "regions[1].escalation.steps[1].action: 'notify_backup' needs "
        "regions[1].backup_contacts, which is empty",
    ),
    # -- bridges ---------------------------------------------------------------------------
    (
        "SMS without a gateway secret",
        lambda d: d.__setitem__("bridges", {"secret": {"env": "S"}, "sms": _SMS}),
        "bridges.http.gateway_secret: SMS replies and delivery reports need it",
    ),
    (
        "gateway URL with credentials in the query",
        lambda d: d.__setitem__(
            "bridges",
            {
                **_BRIDGES,
                "sms": {"gateways": [{**_GATEWAY, "url": "http://k:13013/sendsms?pass=x"}]},
            },
        ),
        "bridges.sms.gateways[0].url:",
    ),
    (
        "SMTP login without password",
        lambda d: d.__setitem__(
            "bridges",
            {**_BRIDGES, "email": {**_EMAIL, "relays": [{"host": "smtp", "username": "u"}]}},
        ),
        "bridges.email.relays[0]: give both username and password, or neither",
    ),
    (
        "bot address that is not an address",
        lambda d: d.__setitem__("bridges", {**_BRIDGES, "email": {**_EMAIL, "address": "larm"}}),
        "bridges.email.address:",
    ),
    (
        "misspelt bridge key",
        lambda d: d.__setitem__("bridges", {**_BRIDGES, "sms": {**_SMS, "gatway": []}}),
        "bridges.sms.gatway: unknown key",
    ),
    (
        "no gateways",
        lambda d: d.__setitem__("bridges", {**_BRIDGES, "sms": {"gateways": []}}),
        "bridges.sms.gateways:",
    ),
    (
        "bad backup contact",
        lambda d: d["parties"][0].__setitem__("backup_contacts", ["chefen"]),
        "parties[0].backup_contacts[0]:",
    ),
]


@pytest.mark.parametrize(("what", "change", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_config_is_one_line_with_key_path(
    what: str,
    change: Any,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LK_TEST_PASSWORD", "not-printed-s3cret")
    path = tmp_path / "larmkedja.toml"
    path.write_text(tomli_w.dumps(_with(change)), encoding="utf-8")
    assert main(["check-config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert expected in err[0]
    assert "Traceback" not in err[0]
    assert "not-printed-s3cret" not in err[0]


def test_valid_config_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LK_TEST_PASSWORD", "x")
    path = tmp_path / "ok.toml"
    path.write_text(tomli_w.dumps(valid()), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert "OK (2 regions, 3 parties" in capsys.readouterr().out


def test_escalation_policies_default_override_and_freeze_into_the_chain() -> None:
    data = valid()
    data["escalation"] = {
        "steps": [
            {"after_min": 0.05, "action": "remind"},
            {"after_min": 0.05, "action": "notify_backup"},
            {"after_min": 1, "action": "send", "channels": ["sms", "email", "room"]},
        ],
        "repeat_every_min": 2,
        "max_repeats": 1,
    }
    for party in [*data["regions"], *data["parties"]]:
        party["backup_contacts"] = ["@reserv:localhost"]
    # A party's own policy needs no backup contacts when it does not notify them, and a
    # 'send' by SMS is allowed for a party without numbers (recorded as skipped when it runs).
    data["regions"][1].pop("backup_contacts")
    data["regions"][1]["escalation"] = {
        "steps": [{"after_min": 3, "action": "send", "channels": ["sms"]}],
        "pledge_reminder_min": 5,
    }
    config = parse_config(data)
    chain = chain_for(config, "uppsala")
    dalarna = chain.party("dalarna")
    blood = chain.party("blodcentralen-uppsala")
    assert dalarna is not None
    assert blood is not None
    assert [s.after for s in blood.escalation.steps] == [
        timedelta(seconds=3),
        timedelta(seconds=3),
        timedelta(minutes=1),
    ]
    assert blood.escalation.steps[2].channels == ("sms", "email", "room")
    assert (blood.escalation.repeat_every, blood.escalation.max_repeats) == (
        timedelta(minutes=2),
        1,
    )
    assert blood.escalation.pledge_reminder is None
    assert blood.party.backup_contacts == ("@reserv:localhost",)
    assert [s.action.value for s in dalarna.escalation.steps] == ["send"]
    assert dalarna.escalation.pledge_reminder == timedelta(minutes=5)
    assert dalarna.escalation.repeats == 0


def test_without_an_escalation_table_the_documented_default_applies() -> None:
    config = parse_config(valid())
    policy = config.escalation
    assert [(s.after_min, s.action, s.channels) for s in policy.steps] == [
        (5, "remind", []),
        (5, "notify_initiator", []),
        (5, "send", ["sms", "email"]),
    ]
    assert (policy.repeat_every_min, policy.max_repeats, policy.pledge_reminder_min) == (10, 3, 10)
    description = type(config).model_fields["escalation"].description or ""
    assert "remind after 5 min" in description
    steps_off = valid()
    steps_off["escalation"] = {"steps": []}
    assert chain_for(parse_config(steps_off), "uppsala").parties[0].escalation.steps == ()


def test_unset_secret_names_the_key_and_variable_but_no_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LK_TEST_PASSWORD", raising=False)
    path = tmp_path / "ok.toml"
    path.write_text(tomli_w.dumps(valid()), encoding="utf-8")
    assert main(["check-config", str(path)]) == EXIT_CONFIG
    assert "matrix.password: environment variable LK_TEST_PASSWORD is not set" in (
        capsys.readouterr().err
    )


def test_not_toml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[matrix\nhomeserver = ", encoding="utf-8")
    assert main(["check-config", str(bad)]) == EXIT_CONFIG
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "nope.toml")]) == EXIT_CONFIG
    assert "the config file cannot be read (No such file or directory)" in (
        capsys.readouterr().err
    )


def test_cli_subprocess_exits_nonzero_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "larmkedja.toml"
    path.write_text(tomli_w.dumps(_with(lambda d: d["matrix"].pop("homeserver"))), "utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_CONFIG
    assert proc.stderr.strip().endswith("matrix.homeserver: missing required key")
    assert "Traceback" not in proc.stderr


def test_sample_config_is_generated_valid_and_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    text = generate()
    committed = (ROOT / "deploy" / "sample-config.toml").read_text(encoding="utf-8")
    assert committed == text, "run: larmkedja sample-config > deploy/sample-config.toml"
    for name in (
        "LARMKEDJA_PASSWORD",
        "LARMKEDJA_BRIDGE_SECRET",
        "LARMKEDJA_GATEWAY_SECRET",
        "LARMKEDJA_SMS_PASSWORD",
    ):
        monkeypatch.setenv(name, "x" * 20)
    assert main(["check-config", str(ROOT / "deploy" / "sample-config.toml")]) == 0


def test_check_config_names_an_unset_bridge_secret_by_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LK_TEST_PASSWORD", "x")
    monkeypatch.delenv("LK_UNSET_SMS", raising=False)
    data = valid()
    data["bridges"] = {
        **_BRIDGES,
        "sms": {"gateways": [{**_GATEWAY, "password": {"env": "LK_UNSET_SMS"}}]},
    }
    monkeypatch.setenv("S", "s" * 20)
    monkeypatch.setenv("G", "g" * 20)
    path = tmp_path / "larmkedja.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert main(["check-config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{path}: bridges.sms.gateways[0].password: environment variable LK_UNSET_SMS is not "
        "set or empty"
    ]


def test_redacted_dump_hides_inline_secrets() -> None:
    """A config built in code (a test's) may hold a secret inline; neither the dump logged at
    start nor the model's repr shows it. A config file may not hold one at all."""
    data = valid()
    data["matrix"]["password"] = {"value": "hunter2-inline"}
    config = parse_config(data)
    assert "hunter2-inline" not in repr(redacted_dump(config))
    assert "hunter2-inline" not in repr(config)
    with pytest.raises(ConfigError, match="inline secret is refused") as refused:
        parse_config(data, from_file=True)
    assert "hunter2-inline" not in str(refused.value)


def test_a_reply_finds_its_party_in_any_form_of_the_number_or_address() -> None:
    data = valid()
    data["regions"][1].update(sms=["+46701234567"], email=["TiB@Dalarna.example"])
    config = parse_config(data)
    for sender in ("+46701234567", "46701234567", "0046 70-123 45 67"):
        party = config.party_for_destination("sms", sender)
        assert party is not None, sender
        assert party.id == "dalarna"
    assert config.party_for_destination("sms", "0701234567") is None  # national: another
    party = config.party_for_destination("email", "TiB Dalarna <tib@dalarna.example>")
    assert party is not None
    assert party.id == "dalarna"
    assert config.party_for_destination("email", "tib@uppsala.example") is None
