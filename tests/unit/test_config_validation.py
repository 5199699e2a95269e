"""A malformed config is one specific line with its key path and a non-zero exit, never a
traceback; the generated sample config is valid and identical to deploy/sample-config.toml."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from bot.cli import EXIT_CONFIG, main
from bot.config import load_config, redacted_dump
from bot.sample_config import generate

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
        "matrix.password: give exactly one of env, file or value",
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
    assert "cannot read config file" in capsys.readouterr().err


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
    monkeypatch.setenv("LARMKEDJA_PASSWORD", "x")
    assert main(["check-config", str(ROOT / "deploy" / "sample-config.toml")]) == 0


def test_redacted_dump_hides_inline_secrets(tmp_path: Path) -> None:
    data = valid()
    data["matrix"]["password"] = {"value": "hunter2-inline"}
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    loaded = load_config(path)
    assert "hunter2-inline" not in repr(redacted_dump(loaded.config))
    assert "hunter2-inline" not in repr(loaded.config)
