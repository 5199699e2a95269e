"""The small HTML pages of "acknowledge by link", in the party's language.

Why a page with a button and not "open the link = acknowledged": mail scanners, link previews
and security gateways open every link in an e-mail. Opening (GET) therefore only shows what the
link would do; the acknowledgement is the POST of the form on the page.

Every word on the pages comes from the catalogue (keys ``page.*`` in ``bot/i18n/*.po``), like
every other text a user reads; this module only adds the markup. The bot's one
:class:`~bot.i18n.Catalog` is handed in (``build_app(catalog=...)``), and a renderer of one's own
can replace this one (``build_app(renderer=...)``). Everything interpolated, catalogue text
included, is HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from html import escape
from typing import Any

from bot.domain import is_exercise_id
from bot.domain.answer import MAX_COUNT, MAX_REMARK
from bot.i18n import Catalog


class PageState(StrEnum):
    CONFIRM = "confirm"  # GET of a valid link: the form
    BAD_INPUT = "bad_input"  # POST with an unusable pledge or remark: the form again
    DONE = "done"
    ALREADY = "already"
    CLOSED = "closed"
    EXPIRED = "expired"
    INVALID = "invalid"
    ERROR = "error"


@dataclass(frozen=True)
class AckPage:
    """Everything a renderer may show. ``token`` is set only where the form is shown."""

    state: PageState
    language: str
    incident_id: str | None = None
    party_id: str | None = None
    token: str | None = None
    problem: str | None = None  # what is wrong with the form: "count", "remark", "negated"
    count: str = ""  # what was typed, to show it again
    remark: str = ""


# The message of each page without a form; anything else gets the error page.
_STATE_KEYS = {
    PageState.DONE: "page.done",
    PageState.ALREADY: "page.already",
    PageState.CLOSED: "page.closed",
    PageState.EXPIRED: "page.expired",
    PageState.INVALID: "page.invalid",
    PageState.ERROR: "page.error",
}
# What is wrong with the form, and the limit its message names.
_PROBLEMS = {
    "count": ("page.problem.count", MAX_COUNT),
    "remark": ("page.problem.remark", MAX_REMARK),
    "negated": ("page.problem.negated", MAX_REMARK),
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.4}label{display:block;margin-top:1rem}input{font-size:1.1rem;width:100%;"
    "box-sizing:border-box;padding:.4rem}button{margin-top:1.2rem;font-size:1.2rem;"
    "padding:.6rem 1.4rem}.problem{color:#a00;font-weight:bold}.note{color:#555}"
)


def render_ack_page(page: AckPage, catalog: Catalog) -> str:
    """The default renderer: a complete, dependency-free HTML document.

    An unknown language gets the catalogue's default language (as the texts do).
    """
    lang = page.language if page.language in catalog.languages else catalog.default
    e = escape  # quote=True by default: safe in text and in attribute values

    def say(key: str, **params: Any) -> str:
        return e(
            catalog.text(
                lang, key, incident=page.incident_id or "", party=page.party_id or "", **params
            )
        )

    title = say("page.title")
    if is_exercise_id(page.incident_id):  # an exercise's page is unmistakable too
        title = e(
            catalog.text(
                lang,
                "exercise.marked",
                marker=catalog.text(lang, "exercise.marker"),
                text=catalog.text(lang, "page.title", incident=page.incident_id or "", party=""),
            )
        )
    body: list[str] = []
    if page.state in (PageState.CONFIRM, PageState.BAD_INPUT) and page.token is not None:
        body.append(f"<p>{say('page.confirm')}</p>")
        problem = _PROBLEMS.get(page.problem or "")
        if problem is not None:
            key, limit = problem
            body.append(f'<p class="problem">{say(key, max=limit)}</p>')
        body.append(
            '<form method="post" action="">'
            f'<input type="hidden" name="token" value="{e(page.token)}">'
            f'<label for="count">{say("page.count")}</label>'
            '<input id="count" name="count" inputmode="numeric" pattern="[0-9]*" '
            f'maxlength="{len(str(MAX_COUNT))}" autocomplete="off" value="{e(page.count)}">'
            f'<label for="remark">{say("page.remark")}</label>'
            f'<input id="remark" name="remark" maxlength="{MAX_REMARK}" autocomplete="off" '
            f'value="{e(page.remark)}">'
            f'<button type="submit">{say("page.button")}</button>'
            "</form>"
        )
        body.append(f'<p class="note">{say("page.note")}</p>')
    else:
        body.append(f"<p>{say(_STATE_KEYS.get(page.state, 'page.error'))}</p>")
    return (
        f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex,nofollow">'
        f"<title>{title}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{title}</h1>{''.join(body)}</body></html>"
    )


def ack_page_renderer(catalog: Catalog) -> partial[str]:
    """The default renderer bound to ``catalog``: what :func:`build_app` uses."""
    return partial(render_ack_page, catalog=catalog)
