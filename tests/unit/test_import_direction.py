"""Imports run one way, and this test says which (issue 11).

The domain is at the bottom; storage and the commands stand on it; the engine on those; the
channels (Matrix, the HTTP endpoints, SMS and e-mail) meet the engine through the small
interfaces of :mod:`bot.contracts`, and only the composition root (``bot/app.py``,
``bot/channels.py``, ``bot/cli.py``) and the demo know everything. Every module's imports are
read from its source (also those inside functions and ``TYPE_CHECKING`` blocks: a type is a
dependency too), and each rule names what a layer may *not* import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("bot", "commands", "bridges", "storage")

#: (layer: files under these paths, what they must not import, exceptions within the ban)
RULES: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = [
    (
        "the domain imports nothing of ours above it",
        ("bot/domain",),
        ("bot", "commands", "bridges", "storage"),
        ("bot.domain", "bot.clock"),
    ),
    (
        "storage never imports the engine, the Matrix layer, the config, commands or channels",
        ("storage",),
        ("bot", "commands", "bridges"),
        ("bot.domain", "bot.clock"),
    ),
    (
        "commands never import storage, the engine or a channel",
        ("commands",),
        ("storage", "bridges", "bot.engine", "bot.matrix", "bot.http", "bot.app", "bot.channels"),
        (),
    ),
    (
        "channels never import commands or the engine",
        ("bridges", "bot/matrix", "bot/http"),
        ("commands", "bot.engine", "bot.app", "bot.channels", "bot.cli"),
        (),
    ),
    (
        "the engine never imports the composition root",
        ("bot/engine",),
        ("bot.app", "bot.channels", "bot.cli", "bot.demo"),
        (),
    ),
    (
        "the neutral contracts import nothing of ours",
        ("bot/contracts.py",),
        OURS,
        (),
    ),
]


def imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def files(where: str) -> list[Path]:
    path = ROOT / where
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize(("rule", "paths", "banned", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_imports_run_one_way(
    rule: str, paths: tuple[str, ...], banned: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for where in paths
        for path in files(where)
        for name in imports_of(path)
        if within(name, banned) and not within(name, allowed)
    ]
    assert not wrong, f"{rule}:\n" + "\n".join(wrong)


def test_every_rule_looks_at_real_files() -> None:
    for rule, paths, _banned, _allowed in RULES:
        assert all(files(p) for p in paths), rule
