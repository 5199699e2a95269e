"""The small HTML pages of "acknowledge by link", in Swedish, Norwegian and English.

Why a page with a button and not "open the link = acknowledged": mail scanners, link previews
and security gateways open every link in an e-mail. Opening (GET) therefore only shows what the
link would do; the acknowledgement is the POST of the form on the page.

The texts live here rather than in the bot's catalogue because the pages are rendered outside
any room and the bot's catalogue is owned elsewhere; a renderer using the catalogue can be
injected instead (``build_app(renderer=...)``). Everything interpolated is HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from html import escape

from commands.arguments import MAX_TEXT


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
    problem: str | None = None  # a key of TEXTS[...]["problem"]
    count: str = ""  # what was typed, to show it again
    remark: str = ""


TEXTS: dict[str, dict[str, str]] = {
    "sv": {
        "title": "Kvittera larm",
        "confirm": "Kvittera larmet {incident} för {party}?",
        "note": "Att öppna sidan kvitterar inte. Tryck på knappen.",
        "count": "Antal sekundärtransporter (valfritt)",
        "remark": "Kommentar (valfri)",
        "button": "Kvittera",
        "done": "Kvitterat: {incident} för {party}. Tack.",
        "already": "Redan kvitterat: {incident} för {party}.",
        "closed": "Händelsen {incident} är avslutad eller avlarmad. Ingen kvittens behövs.",
        "expired": "Länken har gått ut. Kvittera i Matrix-rummet eller svara på det senaste "
        "larmet.",
        "invalid": "Länken är ogiltig. Kvittera i Matrix-rummet eller svara på larmet.",
        "error": "Något gick fel och kvittensen är inte registrerad. Försök igen om en stund "
        "eller kvittera i Matrix-rummet.",
        "problem.count": "Antalet måste vara ett heltal från 0 till 999, skrivet med siffror.",
        "problem.remark": f"Kommentaren får vara högst {MAX_TEXT} tecken.",
    },
    "nb": {
        "title": "Kvitter alarm",
        "confirm": "Kvitter alarmen {incident} for {party}?",
        "note": "Å åpne siden kvitterer ikke. Trykk på knappen.",
        "count": "Antall sekundærtransporter (valgfritt)",
        "remark": "Kommentar (valgfri)",
        "button": "Kvitter",
        "done": "Kvittert: {incident} for {party}. Takk.",
        "already": "Allerede kvittert: {incident} for {party}.",
        "closed": "Hendelsen {incident} er avsluttet eller avvarslet. Ingen kvittering trengs.",
        "expired": "Lenken er utløpt. Kvitter i Matrix-rommet eller svar på den siste alarmen.",
        "invalid": "Lenken er ugyldig. Kvitter i Matrix-rommet eller svar på alarmen.",
        "error": "Noe gikk galt, og kvitteringen er ikke registrert. Prøv igjen om litt "
        "eller kvitter i Matrix-rommet.",
        "problem.count": "Antallet må være et heltall fra 0 til 999, skrevet med sifre.",
        "problem.remark": f"Kommentaren kan være høyst {MAX_TEXT} tegn.",
    },
    "en": {
        "title": "Acknowledge alarm",
        "confirm": "Acknowledge alarm {incident} for {party}?",
        "note": "Opening this page does not acknowledge. Press the button.",
        "count": "Secondary transports (optional)",
        "remark": "Remark (optional)",
        "button": "Acknowledge",
        "done": "Acknowledged: {incident} for {party}. Thank you.",
        "already": "Already acknowledged: {incident} for {party}.",
        "closed": "Incident {incident} is closed or stood down. No acknowledgement needed.",
        "expired": "This link has expired. Acknowledge in the Matrix room or reply to the "
        "latest alarm.",
        "invalid": "This link is not valid. Acknowledge in the Matrix room or reply to the alarm.",
        "error": "Something went wrong and the acknowledgement was not recorded. Try again "
        "shortly or acknowledge in the Matrix room.",
        "problem.count": "The number must be a whole number from 0 to 999, in digits.",
        "problem.remark": f"The remark can be at most {MAX_TEXT} characters.",
    },
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.4}label{display:block;margin-top:1rem}input{font-size:1.1rem;width:100%;"
    "box-sizing:border-box;padding:.4rem}button{margin-top:1.2rem;font-size:1.2rem;"
    "padding:.6rem 1.4rem}.problem{color:#a00;font-weight:bold}.note{color:#555}"
)


def render_ack_page(page: AckPage) -> str:
    """The default renderer: a complete, dependency-free HTML document."""
    texts = TEXTS.get(page.language, TEXTS["sv"])
    e = escape  # quote=True by default: safe in text and in attribute values

    def say(key: str) -> str:
        return e(texts[key].format(incident=page.incident_id or "", party=page.party_id or ""))

    body: list[str] = []
    if page.state in (PageState.CONFIRM, PageState.BAD_INPUT) and page.token is not None:
        body.append(f"<p>{say('confirm')}</p>")
        if page.problem is not None:
            body.append(f'<p class="problem">{say("problem." + page.problem)}</p>')
        body.append(
            '<form method="post" action="">'
            f'<input type="hidden" name="token" value="{e(page.token)}">'
            f'<label for="count">{say("count")}</label>'
            '<input id="count" name="count" inputmode="numeric" pattern="[0-9]*" '
            f'maxlength="3" autocomplete="off" value="{e(page.count)}">'
            f'<label for="remark">{say("remark")}</label>'
            f'<input id="remark" name="remark" maxlength="{MAX_TEXT}" autocomplete="off" '
            f'value="{e(page.remark)}">'
            f'<button type="submit">{say("button")}</button>'
            "</form>"
        )
        body.append(f'<p class="note">{say("note")}</p>')
    else:
        key = page.state.value if page.state.value in texts else "error"
        body.append(f"<p>{say(key)}</p>")
    lang = page.language if page.language in TEXTS else "sv"
    return (
        f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex,nofollow">'
        f"<title>{say('title')}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{say('title')}</h1>{''.join(body)}</body></html>"
    )
