"""The ``larmkedja`` command: run, demo, check-config, sample-config.

Errors an operator can fix (a bad config, a refused start) are one short line on stderr and a
non-zero exit, never a traceback and never a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bot import log_safety
from bot.config import ConfigError, load_config

EXIT_CONFIG = 2
EXIT_REFUSED = 3


def _check_config(path: str) -> int:
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
    return 0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="larmkedja", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bot")
    run.add_argument("--config", required=True, help="TOML config file")
    demo = sub.add_parser("demo", help="throwaway homeserver + bot + scripted duty officers")
    demo.add_argument("--workdir", type=Path, help="keep the demo's files here")
    check = sub.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file")
    sub.add_parser("sample-config", help="print a sample config generated from the model")
    args = parser.parse_args(argv)

    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "sample-config":
        from bot.sample_config import generate

        sys.stdout.write(generate())
        return 0
    if args.command == "run":
        return asyncio.run(_run(args.config))
    if args.command == "demo":
        try:
            from bot.demo.scenario import run_demo

            return asyncio.run(run_demo(args.workdir))
        except KeyboardInterrupt:  # run_demo has stopped and removed what it started
            print("larmkedja demo: interrupted", file=sys.stderr)
            return 130
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
