"""The ``larmkedja`` command: run, demo, check-config, sample-config, report, audit verify.

Errors an operator can fix (a bad config, a refused start) are one short line on stderr and a
non-zero exit, never a traceback and never a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bot import log_safety
from bot.config import ConfigError, LoadedConfig, load_config

EXIT_CONFIG = 2
EXIT_REFUSED = 3
EXIT_NOT_FOUND = 4  # report: no such incident
EXIT_BROKEN = 5  # audit verify: the chain or an anchor does not hold


def _check_config(path: str, *, offline: bool = False) -> int:
    try:
        # The same checks as the bot's start (_run): the file, the model, every secret.
        loaded = load_config(path)
        cfg = loaded.config
        loaded.check_secrets()
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"{path}: {line}", file=sys.stderr)
        return EXIT_CONFIG
    parties = len(cfg.all_parties())
    print(
        f"{path}: OK ({len(cfg.regions)} regions, {parties} parties, "
        f"healthcare region {cfg.healthcare_region.id})"
    )
    if not offline:
        _check_rooms(path, loaded)
    return 0


def _check_rooms(path: str, loaded: LoadedConfig) -> None:
    """Warn about configured rooms no alarm can reach, asked of the homeserver as the bot's
    stored device (warnings: the config itself is valid, and a room may be fixed later)."""
    from bot.matrix.room_check import RoomCheckUnavailable, check_online, stored_access_token
    from bot.matrix.session import SessionStore

    cfg = loaded.config
    try:
        token = stored_access_token(SessionStore(loaded.state_dir).credentials_file)
        troubles = asyncio.run(check_online(cfg, token))
    except RoomCheckUnavailable as exc:
        print(f"{path}: rooms not checked: {exc}", file=sys.stderr)
        return
    reasons = {"not_joined": "the bot is not in it", "not_encrypted": "it is not encrypted"}
    for trouble in troubles:
        print(
            f"{path}: warning: room {trouble.room_id} ({trouble.owner}) cannot receive alarms: "
            f"{reasons.get(trouble.reason, trouble.reason)}; alarms for it fall back to the "
            "party's other channels",
            file=sys.stderr,
        )
    if not troubles:
        print(f"{path}: all {len(cfg.known_rooms())} rooms joined and encrypted")


async def _run(path: str) -> int:
    from bot.app import App, StartupRefused

    try:
        loaded = load_config(path)
        loaded.check_secrets()  # all of them, as check-config reports them
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"{path}: {line}", file=sys.stderr)
        return EXIT_CONFIG
    # No level logs secrets, codes, tokens or message content (bot/log_safety.py).
    log_safety.configure(loaded.config.log_level)
    app = App(loaded)
    try:
        await app.start()
        await app.run_until_stopped()
    except StartupRefused as exc:
        print(f"larmkedja: refusing to start: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        await app.stop()
    return 1 if app.failure is not None else 0


def _load_or_complain(path: str):  # type: ignore[no-untyped-def]
    """The config, or None after printing its problems (one line each, with the key path)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"{path}: {line}", file=sys.stderr)
        return None


def _database(loaded):  # type: ignore[no-untyped-def]
    """The bot's database for reading, or None if a SQLite file is not there (never create
    one: a report of an empty new database would claim nothing happened)."""
    from storage.database import Database

    url = loaded.database_url
    prefix = "sqlite+aiosqlite:///"
    path = url[len(prefix) :] if url.startswith(prefix) else None
    if path is not None and path != ":memory:" and not Path(path).exists():
        print(f"larmkedja: no database at {path}", file=sys.stderr)
        return None
    return Database(url)


async def _report(
    incident: str, config_path: str, fmt: str, lang: str | None, out: str | None
) -> int:
    """``larmkedja report H-7``: the after-action report from the database, like ``!rapport``
    (without the anchor post: the command line cannot post to the room)."""
    from bot.clock import SystemClock
    from bot.domain import format_incident_id, parse_incident_number
    from bot.i18n import Catalog
    from commands.render import Voice
    from commands.report import (
        build_timeline,
        render_report_csv,
        render_report_html,
        render_report_json,
    )
    from storage.history import load_history

    loaded = _load_or_complain(config_path)
    if loaded is None:
        return EXIT_CONFIG
    number = parse_incident_number(incident)
    if number is None:
        print(f"larmkedja report: {incident!r} is not an incident id like H-7", file=sys.stderr)
        return EXIT_NOT_FOUND
    db = _database(loaded)
    if db is None:
        return EXIT_NOT_FOUND
    try:
        async with db.read() as session:
            history = await load_history(session, format_incident_id(number))
    finally:
        await db.close()
    if history is None:
        print(f"larmkedja report: no incident {format_incident_id(number)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    cfg = loaded.config
    voice = Voice(
        Catalog.load(),
        lang or cfg.healthcare_region.language,
        cfg.matrix.user_id.partition(":")[2],
    )
    timeline = build_timeline(history)
    if fmt == "html":
        text = render_report_html(timeline, voice, generated_at=SystemClock().now())
    elif fmt == "csv":
        text = render_report_csv(timeline, voice)
    else:
        text = render_report_json(timeline, voice)
    _write_output(out, text)
    if out not in (None, "-"):
        print(f"larmkedja report: {history.incident.id} written to {out} ({fmt})", file=sys.stderr)
    return 0


def _write_output(out: str | None, text: str) -> None:
    if out is None or out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8", newline="")


def _read_text(name: str) -> str:
    return Path(name).read_text(encoding="utf-8", errors="replace")


async def _room_anchors(loaded):  # type: ignore[no-untyped-def]
    """The anchors the bot posted in the coordination room, read from the room's history."""
    from bot.matrix.room_history import HistoryUnavailable, read_bot_messages
    from storage.audit_verify import find_anchors

    cfg = loaded.config
    room = cfg.healthcare_region.coordination_room
    if room is None:
        raise HistoryUnavailable("healthcare_region.coordination_room is not set: no anchors")
    passphrase = (
        cfg.matrix.store_passphrase.resolve(loaded.base_dir).get_secret_value()
        if cfg.matrix.store_passphrase is not None
        else ""
    )
    history = await read_bot_messages(
        homeserver=cfg.matrix.homeserver,
        user_id=cfg.matrix.user_id,
        store_passphrase=passphrase,
        state_dir=loaded.state_dir,
        room_id=room,
    )
    anchors = [
        a
        for m in history.messages
        for a in find_anchors(m.body, posted_at=m.at, event_id=m.event_id)
    ]
    return anchors, history.undecryptable


async def _audit_verify(config_path: str, anchor_files: list[str], from_room: bool) -> int:
    """``larmkedja audit verify``: the whole hash chain, and the anchors published outside it
    (read from the coordination room with the bot's stored session, or from exported files)."""
    from bot.matrix.room_history import HistoryUnavailable
    from storage.audit_verify import find_anchors, verify_audit

    loaded = _load_or_complain(config_path)
    if loaded is None:
        return EXIT_CONFIG
    anchors = []
    for name in anchor_files:
        try:
            anchors += find_anchors(_read_text(name))
        except OSError as exc:
            print(f"larmkedja audit verify: cannot read {name}: {exc.strerror}", file=sys.stderr)
            return EXIT_NOT_FOUND
    if from_room:
        try:
            found, undecryptable = await _room_anchors(loaded)
        except (HistoryUnavailable, ConfigError) as exc:
            print(f"larmkedja audit verify: {exc}", file=sys.stderr)
            return EXIT_NOT_FOUND
        anchors += found
        room = loaded.config.healthcare_region.coordination_room
        print(f"anchors in {room}: {len(found)} (undecryptable bot messages: {undecryptable})")
    db = _database(loaded)
    if db is None:
        return EXIT_NOT_FOUND
    try:
        async with db.read() as session:
            result = await verify_audit(session, anchors)
    finally:
        await db.close()
    head = result.head
    print(
        f"audit log: {result.entries} entries"
        + (f", head {head.seq} sha256 {head.hash}" if head is not None else "")
    )
    if result.first_break is None:
        print("hash chain: intact")
    else:
        b = result.first_break
        print(f"hash chain: BROKEN at entry {b.seq} ({b.kind}): {b.explanation}")
    if result.anchors_checked:
        print(f"anchors: {result.anchors_checked} checked, {result.anchors_matching} match")
    if result.anchor_break is not None:
        b = result.anchor_break
        print(f"anchors: BROKEN at entry {b.seq} ({b.kind}): {b.explanation}")
    return 0 if result.ok else EXIT_BROKEN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="larmkedja", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bot")
    run.add_argument("--config", required=True, help="TOML config file")
    demo = sub.add_parser("demo", help="throwaway homeserver + bot + scripted duty officers")
    demo.add_argument("--workdir", type=Path, help="keep the demo's files here")
    demo.add_argument(
        "--exercise",
        action="store_true",
        help="play a coordinator's exercise (ÖVNING on every channel) and show its report",
    )
    check = sub.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file")
    check.add_argument(
        "--offline",
        action="store_true",
        help="do not ask the homeserver which configured rooms the bot is in",
    )
    sub.add_parser("sample-config", help="print a sample config generated from the model")
    report = sub.add_parser("report", help="after-action report of an incident (like !rapport)")
    report.add_argument("incident", help="incident id, e.g. H-7")
    report.add_argument("--config", required=True, help="TOML config file")
    report.add_argument("--format", choices=("html", "csv", "json"), default="html")
    report.add_argument("--lang", choices=("sv", "nb", "en"), help="default: the config's")
    report.add_argument("--output", "-o", help="file to write (default: standard output)")
    audit_cmd = sub.add_parser("audit", help="the hash-chained audit log")
    audit_sub = audit_cmd.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check the whole hash chain and the anchors published outside it"
    )
    verify.add_argument("--config", required=True, help="TOML config file")
    verify.add_argument(
        "--anchors",
        action="append",
        default=[],
        metavar="FILE",
        help="a file with anchor posts (e.g. the coordination room's exported history)",
    )
    verify.add_argument(
        "--anchors-from-room",
        action="store_true",
        help="read the anchors from the coordination room with the bot's stored session",
    )
    args = parser.parse_args(argv)

    if args.command == "check-config":
        return _check_config(args.file, offline=args.offline)
    if args.command == "sample-config":
        from bot.sample_config import generate

        sys.stdout.write(generate())
        return 0
    if args.command == "run":
        return asyncio.run(_run(args.config))
    if args.command == "report":
        return asyncio.run(
            _report(args.incident, args.config, args.format, args.lang, args.output)
        )
    if args.command == "audit":
        return asyncio.run(_audit_verify(args.config, args.anchors, args.anchors_from_room))
    if args.command == "demo":
        try:
            from bot.demo.scenario import run_demo

            return asyncio.run(run_demo(args.workdir, exercise=args.exercise))
        except KeyboardInterrupt:  # run_demo has stopped and removed what it started
            print("larmkedja demo: interrupted", file=sys.stderr)
            return 130
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
