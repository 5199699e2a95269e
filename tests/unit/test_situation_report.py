"""The situation report in the domain: the template, reading ``fält=text …``, versions and what
changed, the incident log, and incident documents of every stored version (fake clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import FakeClock
from bot.domain import (
    CLEAR,
    METHANE,
    AlreadyStoodDown,
    ChangeKind,
    Incident,
    InvalidSituationReport,
    NoChange,
    ProblemKind,
    ReadinessLevel,
    ReportField,
    ReportTemplate,
    parse_update,
)
from bot.domain.incident_log import MAX_ENTRY

TIB = "@tib.uppsala:example.org"


def incident(clock: FakeClock) -> Incident:
    return Incident.confirm(
        number=7,
        region_id="uppsala",
        region_name="Region Uppsala",
        level=ReadinessLevel.DISASTER,
        headline="Bussolycka E4",
        by=TIB,
        clock=clock,
    )


# -- the template ------------------------------------------------------------------------------


def test_methane_is_the_default_template_in_its_order() -> None:
    assert [f.key for f in METHANE.fields] == [
        "major_incident",
        "location",
        "type",
        "hazards",
        "access",
        "casualties",
        "services",
        "note",
    ]
    assert [f.key for f in METHANE.required] == ["location", "type", "casualties"]


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("plats", "location"),
        ("PLATS", "location"),
        ("sted", "location"),
        ("location", "location"),
        ("exakt_plats", "location"),
        ("antal", "casualties"),
        ("antall", "casualties"),
        ("Casualties", "casualties"),
        ("väg", "access"),
        ("vag", "access"),
        ("framkomlighet", "access"),
        ("risker", "hazards"),
        ("farer", "hazards"),
        ("typ", "type"),
        ("övrigt", "note"),
        ("annet", "note"),
        ("blåljus", "services"),
        ("særskilt", "major_incident"),
    ],
)
def test_field_names_in_every_language_case_and_diacritics(typed: str, key: str) -> None:
    found = METHANE.by_name(typed)
    assert found is not None
    assert found.key == key


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((), "at least one field"),
        ((ReportField("a"), ReportField("a")), "share a key"),
        ((ReportField("Plats"),), "lower-case"),
        ((ReportField("a", ("x",)), ReportField("b", ("X",))), "names both"),
        ((ReportField("a", ("two words",)),), "must be letters"),
        ((ReportField("a", ("p1",)),), "must be letters"),
    ],
)
def test_a_template_that_cannot_work_is_refused(fields: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReportTemplate(fields=fields)


# -- reading fält=text ---------------------------------------------------------------------------


def test_a_value_runs_to_the_next_field() -> None:
    parsed = parse_update(METHANE, "plats=E4 Knivsta norrgående antal=40")
    assert parsed.ok
    assert parsed.changes == (("location", "E4 Knivsta norrgående"), ("casualties", "40"))


def test_equals_signs_inside_a_value_stay_text() -> None:
    parsed = parse_update(
        METHANE, "antal=40 (P1=10 P2=30) plats=karta https://karta.example/?z=14&q=E4"
    )
    assert parsed.ok, parsed.problems
    assert dict(parsed.changes) == {
        "casualties": "40 (P1=10 P2=30)",
        "location": "karta https://karta.example/?z=14&q=E4",
    }


def test_spaces_before_the_equals_sign_and_white_space_in_values() -> None:
    parsed = parse_update(METHANE, "plats =  E4\n  Knivsta   typ  = Buss")
    assert parsed.changes == (("location", "E4 Knivsta"), ("type", "Buss"))


def test_changes_come_in_the_templates_order_and_a_dash_clears() -> None:
    parsed = parse_update(METHANE, f"antal=40 risker={CLEAR} plats=E4")
    assert parsed.changes == (("location", "E4"), ("hazards", None), ("casualties", "40"))


def test_every_problem_is_reported_at_once() -> None:
    text = "Bussen brinner plats=E4 url=x risker= antal=40 ANTALL=3 typ=" + "x" * 301
    parsed = parse_update(METHANE, text)
    kinds = [(p.kind, p.field, p.name) for p in parsed.problems]
    assert kinds == [
        (ProblemKind.TEXT_BEFORE_FIELD, None, "Bussen brinner"),
        (ProblemKind.UNKNOWN_FIELD, None, "url"),
        (ProblemKind.EMPTY_VALUE, "hazards", "risker"),
        (ProblemKind.REPEATED_FIELD, "casualties", "ANTALL"),
        (ProblemKind.TOO_LONG, "type", "typ"),
    ]
    too_long = parsed.problems[-1]
    assert (too_long.length, too_long.limit) == (301, 300)
    assert not parsed.ok


def test_nothing_at_all_is_a_problem_too() -> None:
    assert [p.kind for p in parse_update(METHANE, "   ").problems] == [ProblemKind.NOTHING_GIVEN]


def test_echoed_text_is_bounded() -> None:
    parsed = parse_update(METHANE, "x" * 500 + " plats=E4")
    assert len(parsed.problems[0].name) == 40


# -- versions and what changed -------------------------------------------------------------------


def test_versions_are_numbered_and_know_what_changed() -> None:
    clock = FakeClock()
    h = incident(clock)
    v1 = h.update_situation_report(
        METHANE, [("location", "E4"), ("type", "Buss"), ("casualties", "40")], by=TIB, clock=clock
    )
    assert v1.number == 1
    assert v1.at == clock.now()
    assert [(c.key, c.kind) for c in v1.changes] == [
        ("location", ChangeKind.ADDED),
        ("type", ChangeKind.ADDED),
        ("casualties", ChangeKind.ADDED),
    ]
    clock.advance(timedelta(minutes=4))
    v2 = h.update_situation_report(
        METHANE,
        [("casualties", "47"), ("hazards", "brand"), ("location", "E4")],
        by=TIB,
        clock=clock,
    )
    assert v2.number == 2
    assert v2.at - v1.at == timedelta(minutes=4)
    assert [(c.key, c.kind, c.before, c.after) for c in v2.changes] == [
        ("hazards", ChangeKind.ADDED, None, "brand"),
        ("casualties", ChangeKind.CHANGED, "40", "47"),
    ]
    v3 = h.update_situation_report(METHANE, [("hazards", None)], by=TIB, clock=clock)
    assert [(c.key, c.kind, c.before) for c in v3.changes] == [
        ("hazards", ChangeKind.CLEARED, "brand")
    ]
    assert v3.values == (("location", "E4"), ("type", "Buss"), ("casualties", "47"))
    assert h.situation is v3
    assert [v.number for v in h.situation_report.versions] == [1, 2, 3]  # type: ignore[union-attr]


def test_the_initial_report_needs_the_required_fields() -> None:
    clock = FakeClock()
    h = incident(clock)
    with pytest.raises(InvalidSituationReport) as refused:
        h.update_situation_report(METHANE, [("location", "E4")], by=TIB, clock=clock)
    assert [(p.kind, p.field) for p in refused.value.problems] == [
        (ProblemKind.MISSING_REQUIRED, "type"),
        (ProblemKind.MISSING_REQUIRED, "casualties"),
    ]
    assert h.situation_report is None  # nothing half-applied


def test_a_required_field_cannot_be_cleared_later_but_may_change() -> None:
    clock = FakeClock()
    h = incident(clock)
    h.update_situation_report(
        METHANE, [("location", "E4"), ("type", "Buss"), ("casualties", "40")], by=TIB, clock=clock
    )
    with pytest.raises(InvalidSituationReport) as refused:
        h.update_situation_report(METHANE, [("type", None)], by=TIB, clock=clock)
    assert [p.kind for p in refused.value.problems] == [ProblemKind.REQUIRED_CLEARED]
    assert h.update_situation_report(METHANE, [("type", "Tåg")], by=TIB, clock=clock).number == 2


def test_the_same_again_is_no_new_version() -> None:
    clock = FakeClock()
    h = incident(clock)
    values = [("location", "E4"), ("type", "Buss"), ("casualties", "40")]
    h.update_situation_report(METHANE, values, by=TIB, clock=clock)
    with pytest.raises(NoChange) as same:
        h.update_situation_report(METHANE, [*values, ("hazards", None)], by=TIB, clock=clock)
    assert same.value.version == 1
    assert len(h.situation_report.versions) == 1  # type: ignore[union-attr]


def test_the_whole_report_has_a_limit() -> None:
    clock = FakeClock()
    template = ReportTemplate(
        fields=(ReportField("a"), ReportField("b")), max_field_length=30, max_report_length=50
    )
    h = incident(clock)
    h.update_situation_report(template, [("a", "x" * 30)], by=TIB, clock=clock)
    with pytest.raises(InvalidSituationReport) as refused:
        h.update_situation_report(template, [("b", "y" * 21)], by=TIB, clock=clock)
    problem = refused.value.problems[0]
    assert (problem.kind, problem.length, problem.limit) == (ProblemKind.REPORT_TOO_LONG, 51, 50)


def test_the_template_is_frozen_with_the_first_version() -> None:
    clock = FakeClock()
    h = incident(clock)
    own = ReportTemplate(fields=(ReportField("patients", names=(("sv", "Patienter"),)),))
    h.update_situation_report(own, [("patients", "12")], by=TIB, clock=clock)
    # a later call with another template (the config changed) keeps the frozen one
    h.update_situation_report(METHANE, [("patients", "14")], by=TIB, clock=clock)
    assert h.situation_report.template == own  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="not a field"):
        h.update_situation_report(METHANE, [("location", "E4")], by=TIB, clock=clock)


def test_no_situation_report_after_the_stand_down() -> None:
    clock = FakeClock()
    h = incident(clock)
    h.stand_down(by=TIB, clock=clock)
    with pytest.raises(AlreadyStoodDown):
        h.update_situation_report(METHANE, [("location", "E4")], by=TIB, clock=clock)


# -- the incident log ----------------------------------------------------------------------------


def test_log_entries_are_numbered_timed_and_allowed_after_the_stand_down() -> None:
    clock = FakeClock()
    h = incident(clock)
    first = h.add_log_entry("  Beslut: stabsläge i 2 h  ", by=TIB, clock=clock, party_id="uppsala")
    clock.advance(timedelta(minutes=30))
    h.stand_down(by=TIB, clock=clock)
    clock.advance(timedelta(hours=2))
    lesson = h.add_log_entry("Lärdom: sms gick långsamt", by="@samordnare:x", clock=clock)
    assert (first.number, first.text, first.party_id) == (1, "Beslut: stabsläge i 2 h", "uppsala")
    assert (lesson.number, lesson.party_id) == (2, None)
    assert lesson.at - first.at == timedelta(hours=2, minutes=30)
    with pytest.raises(ValueError, match="needs text"):
        h.add_log_entry("  ", by=TIB, clock=clock)
    with pytest.raises(ValueError, match="at most"):
        h.add_log_entry("x" * (MAX_ENTRY + 1), by=TIB, clock=clock)


# -- stored documents ----------------------------------------------------------------------------


def test_report_and_log_survive_the_json_round_trip() -> None:
    clock = FakeClock()
    h = incident(clock)
    own = ReportTemplate(
        fields=(
            ReportField(
                "patients", ("patienter",), True, (("en", "Patients"), ("sv", "Patienter"))
            ),
            ReportField("note"),
        ),
        max_field_length=100,
        max_report_length=150,
    )
    h.update_situation_report(own, [("patients", "12"), ("note", "ok")], by=TIB, clock=clock)
    h.update_situation_report(own, [("note", None)], by=TIB, clock=clock)
    h.add_log_entry("rad", by=TIB, clock=clock, party_id="uppsala")
    document = h.to_dict()
    assert document["version"] == 3  # 3: the kind (issue 13)
    again = Incident.from_dict(document)
    assert again == h
    assert again.situation_report.template == own  # type: ignore[union-attr]
    assert again.situation.changes[0].kind == ChangeKind.CLEARED  # type: ignore[union-attr]
    assert again.log == h.log


def test_incidents_stored_before_the_situation_report_still_load() -> None:
    """A version-1 document, as the code before this change stored it."""
    clock = FakeClock()
    h = incident(clock)
    old = h.to_dict()
    old["version"] = 1
    del old["situation_report"]
    del old["log"]
    loaded = Incident.from_dict(old)
    assert loaded.situation_report is None
    assert loaded.log == []
    assert loaded.to_dict()["version"] == 3
    with pytest.raises(ValueError, match="unknown incident document version"):
        Incident.from_dict({**old, "version": 99})
