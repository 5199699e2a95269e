"""The catalogues are complete and consistent, and user-facing text comes only from them.

The source checks read the code instead of running it, so they also cover branches no test
happens to reach:

- every ``body`` handed to a post (``Post``, ``BoardPost`` and the helpers of
  ``commands/replies.py``) is a catalogue text or a renderer's result, never an f-string,
  a concatenation or a literal;
- no string literal in ``commands/`` or ``bot/domain/`` reads like prose (words separated by
  spaces), except docstrings and exception messages for developers;
- no ``str.format``/``%``/f-string with words builds text outside the catalogue;
- the renderers (``commands/render/``) contain no word that is not a catalogue key;
- the HTML pages (the acknowledge-link pages ``bot/http/pages.py`` and the after-action report
  ``commands/report/html.py``) are markup only: their literals have no word outside an HTML
  tag and no visible attribute text (the prose and renderer rules do not fit there, since tags
  and attributes are letters too).

A checker that never fires proves nothing, so each rule is also run against a sample of bad
code and must flag it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LANGUAGES, Catalog, placeholders

ROOT = Path(__file__).resolve().parents[2]
I18N = ROOT / "bot" / "i18n"
CHECKED = [ROOT / "commands", ROOT / "bot" / "domain"]
RENDER = ROOT / "commands" / "render"
PAGES = ROOT / "bot" / "http" / "pages.py"
REPORT_PAGE = ROOT / "commands" / "report" / "html.py"
HTML_PAGES = (PAGES, REPORT_PAGE)  # checked by the page rule instead of the prose rule
PROJECT = [ROOT / "bot", ROOT / "commands", ROOT / "bridges", ROOT / "storage"]

KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
PROSE = re.compile(r"[^\W\d_]{2,}\s+[^\W\d_]{2,}")
LETTER = re.compile(r"[^\W\d_]")


def sources(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py") if "migrations" not in p.parts)


def prose_sources() -> Iterator[Path]:
    """What the prose rule reads: the checked packages without their HTML pages."""
    return (p for p in sources(*CHECKED) if p not in HTML_PAGES)


# -- the catalogues ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(catalog: Catalog) -> set[str]:
    return catalog.keys("sv") | catalog.keys("nb") | catalog.keys("en")


def test_all_three_languages_are_loaded(catalog: Catalog) -> None:
    assert set(catalog.languages) == set(LANGUAGES) == {"sv", "nb", "en"}
    assert catalog.default == "sv"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_key_is_present_and_non_empty(catalog: Catalog, keys: set[str], lang: str) -> None:
    missing = sorted(k for k in keys if not (catalog.raw(lang, k) or "").strip())
    assert not missing, f"{lang}.po lacks {missing}"


def test_every_key_has_the_same_placeholders_in_every_language(
    catalog: Catalog, keys: set[str]
) -> None:
    for key in sorted(keys):
        found = {lang: placeholders(catalog.raw(lang, key) or "") for lang in LANGUAGES}
        assert len({frozenset(v) for v in found.values()}) == 1, f"{key}: {found}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_po_file_is_valid_and_has_no_duplicate_keys(lang: str) -> None:
    path = I18N / f"{lang}.po"
    with path.open("rb") as handle:
        read_po(handle, locale=lang, abort_invalid=True)
    ids = re.findall(r'^msgid "(.+)"$', path.read_text(encoding="utf-8"), re.MULTILINE)
    assert len(ids) == len(set(ids)), f"duplicate msgids in {path.name}"
    assert all(KEY.match(i) for i in ids), "msgids are dotted keys"


def test_keys_render_with_their_placeholders(catalog: Catalog, keys: set[str]) -> None:
    for lang in LANGUAGES:
        for key in keys:
            params = {name: "X" for name in placeholders(catalog.raw(lang, key) or "")}
            assert catalog.text(lang, key, **params)


def test_fragments_keep_their_leading_space(catalog: Catalog) -> None:
    for lang in LANGUAGES:
        assert catalog.raw(lang, "board.party.transports").startswith(" ")  # type: ignore[union-attr]


def test_unknown_language_falls_back_to_swedish_and_unknown_key_is_a_bug(
    catalog: Catalog,
) -> None:
    assert catalog.text("de", "level.staff") == catalog.text("sv", "level.staff") == "Stabsläge"
    assert catalog.text("nb", "level.staff") == "Stab"
    assert catalog.text("en", "level.staff") == "Staff alert"
    with pytest.raises(KeyError):
        catalog.text("sv", "no.such.key")


def test_catalog_can_be_built_from_plain_messages() -> None:
    small = Catalog({"sv": {"a.b": "Hej {name}"}, "en": {}})
    assert small.text("en", "a.b", name="Kim") == "Hej Kim"
    with pytest.raises(ValueError, match="default"):
        Catalog({"en": {}})


# -- keys used by the code -----------------------------------------------------------------------


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _func_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_audit_action(node: ast.Constant, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    if isinstance(parent, ast.keyword) and parent.arg == "action":
        return True
    if isinstance(parent, ast.Tuple | ast.List):  # a table of actions: WATCHED_ACTIONS = (…)
        owner = parents.get(parent)
        targets = owner.targets if isinstance(owner, ast.Assign) else []
        if isinstance(owner, ast.AnnAssign):
            targets = [owner.target]
        if any(isinstance(t, ast.Name) and t.id.endswith("_ACTIONS") for t in targets):
            return True
    return (
        isinstance(parent, ast.Call)
        and _func_name(parent.func) == "AuditEntry"
        and parent.args[:1] == [node]
    )


def _dotted_constants(path: Path) -> Iterator[tuple[str, bool]]:
    """(constant, is an audit action) for each dotted string constant in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = _parents(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and KEY.match(node.value)
        ):
            yield node.value, _is_audit_action(node, parents)


def test_every_key_the_code_uses_exists(keys: set[str]) -> None:
    namespaces = {k.split(".")[0] for k in keys}
    missing = set()
    for path in sources(*PROJECT):
        for value, audit in _dotted_constants(path):
            if not audit and value.split(".")[0] in namespaces and value not in keys:
                missing.add(f"{path.relative_to(ROOT)}: {value}")
    assert not missing, sorted(missing)


def test_every_key_in_the_catalogue_is_used(keys: set[str]) -> None:
    used = {value for path in sources(*PROJECT) for value, _ in _dotted_constants(path)}
    assert not sorted(keys - used), "unused catalogue keys"


# -- user-facing text only from the catalogue ----------------------------------------------------

# Calls that put text in front of users, and the position of their ``body`` argument.
SINKS = {"Post": 1, "BoardPost": 2, "reply": 1, "answered": 1, "rejected": 1, "refused": 1}
SINK_MODULE = "replies.py"  # defines the helpers; passes its ``body`` parameter on


def _assignments(function: ast.AST, name: str) -> list[ast.expr]:
    values: list[ast.expr] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                values.append(node.value)
        elif (
            isinstance(node, ast.AnnAssign | ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value
        ):
            values.append(node.value)
    return values


def _rendered(expr: ast.expr, function: ast.AST | None, params_allowed: bool) -> bool:
    """Is ``expr`` text from the catalogue or a renderer (possibly joined into lines)?"""
    if isinstance(expr, ast.Constant) and expr.value is None:
        return True
    if isinstance(expr, ast.IfExp):
        return _rendered(expr.body, function, params_allowed) and _rendered(
            expr.orelse, function, params_allowed
        )
    if isinstance(expr, ast.Starred):
        inner = expr.value
        if isinstance(inner, ast.GeneratorExp | ast.ListComp):
            return _rendered(inner.elt, function, params_allowed)
        return _rendered(inner, function, params_allowed)
    if isinstance(expr, ast.Call):
        name = _func_name(expr.func)
        if name == "text" or name.startswith(("render", "_render")):
            return True
        if name == "lines":
            return all(_rendered(a, function, params_allowed) for a in expr.args)
        return False
    if isinstance(expr, ast.Name) and function is not None:
        args = function.args  # type: ignore[attr-defined]
        if params_allowed and expr.id in {a.arg for a in args.args + args.kwonlyargs}:
            return True
        values = _assignments(function, expr.id)
        return bool(values) and all(_rendered(v, function, params_allowed) for v in values)
    return False


def sink_violations(source: str, filename: str = "sample.py") -> list[str]:
    tree = ast.parse(source)
    parents = _parents(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _func_name(node.func) not in SINKS:
            continue
        body = next((k.value for k in node.keywords if k.arg == "body"), None)
        position = SINKS[_func_name(node.func)]
        if body is None and len(node.args) > position:
            body = node.args[position]
        if body is None:
            continue
        function = node
        while function is not None and not isinstance(
            function, ast.FunctionDef | ast.AsyncFunctionDef
        ):
            function = parents.get(function)  # type: ignore[assignment]
        if not _rendered(body, function, params_allowed=filename == SINK_MODULE):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(body)[:60]}")
    return found


def _exempt(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Docstrings, exception messages (for developers, in logs) and post keys."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Raise):
            return True
        if isinstance(parent, ast.keyword) and parent.arg == "key":
            return True
        if (
            isinstance(parent, ast.Expr)
            and isinstance(child, ast.Constant)
            and isinstance(
                parents.get(parent),
                ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
            )
        ):
            return True
        if isinstance(parent, ast.FunctionDef) and parent.name in {"__repr__", "__str__"}:
            return True
        if (  # super().__init__(message) of an exception
            isinstance(parent, ast.Call)
            and _func_name(parent.func) == "__init__"
            and isinstance(parent.func, ast.Attribute)
            and isinstance(parent.func.value, ast.Call)
            and _func_name(parent.func.value.func) == "super"
        ):
            return True
        if isinstance(parent, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in parent.targets
        ):
            return True
        child, parent = parent, parents.get(parent)
    return False


def prose_violations(source: str, filename: str = "sample.py") -> list[str]:
    tree = ast.parse(source)
    parents = _parents(tree)
    found = []
    for node in ast.walk(tree):
        if _exempt(node, parents):
            continue
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if PROSE.search(node.value):
                found.append(f"{where}: prose literal {node.value[:40]!r}")
        elif isinstance(node, ast.JoinedStr):
            literal = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if LETTER.search(literal):
                found.append(f"{where}: f-string with words {ast.unparse(node)[:40]}")
        elif isinstance(node, ast.Call) and _func_name(node.func) == "format":
            found.append(f"{where}: str.format outside the catalogue")
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
        ):
            found.append(f"{where}: %-formatting outside the catalogue")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            for side in (node.left, node.right):
                if (
                    isinstance(side, ast.Constant)
                    and isinstance(side.value, str)
                    and LETTER.search(side.value)
                ):
                    found.append(f"{where}: concatenates words {side.value[:40]!r}")
    return found


def renderer_violations(source: str, filename: str = "sample.py") -> list[str]:
    """In renderers, every literal with a letter must be a catalogue key (or a time format,
    the time zone's name, or an identifier mapped to a catalogue key)."""
    tree = ast.parse(source)
    parents = _parents(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        value = node.value
        if (
            _exempt(node, parents)
            or KEY.match(value)
            or not LETTER.search(re.sub(r"%\w", "", value))
        ):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Assign) and [
            t.id for t in parent.targets if isinstance(t, ast.Name)
        ] == ["LOCAL_TIME_ZONE"]:
            continue
        if (
            isinstance(parent, ast.Dict)
            and node in parent.keys
            and all(
                isinstance(v, ast.Constant) and isinstance(v.value, str) and KEY.match(v.value)
                for v in parent.values
            )
        ):
            continue
        found.append(f"{filename}:{node.lineno}: {value[:40]!r}")
    return found


_TAG = re.compile(r"<[^<>]*>")
_VISIBLE_ATTRIBUTE = re.compile(r"""\b(?:title|alt|placeholder|aria-label)\s*=\s*["']([^"']*)""")


def _literal_text(node: ast.Constant | ast.JoinedStr) -> str:
    """A string literal's own text; the parts an f-string interpolates are left out."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    return "".join(
        v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
    )


def page_violations(source: str, filename: str = "sample.py") -> list[str]:
    """In the HTML pages, every literal inside a function is markup: with its tags removed no
    letter is left, and no tag has a visible attribute (``title``, ``alt``, ``placeholder``,
    ``aria-label``) with words of its own. The words are catalogue texts, interpolated.
    Module-level constants (the style sheet, the page states, the key maps) are not shown."""
    tree = ast.parse(source)
    parents = _parents(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, str) or isinstance(parents.get(node), ast.JoinedStr):
                continue  # a part of an f-string is checked with the whole
        elif not isinstance(node, ast.JoinedStr):
            continue
        if _exempt(node, parents) or (isinstance(node, ast.Constant) and KEY.match(node.value)):
            continue
        outer = parents.get(node)
        while outer is not None and not isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef):
            outer = parents.get(outer)
        if outer is None:
            continue
        markup = _literal_text(node)
        words = LETTER.search(_TAG.sub("", markup))
        visible = [v for v in _VISIBLE_ATTRIBUTE.findall(markup) if LETTER.search(v)]
        if words or visible:
            found.append(f"{filename}:{node.lineno}: {markup[:40]!r}")
    return found


def test_posts_carry_only_catalogue_or_rendered_text() -> None:
    found = []
    for path in sources(*CHECKED):
        found += sink_violations(path.read_text(encoding="utf-8"), path.name)
    assert not found, found


def test_no_text_is_built_outside_the_catalogue() -> None:
    found = []
    for path in prose_sources():
        found += prose_violations(path.read_text(encoding="utf-8"), path.name)
    assert not found, found


def test_renderers_contain_no_words_of_their_own() -> None:
    found = []
    for path in sources(RENDER):
        found += renderer_violations(path.read_text(encoding="utf-8"), path.name)
    assert not found, found


@pytest.mark.parametrize(
    ("page", "title_key"), [(PAGES, "page.title"), (REPORT_PAGE, "report.html.title")]
)
def test_html_pages_contain_no_words_of_their_own(page: Path, title_key: str) -> None:
    source = page.read_text(encoding="utf-8")
    assert page_violations(source, page.name) == []
    assert title_key in source  # the rule looked at the page renderer, not an empty file


def test_the_source_checks_catch_bad_code() -> None:
    bad = """
def execute(call, ctx, voice):
    name = "Kim"
    posts = [Post(room_id=call.room_id, body=f"Hej {name}")]
    posts.append(Post(call.room_id, "Okänt kommando"))
    message = voice.text("help.header") + " och mer"
    answered(call, message)
    rejected(call, "Det gick inte", "reason")
    refused(call, "{} nekad".format(name), "reason")
    board = BoardPost("H-1", "!r:x", "Status: %s" % name)
    reply(call, voice.lines(voice.text("a.b"), "extra rad här"))
"""
    sinks = sink_violations(bad)
    assert len(sinks) == 7, sinks
    prose = prose_violations(bad)
    assert any("f-string" in p for p in prose)
    assert any("Okänt kommando" in p for p in prose)
    assert any("concatenates" in p for p in prose)
    assert any("str.format" in p for p in prose)
    assert any("%-formatting" in p for p in prose)
    assert renderer_violations('def render_x(voice):\n    return voice.text("a.b") + "kr"\n')
    bad_page = """
def render(page, say):
    title = "Kvittera larm"
    done = f"<p>Tack, {page.party_id}</p>"
    button = f'<button title="Stäng">{say("page.button")}</button>'
    return "<p>" + title + "</p><p>Kvittera</p>"
"""
    assert len(page_violations(bad_page)) == 4, page_violations(bad_page)


def test_the_source_checks_accept_good_code() -> None:
    good = '''
def execute(call, ctx, voice):
    """Docstrings may say anything at all."""
    body = voice.text("ack.recorded", party="x")
    if call.args:
        body = render_board(ctx)
    answered(call, body)
    Post(room_id=call.room_id,
         body=voice.lines(voice.text("a.b"), *(voice.text("c.d") for _ in ())),
         key=f"alarm:{call.room_id}")
    reply(call, voice.text("a.b") if call else voice.text("c.d"))
    raise ValueError(f"a message for developers {call}")
'''
    assert sink_violations(good) == []
    assert prose_violations(good) == []
    good_page = """
_STYLE = "body{font-family:system-ui,sans-serif}"
def render(page, say):
    \"\"\"Docstrings may say anything.\"\"\"
    key = _KEYS.get(page.state, "page.error")
    return (
        f'<!doctype html><html lang="{page.language}"><p class="note">{say(key)}</p>'
        '<input id="count" name="count" inputmode="numeric" pattern="[0-9]*" '
        f'value="{page.count}" title="{say("page.count")}"><style>{_STYLE}</style>'
    )
"""
    assert page_violations(good_page) == []
