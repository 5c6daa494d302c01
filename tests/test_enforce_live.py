"""Enforcement end to end: an upstream application behind `charter proxy` and behind the middleware, next
to a live Charter (tests/live.py) on both stores, deciding from a local replica.

Sample charter facts used: clause 1, group "sre" (alice, bob) may read and write "db:prod/*"; clause 3,
"contractors" (dave) may request write on "db:staging/*" for up to 8 hours, approved by 1 member of
"sre-leads" (alice); clause 4, no one may delete "db:prod/*" except by break glass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time

import httpx
import pytest
import yaml

from charter.client import CharterClient
from charter.policy.request import Context, Request
from enforce_kit import SAMPLE_ROUTES, Stack
from token_kit import mint

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
LONG = dt.timedelta(hours=12)  # tokens outlive the test clock's moves


def engine_of(api):
    return api.http.app.state.engine


@pytest.fixture(params=["proxy", "middleware"])
def stack(request, live):
    server, api = live
    built = Stack(server.url, api.admin_credential, api.clock, SAMPLE_ROUTES, request.param)
    yield built, server, api
    built.close()


def call(url: str, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.request(method, url + path, headers=headers, timeout=10, **kwargs)


def wait_until(condition, timeout: float = 5.0, step: float = 0.01) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "the condition never held"
        time.sleep(step)
    return time.monotonic() - started


def test_allow_deny_by_clause_and_refusals(stack):
    built, _, api = stack
    url = built.front.url
    alice = mint(engine_of(api), "alice", lifetime=LONG)

    allowed = call(url, "GET", "/db/prod/orders", alice, headers={"X-Charter-Subject": "admin"})
    assert allowed.status_code == 200, allowed.text
    seen = allowed.json()
    assert seen["subject"] == "alice" and seen["clause"] == "1"  # the spoofed header never reaches the upstream
    if built.front.kind == "proxy":
        assert seen["authorization"] is False and seen["forwarded_for"] == "127.0.0.1"

    denied = call(url, "DELETE", "/db/prod/orders", alice)
    assert denied.status_code == 403
    body = denied.json()
    assert body["clause"] == 4 and body["basis"] == "prohibition" and "clause 4" in body["message"]

    assert call(url, "GET", "/db/prod/orders").status_code == 401
    bad = call(url, "GET", "/db/prod/orders", "not.a.jwt")
    assert bad.status_code == 401 and bad.json()["message"] == "invalid token: malformed"
    assert bad.headers["www-authenticate"].startswith("Bearer")
    unknown = call(url, "GET", "/admin/secrets", alice)
    assert unknown.status_code == 403 and "denied by default" in unknown.json()["message"]
    assert call(url, "POST", "/db/prod/orders", alice).status_code == 403  # a method the route does not declare
    assert call(url, "GET", "/db/prod/../staging/x", alice).status_code in (400, 403, 404)
    assert call(url, "GET", "/health").status_code == 200  # public: no token


def test_a_revocation_is_refused_within_a_second(stack):
    built, _, api = stack
    url = built.front.url
    bob = mint(engine_of(api), "bob", lifetime=LONG)
    for _ in range(3):  # decided, then cached
        assert call(url, "GET", "/db/prod/orders", bob).status_code == 200
    assert built.gate.cache.hits >= 1
    api.ok("DELETE", "/admin/v1/groups/sre/members/users/bob")
    took = wait_until(lambda: call(url, "GET", "/db/prod/orders", bob).status_code == 403)
    print(f"revocation enforced by the {built.front.kind} after {took:.3f} s")
    assert took <= 1.0, f"the revocation took {took:.3f} s to be enforced"
    refused = call(url, "GET", "/db/prod/orders", bob).json()
    assert "no clause allows" in refused["message"]


def test_a_just_in_time_grant_ends_mid_session(stack):
    built, _, api = stack
    url = built.front.url
    dave_token = mint(engine_of(api), "dave", lifetime=LONG)
    before = call(url, "PUT", "/db/staging/app", dave_token)
    assert before.status_code == 403 and before.json()["eligible_clause"] == 3

    dave, alice = api.new_credential("dave"), api.new_credential("alice")
    body = {"action": "write", "resource": "db:staging/app", "reason": "migrate", "duration": "1h"}
    request_id = api.ok("POST", "/access/v1/requests", 201, json=body, credential=dave)["id"]
    grant = api.ok("POST", f"/access/v1/requests/{request_id}/approve", credential=alice)["grant"]
    wait_until(lambda: call(url, "PUT", "/db/staging/app", dave_token).status_code == 200, timeout=1.0)
    for _ in range(3):
        assert call(url, "PUT", "/db/staging/app", dave_token).status_code == 200  # the session goes on

    api.clock.advance(dt.timedelta(minutes=59, seconds=59))
    assert call(url, "PUT", "/db/staging/app", dave_token).status_code == 200
    api.clock.advance(dt.timedelta(seconds=1))  # the grant's end (exclusive): no revision, only time
    ended = call(url, "PUT", "/db/staging/app", dave_token)
    assert ended.status_code == 403, ended.text
    assert ended.json()["eligible_clause"] == 3
    assert grant  # the grant id the server made


def test_decisions_reach_the_decision_log(stack):
    built, _, api = stack
    url = built.front.url
    alice = mint(engine_of(api), "alice", lifetime=LONG)
    assert call(url, "DELETE", "/db/prod/payments", alice).status_code == 403
    assert call(url, "GET", "/db/prod/payments", alice).status_code == 200
    built.reporter.flush()
    deadline = time.monotonic() + 10
    while True:
        items = api.ok("GET", "/admin/v1/audit/decisions", params={"target": "db:prod/payments", "limit": 50})["items"]
        if len(items) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    outcomes = sorted((r["actor"], r["action"], r["outcome"]) for r in items)
    assert outcomes == [("user:alice", "delete", "deny"), ("user:alice", "read", "allow")]
    assert alice.split(".")[2] not in str(items)  # never the token


def test_the_proxy_streams_both_ways(live):
    server, api = live
    built = Stack(server.url, api.admin_credential, api.clock, SAMPLE_ROUTES, "proxy")
    try:
        alice = mint(engine_of(api), "alice", lifetime=LONG)
        headers = {"Authorization": f"Bearer {alice}"}
        with httpx.stream("GET", built.front.url + "/stream/64", headers=headers, timeout=30) as response:
            assert response.status_code == 200
            chunks = [len(chunk) for chunk in response.iter_raw()]
        assert sum(chunks) == 64 * 65536 and len(chunks) > 1

        def body():
            for i in range(40):
                yield bytes([i]) * 100_000

        expected = hashlib.sha256(b"".join(body())).hexdigest()
        sent = httpx.post(built.front.url + "/stream/0", headers=headers, content=body(), timeout=30)
        assert sent.status_code == 200 and sent.json() == {"size": 4_000_000, "sha256": expected}
    finally:
        built.close()


def test_the_replica_decides_as_the_server(live):
    server, api = live
    engine = engine_of(api)
    built = Stack(server.url, api.admin_credential, api.clock, SAMPLE_ROUTES, "middleware")
    try:
        replica = built.replica
        subjects = [("user", u) for u in ("admin", "alice", "bob", "carol", "dave", "erin", "frank", "nobody")]
        subjects += [("service", "billing-api"), ("partner", "acme-logistics")]
        actions = ("read", "write", "delete", "manage")
        resources = ("db:prod/orders", "db:staging/app", "tickets/42", "reports:finance/q1", "charter:x", "audit:y")
        contexts = (Context(), Context(mfa=True), Context(mfa=True, ip="10.1.2.3"))
        server_snapshot = engine.snapshot
        assert replica.revision == server_snapshot.revision
        compared = 0
        for subject_type, subject in subjects:
            for action in actions:
                for resource in resources:
                    for context in contexts:
                        request = Request(subject, action, resource, context, subject_type)
                        assert replica.snapshot.evaluate(request) == server_snapshot.evaluate(request), request
                        compared += 1
        assert compared == 10 * 4 * 6 * 3
        with CharterClient(server.url, api.admin_credential) as client:  # and over HTTP, for a few
            for subject in ("alice", "carol", "dave"):
                remote = client.evaluate("user", subject, "read", "db:prod/orders")
                local = replica.evaluate("user", subject, "read", "db:prod/orders")
                assert remote.allowed == local.allowed and remote.context["clause"] == local.clause
    finally:
        built.close()


def test_the_authzen_gateway_scenario_through_the_proxy(live):
    server, api = live
    with open(os.path.join(EXAMPLES, "todo-gateway-directory.yaml")) as file:
        directory = yaml.safe_load(file)
    for name, entry in directory["groups"].items():
        api.ok("PUT", f"/admin/v1/groups/{name}", json={"parents": entry.get("groups", [])})
    for name, entry in directory["users"].items():
        api.ok("PUT", f"/admin/v1/users/{name}", json=entry)
    for name, entry in directory["resources"].items():
        api.ok("PUT", f"/admin/v1/resources/{name}", json=entry)
    with open(os.path.join(EXAMPLES, "todo-gateway.charter")) as file:
        text = file.read()
    uploaded = api.request("PUT", "/admin/v1/charter", content=text.encode(), headers={"Content-Type": "text/plain"})
    assert uploaded.status_code == 200, uploaded.text
    with open(os.path.join(EXAMPLES, "todo-gateway.routes.yaml")) as file:
        routes = yaml.safe_load(file)
    built = Stack(server.url, api.admin_credential, api.clock, routes, "proxy")
    try:
        engine = engine_of(api)
        token = {who: mint(engine, who, lifetime=LONG) for who in ("rick", "morty", "summer", "beth", "jerry")}
        cases = [
            ("jerry", "GET", "/todos", 200, 1),
            ("beth", "GET", "/users/rick", 200, 1),
            ("jerry", "POST", "/todos", 403, None),
            ("morty", "POST", "/todos", 200, 2),
            ("morty", "PUT", "/todos/1", 200, 3),
            ("morty", "PUT", "/todos/2", 403, 3),
            ("summer", "DELETE", "/todos/2", 200, 3),
            ("summer", "DELETE", "/todos/1", 403, 3),
            ("rick", "DELETE", "/todos/1", 200, 4),
            ("rick", "PUT", "/todos/2", 200, 5),
            ("rick", "DELETE", "/todos", 403, 6),
            ("beth", "GET", "/todos/1", 403, None),  # GET is not declared for /todos/{id}
        ]
        for who, method, path, status, clause in cases:
            answer = call(built.front.url, method, path, token[who])
            assert answer.status_code == status, (who, method, path, answer.text)
            if status == 200:
                assert answer.json()["subject"] == who and answer.json()["clause"] == str(clause)
            elif clause is not None:
                assert answer.json()["clause"] == clause, (who, method, path, answer.text)
    finally:
        built.close()


def test_the_replica_data_and_the_decision_log_are_authorised_by_the_charter(live):
    _, api = live
    alice = api.new_credential("alice")  # sre: no right on charter:*/snapshot nor audit:decisions
    assert api.request("GET", "/access/v1/snapshot", credential=alice).status_code == 403
    assert api.request("GET", "/access/v1/snapshot", credential="").status_code == 401
    document = api.ok("GET", "/access/v1/snapshot")
    assert document["revision"] >= 1 and "alice" in document["directory"]["users"] and document["charter"]
    one = {"at": 1, "subject_type": "user", "subject": "alice", "action": "read", "resource": "r"}
    one.update(allowed=True, basis="permission", clause=1)
    refused = api.request("POST", "/access/v1/decision-log", credential=alice, json={"decisions": [one]})
    assert refused.status_code == 403
    bad = api.request("POST", "/access/v1/decision-log", json={"decisions": [{**one, "basis": "whim"}]})
    assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "decisions[0].basis"
    assert api.ok("POST", "/access/v1/decision-log", 202, json={"decisions": [one]})["accepted"] == 1


def test_a_browser_signs_in_with_charter_through_the_proxy(live):
    from enforce_kit import free_port
    from oidc_helpers import browser, hidden_fields, running, sign_in

    server, api = live
    oidc = running(live)
    port = free_port()
    proxy_url = f"http://127.0.0.1:{port}"
    registered = oidc.app_client("Orders proxy", redirect_uris=(f"{proxy_url}/_charter/callback",))
    built = Stack(
        server.url,
        api.admin_credential,
        api.clock,
        SAMPLE_ROUTES,
        "proxy",
        login_client=registered["client_id"],
        port=port,
    )
    page = {"Accept": "text/html"}
    try:
        with browser(oidc) as person:
            sign_in(oidc, person, "alice")
            sent = person.get(f"{proxy_url}/db/prod/orders?x=1", headers=page)
            assert sent.status_code == 302 and sent.headers["location"].startswith(f"{server.url}/oauth/authorize?")
            assert "code_challenge_method=S256" in sent.headers["location"]
            consent = person.get(sent.headers["location"])
            if consent.status_code == 200:  # the consent page, the first time
                consent = person.post("/oauth/authorize", data={**hidden_fields(consent.text), "decision": "allow"})
            back = consent.headers["location"]
            assert back.startswith(f"{proxy_url}/_charter/callback?")
            forged = person.get(back.replace("state=", "state=x"))
            assert forged.status_code == 400 and "state" in forged.text
            landed = person.get(back)  # the code was not used by the forged attempt: it stopped at the state
            assert landed.status_code == 303 and landed.headers["location"] == "/db/prod/orders?x=1"
            seen = person.get(f"{proxy_url}/db/prod/orders", headers=page)
            assert seen.status_code == 200 and seen.json()["subject"] == "alice"
            assert "charter_proxy" not in (seen.json()["cookie"] or "")  # the session's token stays at the proxy
            assert person.delete(f"{proxy_url}/db/prod/orders").status_code == 403  # the cookie's subject, clause 4
        assert httpx.get(f"{proxy_url}/db/prod/orders").status_code == 401  # not a browser: no redirect
    finally:
        built.close()
