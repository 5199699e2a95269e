"""``[situation_report]`` in the config: METHANE by default, a template of one's own, and every
mistake named by its key path."""

from __future__ import annotations

from typing import Any

import pytest
from test_config_validation import valid

from bot.config import ConfigError, parse_config
from bot.domain import METHANE
from commands.situation import template_for


def with_report(section: dict[str, Any]) -> dict[str, Any]:
    return {**valid(), "situation_report": section}


def test_without_the_table_the_template_is_methane() -> None:
    template = template_for(parse_config(valid()))
    assert template.fields == METHANE.fields
    assert (template.max_field_length, template.max_report_length) == (300, 2000)


def test_a_template_of_ones_own() -> None:
    config = parse_config(
        with_report(
            {
                "fields": [
                    {"key": "location", "aliases": ["plats"], "required": True},
                    {"key": "patients", "names": {"sv": "Patienter"}, "aliases": ["pat"]},
                ],
                "max_field_length": 100,
                "max_report_length": 500,
            }
        )
    )
    template = template_for(config)
    assert [f.key for f in template.fields] == ["location", "patients"]
    assert template.by_name("PAT") is template.field("patients")
    assert template.field("patients").name("en") == "Patienter"  # type: ignore[union-attr]
    assert template.field("location").name("sv") is None  # type: ignore[union-attr]  # catalogue
    assert [f.key for f in template.required] == ["location"]
    assert template.max_report_length == 500


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ({"fields": []}, "situation_report.fields: List should have at least 1 item"),
        (
            {"fields": [{"key": "Plats"}]},
            "situation_report.fields[0].key: 'Plats' is not lower-case letters and '_'",
        ),
        (
            {"fields": [{"key": "patients"}]},
            "situation_report.fields[0].names: 'patients' is not a METHANE key, so it needs a "
            "name",
        ),
        (
            {"fields": [{"key": "location", "aliases": ["två ord"]}]},
            "situation_report.fields[0].aliases: 'två ord' must be letters",
        ),
        (
            {
                "fields": [
                    {"key": "location", "aliases": ["plats"]},
                    {"key": "type", "aliases": ["Plåts", "PLATS"]},
                ]
            },
            "situation_report.fields[1].aliases[0]: 'Plåts' already names "
            "situation_report.fields[0] (location)",
        ),
        (
            {"fields": [{"key": "location"}, {"key": "location"}]},
            "situation_report.fields[1].key: 'location' already names",
        ),
        (
            {"max_field_length": 500, "max_report_length": 100},
            "situation_report.max_report_length: must be at least max_field_length",
        ),
        ({"max_field_length": 5}, "situation_report.max_field_length: Input should be greater"),
        (
            {"fields": [{"key": "note", "colour": "red"}]},
            "situation_report.fields[0].colour: unknown key",
        ),
        (
            {"fields": [{"key": "note", "names": {"de": "Notiz"}}]},
            "situation_report.fields[0].names.de",
        ),
    ],
)
def test_mistakes_name_their_key_path(section: dict[str, Any], line: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(with_report(section))
    assert any(message.startswith(line) for message in str(error.value).splitlines()), str(
        error.value
    )
