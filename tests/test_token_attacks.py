"""Attacks on token verification: each forged, stale or misdirected token is refused, for the right reason,
by the verifier, by the AuthZEN endpoint (as a token subject) and by the API (as a bearer), and each
refusal is in the audit chain, naming what the token claimed, never the token itself.

A real server (the `live` fixture: uvicorn, the real store on both backends, a FixedClock) and real
tokens from the engine's key ring; the forgeries are made in tests/token_kit.py.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from charter.oidc.rotation import rotate_if_due, rotate_now
from charter.oidc.verify import InvalidToken
from charter.store.db import bump_revision
from charter.store.models import RevokedTokenRow
from token_kit import HOUR, foreign, hs256_with_public_key, mint, segments, tampered, unsigned

EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"


def engine_of(api):
    return api.http.app.state.engine


def attacks(api) -> dict[str, tuple[str, str]]:
    """name -> (token, the reason it must be refused for); every token claims to be user "alice"."""
    engine = engine_of(api)
    clock = api.clock
    # A key rotated out: a 30-day token K1 signed, then K1 retired and, after its overlap, unpublished.
    rotated_out = mint(engine, lifetime=dt.timedelta(days=30))
    rotate_now(engine, "test")
    clock.advance(2 * HOUR)  # past publish_until: retired + 1 h (the longest token lifetime) + 5 min
    rotate_if_due(engine)
    assert segments(rotated_out)[0]["kid"] not in engine.keyring.public

    genuine = mint(engine)
    revoked = mint(engine)
    with engine.sessions.begin() as session:
        revision = bump_revision(session)
        jti = segments(revoked)[1]["jti"]
        session.add(RevokedTokenRow(jti=jti, expires_at=clock.now() + HOUR, revoked_at=clock.now(), reason="test"))
    assert engine.catch_up(revision)
    return {
        "alg none": (unsigned(genuine), "algorithm"),
        "HS256 keyed with the public key": (hs256_with_public_key(genuine, engine), "algorithm"),
        "expired": (mint(engine, lifetime=-dt.timedelta(minutes=1)), "expired"),
        "rotated out after its overlap": (rotated_out, "unknown key"),
        "wrong audience": (mint(engine, audience="https://other.example"), "audience"),
        "tampered payload": (tampered(genuine, sub="admin", subject_type="user"), "signature"),
        "unknown kid": (foreign(engine), "unknown key"),
        "revoked": (revoked, "revoked"),
    }


def refusals(api, since_seq: int, count: int) -> list[dict]:
    """The `token.refused` audit records after `since_seq`, oldest first, once `count` are there (they are
    written just after the answer is sent)."""
    deadline = time.monotonic() + 10
    while True:
        found = api.ok("GET", "/admin/v1/audit/audit", params={"action": "token.refused", "limit": 500})["items"]
        found = sorted((r for r in found if r["seq"] > since_seq), key=lambda r: r["seq"])
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def audit_head(api) -> int:
    items = api.ok("GET", "/admin/v1/audit/audit", params={"limit": 1})["items"]
    return items[0]["seq"] if items else 0


def evaluation(token: str, action: str = "read", resource: str = "db:prod/orders", **context) -> dict:
    body: dict = {
        "subject": {"type": "token", "id": token},
        "action": {"name": action},
        "resource": {"type": "resource", "id": resource},
    }
    if context:
        body["context"] = context
    return body


def test_each_attack_is_refused_by_the_verifier_for_its_reason(live):
    _, api = live
    engine = engine_of(api)
    for name, (token, reason) in attacks(api).items():
        with pytest.raises(InvalidToken) as caught:
            engine.tokens.verify(token, api.clock.now())
        assert caught.value.reason == reason, name


def test_each_attack_as_an_authzen_token_subject_is_a_deny_and_audited(live):
    _, api = live
    crafted = attacks(api)
    start = audit_head(api)
    for name, (token, reason) in crafted.items():
        answer = api.ok("POST", EVALUATION, json=evaluation(token, mfa=True))
        assert answer["decision"] is False, name
        assert answer["context"]["reasons"] == [f"invalid token: {reason}"], name
        assert answer["context"]["basis"] == "subject"
    records = refusals(api, start, len(crafted))
    assert [(r["details"]["reason"], r["details"]["presented_to"]) for r in records] == [
        (reason, "authzen") for _, reason in crafted.values()
    ]
    for record, (token, _) in zip(records, crafted.values(), strict=True):
        assert record["outcome"] == "denied" and record["actor"].startswith("user:admin")
        assert record["target"] in ("user:alice", "user:admin")  # what the token claims; not trusted, only named
        assert record["details"]["claimed"]["jti"] == segments(token)[1]["jti"]
        signature = token.split(".")[2]
        assert token not in str(record) and (not signature or signature not in str(record))


def test_each_attack_as_a_bearer_to_the_api_is_a_401_and_audited(live):
    _, api = live
    crafted = attacks(api)
    start = audit_head(api)
    for name, (token, reason) in crafted.items():
        response = api.get("/admin/v1/charter", credential=token)
        assert response.status_code == 401, name
        assert response.json()["message"] == f"the access token is not valid: {reason}"
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        decision = api.request("POST", EVALUATION, credential=token, json=evaluation("x"))  # the direct path too
        assert decision.status_code == 401, name
    records = refusals(api, start, 2 * len(crafted))
    # Written after each answer is sent, so not necessarily in the order asked.
    assert sorted(r["details"]["reason"] for r in records) == sorted(2 * [reason for _, reason in crafted.values()])
    assert {r["details"]["presented_to"] for r in records} == {"api"}
    assert {r["actor"] for r in records} == {"anonymous (bearer token)"}


def test_the_same_invalid_token_in_a_batch_is_audited_once(live):
    _, api = live
    token, _ = attacks(api)["expired"]
    start = audit_head(api)
    body = {
        "subject": {"type": "token", "id": token},
        "evaluations": [
            {"action": {"name": "read"}, "resource": {"type": "resource", "id": "db:prod/orders"}},
            {"action": {"name": "write"}, "resource": {"type": "resource", "id": "db:prod/orders"}},
        ],
    }
    answer = api.ok("POST", EVALUATIONS, json=body)
    assert [e["decision"] for e in answer["evaluations"]] == [False, False]
    time.sleep(0.3)
    assert len(refusals(api, start, 1)) == 1
