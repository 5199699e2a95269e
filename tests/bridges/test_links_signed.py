"""Signed acknowledge-by-link tokens: round trip, tampering, expiry, junk."""

from __future__ import annotations

import base64
import hmac
import json
from datetime import timedelta

import pytest
from pydantic import SecretStr

import bridges.signed_links as signed_links_module
from bot.clock import FakeClock
from bridges.signed_links import (
    MAX_TOKEN_CHARS,
    LinkClaim,
    LinkProblem,
    LinkRejected,
    SignedLinks,
    derive_key,
)

SECRET = SecretStr("link-secret-of-sufficient-length")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def links() -> SignedLinks:
    return SignedLinks(SECRET)


def make(links: SignedLinks, clock: FakeClock, **over: object) -> str:
    claim: dict[str, object] = {
        "incident_id": "H-7",
        "party_id": "uppsala",
        "outbox_key": "H-7:uppsala:email:0",
        "expires_at": clock.now() + timedelta(hours=2),
    }
    claim.update(over)
    return links.sign(**claim)  # type: ignore[arg-type]


def test_round_trip(links: SignedLinks, clock: FakeClock) -> None:
    token = make(links, clock)
    claim = links.verify(token, now=clock.now())
    expires = clock.now() + timedelta(hours=2)
    assert claim == LinkClaim("H-7", "uppsala", "H-7:uppsala:email:0", expires)
    assert token.isascii()
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path as it stands
    url = links.url(
        "https://larm.example/",
        incident_id="H-7",
        party_id="uppsala",
        outbox_key="k",
        expires_at=clock.now() + timedelta(hours=1),
    )
    assert url.startswith("https://larm.example/ack/1.")


def test_expiry(links: SignedLinks, clock: FakeClock) -> None:
    token = make(links, clock, expires_at=clock.now() + timedelta(minutes=10))
    clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    assert isinstance(links.verify(token, now=clock.now()), LinkClaim)
    clock.advance(1)
    assert links.verify(token, now=clock.now()) == LinkRejected(LinkProblem.EXPIRED)


def _flip(text: str, index: int) -> str:
    ch = text[index]
    return text[:index] + ("A" if ch != "A" else "B") + text[index + 1 :]


def test_tampering_is_detected_anywhere(links: SignedLinks, clock: FakeClock) -> None:
    token = make(links, clock)
    version, body, mac = token.split(".")
    for i in range(len(body)):
        forged = f"{version}.{_flip(body, i)}.{mac}"
        result = links.verify(forged, now=clock.now())
        assert isinstance(result, LinkRejected), i
    for i in range(len(mac) - 1):  # the last character may carry only padding bits
        result = links.verify(f"{version}.{body}.{_flip(mac, i)}", now=clock.now())
        assert result == LinkRejected(LinkProblem.TAMPERED), i


def test_a_rewritten_claim_is_tampered(links: SignedLinks, clock: FakeClock) -> None:
    token = make(links, clock)
    version, body, mac = token.split(".")
    claim = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claim["p"] = "dalarna"
    claim["e"] += 10 * 365 * 86400
    forged_body = base64.urlsafe_b64encode(json.dumps(claim).encode()).rstrip(b"=").decode()
    assert links.verify(f"{version}.{forged_body}.{mac}", now=clock.now()) == LinkRejected(
        LinkProblem.TAMPERED
    )


def test_another_key_does_not_verify(clock: FakeClock) -> None:
    token = make(SignedLinks(SecretStr("some-other-secret-long-enough")), clock)
    assert SignedLinks(SECRET).verify(token, now=clock.now()) == LinkRejected(LinkProblem.TAMPERED)


def test_an_expired_forgery_is_tampered_not_expired(links: SignedLinks, clock: FakeClock) -> None:
    """ "Expired" is only ever said about a token we signed."""
    token = make(SignedLinks(SecretStr("some-other-secret-long-enough")), clock)
    clock.advance(timedelta(days=1))
    assert links.verify(token, now=clock.now()).reason is LinkProblem.TAMPERED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "junk",
    [
        "",
        ".",
        "..",
        "1..",
        "2.abc.def",
        "1.abc",
        "1.a.b.c",
        "1.!!!.???",
        "1.YQ.YQ",
        "x" * (MAX_TOKEN_CHARS + 1),
        "1.åäö.åäö",
        "1.\x00.\x00",
        None,
        12,
        b"1.a.b",
        "1." + "A" * 2000 + ".A",
    ],
)
def test_junk_is_malformed_never_an_exception(
    links: SignedLinks, clock: FakeClock, junk: object
) -> None:
    assert isinstance(links.verify(junk, now=clock.now()), LinkRejected)


def test_signed_but_unreadable_claim_is_malformed(links: SignedLinks, clock: FakeClock) -> None:
    body = base64.urlsafe_b64encode(b'{"i": 1}').rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(links._mac(body)).rstrip(b"=").decode()
    assert links.verify(f"1.{body}.{mac}", now=clock.now()) == LinkRejected(LinkProblem.MALFORMED)


def test_signature_compared_in_constant_time(
    links: SignedLinks, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(signed_links_module.hmac, "compare_digest", spy)
    links.verify(make(links, clock), now=clock.now())
    assert calls == [1]


def test_secret_rules_and_no_secret_in_repr() -> None:
    with pytest.raises(ValueError, match="at least 16") as info:
        SignedLinks(SecretStr("short-secret"))
    assert "short-secret" not in str(info.value)
    assert "link-secret" not in repr(SignedLinks(SECRET))
    assert derive_key(SECRET, "a") != derive_key(SECRET, "b")
    with pytest.raises(ValueError, match="timezone"):
        SignedLinks(SECRET).sign(
            incident_id="H-7",
            party_id="p",
            outbox_key="k",
            expires_at=FakeClock().now().replace(tzinfo=None),
        )
