"""One rule for what an answer to an alarm means, whichever way it came (issue 10).

The hostile inputs of issue 10 that concern *reading* text: ``!ack not yet`` acknowledged in
chat while the SMS parser refused it, ``KVITTERA 4810 0184`` pledged 184 transports, a
fullwidth ``５`` was refused in chat but read by SMS, and typed controls, bidi overrides and
30,000 characters came back in the bot's answers. Each class is tried here with generated
variations (hypothesis, seeded so a run can be repeated) and the known examples, through the
chat command's argument parser, the SMS/e-mail reply parser and, for chat, the real command
layer (dispatch, executors, the database). Every class counts what it tried and prints it.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter

import pytest
from chain_world import Harness, duty_officer, room
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.answer import NEGATIONS, NotACount, negates, numeral, read_count
from bot.domain.user_text import BIDI_CONTROLS, clean, excerpt
from bot.i18n import Catalog
from bridges.reply_parser import ParsedReply, ParseProblem, parse_reply
from commands.arguments import ArgumentProblem, parse_arguments, parse_count
from commands.registry import build_registry
from commands.render import Voice
from commands.text import ECHO

SETTINGS = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ACK = build_registry().get("ack")
CODE = "4821"
FULL_WIDTH = str.maketrans("0123456789+-", "０１２３４５６７８９＋－")
MATH_BOLD = str.maketrans("0123456789", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗")


def chat(text: str) -> dict[str, object] | ArgumentProblem:
    """``!kvittera <text>`` as the command layer parses it."""
    try:
        return parse_arguments(ACK.arguments, text.split())
    except ArgumentProblem as problem:
        return problem


def report(name: str, counts: Counter[str]) -> None:
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


# -- negations: refused on every channel ----------------------------------------------------------

NEGATION_OPENERS = (
    "nej",
    "Nej!",
    "NEJ.",
    "nej tack",
    "inte än",
    "inte ännu",
    "Inte nu",
    "ej än",
    "kan inte",
    "Vi kan inte",
    "kan ej",
    "aldrig",
    "nei",
    "Nei takk",
    "ikke ennå",
    "kan ikke",
    "vi kan ikke",
    "ikkje no",
    "aldri",
    "no",
    "No,",
    "NO",
    "not yet",
    "Not now",
    "not possible",
    "cannot",
    "can't",
    "can’t",
    "we cannot",
    "won't",
    "never",
    "nope",
    "don't",
    "❌",
    "🚫 inga bilar",
)
REST = st.sampled_from(
    [
        "",
        "bilar",
        "sorry",
        "återkommer",
        "we will call",
        "vi ringer 04:30",
        "— TiB",
        "!!",
        "5 bilar",
    ]
)


@st.composite
def negated_answers(draw: st.DrawFn) -> tuple[str, str, str]:
    """(chat arguments, SMS text, e-mail text) that all say no, in many spellings."""
    opener = draw(st.sampled_from(NEGATION_OPENERS))
    if draw(st.booleans()):
        opener = draw(st.sampled_from([str.upper, str.lower, str.title, str]))(opener)
    if draw(st.booleans()):  # diacritics lost on a foreign keyboard
        decomposed = unicodedata.normalize("NFKD", opener)
        opener = "".join(c for c in decomposed if not unicodedata.combining(c))
    count = draw(st.sampled_from(["", "5", "0", "+3", "１２"]))
    incident = draw(st.sampled_from(["", "H-1", "h1"]))
    rest = draw(REST)
    words = " ".join(x for x in (count, opener, rest) if x)
    chat_args = " ".join(x for x in (incident, words) if x)
    keyword = draw(st.sampled_from(["KVITTERA", "kvittera", "ack", "ok", "KVITTER", ""]))
    sms = " ".join(x for x in (keyword, CODE, words) if x)
    email = f"{sms}\n\nMed vänlig hälsning\nTiB"
    return chat_args, sms, email


def test_a_negation_never_acknowledges_on_any_channel() -> None:
    counts: Counter[str] = Counter()

    @SETTINGS
    @given(negated_answers())
    def property_(answer: tuple[str, str, str]) -> None:
        chat_args, sms, email = answer
        counts["inputs"] += 3
        parsed = chat(chat_args)
        assert isinstance(parsed, ArgumentProblem), (chat_args, parsed)
        assert parsed.key == "arg.ack.negated", (chat_args, parsed.key)
        for text, channel in ((sms, "sms"), (email, "email")):
            reply = parse_reply(text, channel=channel)
            assert isinstance(reply, ParseProblem), (text, reply)
            assert reply.kind == "negated", (text, reply)
        counts["refused as negated"] += 3

    property_()
    report("negations", counts)
    assert counts["inputs"] == counts["refused as negated"] >= 1000


@pytest.mark.parametrize(
    "remark",
    [
        "not yet",
        "no",
        "nej",
        "inte än",
        "kan inte",
        "Kan ikke",
        "aldrig",
        "❌",
        "5 nej",
        "H-1 not yet",
        "H-1 3 inte än",
    ],
)
def test_the_issue_examples_are_refused_in_chat(remark: str) -> None:
    problem = chat(remark)
    assert isinstance(problem, ArgumentProblem)
    assert problem.key == "arg.ack.negated"


@pytest.mark.parametrize(
    "remark",
    [
        "mottaget, återkommer",
        "men inte förrän 04.30",
        "bilar, inte fler",
        "ok",
        "noll problem",
        "nordlig väg",
        "notera: via E4",
        "tre bilar kommer, inte fler",
        "ambulanser från Mora",
    ],
)
def test_a_remark_that_does_not_say_no_still_acknowledges_everywhere(remark: str) -> None:
    assert not isinstance(chat(f"5 {remark}"), ArgumentProblem)
    for channel in ("sms", "email"):
        assert isinstance(parse_reply(f"KVITTERA {CODE} 5 {remark}", channel=channel), ParsedReply)


_WORDS = st.sampled_from(
    sorted(NEGATIONS)
    + ["men", "but", "bilar", "mottaget", "ok", "återkommer", "kommer", "vi", "kan", "ikke", "5"]
)


def test_chat_sms_and_e_mail_decide_every_remark_alike() -> None:
    """One rule: whatever the remark, the three channels refuse it as a negation or not alike."""
    counts: Counter[str] = Counter()
    punctuation = st.sampled_from(["", ",", ".", "!", ":"])

    @SETTINGS
    @given(st.lists(st.tuples(_WORDS, punctuation), min_size=1, max_size=6))
    def property_(parts: list[tuple[str, str]]) -> None:
        remark = " ".join(w + p for w, p in parts)
        counts["inputs"] += 1
        in_chat = chat(f"3 {remark}")
        chat_no = isinstance(in_chat, ArgumentProblem) and in_chat.key == "arg.ack.negated"
        for channel in ("sms", "email"):
            reply = parse_reply(f"KVITTERA {CODE} 3 {remark}", channel=channel)
            channel_no = isinstance(reply, ParseProblem) and reply.kind == "negated"
            assert chat_no == channel_no, (remark, channel, in_chat, reply)
        assert chat_no == negates(remark)
        counts["negated" if chat_no else "acknowledged"] += 1

    property_()
    report("remarks decided alike", counts)
    assert counts["negated"]
    assert counts["acknowledged"]


# -- counts: a code-shaped number is no pledge, digits are digits everywhere ----------------------


@st.composite
def count_tokens(draw: st.DrawFn) -> str:
    number = draw(st.integers(min_value=0, max_value=10**9))
    text = str(number)
    zeros = draw(st.integers(min_value=0, max_value=3))
    text = "0" * zeros + text
    text = draw(st.sampled_from(["", "+", "-"])) + text
    form = draw(st.sampled_from(["ascii", "ascii", "fullwidth", "math", "superscript", "arabic"]))
    if form == "fullwidth":
        text = text.translate(FULL_WIDTH)
    elif form == "math":
        text = text.translate(MATH_BOLD)
    elif form == "superscript":
        text = text.translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    elif form == "arabic":
        text = text.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    return text


def _chat_count(token: str) -> int | str:
    try:
        return parse_count(token)
    except ArgumentProblem as problem:
        return problem.key


def _sms_count(token: str) -> int | str | None:
    reply = parse_reply(f"KVITTERA {CODE} {token}")
    if isinstance(reply, ParsedReply):
        return reply.pledge
    return reply.key


def test_a_count_reads_the_same_in_chat_and_by_sms_and_codes_are_never_pledges() -> None:
    counts: Counter[str] = Counter()

    @SETTINGS
    @given(count_tokens())
    def property_(token: str) -> None:
        counts["inputs"] += 1
        in_chat, by_sms = _chat_count(token), _sms_count(token)
        assert in_chat == by_sms, (token, in_chat, by_sms)
        digits = unicodedata.normalize("NFKC", token).lstrip("+")
        if isinstance(in_chat, int):
            counts["pledges"] += 1
            # A pledge is written plainly: no leading zero, at most three digits, 0-9 only.
            assert digits == str(in_chat), (token, in_chat)
            assert 0 <= in_chat <= 999
        else:
            counts[in_chat] += 1

    property_()
    report("counts", counts)
    assert counts["pledges"]
    assert counts["arg.count.leading_zero"]
    assert counts["arg.count.invalid"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("KVITTERA 4810 0184", "count_leading_zero"),
        ("KVITTERA 4810 05", "count_leading_zero"),
        ("kvittera 482193 000184", "count_leading_zero"),
        ("KVITTERA 4810 ０１８４", "count_leading_zero"),
        ("KVITTERA 4810 5512", "count_too_large"),  # another code: more than any pledge
        ("KVITTERA 4810 5²", "count_invalid"),
        ("KVITTERA 4810 ⑤", "count_invalid"),
    ],
)
def test_a_code_shaped_number_is_asked_about_not_pledged(text: str, kind: str) -> None:
    reply = parse_reply(text)
    assert isinstance(reply, ParseProblem), reply
    assert reply.kind == kind


def test_fullwidth_and_mathematical_digits_are_digits_on_every_channel() -> None:
    for token, value in (("５", 5), ("＋５", 5), ("𝟓", 5), ("１２", 12)):
        assert parse_count(token) == value
        assert _sms_count(token) == value
        assert read_count(token) == value
    reply = parse_reply("ＫＶＩＴＴＥＲＡ ４８２１ ５")
    assert isinstance(reply, ParsedReply)
    assert (reply.code, reply.pledge) == ("4821", 5)
    assert numeral("٣") == "٣"  # other scripts' digits are not read as 0-9
    with pytest.raises(NotACount):
        read_count("٣")


# -- what answers quote back: short, clean, one line ----------------------------------------------

HOSTILE = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from([*BIDI_CONTROLS, "\x00", "\x1b", "\r", "\n", "\u2028", "\ufeff", "\x85"]),
    ),
    max_size=300,
) | st.builds(
    lambda c, n: c * n, st.sampled_from(["x", "🚑", "\u202e", " "]), st.integers(0, 40000)
)


def _shown_safely(text: str) -> bool:
    return not any(
        unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS or "\ud800" <= c <= "\udfff"
        for c in text
    )


def test_an_excerpt_is_short_clean_and_on_one_line() -> None:
    counts: Counter[str] = Counter()

    @SETTINGS
    @given(HOSTILE, st.integers(min_value=1, max_value=600))
    def property_(text: str, limit: int) -> None:
        counts["inputs"] += 1
        cut = excerpt(text, limit)
        assert len(cut) <= limit
        assert _shown_safely(cut), repr(cut)
        assert "\n" not in cut
        kept = clean(text)
        assert _shown_safely(kept.replace("\n", ""))
        if cut.endswith("…") and len(cut) == limit:
            counts["cut"] += 1

    property_()
    report("excerpts", counts)
    assert counts["cut"]


def test_every_typed_parameter_a_catalogue_text_quotes_is_an_excerpt(catalog: Catalog) -> None:
    """Whoever renders them (dispatch, help, the parsers): the Voice cuts what was typed."""
    voice = Voice(catalog, "sv")
    hostile = "\u202e" + "A\x00" * 20_000
    for key, param in (
        ("unknown.command_no_suggestion", "command"),
        ("help.unknown", "command"),
        ("arg.level.invalid", "value"),
        ("usage.too_many", "extra"),
        ("board.party.remark", "remark"),
        ("board.headline", "headline"),
    ):
        params = {p: "x" for p in ("help", "suggestion", "max")}
        body = voice.text(key, **{**params, param: hostile})
        assert len(body) < ECHO[param] + 200, (key, len(body))
        assert _shown_safely(body), key


# -- through the real command layer: what the room sees -------------------------------------------


async def confirm_and_alarm(bot: Harness) -> None:
    await bot.say(room("uppsala"), duty_officer("uppsala"), "!händelse stabsläge Bussolycka")
    await bot.say(room("uppsala"), duty_officer("uppsala"), "!larma")
    bot.take()


async def test_negations_in_a_room_acknowledge_nothing_and_are_answered(bot: Harness) -> None:
    await confirm_and_alarm(bot)
    rng = random.Random(20261126)
    counts: Counter[str] = Counter()
    names = ("!kvittera", "!ack", "!kvitter", "!KVITTERA", "!Kvíttera")
    for _ in range(120):
        opener = rng.choice(NEGATION_OPENERS)
        count = rng.choice(["", "5 ", "0 "])
        body = f"{rng.choice(names)} {count}{opener}"
        counts["inputs"] += 1
        outcome = await bot.say(room("dalarna"), duty_officer("dalarna"), body)
        assert outcome is not None, body  # never silence
        assert outcome.boards == [], body
        assert [p.purpose for p in outcome.posts] == ["reply"], body
        [entry] = outcome.audit
        assert entry.detail["problem"] == "arg.ack.negated", (body, entry.detail)
        counts["answered"] += 1
    assert not await bot.audit_entries("ack.recorded")
    status = (await bot.say(room("uppsala"), duty_officer("uppsala"), "!status")).posts[0].body
    assert "⏳ Region Dalarna" in status
    report("negations in a room", counts)
    assert counts["inputs"] == counts["answered"]


async def test_what_a_room_is_told_never_quotes_more_than_a_short_clean_excerpt(
    bot: Harness,
) -> None:
    await confirm_and_alarm(bot)
    rng = random.Random(4821)
    filler = ["x" * 3_900, "🚑" * 1_900, "\u202e" * 3_000, "ord " * 900, "\x00\x1b[31m" * 400]
    counts: Counter[str] = Counter()
    bodies = [
        "!" + "x" * 3_990,
        "!" + "ä" * 300,
        "!hjälp " + "x" * 3_000,
        "!status H-1 " + "y " * 1_900,
        "!händelse " + "q" * 3_000,
        "!larma H-" + "9" * 50,
        "!kvittera " + "9" * 3_000,
        "!kvittera 0184",
        "!kvittera 5 \u202eTXET\x00 bilar \u2066x\u2069",
    ]
    for _ in range(60):
        prefix = rng.choice(["!", "!hjälp ", "!status ", "!status H-1 ", "!larma ", "!kvittera "])
        bodies.append(prefix + rng.choice(filler)[: rng.randrange(1, 3_990)])
    for body in bodies:
        for where, who in (
            (room("uppsala"), duty_officer("uppsala")),
            (room("dalarna"), duty_officer("dalarna")),
        ):
            counts["inputs"] += 1
            outcome = await bot.say(where, who, body)
            assert outcome is not None, body[:60]
            assert outcome.posts, body[:60]
            for text in [p.body for p in outcome.posts] + [b.body for b in outcome.boards]:
                assert _shown_safely(text.replace("\n", "")), repr(text[:200])
                if not outcome.boards:
                    assert len(text) < 800, (body[:60], len(text))
            counts["answered"] += 1
    board = bot.boards[("H-1", room("uppsala"))]
    assert _shown_safely(board.replace("\n", ""))
    assert "TXET" in board  # the remark is kept, without its override
    report("echoes", counts)
    assert counts["inputs"] == counts["answered"]


async def test_a_headline_and_a_stand_down_remark_are_stored_clean(bot: Harness) -> None:
    tib = duty_officer("uppsala")
    await bot.say(room("uppsala"), tib, "!händelse stab Brand\u202e\x00 i Ånge\u2067")
    await bot.say(room("uppsala"), tib, "!larma")
    await bot.say(room("uppsala"), tib, "!avlarma H-1 Klart\u202e\x1b[0m, tack")
    texts = [s.post.body for s in bot.sent] + list(bot.boards.values())
    texts += [d.body for d in bot.deliveries]
    assert any("Brand i Ånge" in t for t in texts)
    assert any("Klart[0m, tack" in t for t in texts)
    for text in texts:
        assert _shown_safely(text.replace("\n", "")), repr(text)
