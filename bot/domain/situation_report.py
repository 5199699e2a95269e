"""The situation report (*lägesbild*): a shared template, numbered versions, what changed.

The decided content of the masskadelarm includes an *initial lägesbild* that follows a shared
template; the Norwegian evaluation asks for a shared situation picture. So the report is not
free text: it has the fields of a template (METHANE by default: Major incident, Exact location,
Type, Hazards, Access, Number of casualties, Emergency services, plus free text), in the
template's order, and the fields the template marks as required must be in the first version.

Every change makes a new numbered version (v1, v2, …) that remembers what changed against the
previous one (added, changed, cleared), so every party can be shown what is new without reading
the whole report again, and the after-action report can show how the picture developed.

The template is frozen into the incident with the first version, like the alarm chain: a config
edit during an incident changes neither the fields of its report nor their names.

Input is ``fält=text …``: a value runs to the next ``field=`` that starts a word, so
``plats=E4 Knivsta antal=40`` sets two fields and ``plats=https://karta.example/?z=14`` keeps
its ``=``. Field names are matched folded (case and diacritics), in any of the template's
spellings. ``-`` as a value clears a field. Everything that is wrong is reported at once, as
typed :class:`Problem` values, so the answer can name each of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any

from bot.domain.errors import DomainError
from bot.domain.words import fold

#: A value that clears its field.
CLEAR = "-"
#: The free-text field of the default template.
NOTE = "note"

# A field marker: a name of letters (with - or _ between parts) and '=', at the start of the
# text or after white space. Digits are not allowed in a name, so "P1=10" in a value stays text.
_MARKER = re.compile(r"(?:^|(?<=\s))([^\W\d_]+(?:[_\-][^\W\d_]+)*)[ \t]*=")
_NAME = re.compile(r"^[^\W\d_]+(?:[_\-][^\W\d_]+)*$")
_KEY = re.compile(r"^[a-z][a-z_]{0,39}$")

# What is echoed of a wrong name or of stray text, at most.
ECHO = 40


class ProblemKind:
    """Why (part of) an update cannot be applied. Plain strings: they go into the audit log."""

    TEXT_BEFORE_FIELD = "text_before_field"  # "E4 Knivsta plats=…": whose text is that?
    UNKNOWN_FIELD = "unknown_field"
    EMPTY_VALUE = "empty_value"
    REPEATED_FIELD = "repeated_field"
    TOO_LONG = "too_long"  # one value over the template's limit
    REPORT_TOO_LONG = "report_too_long"  # the whole report would be over the limit
    NOTHING_GIVEN = "nothing_given"
    MISSING_REQUIRED = "missing_required"  # the initial report lacks a required field
    REQUIRED_CLEARED = "required_cleared"  # a later version would lose a required field


@dataclass(frozen=True)
class Problem:
    kind: str
    field: str | None = None  # the field's key, where the problem is about a known field
    name: str = ""  # as typed: an unknown field's name, or the stray text
    length: int = 0
    limit: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.field is not None:
            out["field"] = self.field
        if self.name:
            out["name"] = self.name
        if self.limit:
            out["length"], out["limit"] = self.length, self.limit
        return out


class InvalidSituationReport(DomainError):
    """The update was not applied; ``problems`` says every reason."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(", ".join(p.kind for p in self.problems))


class NoChange(DomainError):
    """The update says what the current version says already: no new version."""

    def __init__(self, version: int) -> None:
        super().__init__(f"situation report v{version} already says that")
        self.version = version


@dataclass(frozen=True)
class ReportField:
    """One field of the template.

    ``names`` maps a language to the field's name as shown; empty for the default template,
    whose names live in the message catalogue. ``aliases`` are the spellings accepted as input
    besides the key, in every room whatever its language (input vocabulary, not output).
    """

    key: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    names: tuple[tuple[str, str], ...] = ()

    def name(self, lang: str) -> str | None:
        """The configured name in ``lang`` (or Swedish), None for a catalogue-named field."""
        names = dict(self.names)
        return names.get(lang) or names.get("sv") or next(iter(names.values()), None)

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(fold(s) for s in (self.key, *self.aliases)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "aliases": list(self.aliases),
            "required": self.required,
            "names": dict(self.names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportField:
        return cls(
            key=data["key"],
            aliases=tuple(data.get("aliases", ())),
            required=bool(data.get("required", False)),
            names=tuple(sorted((data.get("names") or {}).items())),
        )


@dataclass(frozen=True)
class ReportTemplate:
    """The fields of the situation report, in the order they are shown, and its limits."""

    fields: tuple[ReportField, ...]
    max_field_length: int = 300
    max_report_length: int = 2000
    _by_spelling: dict[str, ReportField] = dataclass_field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a situation report template needs at least one field")
        if self.max_field_length < 1 or self.max_report_length < self.max_field_length:
            raise ValueError("the report's limit must be at least the limit of one field")
        keys = [f.key for f in self.fields]
        if len(set(keys)) != len(keys):
            raise ValueError(f"two fields share a key: {keys}")
        for f in self.fields:
            if not _KEY.match(f.key):
                raise ValueError(f"field key {f.key!r} is not lower-case letters and '_'")
            for spelling in (f.key, *f.aliases):
                if not _NAME.match(spelling):
                    raise ValueError(f"field name {spelling!r} must be letters (and - or _)")
                folded = fold(spelling)
                other = self._by_spelling.get(folded)
                if other is not None and other is not f:
                    raise ValueError(f"{spelling!r} names both {other.key} and {f.key}")
                self._by_spelling[folded] = f

    def field(self, key: str) -> ReportField | None:
        return next((f for f in self.fields if f.key == key), None)

    def by_name(self, name: str) -> ReportField | None:
        """The field typed as ``name`` (any spelling, any case, with or without diacritics)."""
        return self._by_spelling.get(fold(name))

    @property
    def required(self) -> tuple[ReportField, ...]:
        return tuple(f for f in self.fields if f.required)

    def order(self, keys: Iterable[str]) -> list[str]:
        """``keys`` in the template's order."""
        wanted = set(keys)
        return [f.key for f in self.fields if f.key in wanted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fields": [f.to_dict() for f in self.fields],
            "max_field_length": self.max_field_length,
            "max_report_length": self.max_report_length,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportTemplate:
        return cls(
            fields=tuple(ReportField.from_dict(f) for f in data["fields"]),
            max_field_length=data.get("max_field_length", 300),
            max_report_length=data.get("max_report_length", 2000),
        )


#: METHANE, the usual structure of a major-incident report. The aliases are the three languages'
#: words for each field (folded: "väg" is typed as "väg" or "vag"); names are in the catalogue.
METHANE = ReportTemplate(
    fields=(
        ReportField("major_incident", ("major", "sarskild", "sarskild_handelse", "saerskilt")),
        ReportField(
            "location",
            ("plats", "exakt_plats", "adress", "sted", "adresse", "exact_location"),
            required=True,
        ),
        ReportField("type", ("typ", "handelsetyp", "hendelsestype"), required=True),
        ReportField("hazards", ("risker", "risk", "fara", "faror", "fare", "farer", "hazard")),
        ReportField("access", ("framkomlighet", "tillfart", "vag", "adkomst", "atkomst", "route")),
        ReportField(
            "casualties",
            ("antal", "skadade", "drabbade", "antall", "skadde", "skadede", "number"),
            required=True,
        ),
        ReportField(
            "services",
            ("resurser", "insatser", "blaljus", "ressurser", "nodetater", "emergency_services"),
        ),
        ReportField(NOTE, ("ovrigt", "fritext", "annet", "fritekst", "other", "text")),
    )
)


def _clean(value: str) -> str:
    """White space of a value as one space: the report is read on phones, and on SMS."""
    return " ".join(value.split())


@dataclass(frozen=True)
class ParsedUpdate:
    """What ``fält=text …`` asks for: values by field key (None clears), or what is wrong."""

    changes: tuple[tuple[str, str | None], ...]
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_update(template: ReportTemplate, text: str) -> ParsedUpdate:
    """Read ``fält=text …`` against ``template``; every problem is reported, none is guessed."""
    problems: list[Problem] = []
    markers = list(_MARKER.finditer(text))
    before = _clean(text[: markers[0].start()] if markers else text)
    if before:
        problems.append(Problem(ProblemKind.TEXT_BEFORE_FIELD, name=before[:ECHO]))
    if not markers and not before:
        problems.append(Problem(ProblemKind.NOTHING_GIVEN))
    changes: dict[str, str | None] = {}
    seen: set[str] = set()
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        value = _clean(text[marker.end() : end])
        typed = marker.group(1)
        found = template.by_name(typed)
        if found is None:
            problems.append(Problem(ProblemKind.UNKNOWN_FIELD, name=typed[:ECHO]))
            continue
        if found.key in seen:
            repeated = (p.field for p in problems if p.kind == ProblemKind.REPEATED_FIELD)
            if found.key not in repeated:
                problems.append(Problem(ProblemKind.REPEATED_FIELD, found.key, typed[:ECHO]))
            continue
        seen.add(found.key)
        if not value:
            problems.append(Problem(ProblemKind.EMPTY_VALUE, found.key, typed[:ECHO]))
            continue
        if len(value) > template.max_field_length:
            problems.append(
                Problem(
                    ProblemKind.TOO_LONG,
                    found.key,
                    typed[:ECHO],
                    length=len(value),
                    limit=template.max_field_length,
                )
            )
            continue
        changes[found.key] = None if value == CLEAR else value
    ordered = tuple((k, changes[k]) for k in template.order(changes))
    return ParsedUpdate(ordered, tuple(problems))


class ChangeKind:
    ADDED = "added"
    CHANGED = "changed"
    CLEARED = "cleared"


@dataclass(frozen=True)
class FieldChange:
    """One field's difference against the previous version."""

    key: str
    kind: str  # added | changed | cleared
    before: str | None
    after: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "before": self.before, "after": self.after}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldChange:
        return cls(data["key"], data["kind"], data.get("before"), data.get("after"))


@dataclass(frozen=True)
class SituationReportVersion:
    """One published version: every field's value as of then, and what changed."""

    number: int
    at: datetime
    by: str
    values: tuple[tuple[str, str], ...]  # set fields only, in the template's order
    changes: tuple[FieldChange, ...]  # against the previous version; v1: every field added

    def value(self, key: str) -> str | None:
        return dict(self.values).get(key)

    def change(self, key: str) -> FieldChange | None:
        return next((c for c in self.changes if c.key == key), None)

    @property
    def length(self) -> int:
        return sum(len(v) for _, v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "by": self.by,
            "values": [[k, v] for k, v in self.values],
            "changes": [c.to_dict() for c in self.changes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SituationReportVersion:
        return cls(
            number=data["number"],
            at=datetime.fromisoformat(data["at"]),
            by=data["by"],
            values=tuple((k, v) for k, v in data["values"]),
            changes=tuple(FieldChange.from_dict(c) for c in data["changes"]),
        )


def diff(
    template: ReportTemplate, before: Mapping[str, str], after: Mapping[str, str]
) -> tuple[FieldChange, ...]:
    """What changed from ``before`` to ``after``, in the template's order."""
    out = []
    for key in template.order({*before, *after}):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old is None:
            out.append(FieldChange(key, ChangeKind.ADDED, None, new))
        elif new is None:
            out.append(FieldChange(key, ChangeKind.CLEARED, old, None))
        else:
            out.append(FieldChange(key, ChangeKind.CHANGED, old, new))
    return tuple(out)


class SituationReport:
    """The report of one incident: its frozen template and every version, oldest first."""

    def __init__(
        self, template: ReportTemplate, versions: Iterable[SituationReportVersion] = ()
    ) -> None:
        self.template = template
        self.versions: list[SituationReportVersion] = list(versions)

    @property
    def current(self) -> SituationReportVersion | None:
        return self.versions[-1] if self.versions else None

    def version(self, number: int) -> SituationReportVersion | None:
        return next((v for v in self.versions if v.number == number), None)

    def update(
        self, changes: Iterable[tuple[str, str | None]], *, by: str, at: datetime
    ) -> SituationReportVersion:
        """Apply ``changes`` (values by key; None clears) as the next version.

        Raises :class:`InvalidSituationReport` when the initial version lacks a required field,
        a later one would clear one, or the whole report would be over the limit; raises
        :class:`NoChange` when nothing would change.
        """
        changes = list(changes)
        current = self.current
        before = dict(current.values) if current is not None else {}
        after = dict(before)
        for key, value in changes:
            if self.template.field(key) is None:
                raise ValueError(f"{key!r} is not a field of this report's template")
            if value is None:
                after.pop(key, None)
            else:
                after[key] = _clean(value)
        problems: list[Problem] = []
        for required in self.template.required:
            if required.key in after:
                continue
            if current is None:
                problems.append(Problem(ProblemKind.MISSING_REQUIRED, required.key))
            elif required.key in before:
                problems.append(Problem(ProblemKind.REQUIRED_CLEARED, required.key))
        total = sum(len(v) for v in after.values())
        if total > self.template.max_report_length:
            problems.append(
                Problem(
                    ProblemKind.REPORT_TOO_LONG,
                    length=total,
                    limit=self.template.max_report_length,
                )
            )
        if problems:
            raise InvalidSituationReport(problems)
        found = diff(self.template, before, after)
        if current is not None and not found:
            raise NoChange(current.number)
        if not found:  # a first version that only clears: nothing to publish
            raise InvalidSituationReport([Problem(ProblemKind.NOTHING_GIVEN)])
        version = SituationReportVersion(
            number=len(self.versions) + 1,
            at=at,
            by=by,
            values=tuple((k, after[k]) for k in self.template.order(after)),
            changes=found,
        )
        self.versions.append(version)
        return version

    def to_dict(self) -> dict[str, Any]:
        return {
            "template": self.template.to_dict(),
            "versions": [v.to_dict() for v in self.versions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SituationReport:
        return cls(
            ReportTemplate.from_dict(data["template"]),
            [SituationReportVersion.from_dict(v) for v in data.get("versions", ())],
        )
