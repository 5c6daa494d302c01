"""The SDK (charter.client) and access tokens as subjects and callers, against a running server.

`live` is a real uvicorn server over the real store (both backends) at API_TEST_TIME, a Monday 10:00 UTC.
Sample charter facts used: clause 1, group "sre" (alice) may read "db:prod/*"; clause 2, group "support"
(carol) may read "tickets/*" with MFA on weekdays 08:00-18:00 UTC; clause 19, "iam-admins" (admin) may
read and manage "charter:*".
"""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from charter.client import CharterClient, LocalTokenVerifier
from charter.oidc.rotation import rotate_now
from charter.oidc.verify import InvalidToken
from token_kit import mint, segments


def engine_of(api):
    return api.http.app.state.engine


def decisions(api, **filters) -> list[dict]:
    """Decision log records matching `filters`, once the writer has written some (it batches every 0.2 s)."""
    deadline = time.monotonic() + 10
    while True:
        items = api.ok("GET", "/admin/v1/audit/decisions", params={**filters, "limit": 100})["items"]
        if items or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_evaluate_and_evaluate_token(live):
    server, api = live
    engine = engine_of(api)
    with CharterClient(server.url, api.admin_credential) as client:
        assert client.evaluate("user", "alice", "read", "db:prod/orders").allowed
        assert not client.evaluate("user", "carol", "read", "tickets/42")  # no MFA claimed

        # The token's amr decides MFA, whatever the PEP claims in context.
        without_mfa = mint(engine, "carol", amr=("pwd",))
        denied = client.evaluate_token(without_mfa, "read", "tickets/42", {"mfa": True, "amr": ["otp"]})
        assert not denied.allowed and denied.context["basis"] == "condition"
        with_mfa = mint(engine, "carol", amr=("pwd", "otp"))
        assert client.evaluate_token(with_mfa, "read", "tickets/42").allowed
        assert client.evaluate_token(with_mfa, "read", "tickets/42", {"mfa": False}).allowed

        expired = mint(engine, "carol", amr=("otp",), lifetime=-dt.timedelta(minutes=1))  # exp before now
        refused = client.evaluate_token(expired, "read", "tickets/42")
        assert not refused.allowed and refused.reasons == ["invalid token: expired"]

    # The decision log has the subject the token verified as, and its MFA; never the token.
    logged = decisions(api, actor="user:carol", target="tickets/42", outcome="allow")
    assert logged and all(r["details"]["context"]["mfa"] is True for r in logged)
    everything = api.ok("GET", "/admin/v1/audit/decisions", params={"limit": 500})["items"]
    text = str(everything)
    for token in (without_mfa, with_mfa, expired):
        assert segments(token)[1]["jti"] not in text and token.split(".")[2] not in text
    assert any(r["actor"] == "token:refused" for r in everything)


def test_token_subjects_in_evaluations_defaults_and_items(live):
    _, api = live
    engine = engine_of(api)
    alice, carol = mint(engine, "alice"), mint(engine, "carol", amr=("otp",))
    body = {
        "subject": {"type": "token", "id": alice},
        "action": {"name": "read"},
        "evaluations": [
            {"resource": {"type": "resource", "id": "db:prod/orders"}},  # alice, from the defaults
            {"resource": {"type": "resource", "id": "tickets/1"}, "subject": {"type": "token", "id": carol}},
            {"resource": {"type": "resource", "id": "tickets/1"}, "subject": {"type": "token", "id": "not.a.jwt"}},
            {"resource": {"type": "resource", "id": "tickets/1"}, "subject": {"type": "user", "id": "carol"}},
        ],
    }
    answer = api.ok("POST", "/access/v1/evaluations", json=body)
    assert [e["decision"] for e in answer["evaluations"]] == [True, True, False, False]
    assert answer["evaluations"][2]["context"]["reasons"] == ["invalid token: malformed"]
    bad = api.post("/access/v1/evaluation", json={**body, "subject": {"type": "token"}, "evaluations": None})
    assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "subject.id"


def test_an_access_token_is_a_caller_of_the_api(live):
    _, api = live
    engine = engine_of(api)
    admin = mint(engine, "admin", client_id="console")
    charter = api.ok("GET", "/admin/v1/charter", credential=admin)
    assert charter["name"] == "Acme Production Access" or "text" in charter
    alice = mint(engine, "alice")
    forbidden = api.get("/admin/v1/charter", credential=alice)
    assert forbidden.status_code == 403
    # as a PEP, too: the evaluation is answered (the charter authorises callers of the admin API only)
    assert api.request("POST", "/access/v1/evaluation", credential=alice, json=_ask("alice")).status_code == 200


def test_a_tokens_second_factor_counts_for_the_charters_mfa_clause(live):
    """erin is in "admins" (clause 10: must use MFA): her token meets it only when its sign-in used a code."""
    _, api = live
    engine = engine_of(api)
    api.ok("PUT", "/admin/v1/groups/iam-admins/members/users/erin")  # clause 19: may read the directory
    without_code = api.get("/admin/v1/users/bob", credential=mint(engine, "erin", amr=("pwd",)))
    assert without_code.status_code == 403 and without_code.json()["details"][0]["clause"] == 10
    with_code = api.get("/admin/v1/users/bob", credential=mint(engine, "erin", amr=("pwd", "otp")))
    assert with_code.status_code == 200, with_code.text


def _ask(subject: str) -> dict:
    return {
        "subject": {"type": "user", "id": subject},
        "action": {"name": "read"},
        "resource": {"type": "resource", "id": "db:prod/orders"},
    }


# --- local verification ----------------------------------------------------------------------------


def jwks_server(engine, issuer: str) -> httpx.MockTransport:
    """Discovery and JWKS as Charter publishes them, from the engine's ring (the endpoints are the OAuth work's)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": issuer, "jwks_uri": f"{issuer}/oauth/jwks"})
        if request.url.path == "/oauth/jwks":
            return httpx.Response(200, json=engine.keyring.jwks)
        return httpx.Response(404)

    return httpx.MockTransport(handle)


def test_local_verification_fetches_keys_once_and_again_on_a_new_kid(live):
    _, api = live
    engine = engine_of(api)
    first = mint(engine, "erin", amr=("pwd", "hwk"))
    transport = jwks_server(engine, engine.issuer)
    verifier = LocalTokenVerifier(engine.issuer, transport=transport, clock=api.clock, refetch_interval=0.5)
    verified = verifier.verify(first)
    assert (verified.subject, verified.mfa, verifier.fetches) == ("erin", True, 1)
    assert verifier.verify(first) is verified  # cached

    rotate_now(engine, "test")  # a new key the verifier has not seen
    second = mint(engine, "erin")
    assert segments(second)[0]["kid"] != segments(first)[0]["kid"]
    with pytest.raises(InvalidToken):  # fetched less than refetch_interval ago: not again yet
        verifier.verify(second)
    assert verifier.fetches == 1
    time.sleep(0.6)
    assert verifier.verify(second).subject == "erin" and verifier.fetches == 2
    assert verifier.verify(first).subject == "erin"  # the retired key is still published

    # Forged kids do not make it fetch again within the interval.
    for _ in range(5):
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(_with_kid(second, "made-up"))
        assert caught.value.reason == "unknown key"
    assert verifier.fetches == 2
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(second, audience="https://other.example")
    assert caught.value.reason == "audience"


def _with_kid(token: str, kid: str) -> str:
    from token_kit import b64

    header, payload, signature = segments(token)[0], token.split(".")[1], token.split(".")[2]
    header["kid"] = kid
    import json

    return f"{b64(json.dumps(header).encode())}.{payload}.{signature}"
