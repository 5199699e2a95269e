"""``larmkedja report`` and ``larmkedja audit verify`` on a real database file, as an operator
runs them after an incident (the night is played through the command layer on a fake clock)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from chain_world import Harness, duty_officer, mellansverige, room

from bot.cli import EXIT_BROKEN, EXIT_CONFIG, EXIT_NOT_FOUND, main
from bot.clock import FakeClock
from bot.i18n import Catalog
from storage.database import Database

ROOT = Path(__file__).resolve().parents[2]


async def play(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    bot = Harness(db=db, config=mellansverige(), clock=FakeClock(), catalog=Catalog.load())
    uppsala, tib = room("uppsala"), duty_officer("uppsala")
    await bot.say(uppsala, tib, "!händelse katastrofläge Bussolycka E4")
    await bot.say(uppsala, tib, "!larma")
    bot.later(4)
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera 5")
    await bot.say(uppsala, tib, "!lägesbild plats=E4 Knivsta typ=Buss antal=40")
    await bot.say(uppsala, tib, "!logg Beslut: förstärkningsläge")
    await bot.say(uppsala, tib, "!avlarma")
    await db.close()


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config file and the database of one played night beside it."""
    folder = tmp_path_factory.mktemp("night")
    asyncio.run(play(folder / "larmkedja.db"))
    secret = folder / "bot-password"  # secrets live in private files, never inline
    secret.write_text("not-a-secret-but-private\n", encoding="utf-8")
    secret.chmod(0o600)
    config = {
        "matrix": {
            "homeserver": "https://matrix.example.org",
            "user_id": "@larmkedja:example.org",
            "password": {"file": str(secret)},
        },
        "storage": {"database_url": "sqlite+aiosqlite:///larmkedja.db"},
        "healthcare_region": {
            "id": "mellansverige",
            "name": "Sjukvårdsregion Mellansverige",
            "coordination_room": "!samordning:example.org",
        },
        "regions": [
            {
                "id": "uppsala",
                "name": "Region Uppsala",
                "room": "!uppsala:example.org",
                "duty_officers": ["@tib.uppsala:example.org"],
            }
        ],
    }
    path = folder / "larmkedja.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_as_json_csv_and_html(night: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "H-1", "--format", "json", "--config", str(night))
    assert code == 0
    data = json.loads(out)
    assert data["incident"]["id"] == "H-1"
    assert data["figures"]["acknowledged"] == 1
    dalarna = next(p for p in data["parties"] if p["party"] == "dalarna")
    assert dalarna["time_to_ack_s"] == 240
    assert [v["number"] for v in data["situation_report"]["versions"]] == [1]
    assert data["log"][0]["text"] == "Beslut: förstärkningsläge"
    code, out, _ = run(
        capsys, "report", "h1", "--format", "csv", "--config", str(night), "--lang", "en"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["text"] == "Major incident confirmed (Disaster) by @tib.uppsala"
    target = night.parent / "report.html"
    code, _, err = run(capsys, "report", "H-1", "--config", str(night), "-o", str(target))
    assert code == 0
    assert "written to" in err
    assert target.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_report_of_nothing(night: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "report", "H-9", "--config", str(night))
    assert (code, err.strip()) == (EXIT_NOT_FOUND, "larmkedja report: no incident H-9")
    code, _, err = run(capsys, "report", "bus", "--config", str(night))
    assert code == EXIT_NOT_FOUND
    assert "not an incident id" in err
    code, _, err = run(capsys, "report", "H-1", "--config", str(night.parent / "none.toml"))
    assert code == EXIT_CONFIG


def test_audit_verify_intact_then_edited(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a copy of the night, so the other tests keep theirs intact
    copy = tmp_path / "larmkedja.db"
    copy.write_bytes((night.parent / "larmkedja.db").read_bytes())
    config = tmp_path / "larmkedja.toml"
    config.write_text(night.read_text(encoding="utf-8"), encoding="utf-8")
    code, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert code == 0, out
    assert "hash chain: intact" in out
    with sqlite3.connect(copy) as conn:
        head_seq, head_hash = conn.execute(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    exported = tmp_path / "samordning.txt"
    exported.write_text(
        f"larmkedja: ⚓ … [larmkedja-audit seq={head_seq} sha256={head_hash}]\n", encoding="utf-8"
    )
    code, out, _ = run(
        capsys, "audit", "verify", "--config", str(config), "--anchors", str(exported)
    )
    assert code == 0
    assert "anchors: 1 checked, 1 match" in out
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE audit_log SET actor = 'forged' WHERE seq = 3")
    code, out, _ = run(
        capsys, "audit", "verify", "--config", str(config), "--anchors", str(exported)
    )
    assert code == EXIT_BROKEN
    assert "hash chain: BROKEN at entry 3 (edited)" in out


def test_the_installed_command_runs(night: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "verify", "--config", str(night)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "hash chain: intact" in done.stdout
