"""The after-action report as one self-contained HTML page that prints well.

Self-contained on purpose: the file is sent as an encrypted attachment, opened on a phone or
printed for the evaluation meeting, often on a machine without network; so it has its style
sheet inline, no script, no font, no image and no link to anything outside itself (the browser
test checks that opening it makes no request at all). The print style sheet drops colours,
keeps tables from breaking inside a row and repeats their headings on every page.

Every word comes from the catalogue (``report.*``), every interpolated value is HTML-escaped,
as on the acknowledge-link pages (:mod:`bot.http.pages`); this module only adds the markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from bot.domain import ChangeKind
from commands.render.situation import field_name
from commands.render.voice import LOCAL_TIME_ZONE, Voice
from commands.report.timeline import Kind, PartyFigures, Timeline
from commands.report.wording import describe, duration, party_name, transport_name

_STAMP = "%Y-%m-%d %H:%M:%S"
_CLOCK = "%H:%M:%S"
_CHANNELS = ("matrix", "sms", "email")
_PROBLEMS = (Kind.RETRY, Kind.FAILED, Kind.UNDELIVERED, Kind.CANCELLED, Kind.FALLBACK)
# Words, not the chat's emoji: a printer or a machine without an emoji font shows those as boxes.
_MARK_KEYS = {
    ChangeKind.ADDED: "report.html.mark.added",
    ChangeKind.CHANGED: "report.html.mark.changed",
}

_STYLE = (
    ":root{color-scheme:light}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.5rem auto;"
    "max-width:60rem;padding:0 1rem;color:#111;line-height:1.4}"
    "h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem;"
    "border-bottom:2px solid #333}h3{font-size:1rem;margin:1rem 0 .25rem}"
    ".lede{margin:0;color:#333}.meta{color:#555;font-size:.9rem}"
    "dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}"
    "dl.facts dt{font-weight:600}dl.facts dd{margin:0}"
    "table{border-collapse:collapse;width:100%;font-size:.9rem}"
    "th,td{border:1px solid #bbb;padding:.25rem .4rem;text-align:left;vertical-align:top}"
    "th{background:#eee}td.num{text-align:right;white-space:nowrap}td.time{white-space:nowrap}"
    "tr.problem td{background:#fff3cd}tr.missing td{background:#f8d7da}"
    ".short{color:#a00;font-weight:600}.changed{font-weight:600}"
    ".mark{font-size:.75rem;font-weight:400;border:1px solid #777;border-radius:.2rem;"
    "padding:0 .2rem}"
    "footer{margin-top:2rem;font-size:.8rem;color:#555;word-break:break-all}"
    "@media print{body{margin:0;max-width:none;font-size:10pt}"
    "h2{break-after:avoid}tr,li,dl{break-inside:avoid}thead{display:table-header-group}"
    "tr.problem td,tr.missing td,th{background:none}a{color:inherit;text-decoration:none}"
    "@page{margin:15mm}}"
)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


class _Page:
    def __init__(self, timeline: Timeline, voice: Voice) -> None:
        self.t = timeline
        self.voice = voice
        self.zone = voice.zone or ZoneInfo(LOCAL_TIME_ZONE)

    def say(self, key: str, **params: object) -> str:
        return _e(self.voice.text(key, **params))

    def stamp(self, when: datetime | None) -> str:
        return _e(when.astimezone(self.zone).strftime(_STAMP)) if when else self.say("report.none")

    def clock(self, when: datetime | None) -> str:
        return _e(when.astimezone(self.zone).strftime(_CLOCK)) if when else ""

    def facts(self) -> str:
        f = self.t.figures
        incident = self.t.incident
        rows: list[tuple[str, str]] = [
            (self.say("report.html.confirmed"), self.stamp(f.confirmed_at)),
            (self.say("report.html.confirmed_by"), _e(self.voice.person(incident.confirmed_by))),
            (self.say("report.html.alarmed"), self.stamp(f.alarmed_at)),
            (self.say("report.html.completed"), self.stamp(f.completed_at)),
            (
                self.say("report.html.time_to_complete"),
                _e(duration(f.time_to_complete, self.voice)),
            ),
            (
                self.say("report.html.acknowledged"),
                self.say("report.html.of", part=f.acknowledged, total=f.parties),
            ),
            (self.say("report.html.median"), _e(duration(f.median_time_to_ack, self.voice))),
            (
                self.say("report.html.slowest"),
                _e(f.slowest.name) + " · " + _e(duration(f.slowest.time_to_ack, self.voice))
                if f.slowest is not None
                else self.say("report.none"),
            ),
            (
                self.say("report.html.transports"),
                self.say("report.html.of", part=f.pledged, total=f.required),
            ),
            (self.say("report.html.problems"), _e(f.problems)),
            (self.say("report.html.fallbacks"), _e(f.fallbacks)),
            (self.say("report.html.reminders"), _e(f.reminders)),
            (self.say("report.html.stood_down"), self.stamp(f.stood_down_at)),
        ]
        if incident.stand_down_remark:
            rows.append((self.say("report.html.remark"), _e(incident.stand_down_remark)))
        items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
        return f'<dl class="facts">{items}</dl>'

    def _channel_cell(self, party: PartyFigures, channel: str) -> str:
        figure = next((c for c in party.channels if c.channel == channel), None)
        if figure is None:
            return "<td></td>"
        parts = []
        if figure.alarm_sent_at is not None:
            parts.append(self.say("report.html.sent_at", time=self.clock(figure.alarm_sent_at)))
        if figure.acknowledged_at is not None:
            parts.append(
                self.say(
                    "report.html.acked_at",
                    time=self.clock(figure.acknowledged_at),
                    channel=self.voice.channel(figure.acknowledged_as or ""),
                )
            )
        if figure.time_to_ack is not None:
            parts.append(f"<strong>{_e(duration(figure.time_to_ack, self.voice))}</strong>")
        return "<td>" + "<br>".join(parts) + "</td>"

    def parties(self) -> str:
        if not self.t.parties:
            return f"<p>{self.say('report.not_alarmed')}</p>"
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                self.say("report.html.party"),
                self.say("report.html.first_ack"),
                self.say("report.html.time_to_ack"),
                *(_e(transport_name(c, self.voice)) for c in _CHANNELS),
                self.say("report.html.pledge"),
                self.say("report.html.reminders"),
                self.say("report.html.problems"),
            )
        )
        rows = []
        for p in self.t.parties:
            if p.acknowledged_at is None:
                first = self.say("report.html.not_acknowledged")
            else:
                first = self.say(
                    "report.html.first_ack_value",
                    time=self.clock(p.acknowledged_at),
                    person=self.voice.person(p.acknowledged_by),
                    channel=self.voice.channel(p.acknowledged_via or ""),
                )
                if p.acknowledgements > 1:
                    first += "<br>" + self.say("report.html.times", count=p.acknowledgements)
            pledge = ""
            if p.required > 0:
                pledge = self.say(
                    "report.html.of",
                    part=p.pledged if p.pledged is not None else 0,
                    total=p.required,
                )
                if p.short:
                    pledge = f'<span class="short">{pledge}</span>'
            elif p.alarm_blood_centres:
                pledge = self.say("report.html.blood_centres")
            row = (
                '<tr class="missing">'
                if p.acknowledged_at is None
                else '<tr class="problem">'
                if p.problems
                else "<tr>"
            )
            cells = "".join(self._channel_cell(p, c) for c in _CHANNELS)
            rows.append(
                f"{row}<td>{_e(p.name)}</td><td>{first}</td>"
                f'<td class="num">{_e(duration(p.time_to_ack, self.voice))}</td>{cells}'
                f'<td class="num">{pledge}</td><td class="num">{p.reminders}</td>'
                f'<td class="num">{p.problems}</td></tr>'
            )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

    def situation(self) -> str:
        report = self.t.incident.situation_report
        if report is None or not report.versions:
            return f"<p>{self.say('report.html.no_situation')}</p>"
        out = []
        for version in report.versions:
            title = self.say(
                "report.html.version",
                version=version.number,
                time=self.stamp(version.at),
                person=self.voice.person(version.by),
            )
            items = []
            for f in report.template.fields:
                change = version.change(f.key) if version.number > 1 else None
                value = version.value(f.key)
                name = _e(field_name(f, self.voice))
                if value is None:
                    if change is not None and change.kind == ChangeKind.CLEARED:
                        cleared = self.say("report.html.cleared", before=change.before or "")
                        items.append(f'<dt class="changed">{name}</dt><dd>{cleared}</dd>')
                    continue
                mark = (
                    f' <span class="mark">{self.say(_MARK_KEYS[change.kind])}</span>'
                    if change is not None
                    else ""
                )
                term = '<dt class="changed">' if change is not None else "<dt>"
                items.append(f"{term}{name}{mark}</dt><dd>{_e(value)}</dd>")
            out.append(f'<h3>{title}</h3><dl class="facts">{"".join(items)}</dl>')
        return "".join(out)

    def log(self) -> str:
        entries = self.t.incident.log
        if not entries:
            return f"<p>{self.say('report.html.no_log')}</p>"
        items = "".join(
            f'<li><span class="meta">{self.stamp(e.at)} · {_e(self.voice.person(e.by))} · '
            f"{_e(party_name(self.t, e.party_id, self.voice))}</span><br>{_e(e.text)}</li>"
            for e in entries
        )
        return f"<ol>{items}</ol>"

    def timeline(self) -> str:
        rows = []
        for event in self.t.events:
            row = '<tr class="problem">' if event.kind in _PROBLEMS else "<tr>"
            seq = "" if event.seq is None else _e(event.seq)
            rows.append(
                f'{row}<td class="time">{self.stamp(event.at)}</td>'
                f"<td>{_e(describe(event, self.t, self.voice))}</td>"
                f'<td class="num">{seq}</td></tr>'
            )
        head = (
            f"<th>{self.say('report.html.when')}</th><th>{self.say('report.html.what')}</th>"
            f"<th>{self.say('report.html.seq')}</th>"
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

    def footer(self, generated_at: datetime) -> str:
        head = self.t.history.head
        audit = (
            self.say("report.html.audit", seq=head.seq, hash=head.hash)
            if head is not None
            else self.say("report.audit.empty")
        )
        return (
            f"<footer><p>{audit}</p>"
            f"<p>{self.say('report.html.generated', time=self.stamp(generated_at))}</p></footer>"
        )

    def render(self, generated_at: datetime) -> str:
        incident = self.t.incident
        title = self.say("report.html.title", incident=incident.id)
        lede = self.say(
            "report.html.lede",
            level=self.voice.level(incident.level),
            region=incident.region_name,
            headline=incident.headline,
        )
        sections: Iterable[tuple[str, str]] = (
            ("report.html.facts", self.facts()),
            ("report.html.parties", self.parties()),
            ("report.html.situation", self.situation()),
            ("report.html.log", self.log()),
            ("report.html.timeline", self.timeline()),
        )
        body = "".join(
            f"<section><h2>{self.say(key)}</h2>{content}</section>" for key, content in sections
        )
        return (
            f'<!doctype html><html lang="{_e(self.voice.lang)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{title}</title><style>{_STYLE}</style></head><body>"
            f'<header><h1>{title}</h1><p class="lede">{lede}</p></header>'
            f"{body}{self.footer(generated_at)}</body></html>"
        )


def render_report_html(timeline: Timeline, voice: Voice, *, generated_at: datetime) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    return _Page(timeline, voice).render(generated_at)
