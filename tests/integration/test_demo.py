"""``larmkedja demo`` end to end, as a user runs it: a subprocess that must exit 0, show the
SMS and e-mail acknowledgements with the bot's answers and the board's channel, and leave
nothing behind (no Synapse, no Kannel, no work directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The demo's work directory goes under tmp_path, so what it leaves is easy to find.
    return subprocess.run(
        [sys.executable, "-m", "bot", "demo", *args],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_demo_plays_the_night_on_every_channel_and_cleans_up(tmp_path: Path) -> None:
    done = run_demo(tmp_path)
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}"
    assert "larmkedja demo: done." in out
    # The alarm at the handsets and in the mailboxes, with reply codes.
    assert "📱 SMS → Region Dalarna (+46701110002):" in out
    assert "│ Svara: KVITTERA " in out
    assert "✉ e-post → tib@dalarna.example:" in out
    # Sörmland acknowledges by SMS: the bot answers by SMS and in the room; the board says so.
    assert "📱 SMS Region Sörmland (+46701110007) → 4600:" in out
    assert "│ Kvitterat: H-1 för Region Sörmland, 8 sekundärtransporter. Tack." in out
    assert "Region Sörmland har kvitterat H-1 via sms" in out
    assert "┃ ✅ Region Sörmland: …0007" in out
    assert "via sms · sekundärtransporter: 8" in out
    # Västmanland acknowledges by e-mail.
    assert "Ämne: Kvitterat: H-1 för Region Västmanland, 6 sekundärtransporter." in out
    assert "via e-post · sekundärtransporter: 6" in out
    # The summary counts SMS and e-mails too.
    assert "What reached each party" in out
    assert "📱17 ✉17" in out
    assert "⚠" not in out.split("What reached each party")[1]  # nothing unencrypted
    assert "Traceback" not in done.stderr, done.stderr
    # Nothing left running or on disk.
    assert processes_mentioning(str(tmp_path)) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("larmkedja-demo-")]


def test_demo_without_kannel_says_how_to_install_it(tmp_path: Path) -> None:
    done = run_demo(tmp_path, BEARERBOX=str(tmp_path / "no-bearerbox"))
    assert done.returncode == 1
    assert "KannelNotInstalledError: Kannel is not installed" in done.stderr
    assert "sudo apt-get install kannel kannel-extras" in done.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("larmkedja-demo-")]


def test_demo_exercise_shows_the_marked_chain_and_its_report(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--exercise")
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}"
    assert "[Samordning] @samordnare:localhost: !övning Bussolycka E4 (övning)" in out
    assert "│ ÖVNING: övning Ö-1 startad för Region Uppsala" in out
    assert "│ ØVELSE: " in out or "│ ÖVNING: 🚨" in out  # the alarm in a party's room
    assert "│ ÖVNING: Rapport övning Ö-1 (Region Uppsala)" in out
    assert "│ Avslutad: alla kvitterade." in out
    assert "Region Sörmland: " in out
    assert " via sms (per kanal: sms " in out
    assert " via e-post (per kanal: e-post " in out
    assert "m.image kvittenstider-Ö-1.png: " in out
    assert "bytes PNG, decrypted on the phone" in out
    assert "⚠" not in out.split("What reached each party")[1]
    assert "larmkedja demo: done." in out
    assert processes_mentioning(str(tmp_path)) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("larmkedja-demo-")]
