"""What a text costs on SMS: the GSM 03.38 tables and segment sizes, against known values."""

from __future__ import annotations

import pytest

from bridges.sms import gsm7
from bridges.sms.gsm7 import Encoding


def test_nordic_letters_are_in_the_basic_table() -> None:
    text = "ÅÄÖåäö ÆØæø É é Üü Ññ ß àèùìò Ç"
    assert gsm7.is_gsm7(text)
    assert gsm7.septets(text) == len(text)
    assert gsm7.encoding(text) is Encoding.GSM7


@pytest.mark.parametrize(
    "char",
    ["ç", "á", "ê", "Ô", "–", "’", "“", "…", "🚑", "`", "\t", "\u00a0", "ł", "Ж"],
)
def test_characters_outside_gsm7_force_ucs2(char: str) -> None:
    assert not gsm7.is_gsm7(f"Larm {char}")
    assert gsm7.encoding(f"Larm {char}") is Encoding.UCS2
    with pytest.raises(ValueError, match="not in the GSM 7-bit alphabet"):
        gsm7.septets(char)


def test_extension_characters_cost_two_septets() -> None:
    assert frozenset("\f^{}\\[~]|€") == gsm7.EXTENSION_CHARACTERS
    assert gsm7.septets("€") == 2
    assert gsm7.septets("[]{}\\^~|€\f") == 20
    assert gsm7.septets("Pris 10€") == 9
    assert gsm7.BASIC_CHARACTERS.isdisjoint(gsm7.EXTENSION_CHARACTERS)
    assert len(gsm7.BASIC_CHARACTERS) == 127  # 128 codes, one of them the escape


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", 1),
        ("Hej! Det här är ett test.", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 80 + "a", 2),
        ("a" * 1530, 10),
        ("a" * 1531, 11),
        # An escape pair is never split: 152 + [€ + 151] + 1.
        ("a" * 152 + "€" + "a" * 152, 3),
        ("ç" * 70, 1),
        ("ç" * 71, 2),
        ("ç" * 134, 2),
        ("ç" * 135, 3),
        ("🚑" * 35, 1),  # 70 UTF-16 units
        ("🚑" * 35 + "a", 2),
        # A surrogate pair is never split: 66 + [🚑 + 65] + 1.
        ("ç" * 66 + "🚑" + "ç" * 66, 3),
        # One emoji turns a 100-character GSM-7 text into two UCS-2 parts.
        ("a" * 99 + "🚑", 2),
    ],
)
def test_segments_known_values(text: str, parts: int) -> None:
    assert gsm7.segments(text) == parts


def test_fit_leaves_a_short_text_alone() -> None:
    assert gsm7.fit("Larm H-7", 1) == "Larm H-7"
    assert gsm7.fit("Larm H-7", 1, suffix=" Svara KVITTERA 4821") == "Larm H-7 Svara KVITTERA 4821"


def test_fit_shortens_to_the_budget_and_keeps_the_reply_code() -> None:
    body = "Särskild händelse i Region Uppsala, katastrofläge: " + "trafikolycka E4 " * 20
    suffix = "\nSvara KVITTERA 4821 <antal>"
    fitted = gsm7.fit(body, 1, suffix=suffix)
    assert fitted.endswith("..." + suffix)
    assert gsm7.segments(fitted) == 1
    assert gsm7.septets(fitted) > 150  # the budget is used, not wasted
    assert fitted.startswith("Särskild händelse i Region Uppsala")
    # cut at a word boundary, no half word before the ellipsis
    assert fitted.split("...")[0].endswith(("E4", "trafikolycka"))
    two = gsm7.fit(body, 2, suffix=suffix)
    assert gsm7.segments(two) == 2
    assert len(two) > len(fitted)


def test_fit_counts_ucs2_when_the_text_needs_it() -> None:
    fitted = gsm7.fit("🚑 " + "Ambulans " * 30, 1)
    assert gsm7.encoding(fitted) is Encoding.UCS2
    assert gsm7.segments(fitted) == 1
    # Cutting off the only emoji makes the rest GSM-7, which holds more.
    assert gsm7.fit("a" * 100 + "🚑" + "a" * 100, 1) == "a" * 100 + "..."


def test_fit_refuses_impossible_budgets() -> None:
    with pytest.raises(ValueError, match="at least one segment"):
        gsm7.fit("x", 0)
    with pytest.raises(ValueError, match="suffix alone"):
        gsm7.fit("x" * 200, 1, suffix="y" * 200)


def test_normalize_replaces_typographic_lookalikes() -> None:
    typed = "“Brand” – E4 … Region’s\u00a0TiB\tH-7"
    plain = gsm7.normalize(typed)
    assert plain == '"Brand" - E4 ... Region\'s TiB H-7'
    assert gsm7.is_gsm7(plain)
    assert gsm7.normalize("Åre ç Ж 🚑") == "Åre ç Ж 🚑"  # letters stay as they are
