"""E-mail replies as real clients lay them out: only what the person wrote may carry the code.

Issue 10, "e-mail replies acknowledge with a code they only quote". The fixtures in
``fixtures/replies/`` are replies to an alarm whose code is 482193, as Outlook desktop (sv, nb,
en; 2010 and Microsoft 365), Outlook on the web (``divRplyFwdMsg``, HTML only and with a plain
part), Outlook for iOS, Gmail, Apple Mail, iOS Mail and Thunderbird (top- and bottom-posted)
write them, plus the ``| `` and ``&gt; `` quote prefixes. Those named ``…quote-only…`` say
something without the code, so the only code in them is the quoted alarm's: they must not
acknowledge. The others carry the code in the person's own text and must.

Each goes through the real SMTP listener and the reply parser, each of its parts alone too (a
client may send either), and then many generated variations of the same layouts. Last, the
two libraries made for this (quotequail, mail-parser-reply) are measured on the same layouts,
and the table printed: the reason the rules in :mod:`bridges.email.reply_text` are our own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import aiosmtplib
import lxml.html
import pytest
import quotequail
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailparser_reply import EmailReplyParser

from bridges.email.inbound import (
    InboundMail,
    InboundMailServer,
    _own_parts,
    _part_text,
    parse_inbound,
)
from bridges.email.reply_text import html_to_text, strip_quoted
from bridges.reply_parser import ParsedReply, ParseProblem, parse_reply

FIXTURES = Path(__file__).parent / "fixtures" / "replies"
BOT = "larm@vgregion.example"
CODE = "482193"

#: What the person pledged in each layout that acknowledges; the rest only quote the code.
PLEDGES = {
    "apple-mail-en-html-only.eml": 3,
    "apple-mail-sv.eml": 5,
    "gmail-en.eml": 2,
    "gmail-sv.eml": 5,
    "ios-mail-nb.eml": 2,
    "outlook-desktop-nb.eml": 2,
    "outlook-desktop-sv.eml": 5,
    "outlook-ios-sv.eml": 4,
    "owa-nb-html-only.eml": 3,
    "owa-sv.eml": 6,
    "thunderbird-en-bottom-posted.eml": 4,
    "thunderbird-sv.eml": 5,
}
LAYOUTS = sorted(p.name for p in FIXTURES.glob("*.eml"))
# Words of the quoted alarm in any of the three languages: none may survive into the new text.
ALARM_WORDS = ("Bussolycka", "MASSKADELARM", "MASSESKADEVARSEL", "MASS-CASUALTY", "/ack/1.")


def test_the_fixtures_are_the_layouts_the_issue_names() -> None:
    clients = {name.split("-")[0] for name in LAYOUTS}
    assert {"outlook", "owa", "gmail", "apple", "ios", "thunderbird"} <= clients
    for lang in ("sv", "nb", "en"):
        assert any(f"-{lang}" in name for name in LAYOUTS), lang
    assert any("bottom-posted" in n for n in LAYOUTS)
    assert any("html-only" in n for n in LAYOUTS)
    assert set(PLEDGES) <= set(LAYOUTS)
    assert all(("quote-only" in n) != (n in PLEDGES) for n in LAYOUTS)


def parts_of(raw: bytes) -> tuple[str | None, str | None]:
    """(text/plain, text/html) of a reply, decoded, as the listener finds them."""
    msg = message_from_bytes(raw, policy=email_policy.compat32)
    plain: str | None = None
    html: str | None = None
    for part in _own_parts(msg):
        if part.get_content_type() == "text/plain" and plain is None:
            plain = _part_text(part)
        elif part.get_content_type() == "text/html" and html is None:
            html = _part_text(part)
    return plain, html


def check(name: str, new_text: str) -> None:
    """The reply's new text acknowledges with the person's pledge, or not at all."""
    for word in ALARM_WORDS:
        assert word not in new_text, (name, new_text)
    parsed = parse_reply(new_text, channel="email")
    if name in PLEDGES:
        assert isinstance(parsed, ParsedReply), (name, new_text, parsed)
        assert (parsed.code, parsed.pledge) == (CODE, PLEDGES[name])
    else:
        assert isinstance(parsed, ParseProblem), (name, new_text, parsed)
        assert parsed.kind == "no_code", (name, parsed)


# --- through the real listener -------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.mails: list[InboundMail] = []

    async def store(self, mail: InboundMail) -> None:
        self.mails.append(mail)


@pytest.fixture
async def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def listener(inbox: Inbox) -> AsyncIterator[InboundMailServer]:
    async with InboundMailServer("127.0.0.1", 0, inbox.store, accept=[BOT]) as server:
        yield server


async def send(server: InboundMailServer, raw: bytes, sender: str) -> None:
    async with aiosmtplib.SMTP(
        hostname=server.host, port=server.port, start_tls=False, timeout=5
    ) as client:
        await client.sendmail(sender, [BOT], raw)


@pytest.mark.parametrize("name", LAYOUTS)
async def test_a_real_reply_layout_acknowledges_only_with_the_persons_own_code(
    name: str, inbox: Inbox, listener: InboundMailServer
) -> None:
    raw = (FIXTURES / name).read_bytes()
    await send(listener, raw, "tib@region.example")
    [mail] = inbox.mails
    assert not mail.automatic
    check(name, mail.text)
    # The alarm is still there for the audit trail, code and all.
    assert CODE in mail.full_text or "html-only" in name


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_part_of_a_layout_alone_reads_the_same(name: str) -> None:
    plain, html = parts_of((FIXTURES / name).read_bytes())
    if plain is not None:
        check(name, strip_quoted(plain))
    if html is not None:
        check(name, strip_quoted(html_to_text(html)))


def test_reading_the_new_text_twice_changes_nothing() -> None:
    """The listener and the parser both apply the rule: it must be idempotent."""
    for name in LAYOUTS:
        text = parse_inbound((FIXTURES / name).read_bytes(), "tib@region.example").text
        assert strip_quoted(text) == text, name


# --- generated variations of the same layouts ----------------------------------------------------

ALARM = {
    "sv": [
        "🚨 MASSKADELARM H-1 – Katastrofläge",
        "Region Västra Götaland har bekräftat en särskild händelse: Bussolycka vid Ånge",
        f"Kvittera genom att svara på detta mejl med raden överst: KVITTERA {CODE} <antal>",
        "Eller öppna länken och bekräfta där: https://larm.example/ack/1.abc",
    ],
    "nb": [
        "🚨 MASSESKADEVARSEL H-1 – Katastrofläge",
        "Region Västra Götaland har bekreftet en særskilt hendelse: Bussolycka vid Ånge",
        f"Kvitter ved å svare på denne e-posten med linjen øverst: KVITTER {CODE} <antall>",
    ],
    "en": [
        "🚨 MASS-CASUALTY ALARM H-1 – Katastrofläge",
        "Region Västra Götaland has confirmed a major incident: Bussolycka vid Ånge",
        f"Acknowledge by replying to this e-mail with this line at the top: ACK {CODE} <number>",
    ],
}
ATTRIBUTIONS = {
    "sv": [
        f"Den ons 26 nov. 2026 kl 04:12 skrev Larmkedja <{BOT}>:",
        "Den 2026-11-26 kl. 04:12, skrev Larmkedja:",
        f"26 nov. 2026 kl. 04:12 skrev Larmkedja <{BOT}>:",
    ],
    "nb": [
        f"ons. 26. nov. 2026 kl. 04:12 skrev Larmkedja <{BOT}>:",
        "Den 26.11.2026 04:12, skrev Larmkedja:",
    ],
    "en": [
        f"On Wed, Nov 26, 2026 at 4:12 AM Larmkedja <{BOT}> wrote:",
        "On 26/11/2026 04:12, Larmkedja wrote:",
        f"On 26 Nov 2026, at 04:12, Larmkedja <{BOT}> wrote:",
    ],
}
HEADER_BLOCKS = {
    "sv": ["Från: Larmkedja <{b}>", "Skickat: den 26 november 2026 04:12", "Till: TiB", "Ämne: x"],
    "nb": ["Fra: Larmkedja <{b}>", "Sendt: onsdag 26. november 2026 04:12", "Til: TiB", "Emne: x"],
    "en": ["From: Larmkedja <{b}>", "Sent: Wednesday, November 26, 2026 4:12 AM", "To: TiB"],
}
NEW_TEXTS = [
    "Tack, vi återkommer med antal.",
    "Mottatt. Vi sjekker kapasitet.",
    "Received, checking now.",
    "Vi har bilar men väntar på besked från ambulansen",
    "",
    "Ring mig på 010-123 45 67",
]
SIGNATURES = ["", "\n-- \nTiB Region Dalarna\n", "\nSkickat från min iPhone\n", "\nMvh\nAnna\n"]


@st.composite
def replies(draw: st.DrawFn) -> tuple[str, str, bool]:
    """(layout, text/plain or text/html body, whether the person typed the code)."""
    lang = draw(st.sampled_from(sorted(ALARM)))
    original = ALARM[lang]
    acknowledges = draw(st.booleans())
    own = draw(st.sampled_from(NEW_TEXTS))
    if acknowledges:
        own = (
            f"{draw(st.sampled_from(['KVITTERA', 'Kvitterar', 'KVITTER', 'ACK', 'ok']))} {CODE} 5"
        )
    signature = draw(st.sampled_from(SIGNATURES))
    style = draw(
        st.sampled_from(
            ["prefix", "prefix-bottom", "outlook", "separator", "html-quote", "html-outlook"]
        )
    )
    if style.startswith("prefix"):
        mark = draw(st.sampled_from([">", "> ", ">> ", "|", "| ", "&gt; ", "&gt;", "\ufeff> "]))
        quoted = [mark + line for line in original]
        if draw(st.booleans()):
            quoted.insert(0, draw(st.sampled_from(ATTRIBUTIONS[lang])))
        if draw(st.booleans()):  # Apple: the attribution inside the quote
            quoted.insert(0, mark + draw(st.sampled_from(ATTRIBUTIONS[lang])))
        if style == "prefix":
            body = "\n".join([own, "", *quoted, signature])
        else:
            body = "\n".join([*quoted, "", own, signature])
        return style, body, acknowledges
    if style in ("outlook", "separator"):
        head = [line.format(b=BOT) for line in HEADER_BLOCKS[lang]]
        if style == "separator":
            head.insert(
                0,
                draw(
                    st.sampled_from(
                        [
                            "_" * 32,
                            "-----Original Message-----",
                            "-----Ursprungligt meddelande-----",
                        ]
                    )
                ),
            )
        if draw(st.booleans()):
            head = [f"*{line.split(':')[0]}:*{line.partition(':')[2]}" for line in head]
        body = "\n".join([own, signature, "", *head, "", *original])
        return style, body, acknowledges
    lines = "<br>".join(original)
    own_html = f"<div>{own}</div><div>{signature.replace(chr(10), '<br>')}</div>"
    if style == "html-quote":
        container = draw(
            st.sampled_from(
                [
                    '<blockquote type="cite">{q}</blockquote>',
                    '<div class="gmail_quote"><div class="gmail_attr">x skrev:</div>'
                    "<blockquote>{q}</blockquote></div>",
                    '<div class="moz-cite-prefix">x wrote:</div><blockquote>{q}</blockquote>',
                    '<div class="yahoo_quoted">{q}</div>',
                ]
            )
        )
        return style, own_html + container.format(q=lines), acknowledges
    header = draw(
        st.sampled_from(
            [
                '<div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> x</div>',
                '<hr><div id="x_divRplyFwdMsg" dir="ltr"><b>Från:</b> x</div>',
                '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm '
                '0cm"><p><b>Fra:</b> x</p></div>',
                '<div id="mail-editor-reference-message-container"><b>From:</b> x',
            ]
        )
    )
    return style, own_html + header + f'<div class="BodyFragment">{lines}</div>', acknowledges


def _mail(style: str, body: str) -> bytes:
    subtype = "html" if style.startswith("html") else "plain"
    return (
        f"From: TiB <tib@region.example>\r\nTo: {BOT}\r\nSubject: Re: larm\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + body.replace("\n", "\r\n")
    ).encode()


def test_generated_reply_layouts_never_acknowledge_with_a_quoted_code() -> None:
    counts: Counter[str] = Counter()

    @settings(
        max_examples=600,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(replies())
    def property_(reply: tuple[str, str, bool]) -> None:
        style, body, acknowledges = reply
        counts["inputs"] += 1
        text = parse_inbound(_mail(style, body), "tib@region.example").text
        assert strip_quoted(text) == text  # the listener and the parser may both apply it
        parsed = parse_reply(text, channel="email")
        for word in ALARM_WORDS:
            assert word not in text, (style, body, text)
        if acknowledges:
            assert isinstance(parsed, ParsedReply), (style, body, text, parsed)
            assert (parsed.code, parsed.pledge) == (CODE, 5)
            counts["acknowledged with own code"] += 1
        else:
            assert not isinstance(parsed, ParsedReply), (style, body, text)
            counts["quoted code refused"] += 1

    property_()
    print(f"\nquoted-code layouts: {dict(sorted(counts.items()))}")
    assert counts["quoted code refused"] > 100
    assert counts["acknowledged with own code"] > 100


async def test_generated_layouts_through_the_real_listener(
    inbox: Inbox, listener: InboundMailServer
) -> None:
    """A share of the generated layouts over SMTP: what the listener stores reads the same."""
    examples: list[tuple[str, str, bool]] = []

    @settings(max_examples=40, derandomize=True, database=None, deadline=None)
    @given(replies())
    def collect(reply: tuple[str, str, bool]) -> None:
        examples.append(reply)

    collect()
    for style, body, _acknowledges in examples:
        await send(listener, _mail(style, body), "tib@region.example")
    assert len(inbox.mails) == len(examples)
    for mail, (style, body, acknowledges) in zip(inbox.mails, examples, strict=True):
        parsed = parse_reply(mail.text, channel="email")
        assert isinstance(parsed, ParsedReply) == acknowledges, (style, body, mail.text)


# --- the libraries made for this, measured on the same layouts -----------------------------------


def _neutral(html: str) -> str:
    """HTML as plain text with no quote handling of our own, for the libraries to read."""
    tree = lxml.html.fromstring(html)
    for element in tree.iter("br", "p", "div", "tr", "li", "blockquote", "pre"):
        element.tail = "\n" + (element.tail or "")
    for element in tree.xpath("//style|//script|//head"):
        element.drop_tree()
    return "\n".join(x.strip() for x in tree.text_content().splitlines() if x.strip())


def _quotequail(plain: str | None, html: str | None) -> str:
    if plain is not None:
        found = quotequail.unwrap(plain.replace("\r\n", "\n"))
        if found is None:
            return plain
        return "\n".join(x for x in (found.get("text_top"), found.get("text_bottom")) if x)
    assert html is not None
    found = quotequail.unwrap_html(html)
    if found is None:
        return _neutral(html)
    return "\n".join(_neutral(x) for x in (found.get("html_top"), found.get("html_bottom")) if x)


def _mail_parser_reply(plain: str | None, html: str | None) -> str:
    text = plain if plain is not None else _neutral(html or "<p></p>")
    parser = EmailReplyParser(languages=["sv", "da", "en"])  # it has no Norwegian; Danish is near
    return parser.parse_reply(text.replace("\r\n", "\n")) or ""


def _ours(plain: str | None, html: str | None) -> str:
    return strip_quoted(plain if plain is not None else html_to_text(html or ""))


def _verdict(name: str, text: str) -> str:
    """Is the code in what a method took for the new text (where the parser would find it)?"""
    acknowledged = CODE in text
    if acknowledged and name not in PLEDGES:
        return "FALSE ACK"
    if name in PLEDGES and not acknowledged:
        return "lost ack"
    if any(word in text for word in ALARM_WORDS):
        return "quote kept"
    return "ok"


def test_our_rules_read_every_layout_a_library_reads_and_more() -> None:
    methods = {
        "ours": _ours,
        "quotequail.unwrap": _quotequail,
        "mail-parser-reply": _mail_parser_reply,
    }
    rows: list[tuple[str, str, dict[str, str]]] = []
    for name in LAYOUTS:
        plain, html = parts_of((FIXTURES / name).read_bytes())
        for part, args in (("plain", (plain, None)), ("html", (None, html))):
            if args[0] is None and args[1] is None:
                continue
            rows.append((name, part, {m: _verdict(name, f(*args)) for m, f in methods.items()}))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'layout':{width}} part  " + "".join(f"{m:20}" for m in methods))
    for name, part, verdicts in rows:
        print(f"{name:{width}} {part:5} " + "".join(f"{verdicts[m]:20}" for m in methods))
    totals = {m: sum(v[m] == "ok" for _n, _p, v in rows) for m in methods}
    print(
        f"{'ok of ' + str(len(rows)):{width}}       "
        + "".join(f"{totals[m]:<20}" for m in methods)
    )
    assert all(v["ours"] == "ok" for _n, _p, v in rows), [r for r in rows if r[2]["ours"] != "ok"]
    # What this comparison showed when the rules were chosen (keep it true, or revisit them):
    false_acks = {m: [n for n, _p, v in rows if v[m] == "FALSE ACK"] for m in methods}
    assert "plain-pipe-prefix-sv-quote-only.eml" in false_acks["quotequail.unwrap"]
    assert "thunderbird-nb-bottom-posted-quote-only.eml" in false_acks["mail-parser-reply"]
