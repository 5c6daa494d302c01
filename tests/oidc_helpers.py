"""Helpers for the OpenID Connect tests: a live server whose issuer is its own address, signing a person in,
registering clients, and walking the authorization code flow through the consent page like a browser."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy import select

from charter.auth import passwords, totp
from charter.auth import sessions as browser_sessions
from charter.sealed import default_sealer
from charter.store.models import AuditRecordRow, MfaFactorRow

REDIRECT = "http://127.0.0.1:9/callback"
PASSWORD = "correct staple orbit lantern"


@dataclass
class Oidc:
    url: str
    engine: object
    api: object  # conftest.Api, as the admin

    @property
    def clock(self):
        return self.api.clock

    def now(self) -> dt.datetime:
        return self.clock.now().astimezone(dt.UTC)

    def app_client(self, name: str = "Wiki", public: bool = True, redirect_uris=(REDIRECT,), **fields) -> dict:
        body = {"name": name, "type": "public" if public else "confidential", "redirect_uris": list(redirect_uris)}
        return self.api.ok("POST", "/admin/v1/oauth-clients", 201, json={**body, **fields})

    def service_client(self, service: str = "billing-api", **fields) -> dict:
        body = {"name": f"{service} client", "grant_types": ["client_credentials"], "service": service}
        return self.api.ok("POST", "/admin/v1/oauth-clients", 201, json={**body, **fields})

    def audit(self, action: str, outcome: str | None = None) -> list[dict]:
        with self.engine.sessions() as session:
            query = select(AuditRecordRow).where(AuditRecordRow.action == action).order_by(AuditRecordRow.seq)
            rows = session.scalars(query).all()
        return [
            {"actor": r.actor, "target": r.target, "outcome": r.outcome, **json.loads(r.details)}
            for r in rows
            if outcome is None or r.outcome == outcome
        ]


def running(live) -> Oidc:
    """The `live` fixture's server (its issuer is its own address) as the OpenID Connect tests use it."""
    server, api = live
    return Oidc(server.url, api.http.app.state.engine, api)


def sign_in(oidc: Oidc, browser: httpx.Client, user: str, amr=("pwd", "otp")) -> None:
    """Sign `user` in to `browser` through the real pages: the password form, then a TOTP code when `amr` has
    "otp" (a factor enrolled a minute earlier if the user has none)."""
    with oidc.engine.sessions.begin() as session:
        passwords.set_password(session, user, PASSWORD, oidc.now())
        if "otp" in amr and not totp.confirmed(session, user):
            earlier = oidc.now() - dt.timedelta(minutes=1)
            _, seed = totp.enrol(session, user, earlier, default_sealer())
            assert totp.confirm(session, user, pyotp.TOTP(seed).at(earlier), earlier, default_sealer())
    signed = _post_form(browser, "/login", username=user, password=PASSWORD)
    assert signed.status_code == 303, signed.text
    if "otp" in amr:
        assert signed.headers["location"] == "/login/mfa"
        with oidc.engine.sessions() as session:
            seed = default_sealer().open(session.get(MfaFactorRow, user).sealed_secret).decode()
        signed = _post_form(browser, "/login/mfa", code=pyotp.TOTP(seed).at(oidc.now()))
        assert signed.status_code == 303, signed.text
    assert browser.cookies.get(browser_sessions.COOKIE), "no session cookie after signing in"


def _post_form(browser: httpx.Client, path: str, **fields) -> httpx.Response:
    """GET the page for its CSRF token, then POST the form as a browser without JavaScript does."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).text)
    assert token is not None
    return browser.post(path, data={"csrf_token": token.group(1), **fields})


def browser(oidc: Oidc) -> httpx.Client:
    return httpx.Client(base_url=oidc.url, follow_redirects=False)


def hidden_fields(page: str) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {unescape(name): unescape(value) for name, value in fields}


def public_client(oidc: Oidc, registered: dict, scope: str = "openid profile groups email") -> OAuth2Client:
    return OAuth2Client(
        client_id=registered["client_id"],
        token_endpoint_auth_method="none",
        redirect_uri=REDIRECT,
        scope=scope,
        code_challenge_method="S256",
    )


def authorize(oidc: Oidc, person: httpx.Client, client: OAuth2Client, **extra) -> tuple[str, str, str]:
    """The authorization request, consent allowed; (the redirect's Location, the code verifier, the nonce)."""
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(12)
    uri, _ = client.create_authorization_url(
        f"{oidc.url}/oauth/authorize", code_verifier=verifier, nonce=nonce, **extra
    )
    page = person.get(uri)
    if page.status_code == 200:  # the consent page
        form = hidden_fields(page.text)
        page = person.post("/oauth/authorize", data={**form, "decision": "allow"})
    assert page.status_code in (302, 303), page.text
    return page.headers["location"], verifier, nonce


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
