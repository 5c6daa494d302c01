"""Running Charter in production: /metrics moves as a user would notice, /healthz and /readyz, JSON logs with
request ids and without secrets, security headers, the token endpoint's rate limit (docs/security.md)."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from prometheus_client.parser import text_string_to_metric_families

from charter import logs
from oidc_helpers import PASSWORD, browser, running, sign_in

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def scrape(http) -> dict[tuple[str, tuple], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    response = http.get("/metrics")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def evaluation(subject: str, action: str, resource: str) -> dict:
    return {
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "db", "id": resource},
    }


# --- metrics -------------------------------------------------------------------------------------------


@SQLITE
def test_decisions_are_counted_by_effect_and_clause_and_a_deny_raises_denies_with_its_clause(api):
    before = scrape(api.http)
    for _ in range(3):
        assert api.ok("POST", "/access/v1/evaluation", json=evaluation("alice", "read", "prod/orders"))["decision"]
    denied = api.ok("POST", "/access/v1/evaluation", json=evaluation("alice", "delete", "prod/orders"))
    assert denied["decision"] is False and denied["context"]["clause"] == 4
    batch = {"evaluations": [evaluation("bob", "delete", "prod/x"), evaluation("alice", "delete", "prod/y")]}
    api.ok("POST", "/access/v1/evaluations", json=batch)
    after = scrape(api.http)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("charter_decisions_total", effect="allow", clause="1") == 3
    assert moved("charter_decisions_total", effect="deny", clause="4") == 3
    assert moved("charter_denies_total", clause="4") == 3
    assert moved("charter_denies_total", clause="1") == 0
    # the latency histogram is fed by a sample (1 in 64): its count never exceeds the decisions counted
    decided = sum(v for (name, _), v in after.items() if name == "charter_decisions_total")
    assert 0 <= value(after, "charter_decision_seconds_count") <= decided


@SQLITE
def test_snapshot_revision_and_build_time_and_the_decision_log_queue_are_exposed(api):
    engine = api.http.app.state.engine
    scraped = scrape(api.http)
    assert value(scraped, "charter_snapshot_revision") == engine.snapshot.revision
    assert value(scraped, "charter_snapshot_build_seconds_count", kind="full") >= 1
    assert ("charter_decision_log_queue_depth", ()) in scraped
    assert ("charter_decision_log_dropped_total", (("reason", "queue_full"),)) in scraped
    api.put("/admin/v1/users/zed", json={"groups": ["sre"]})
    assert (
        value(scrape(api.http), "charter_snapshot_revision")
        == engine.snapshot.revision
        > scraped[("charter_snapshot_revision", ())]
    )


@SQLITE
def test_store_gauges_count_pending_requests_ownerless_services_and_old_credentials(api):
    gauges = api.http.app.state.store_gauges
    gauges.refresh()
    before = scrape(api.http)
    assert value(before, "charter_credential_rotation_window_seconds") == 90 * 86400  # clause 9
    dave = api.new_credential("dave")  # a contractor: clause 3 lets him request write on db:staging/*
    asked = {"action": "write", "resource": "db:staging/app", "duration": "2h", "reason": "deploy"}
    api.ok("POST", "/access/v1/requests", 201, credential=dave, json=asked)
    api.ok("PUT", "/admin/v1/services/orphan", json={})
    api.new_credential("billing-api", subject_type="service")
    assert value(scrape(api.http), "charter_requests_pending") == value(before, "charter_requests_pending")  # cached
    gauges.refresh()
    after = scrape(api.http)
    assert value(after, "charter_requests_pending") == value(before, "charter_requests_pending") + 1
    assert value(after, "charter_identities_without_owner") == value(before, "charter_identities_without_owner") + 1
    assert value(after, "charter_credentials_past_rotation") == 0
    api.clock.advance(__import__("datetime").timedelta(days=91))
    gauges.refresh()
    aged = scrape(api.http)
    assert value(aged, "charter_credentials_past_rotation") >= 1
    assert value(aged, "charter_credential_age_max_seconds") > 90 * 86400
    assert value(aged, "charter_reviews_overdue") >= 0


@SQLITE
def test_a_failed_login_raises_attempts_but_not_successes_and_token_issuance_is_timed(live):
    oidc = running(live)
    _, api = live
    before = scrape(api.http)
    with browser(oidc) as person:
        page = person.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        refused = person.post("/login", data={"csrf_token": token, "username": "alice", "password": "wrong"})
        assert refused.status_code == 401
    middle = scrape(api.http)
    assert (
        value(middle, "charter_auth_attempts_total", method="password")
        == value(before, "charter_auth_attempts_total", method="password") + 1
    )
    assert value(middle, "charter_auth_successes_total", method="password") == value(
        before, "charter_auth_successes_total", method="password"
    )
    with browser(oidc) as person:
        sign_in(oidc, person, "alice", amr=("pwd",))
    service = oidc.service_client()
    OAuth2Client(service["client_id"], service["client_secret"]).fetch_token(
        f"{oidc.url}/oauth/token", grant_type="client_credentials"
    )
    after = scrape(api.http)
    assert (
        value(after, "charter_auth_successes_total", method="password")
        == value(middle, "charter_auth_successes_total", method="password") + 1
    )
    issued = "charter_token_issuance_seconds_count"
    labels = {"grant_type": "client_credentials", "outcome": "issued"}
    assert value(after, issued, **labels) == value(before, issued, **labels) + 1


# --- health ----------------------------------------------------------------------------------------------


@SQLITE
def test_healthz_and_readyz_and_readyz_is_503_naming_the_cause_when_the_store_is_away(api, monkeypatch):
    assert api.get("/healthz", credential="").json() == {"status": "ok"}
    ready = api.get("/readyz", credential="")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"

    def unreachable(engine):
        raise ConnectionError("connection refused")

    monkeypatch.setattr("charter.web.app._ping", unreachable)
    down = api.get("/readyz", credential="")
    assert down.status_code == 503
    assert down.json()["problems"] == ["the store is unreachable: ConnectionError"]
    assert api.get("/healthz", credential="").status_code == 200  # alive all the same


# --- request ids, headers, logs -------------------------------------------------------------------------


@SQLITE
def test_request_ids_are_echoed_or_made_up_and_every_response_has_the_security_headers(api):
    sent = api.get("/admin/v1/revision", headers={"X-Request-Id": "abc-123"})
    assert sent.headers["x-request-id"] == "abc-123"
    odd = api.get("/admin/v1/revision", headers={"X-Request-Id": "x" * 300})
    assert re.fullmatch(r"[0-9a-f]{16}", odd.headers["x-request-id"])
    for response in (sent, api.get("/nowhere"), api.post("/access/v1/evaluation", content=b"{", credential="")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers  # plain http: HSTS means nothing there
    page = api.get("/login", credential="")
    assert page.headers.get_list("x-frame-options") == ["DENY"]  # the page's own, not twice
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    secure = api.http.get("https://testserver/healthz")
    assert secure.headers["strict-transport-security"].startswith("max-age=")


def test_the_json_formatter_writes_one_object_per_line_with_the_request_id_and_no_secrets():
    from charter.audit.trail import REQUEST_ID

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("charter.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = REQUEST_ID.set("req-1")
    try:
        logger.info(
            "sent Authorization: Bearer chr_abc123 with password=hunter2 and %s",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
            extra={"client_secret": "s3cr3t", "user": "alice", "note": "cookie=charter_session=xyz"},
        )
        try:
            raise ValueError("[SQL: INSERT]\n[parameters: ('alice', 'hash-of-hunter2')]")
        except ValueError:
            logger.exception("failed")
    finally:
        REQUEST_ID.reset(token)
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["request_id"] == "req-1" and first["level"] == "info" and first["logger"] == "charter.test-json"
    assert first["fields"] == {"client_secret": "[redacted]", "user": "alice", "note": "cookie=[redacted]"}
    assert "time" in first and "exception" in second
    text = stream.getvalue()
    for secret in ("chr_abc123", "hunter2", "eyJhbGciOiJSUzI1NiJ9", "s3cr3t", "xyz"):
        assert secret not in text


@SQLITE
def test_logs_of_a_login_and_a_token_issuance_hold_none_of_their_secrets(live):
    oidc = running(live)
    _, api = live
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with browser(oidc) as person:
            sign_in(oidc, person, "alice", amr=("pwd",))
            cookies = [c.value for c in person.cookies.jar]
        service = oidc.service_client()
        token = OAuth2Client(service["client_id"], service["client_secret"]).fetch_token(
            f"{oidc.url}/oauth/token", grant_type="client_credentials"
        )
        with pytest.raises(OAuthError):
            OAuth2Client(service["client_id"], "wrong-secret-xyz").fetch_token(
                f"{oidc.url}/oauth/token", grant_type="client_credentials"
            )
        httpx.get(f"{oidc.url}/oauth/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    text = stream.getvalue()
    assert text, "nothing was logged: the test would prove nothing"
    for line in text.splitlines():
        json.loads(line)
    secrets = [PASSWORD, service["client_secret"], "wrong-secret-xyz", token["access_token"], api.admin_credential]
    for secret in [*secrets, *cookies]:
        assert secret not in text


# --- rate limits -------------------------------------------------------------------------------------------


@SQLITE
def test_the_token_endpoint_answers_429_with_retry_after_past_its_failure_limit(live, monkeypatch):
    oidc = running(live)
    _, api = live
    limiter = api.http.app.state.token_limiter
    monkeypatch.setattr(limiter, "limit", 3)
    service = oidc.service_client()
    endpoint = f"{oidc.url}/oauth/token"
    form = {"grant_type": "client_credentials"}
    for _ in range(3):
        wrong = httpx.post(endpoint, data=form, auth=(service["client_id"], "nope"))
        assert wrong.status_code in (400, 401)
    limited = httpx.post(endpoint, data=form, auth=(service["client_id"], service["client_secret"]))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"] == "too_many_requests"
    assert value(scrape(api.http), "charter_auth_rate_limited_total", endpoint="token") >= 1
    oidc.clock.advance(__import__("datetime").timedelta(minutes=6))  # the window passes
    assert httpx.post(endpoint, data=form, auth=(service["client_id"], service["client_secret"])).status_code == 200


# --- what schemathesis found (tests/test_schemathesis.py): each was a 500 ---------------------------------


@SQLITE
def test_a_null_groups_or_parents_keeps_the_current_ones_instead_of_failing(api):
    api.ok("PUT", "/admin/v1/users/zoe", json={"groups": ["sre"]})
    api.ok("PUT", "/admin/v1/users/zoe", json={"groups": None, "display_name": "Zoe"})
    assert api.ok("GET", "/admin/v1/users/zoe")["groups"] == ["sre"]
    api.ok("PUT", "/admin/v1/groups/g1", json={"parents": ["sre"]})
    api.ok("PUT", "/admin/v1/groups/g1", json={"parents": None})
    assert api.ok("GET", "/admin/v1/groups/g1")["parents"] == ["sre"]


@SQLITE
def test_numbers_too_large_for_the_store_are_refused_with_400_not_500(api):
    huge = 2**64
    for path in (
        f"/admin/v1/users?offset={huge}",
        f"/admin/v1/oauth-clients?offset={huge}",
        f"/admin/v1/amendments/{huge}",
        f"/admin/v1/charter/versions/{huge}",
        f"/access/v1/events?once=true&after={huge}",
    ):
        response = api.get(path)
        assert response.status_code == 400, (path, response.status_code, response.text)
    stream = api.get("/access/v1/events?once=true", headers={"Last-Event-ID": str(huge)})
    assert stream.status_code == 400


# --- CSRF ----------------------------------------------------------------------------------------------------


@SQLITE
def test_every_form_post_without_its_csrf_token_is_refused_and_changes_nothing(live):
    """Every POST route that is a page form (not in the OpenAPI document), found from the app's routes so a
    new form is covered as soon as it exists, refuses a signed-in browser's post without the token or with
    another one; the session survives it (so /logout and sign-out-everywhere did nothing)."""
    from starlette.routing import Route

    oidc = running(live)
    _, api = live
    app = api.http.app
    forms = sorted(
        {
            re.sub(r"\{[^}]+\}", "1", route.path)  # "1": a placeholder every path parameter accepts
            for route in app.routes
            if isinstance(route, Route) and "POST" in (route.methods or ()) and not route.include_in_schema
        }
    )
    assert {"/login", "/logout", "/account/password", "/account/sign-out-everywhere"} <= set(forms)
    with browser(oidc) as person:
        sign_in(oidc, person, "alice", amr=("pwd",))
        person.get("/account")  # sets the CSRF cookie
        assert person.cookies.get("charter_csrf")
        for path in [*forms, "/oauth/authorize"]:
            for sent in ({}, {"csrf_token": "not-the-token"}):
                response = person.post(path, data={"username": "alice", "password": "x", **sent})
                assert response.status_code == 403, (path, sent, response.status_code)
        assert person.get("/account").status_code == 200  # still signed in


# --- request size ------------------------------------------------------------------------------------------


@SQLITE
def test_the_body_limit_covers_scim_oauth_forms_and_pages_declared_or_streamed(api):
    """RevisionMiddleware wraps the whole app: every route, SCIM and the OAuth form posts included, refuses a
    body past the limit (1 MiB) with 413, whether its Content-Length says so or it streams without one."""
    big = b"x" * (1024 * 1024 + 1)

    def chunks():
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    for path, kind in (
        ("/scim/v2/Users", "application/scim+json"),
        ("/oauth/token", "application/x-www-form-urlencoded"),
        ("/login", "application/x-www-form-urlencoded"),
        ("/access/v1/evaluation", "application/json"),
        ("/admin/v1/clients", "application/json"),
    ):
        declared = api.post(path, content=big, headers={"Content-Type": kind})
        assert declared.status_code == 413, (path, declared.status_code)
        streamed = api.post(path, content=chunks(), headers={"Content-Type": kind})
        assert streamed.status_code == 413, (path, "streamed", streamed.status_code)


# --- NUL characters on PostgreSQL (found after schemathesis, which runs on SQLite) ----------------------------

POSTGRES = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@POSTGRES
def test_a_value_postgresql_cannot_hold_is_a_400_not_a_500_and_writes_nothing(api):
    """PostgreSQL text cannot hold a NUL character; each of these was a 500 with the driver's error."""
    before = api.stored_revision()
    refused = [
        api.put("/admin/v1/users/zz", json={"display_name": "a\u0000b"}),
        api.get("/admin/v1/users/a%00b"),
        api.post("/admin/v1/clients", json={"name": "x\u0000", "subject_type": "user", "subject": "alice"}),
        api.get("/admin/v1/audit/audit?action=a%00b"),
    ]
    for response in refused:
        assert response.status_code == 400, (response.request.url, response.text)
        assert response.json()["error"] == "invalid_request"
    scim = api.post(
        "/scim/v2/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "n\u0000ul"},
        headers={"Content-Type": "application/scim+json"},
    )
    assert scim.status_code == 400 and scim.json()["scimType"] == "invalidValue", scim.text
    assert api.stored_revision() == before
    assert api.get("/admin/v1/users/zz").status_code == 404


@POSTGRES
def test_a_decision_about_a_name_with_a_nul_is_logged_and_does_not_stop_the_decision_log(api):
    """One such decision made every batch holding it fail on PostgreSQL, and the log stopped writing."""
    decision_log = api.http.app.state.decision_log
    before = decision_log.written
    for subject in ("alice", "a\u0000b", "bob"):
        api.ok("POST", "/access/v1/evaluation", json=evaluation(subject, "delete", "prod/x"))
    decision_log.flush()
    assert decision_log.last_error is None, decision_log.last_error
    assert decision_log.written - before == 3 and decision_log.pending == 0
    logged = api.ok("GET", "/admin/v1/audit/decisions", params={"limit": 5})["items"]
    assert any("a\ufffdb" in item["actor"] for item in logged), logged


@SQLITE
def test_a_scim_resource_with_a_non_latin_name_is_served_with_a_percent_encoded_location(api):
    """schemathesis (100 examples): GET /scim/v2/Groups/熸 was a 500, the Location header not being Latin-1."""
    api.ok("PUT", "/admin/v1/groups/熸", json={})
    response = api.get("/scim/v2/Groups/熸")
    assert response.status_code == 200, response.text
    assert response.headers["location"].endswith("/Groups/%E7%86%B8")
