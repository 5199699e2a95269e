"""The status board keeps to its size budget, and the homeserver's answers are sorted into
"retry" and "never" (issue 10, the critical item).

The board is edited with every acknowledgement; an edit over Synapse's event size limit is
refused (413), and before this fix the refused edit was retried forever in front of every later
message of the room. A board grown by about 340 repeated acknowledgements (11.6 K characters)
was enough. That the budget is really under the limit is checked against a real Synapse in
``tests/integration/test_room_never_blocked.py``; here, the shape of the budgeted board.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import FakeClock
from bot.domain import (
    AlarmChain,
    ChainParty,
    Incident,
    Party,
    PartyKind,
    Pledge,
    ReadinessLevel,
    Requirement,
)
from bot.event_size import BOARD_BUDGET_BYTES, MAX_EVENT_BYTES, text_edit_bytes
from bot.i18n import Catalog
from bot.matrix.sender import Refused, Retry, build_content, classify_error
from commands.render import Voice, render_board


def region(pid: str, name: str | None = None) -> Party:
    return Party(
        id=pid,
        name=name or f"Region {pid.title()}",
        kind=PartyKind.REGION,
        language="sv",
        room=f"!{pid}:example.org",
        duty_officers=(f"@tib.{pid}:example.org",),
    )


def incident_with(parties: list[Party], clock: FakeClock) -> Incident:
    initiator = region("uppsala")
    chain = AlarmChain(
        initiator, tuple(ChainParty(p, Requirement(secondary_transports=5)) for p in parties)
    )
    incident = Incident.confirm(
        number=1,
        region_id="uppsala",
        region_name="Region Uppsala",
        level=ReadinessLevel.DISASTER,
        headline="Bussolycka E4 Knivsta",
        by="@tib.uppsala:example.org",
        clock=clock,
    )
    incident.start_alarm(chain, by="@tib.uppsala:example.org", clock=clock)
    return incident


def board(incident: Incident, clock: FakeClock, lang: str = "sv") -> str:
    voice = Voice(Catalog.load(), lang, "example.org")
    return render_board(incident, voice, now=clock.now(), alarm_command="!larma")


@pytest.mark.parametrize("lang", ["sv", "nb", "en"])
def test_340_repeated_acknowledgements_are_summarised_within_the_budget(lang: str) -> None:
    clock = FakeClock()
    incident = incident_with([region("dalarna"), region("gavleborg")], clock)
    for i in range(340):
        clock.advance(timedelta(seconds=7))
        incident.acknowledge(
            "dalarna",
            by=f"@personal{i}.dalarna:example.org",
            via="room",
            clock=clock,
            pledge=Pledge(5, "åäö " * 100),
        )
    text = board(incident, clock, lang)
    assert text_edit_bytes(text) <= BOARD_BUDGET_BYTES
    # The first acknowledgement is the party's; of the 339 later ones the newest three are
    # named and the other 336 counted.
    assert "personal0.dalarna" in text.split("\n\n")[1].split("·")[0]
    assert "personal339.dalarna" in text
    assert "personal336.dalarna" not in text
    more = {"sv": "och 336 till", "nb": "og 336 til", "en": "and 336 more"}[lang]
    assert more in text
    assert "åäö " * 40 not in text  # the remark is cut on the board (whole in the audit log)
    assert "Region Gavleborg" in text  # the missing party is still there


def test_a_board_of_hundreds_of_parties_keeps_the_missing_ones_and_counts_the_rest() -> None:
    clock = FakeClock()
    names = "Ålands-Östergötlands-Värmlands-Jämtlands-Härjedalens sjukvårdsförbund"
    parties = [region(f"r{i}", f"{names} {i} 🚑🚑") for i in range(400)]
    incident = incident_with(parties, clock)
    for i in range(0, 400, 2):
        incident.acknowledge(
            f"r{i}", by=f"@tib.r{i}:example.org", via="room", clock=clock, pledge=Pledge(5)
        )
    text = board(incident, clock)
    assert text_edit_bytes(text) <= BOARD_BUDGET_BYTES
    hidden = int(text.split("… och ")[1].split(" parter till")[0])
    shown = [i for i in range(400) if f"{names} {i} 🚑🚑" in text.split("\n\n")[1]]
    assert len(shown) + hidden == 400  # every party is either on the board or counted
    # The acknowledged parties made room first: every missing party that fits is shown.
    missing_shown = [i for i in shown if i % 2]
    assert len(missing_shown) == min(len(shown), 200)


def test_the_estimate_is_never_below_what_the_edit_really_carries() -> None:
    body = "✅ Region Västmanland: @tib 04:07 <&> i rummet\n" * 50
    content = build_content(body, replaces="$event")
    import json

    real = len(json.dumps(content, separators=(",", ":")))
    assert text_edit_bytes(body) > real * 4 / 3  # the ciphertext of the real content


@pytest.mark.parametrize(
    ("errcode", "status", "permanent"),
    [
        ("M_TOO_LARGE", 413, True),
        ("M_FORBIDDEN", 403, True),  # kicked, or never joined
        ("M_BAD_JSON", 400, True),
        ("M_UNKNOWN", 400, True),
        ("M_NOT_FOUND", 404, True),
        ("M_TOO_LARGE", None, True),
        ("M_FORBIDDEN", None, True),
        ("M_UNKNOWN_TOKEN", 401, False),  # the bot's login, not the message
        ("M_LIMIT_EXCEEDED", 429, False),
        (None, 408, False),
        ("M_UNKNOWN", 500, False),
        (None, 502, False),
        (None, None, False),
    ],
)
def test_homeserver_answers_are_retried_only_when_they_may_pass(
    errcode: str | None, status: int | None, permanent: bool
) -> None:
    verdict = classify_error(errcode, status)
    assert isinstance(verdict, Refused if permanent else Retry), verdict


def test_the_limit_is_synapses() -> None:
    assert MAX_EVENT_BYTES == 65_536
    assert BOARD_BUDGET_BYTES < MAX_EVENT_BYTES
