"""Drift from the OpenID Connect provider: service client secrets past rotation, and live access tokens issued
for longer than the charter now allows. On plain data first, then through a running server on both backends."""

from __future__ import annotations

import datetime as dt

import pytest
from authlib.integrations.httpx_client import OAuth2Client

from charter.bootstrap import sample
from charter.policy.drift import IssuedToken
from oidc_helpers import running
from test_drift import NOW, _client, _drift, _found, _version, enrol_factor

ADMIN = "/admin/v1"


def _issued(lifetime_hours: float, issued_hours_ago: float = 0.0, subject: str = "billing-api") -> IssuedToken:
    issued = NOW - dt.timedelta(hours=issued_hours_ago)
    lifetime = dt.timedelta(hours=lifetime_hours)
    return IssuedToken(
        f"jti-{lifetime_hours}-{issued_hours_ago}", "oc-1", "service", subject, lifetime, issued + lifetime
    )


def test_token_lifetime_finds_live_tokens_issued_for_longer_than_the_charter_allows():
    drift = _drift(issued=[_issued(1), _issued(8, 2), _issued(8, 9)])  # within, too long and live, too long but expired
    # clause 8: Access tokens expire after 1 hour
    assert _found(drift, "token-lifetime") == [("token-lifetime", "service:billing-api", 8)]
    (finding,) = [f for f in drift.findings if f.check == "token-lifetime"]
    assert "issued for 8 hours" in finding.detail and "expire after 1 hour" in finding.detail
    assert "token-lifetime" not in [n.check for n in drift.not_checked]


def test_oauth_service_clients_past_rotation_are_named_as_oauth_clients():
    oauth = _client("billing-api", "service", days_old=91, name="billing OAuth")
    oauth = type(oauth)(oauth.id, oauth.name, oauth.subject_type, oauth.subject, oauth.created_at, "OAuth client")
    drift = _drift(clients=[oauth])
    assert _found(drift, "rotation-overdue") == [
        ("rotation-overdue", "service:billing-api", 9)
    ]  # clause 9: rotate every 90 days
    assert drift.findings[0].detail.startswith('OAuth client "billing OAuth"')


@pytest.fixture
def oidc(live, db, monkeypatch):
    enrol_factor(db, "erin")  # the sample's one admin has her factor: no admin-without-mfa drift here
    monkeypatch.setenv("CHARTER_INACTIVE_DAYS", "1000")  # the clock moves months; nobody signs in
    return running(live)


def test_drift_from_the_provider_through_the_api(oidc):
    service = oidc.service_client()
    client = OAuth2Client(service["client_id"], service["client_secret"])
    client.fetch_token(f"{oidc.url}/oauth/token", grant_type="client_credentials")  # 1 hour, as clause 8 says
    report = oidc.api.ok("GET", f"{ADMIN}/drift")
    assert report["findings"] == []
    shorter = sample("charter.charter").replace(
        "Access tokens expire after 1 hour.", "Access tokens expire after 30 minutes."
    )
    oidc.api.ok("PUT", f"{ADMIN}/charter", content=shorter, headers={"Content-Type": "text/plain"})
    report = oidc.api.ok("GET", f"{ADMIN}/drift")
    found = [(f["check"], f["subject"], f["clause"]) for f in report["findings"]]
    assert found == [("token-lifetime", "service:billing-api", 8)]
    fresh = client.fetch_token(f"{oidc.url}/oauth/token", grant_type="client_credentials")
    assert fresh["expires_in"] == 1800  # the amended charter's lifetime, at once
    oidc.clock.advance(dt.timedelta(days=91))  # the first token expired; the secret is past rotation
    report = oidc.api.ok("GET", f"{ADMIN}/drift")
    found = [(f["check"], f["subject"], f["clause"]) for f in report["findings"]]
    assert found == [("rotation-overdue", "service:billing-api", 9)]
    oidc.api.ok("POST", f"{ADMIN}/oauth-clients/{service['client_id']}/secret")
    assert oidc.api.ok("GET", f"{ADMIN}/drift")["findings"] == []


def test_version_helper_is_the_sample():
    assert _version().name == "Acme Production Access"


def test_the_oauth_client_cli_through_the_server(oidc):
    from click.testing import CliRunner

    from charter.cli.main import cli

    env = {"CHARTER_URL": oidc.url, "CHARTER_CREDENTIAL": oidc.api.admin_credential}
    runner = CliRunner()
    made = runner.invoke(cli, ["oauth-client", "create", "billing", "--service", "billing-api"], env=env)
    assert made.exit_code == 0, made.output
    client_id = made.output.split()[1]
    assert "client secret (shown once):" in made.output
    listed = runner.invoke(cli, ["oauth-client", "list"], env=env)
    assert listed.exit_code == 0 and client_id in listed.output and "service:billing-api" in listed.output
    rotated = runner.invoke(cli, ["oauth-client", "rotate-secret", client_id], env=env)
    assert rotated.exit_code == 0 and "previous secret works until" in rotated.output
    revoked = runner.invoke(cli, ["oauth-client", "revoke", client_id], env=env)
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    app = runner.invoke(
        cli, ["oauth-client", "create", "wiki", "--public", "--redirect-uri", "http://wiki.example/cb"], env=env
    )
    assert app.exit_code == 1 and "https is required" in app.output
