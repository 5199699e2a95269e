"""Texts for the SMS and e-mail channels: alarms with a reply code, answers to replies.

A message that can be answered carries the placeholders :data:`CODE` (and, in e-mail,
:data:`LINK`) instead of a code: the outbox row is written with the placeholder and the
channel outbox fills in the recipient's code when it sends, inside its claim transaction. So
neither the database nor a log of the outbox ever holds a live code, and a resend after a crash
carries the same code (codes are idempotent per outbox key).

SMS texts are one GSM-7 paragraph plus a last line with the reply instruction; the outbox
shortens the paragraph, never that last line, to fit the segment budget.
"""

from __future__ import annotations

from bot.domain import ChainParty, Incident
from commands.outcome import CODE, LINK
from commands.render.voice import Voice

SMS_HEADLINE = 60  # characters of the headline an SMS keeps


def sms_headline(incident: Incident) -> str:
    headline = incident.headline
    if len(headline) > SMS_HEADLINE:
        headline = headline[: SMS_HEADLINE - 3].rstrip() + "..."
    return headline


def sms_reply_line(member: ChainParty, voice: Voice) -> str:
    """``Svara: KVITTERA {code} <antal>``: the last line of every alarm SMS."""
    if member.requirement.secondary_transports > 0:
        return voice.text("sms.reply_how", code=CODE)
    return voice.text("sms.reply_how.plain", code=CODE)


def render_alarm_sms(incident: Incident, member: ChainParty, voice: Voice) -> str:
    """The alarm as a short text: no emoji (GSM-7), the headline cut, the reply line last."""
    transports = member.requirement.secondary_transports
    text = voice.text(
        "sms.alarm",
        incident=incident.id,
        level=voice.level(incident.level),
        headline=sms_headline(incident),
        region=incident.region_name,
        party=member.party.name,
    )
    if transports > 0:
        text += voice.text("sms.alarm.transports", count=transports)
    return voice.lines(text, sms_reply_line(member, voice))


def email_reply_lines(
    member: ChainParty, voice: Voice, *, ack_command: str, with_link: bool
) -> list[str]:
    """How to answer an alarm e-mail: reply with the code, open the link, or use the room."""
    if member.requirement.secondary_transports > 0:
        lines = [voice.text("email.reply_how", code=CODE)]
    else:
        lines = [voice.text("email.reply_how.plain", code=CODE)]
    if with_link:
        lines.append(voice.text("email.link", link=LINK))
    if member.party.room is not None:
        lines.append(voice.text("email.room", command=ack_command))
    return lines


def render_alarm_email(
    incident: Incident,
    member: ChainParty,
    voice: Voice,
    *,
    ack_command: str,
    with_link: bool,
    failed_channel: str | None = None,
) -> str:
    """The alarm as plain-text mail to a function address; the first line is the subject."""
    requirement = member.requirement
    transports = requirement.secondary_transports
    party = member.party
    return voice.lines(
        voice.text("alarm.header", incident=incident.id, level=voice.level(incident.level)),
        voice.text("email.fallback", party=party.name, channel=voice.channel_name(failed_channel))
        if failed_channel
        else None,
        voice.text("alarm.intro", region=incident.region_name, headline=incident.headline),
        voice.text("alarm.to", party=party.name, people=voice.people(party.duty_officers)),
        voice.text("alarm.ask.acknowledge"),
        voice.text("alarm.ask.transports", count=transports) if transports > 0 else None,
        voice.text("alarm.ask.blood_centres") if requirement.alarm_blood_centres else None,
        "",
        *email_reply_lines(member, voice, ack_command=ack_command, with_link=with_link),
    )


def render_stand_down_sms(incident: Incident, voice: Voice) -> str:
    """The stand-down as a short text (no reply is asked for)."""
    text = voice.text(
        "sms.standdown",
        incident=incident.id,
        region=incident.region_name,
        headline=sms_headline(incident),
    )
    if incident.stand_down_remark:
        text += voice.text("sms.standdown.remark", remark=incident.stand_down_remark)
    return text
