"""Helpers for the OpenID Connect tests: a live server whose issuer is its own address, signing a person in,
registering clients, and walking the authorization code flow through the consent page like a browser."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy import select

from charter.auth import sessions as browser_sessions
from charter.store.models import AuditRecordRow

REDIRECT = "http://127.0.0.1:9/callback"


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


@contextmanager
def live_oidc(db) -> Iterator[Oidc]:
    """Charter with the sample data, served over HTTP at a fixed time, its issuer set to its own address."""
    from charter.bootstrap import initialize
    from charter.clock import FixedClock
    from charter.engine import Engine
    from charter.web.app import create_app
    from conftest import API_TEST_TIME, Api
    from live import LiveServer

    clock = FixedClock(API_TEST_TIME)
    initialized = initialize(db, clock)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = Engine(db, clock=clock)
    engine.issuer = f"http://127.0.0.1:{port}"
    with LiveServer(create_app(engine), port) as server, httpx.Client(base_url=server.url) as http:
        yield Oidc(server.url, engine, Api(http, initialized.admin_credential, clock))


def sign_in(oidc: Oidc, browser: httpx.Client, user: str, amr=("pwd", "otp")) -> str:
    """Sign `user` in to `browser` as the login pages would (the one place to swap for the real login)."""
    with oidc.engine.sessions.begin() as session:
        _, token = browser_sessions.start(session, user, list(amr), oidc.now(), "127.0.0.1", "tests")
    browser.cookies.set(browser_sessions.COOKIE, token)
    return token


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
