"""Every SMS the bot writes stays GSM-7 and fits its segment budget, in sv, nb and en.

One character outside the GSM 7-bit alphabet (an en dash, an ellipsis, an emoji) switches a
whole SMS to UCS-2 and cuts a segment from 160 to 70 characters; a text over budget is shortened
by the outbox (:func:`bridges.sms.sender.sms_text`), which keeps the reply line whole but
drops the end of the alarm. So the texts are written here with the real command layer, renderers
and catalogue, for the worst input a config and a duty officer can give: 40-character party and
region names full of å ä ö æ ø, the longest headline ``!händelse`` accepts, the readiness level
with the longest name, incident H-9999, the config's largest transport requirement, an 8-digit
reply code and an escalation step almost a day late. Then:

(a) the SMS templates are GSM-7 (the chat texts an SMS answer reuses may hold typographic quotes
    and dashes, which the outbox replaces, but nothing else), and every text as sent is GSM-7;
(b) every alarm fits :data:`ALARM_BUDGET` segments as written, so the outbox cuts nothing, and
    fitted to the budget (or to one segment) it still ends with the whole reply line; so does
    the stand-down notice, which asks for no reply;
(c) every answer to a reply fits :data:`ANSWER_BUDGET` segments as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from chain_world import (
    BLOOD_CENTRE,
    NATIONAL,
    REGIONS,
    Harness,
    duty_officer,
    mellansverige,
    room,
)

from bot.clock import FakeClock
from bot.config import ChainConfig, Config
from bot.domain import Incident, Pledge, ReadinessLevel
from bot.i18n import LANGUAGES, Catalog
from bridges.reply_codes import MAX_DIGITS, RejectReason
from bridges.reply_parser import ParseProblem, parse_reply
from bridges.sms import gsm7
from bridges.sms.sender import sms_text
from commands.arguments import MAX_HEADLINE
from commands.channel_ack import (
    CLOSED,
    ReplySource,
    acknowledge_by_reply,
    refuse_reply,
    refuse_throttled,
)
from commands.outcome import CODE
from commands.registry import build_registry
from commands.render import Voice
from storage.database import Database
from storage.incidents import SqlIncidents

ALARM_BUDGET = 3  # segments: the default of [bridges.sms] budget_segments
ANSWER_BUDGET = 2
NAME_LENGTH = 40  # the longest plausible party or region name
CODE_NOW = "9" * MAX_DIGITS  # the longest reply code a config can ask for
INCIDENT_NUMBER = 9999
PARTIES = [*REGIONS, NATIONAL, BLOOD_CENTRE]
INITIATOR = "uppsala"
ALARMED = [p for p in PARTIES if p != INITIATOR]

# The reply line each alarm must end with (asking for a count, or not), as people copy it.
REPLY_LINES = {
    "sv": {"count": "Svara: KVITTERA {code} <antal>", "plain": "Svara: KVITTERA {code}"},
    "nb": {"count": "Svar: KVITTER {code} <antall>", "plain": "Svar: KVITTER {code}"},
    "en": {"count": "Reply: ACK {code} <count>", "plain": "Reply: ACK {code}"},
}

# Keys whose text goes out by SMS. The chat command's count problems are reused in the answer
# to an unreadable SMS reply; the outbox replaces their typographic quotes and dashes.
SMS_KEY_PREFIXES = ("sms.", "escalation.sms", "reply.", "level.", "duration.")
CHAT_KEYS_IN_SMS = (
    "arg.count.negative",
    "arg.count.too_large",
    "arg.count.not_whole",
    "arg.count.word",
    "arg.count.invalid",
)

# Replies that cannot be read, with the longest value each problem echoes.
UNREADABLE = {
    "no_code": "Hej, vi kvitterar",
    "negated": f"KVITTERA inte {CODE_NOW}",
    "count_negative": f"KVITTERA {CODE_NOW} -1000,50",
    "count_too_large": f"KVITTERA {CODE_NOW} +46701234567",  # a phone number as the count
    "count_not_whole": f"KVITTERA {CODE_NOW} 1000,50",
    "count_word": f"KVITTERA {CODE_NOW} twelve",
    "count_invalid": f"KVITTERA {CODE_NOW} 10sekundärtransporter",
}


def long_name(base: str) -> str:
    name = (base + " Øvre Ærø och Östra Ålands Sjöhälsovård")[:NAME_LENGTH].rstrip()
    return name.ljust(NAME_LENGTH, "ø")


def largest_requirement() -> int:
    field = ChainConfig.model_fields["required_transports"]
    return next(m.le for m in field.metadata if getattr(m, "le", None) is not None)


def worst_config(lang: str) -> Config:
    """Mellansverige in one language, every name 40 characters, one SMS step that can be late."""
    return mellansverige(
        languages=dict.fromkeys(PARTIES, lang),
        coordination_language=lang,
        required_transports=largest_requirement(),
        escalation={
            "steps": [{"after_min": 5, "action": "send", "channels": ["sms"]}],
            "max_repeats": 0,
        },
        party_overrides={p: {"name": long_name(f"Region {p.title()}")} for p in PARTIES},
    )


@dataclass
class Sms:
    what: str  # for the failure message
    body: str  # as the outbox row holds it: with the code placeholder in alarms
    plain: bool = False  # an alarm to a party that pledges no transports


@dataclass
class Night:
    lang: str
    alarms: list[Sms]
    answers: list[Sms]
    notices: list[Sms]  # SMS that ask for no reply: the stand-down


def sms_bodies(bot: Harness, what: str, incident: Incident) -> list[Sms]:
    """The SMS decided since the last call, each marked with whether it asks for a count."""
    assert incident.chain is not None
    found = []
    for delivery in bot.take_deliveries():
        if delivery.channel == "sms":
            member = incident.chain.party(delivery.party_id or "")
            assert member is not None
            plain = member.requirement.secondary_transports == 0
            found.append(Sms(f"{what} to {member.party.id}", delivery.body, plain))
    return found


def longest(texts: dict[timedelta, str]) -> timedelta:
    return max(texts, key=lambda delta: len(texts[delta]))


@pytest.fixture(params=LANGUAGES)
async def night(
    request: pytest.FixtureRequest, db: Database, clock: FakeClock, catalog: Catalog
) -> Night:
    """Alarm, late escalation and every answer to a reply, in one language."""
    lang: str = request.param
    config = worst_config(lang)
    bot = Harness(db=db, config=config, clock=clock, catalog=catalog)
    voice = Voice(catalog, lang)
    registry = build_registry()
    tib, uppsala = duty_officer(INITIATOR), room(INITIATOR)

    # Incident H-9999: the 9998th is over.
    earlier = Incident.confirm(
        number=INCIDENT_NUMBER - 1,
        region_id=INITIATOR,
        region_name=long_name("Region Uppsala"),
        level=ReadinessLevel.STAFF,
        headline="Övning",
        by=tib,
        clock=clock,
    )
    earlier.stand_down(by=tib, clock=clock)
    async with db.write() as session:
        await SqlIncidents(session).save(earlier)

    level = max(ReadinessLevel, key=lambda lv: len(voice.level(lv)))
    headline = ("Tågurspårning Märsta, ÅÄÖ æø " * 10)[: MAX_HEADLINE - 1] + "ø"
    confirmed = await bot.say(
        uppsala, tib, f"{registry.display('incident', lang)} {level.value} {headline}"
    )
    assert confirmed is not None
    assert confirmed.reaction == "✅", confirmed.posts
    await bot.say(uppsala, tib, registry.display("alarm", lang))
    async with db.read() as session:
        incident = await SqlIncidents(session).get(f"H-{INCIDENT_NUMBER}")
    assert incident is not None
    assert incident.chain is not None
    assert incident.headline == headline
    assert incident.level is level
    alarms = sms_bodies(bot, "alarm", incident)
    assert {s.plain for s in alarms} == {True, False}  # both reply lines

    # The SMS step fires as late as reads longest ("23 h 59 min"), as after an outage.
    candidates = [
        timedelta(seconds=59),
        timedelta(minutes=59),
        timedelta(hours=23, minutes=59),
        timedelta(days=6, hours=23),
    ]
    late = longest({delta: voice.delay(delta) for delta in candidates})
    bot.clock.advance(timedelta(minutes=5) + late)
    await bot.run_due()
    escalations = sms_bodies(bot, "late escalation", incident)
    assert escalations
    assert all(voice.delay(late) in s.body for s in escalations)
    alarms += escalations

    answers: list[Sms] = []
    region = config.party("dalarna")
    assert region is not None
    number = region.sms[0]
    source = ReplySource("sms", number, "mo-1")
    async with db.write() as session:
        ctx = bot._context(session)  # what the engine hands the reply decision
        incident = await ctx.incidents.get(f"H-{INCIDENT_NUMBER}")
        assert incident is not None
        outcome, _ = await acknowledge_by_reply(
            ctx,
            incident,
            party_id=region.id,
            destination=number,
            source=source,
            pledge=Pledge(largest_requirement() - 1),  # the longest count still short
            at=clock.now(),
        )
        answers += [Sms("acknowledged, short", d.body) for d in outcome.deliveries]
        for reason in RejectReason:  # "foreign" is said as "wrong": both are here
            outcome = (
                refuse_throttled(ctx, source, until=clock.now(), repeats=0)
                if reason is RejectReason.THROTTLED
                else refuse_reply(
                    ctx,
                    source,
                    reason=reason.value,
                    audit_action="inbound_reply.refused",
                    incident_id=incident.id,
                )
            )
            answers += [Sms(f"refused: {reason.value}", d.body) for d in outcome.deliveries]
        for kind, reply in UNREADABLE.items():
            problem = parse_reply(reply)
            assert isinstance(problem, ParseProblem)
            assert problem.kind == kind, problem
            outcome = refuse_reply(
                ctx,
                source,
                reason="unparsed",
                audit_action="inbound_reply.unparsed",
                problem=problem.kind,
                problem_key=problem.key,
                problem_params=problem.params,
            )
            answers += [Sms(f"unparsed: {kind}", d.body) for d in outcome.deliveries]
    await bot.say(uppsala, tib, f"{registry.display('standdown', lang)} {headline}")
    notices = [
        Sms(f"stand-down to {d.party_id}", d.body)
        for d in bot.take_deliveries()
        if d.channel == "sms"
    ]
    assert len(notices) == len(ALARMED)
    other = config.party("gavleborg")
    assert other is not None
    async with db.write() as session:
        ctx = bot._context(session)
        stood_down = await ctx.incidents.get(f"H-{INCIDENT_NUMBER}")
        assert stood_down is not None
        outcome, status = await acknowledge_by_reply(
            ctx,
            stood_down,
            party_id=other.id,
            destination=other.sms[0],
            source=ReplySource("sms", other.sms[0], "mo-2"),
            pledge=None,
            at=clock.now(),
        )
        assert status == CLOSED
        answers += [Sms("closed", d.body) for d in outcome.deliveries]

    assert len(alarms) == 2 * len(ALARMED)  # alarm, late step
    assert len(answers) == 1 + len(RejectReason) + len(UNREADABLE) + 1
    return Night(lang, alarms, answers, notices)


def with_code(body: str) -> str:
    assert body.count(CODE) <= 1, body
    return body.replace(CODE, CODE_NOW)


def reply_line(night: Night, sms: Sms) -> str:
    return REPLY_LINES[night.lang]["plain" if sms.plain else "count"].format(code=CODE_NOW)


# -- (a) GSM-7 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_sms_templates_are_gsm7(catalog: Catalog, lang: str) -> None:
    sms_keys = sorted(k for k in catalog.keys(lang) if k.startswith(SMS_KEY_PREFIXES))
    assert {"sms.alarm", "sms.reply_how", "escalation.sms", "reply.acknowledged"} <= set(sms_keys)
    outside = {
        key: sorted({ch for ch in catalog.raw(lang, key) or "" if not gsm7.is_gsm7(ch)})
        for key in sms_keys
    }
    assert not {k: v for k, v in outside.items() if v}, f"{lang}.po: not GSM-7"
    for key in CHAT_KEYS_IN_SMS:
        template = gsm7.normalize(catalog.raw(lang, key) or "")
        assert template, f"{lang}.po lacks {key}"
        assert gsm7.is_gsm7(template), f"{lang}.po {key}: {template!r}"


def test_alarms_are_gsm7_as_written_and_as_sent(night: Night) -> None:
    for sms in night.alarms:
        text = with_code(sms.body)
        assert gsm7.is_gsm7(text), f"{sms.what}: {text!r}"
        assert gsm7.encoding(sms_text(text, ALARM_BUDGET)) is gsm7.Encoding.GSM7


def test_answers_to_replies_are_gsm7_as_sent(night: Night) -> None:
    for sms in night.answers:
        sent = sms_text(sms.body, ALARM_BUDGET)
        assert gsm7.encoding(sent) is gsm7.Encoding.GSM7, f"{sms.what}: {sent!r}"


# -- (b) alarms fit their budget and keep the reply line ---------------------------------------


def test_alarms_fit_the_budget_without_being_shortened(night: Night) -> None:
    for sms in night.alarms:
        text = with_code(sms.body)
        assert text.count(CODE_NOW) == 1, f"{sms.what}: the code once, in the reply line"
        assert text.endswith("\n" + reply_line(night, sms)), f"{sms.what}: {text!r}"
        count = gsm7.segments(gsm7.normalize(text))
        assert count <= ALARM_BUDGET, f"{sms.what}: {count} segments: {text!r}"
        fitted = sms_text(text, ALARM_BUDGET)
        assert fitted == gsm7.normalize(text).strip(), f"{sms.what}: shortened to {fitted!r}"


@pytest.mark.parametrize("budget", [ALARM_BUDGET, 1])
def test_fitted_alarms_end_with_the_whole_reply_line(night: Night, budget: int) -> None:
    for sms in night.alarms:
        fitted = sms_text(with_code(sms.body), budget)
        assert gsm7.segments(fitted) <= budget, f"{sms.what}: {fitted!r}"
        head, _, last = fitted.rpartition("\n")
        assert last == reply_line(night, sms), f"{sms.what}: {fitted!r}"
        assert f"H-{INCIDENT_NUMBER}" in head, f"{sms.what}: {fitted!r}"


def test_stand_down_sms_is_gsm7_and_fits_the_budget_as_written(night: Night) -> None:
    for sms in night.notices:
        assert CODE not in sms.body, sms.what
        assert gsm7.is_gsm7(sms.body), f"{sms.what}: {sms.body!r}"
        count = gsm7.segments(sms.body)
        assert count <= ALARM_BUDGET, f"{sms.what}: {count} segments: {sms.body!r}"
        assert sms_text(sms.body, ALARM_BUDGET) == sms.body.strip(), sms.what


# -- (c) answers to replies fit two segments ---------------------------------------------------


def test_answers_to_replies_fit_two_segments_as_written(night: Night) -> None:
    assert {s.what for s in night.answers} >= {"acknowledged, short", "closed"}
    for sms in night.answers:
        text = gsm7.normalize(sms.body)
        count = gsm7.segments(text)
        assert count <= ANSWER_BUDGET, f"{sms.what}: {count} segments: {sms.body!r}"
        assert sms_text(sms.body, ANSWER_BUDGET) == text.strip(), sms.what
