"""The OpenID Connect provider end to end: authlib's OAuth2Client against a running server over HTTP, on both
backends; the flows, then the attacks (each refused and audited)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from charter.oidc.verify import InvalidToken
from oidc_helpers import (
    REDIRECT,
    authorize,
    browser,
    hidden_fields,
    public_client,
    query_of,
    running,
    sign_in,
)


@pytest.fixture
def oidc(live):
    return running(live)


def _flow(oidc, scope="openid profile groups email", user="alice", amr=("pwd", "otp")):
    registered = oidc.app_client()
    client = public_client(oidc, registered, scope)
    with browser(oidc) as person:
        sign_in(oidc, person, user, amr)
        location, verifier, nonce = authorize(oidc, person, client, state="s-123")
    token = client.fetch_token(f"{oidc.url}/oauth/token", authorization_response=location, code_verifier=verifier)
    return registered, client, token, location, nonce


def test_discovery_and_jwks(oidc):
    config = httpx.get(f"{oidc.url}/.well-known/openid-configuration").json()
    assert config["issuer"] == oidc.url
    assert config["jwks_uri"] == f"{oidc.url}/oauth/jwks"
    assert config["token_endpoint"] == f"{oidc.url}/oauth/token"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["id_token_signing_alg_values_supported"] == ["ES256"]
    assert config["response_types_supported"] == ["code"]
    assert set(config["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert "none" in config["token_endpoint_auth_methods_supported"]
    service = oidc.service_client()
    OAuth2Client(service["client_id"], service["client_secret"]).fetch_token(
        f"{oidc.url}/oauth/token", grant_type="client_credentials"
    )  # the first token makes the first signing key
    response = httpx.get(f"{oidc.url}/oauth/jwks")
    assert "max-age" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert keys and all(k["kty"] == "EC" and k["alg"] == "ES256" and "d" not in k for k in keys)


def test_authorization_code_with_pkce_mfa_id_token_and_userinfo(oidc):
    registered, client, token, location, nonce = _flow(oidc)
    assert query_of(location)["state"] == "s-123"
    assert location.startswith(REDIRECT + "?")
    verified = oidc.engine.tokens.verify(token["access_token"], oidc.now(), audience=oidc.url)
    assert verified.subject_type == "user" and verified.subject == "alice"
    assert verified.client_id == registered["client_id"]
    assert set(verified.groups) >= {"sre", "sre-leads"}
    assert "otp" in verified.amr and verified.mfa
    assert verified.claims["exp"] - verified.claims["iat"] == 3600  # clause 8: Access tokens expire after 1 hour
    assert token["expires_in"] == 3600 and token["token_type"].lower() == "bearer"
    assert token["refresh_token"]
    jwks = KeySet.import_key_set(httpx.get(f"{oidc.url}/oauth/jwks").json())
    id_token = jwt.decode(token["id_token"], jwks, algorithms=["ES256"])
    assert id_token.header["alg"] == "ES256"
    claims = id_token.claims
    assert claims["nonce"] == nonce and claims["aud"] == registered["client_id"] and claims["iss"] == oidc.url
    assert claims["sub"] == "alice" and "otp" in claims["amr"] and claims["at_hash"]
    info = client.get(f"{oidc.url}/oauth/userinfo").json()
    assert info["sub"] == "alice" and info["email"] == "alice@acme.example" and "sre" in info["groups"]
    issued = oidc.audit("oidc.token.issue")[-1]
    assert issued["grant_type"] == "authorization_code" and issued["lifetime_seconds"] == 3600
    assert issued["jti"] == verified.jti and issued["subject"] == "alice"
    assert token["access_token"] not in str(oidc.audit("oidc.token.issue"))
    assert oidc.audit("oidc.consent")[-1]["target"] == f"oauth-client:{registered['client_id']}"


def test_consent_is_remembered_and_deny_returns_access_denied(oidc):
    registered = oidc.app_client()
    client = public_client(oidc, registered, "openid profile")
    with browser(oidc) as person:
        sign_in(oidc, person, "bob")
        uri, state = client.create_authorization_url(f"{oidc.url}/oauth/authorize", code_verifier="v" * 50)
        page = person.get(uri)
        assert page.status_code == 200 and "Allow" in page.text and "Wiki" in page.text
        denied = person.post("/oauth/authorize", data={**hidden_fields(page.text), "decision": "deny"})
        assert denied.status_code == 302
        answer = query_of(denied.headers["location"])
        assert (answer["error"], answer["state"]) == ("access_denied", state)
        location, _, _ = authorize(oidc, person, client)  # consents
        assert "code" in query_of(location)
        uri, _ = client.create_authorization_url(f"{oidc.url}/oauth/authorize", code_verifier="w" * 50)
        again = person.get(uri)  # consented already: straight back with a code
        assert again.status_code == 302 and "code=" in again.headers["location"]


def test_not_signed_in_goes_to_login_and_prompt_login_asks_again(oidc):
    registered = oidc.app_client()
    client = public_client(oidc, registered)
    uri, _ = client.create_authorization_url(f"{oidc.url}/oauth/authorize", code_verifier="v" * 50)
    with browser(oidc) as person:
        first = person.get(uri)
        assert first.status_code == 303 and first.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize")
        sign_in(oidc, person, "alice")
        oidc.clock.advance(dt.timedelta(minutes=5))
        again = person.get(uri + "&prompt=login")
        assert again.status_code == 303 and "auth_after=" in again.headers["location"]
        assert person.get(again.headers["location"]).headers["location"].startswith("/login?next=")
        old = person.get(uri + "&max_age=60")
        assert old.status_code == 303 and old.headers["location"].startswith("/login?next=")


def test_public_client_needs_pkce_with_s256(oidc):
    registered = oidc.app_client()
    with browser(oidc) as person:
        sign_in(oidc, person, "alice")
        base = {"response_type": "code", "client_id": registered["client_id"], "redirect_uri": REDIRECT}
        missing = person.get("/oauth/authorize", params={**base, "state": "x"})
        assert missing.status_code == 302
        assert query_of(missing.headers["location"])["error"] == "invalid_request"
        challenge = "a" * 43
        plain = person.get(
            "/oauth/authorize", params={**base, "code_challenge": challenge, "code_challenge_method": "plain"}
        )
        assert plain.status_code == 302 and query_of(plain.headers["location"])["error"] == "invalid_request"
        no_method = person.get("/oauth/authorize", params={**base, "code_challenge": challenge})
        assert query_of(no_method.headers["location"])["error"] == "invalid_request"
        client = public_client(oidc, registered)
        location, _verifier, _ = authorize(oidc, person, client)
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(
            f"{oidc.url}/oauth/token", authorization_response=location, code_verifier=secrets.token_urlsafe(48)
        )
    assert refused.value.error == "invalid_grant"
    refusals = oidc.audit("oidc.token", "denied")
    assert refusals[-1]["reason"] == "PKCE verification failed"
    assert len(oidc.audit("oidc.authorize", "denied")) >= 3


def test_refresh_rotation_and_reuse_revokes_the_family(oidc):
    _registered, client, token, _, _ = _flow(oidc)
    first_refresh = token["refresh_token"]
    renewed = client.refresh_token(f"{oidc.url}/oauth/token", refresh_token=first_refresh)
    assert renewed["refresh_token"] != first_refresh
    second_access = renewed["access_token"]
    assert oidc.engine.tokens.verify(second_access, oidc.now(), audience=oidc.url).subject == "alice"
    with pytest.raises(OAuthError) as reuse:
        client.refresh_token(f"{oidc.url}/oauth/token", refresh_token=first_refresh)
    assert reuse.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as dead:
        client.refresh_token(f"{oidc.url}/oauth/token", refresh_token=renewed["refresh_token"])
    assert dead.value.error == "invalid_grant"
    with pytest.raises(InvalidToken):  # the family's live access tokens went with it
        oidc.engine.tokens.verify(second_access, oidc.now(), audience=oidc.url)
    reuse_record = oidc.audit("oidc.refresh.reuse")[-1]
    assert reuse_record["outcome"] == "denied" and reuse_record["error"] == "invalid_grant"
    assert reuse_record["revoked"]["refresh_tokens"] == 2 and reuse_record["revoked"]["access_tokens"] == 2


def test_client_credentials_for_a_service_and_secret_rotation(oidc):
    service = oidc.service_client()
    endpoint = f"{oidc.url}/oauth/token"
    client = OAuth2Client(service["client_id"], service["client_secret"])
    token = client.fetch_token(endpoint, grant_type="client_credentials")
    verified = oidc.engine.tokens.verify(token["access_token"], oidc.now())
    assert (verified.subject_type, verified.subject) == ("service", "billing-api")
    assert "refresh_token" not in token and token["expires_in"] == 3600
    with pytest.raises(OAuthError) as wrong:
        OAuth2Client(service["client_id"], "not-the-secret").fetch_token(endpoint, grant_type="client_credentials")
    assert wrong.value.error == "invalid_client"
    refusal = oidc.audit("oidc.token", "denied")[-1]
    assert refusal["reason"] == "bad client credentials" and refusal["client_id"] == service["client_id"]
    assert "not-the-secret" not in str(refusal)
    rotated = oidc.api.ok("POST", f"/admin/v1/oauth-clients/{service['client_id']}/secret")
    assert rotated["client_secret"] != service["client_secret"]
    OAuth2Client(service["client_id"], rotated["client_secret"]).fetch_token(endpoint, grant_type="client_credentials")
    client.fetch_token(endpoint, grant_type="client_credentials")  # the old one, during the overlap
    oidc.clock.advance(dt.timedelta(hours=24, seconds=1))
    with pytest.raises(OAuthError):
        client.fetch_token(endpoint, grant_type="client_credentials")
    OAuth2Client(service["client_id"], rotated["client_secret"]).fetch_token(endpoint, grant_type="client_credentials")
    assert rotated["client_secret"] not in str(oidc.audit("oauth_client.rotate_secret"))
    oidc.api.ok("DELETE", f"/admin/v1/oauth-clients/{service['client_id']}")
    with pytest.raises(OAuthError):
        OAuth2Client(service["client_id"], rotated["client_secret"]).fetch_token(
            endpoint, grant_type="client_credentials"
        )


def test_introspection_and_revocation(oidc):
    registered, client, token, _, _ = _flow(oidc)
    resource_server = oidc.service_client()
    rs = OAuth2Client(resource_server["client_id"], resource_server["client_secret"])
    introspect = f"{oidc.url}/oauth/introspect"
    active = rs.introspect_token(introspect, token=token["access_token"]).json()
    assert active["active"] is True and active["sub"] == "alice" and active["client_id"] == registered["client_id"]
    assert "otp" in active["amr"]
    assert rs.introspect_token(introspect, token="garbage").json() == {"active": False}
    # A refresh token only by the client it was issued to.
    assert rs.introspect_token(introspect, token=token["refresh_token"]).json() == {"active": False}
    anonymous = httpx.post(introspect, data={"token": token["access_token"]})
    assert anonymous.status_code in (400, 401) and anonymous.json()["error"] == "invalid_client"
    revoke = f"{oidc.url}/oauth/revoke"
    assert client.revoke_token(revoke, token=token["access_token"]).status_code == 200
    with pytest.raises(InvalidToken) as gone:
        oidc.engine.tokens.verify(token["access_token"], oidc.now(), audience=oidc.url)
    assert gone.value.reason == "revoked"
    assert rs.introspect_token(introspect, token=token["access_token"]).json() == {"active": False}
    assert client.revoke_token(revoke, token=token["refresh_token"]).status_code == 200
    with pytest.raises(OAuthError):
        client.refresh_token(f"{oidc.url}/oauth/token", refresh_token=token["refresh_token"])
    assert client.revoke_token(revoke, token="unknown-token").status_code == 200
    assert [r["token_type"] for r in oidc.audit("oidc.token.revoke")] == ["access_token", "refresh_token"]
    # Expiry, by the test clock.
    fresh = rs.fetch_token(f"{oidc.url}/oauth/token", grant_type="client_credentials")
    assert rs.introspect_token(introspect, token=fresh["access_token"]).json()["active"] is True
    oidc.clock.advance(dt.timedelta(hours=1, minutes=1))
    assert rs.introspect_token(introspect, token=fresh["access_token"]).json() == {"active": False}


# --- attacks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", [REDIRECT + "/", REDIRECT[:-1] + "l", REDIRECT.upper(), REDIRECT + "?x=1"])
def test_a_redirect_uri_one_character_off_is_refused_without_redirecting(oidc, wrong):
    registered = oidc.app_client()
    with browser(oidc) as person:
        sign_in(oidc, person, "alice")
        params = {
            "response_type": "code",
            "client_id": registered["client_id"],
            "redirect_uri": wrong,
            "state": "s",
            "code_challenge": "a" * 43,
            "code_challenge_method": "S256",
        }
        page = person.get("/oauth/authorize", params=params)
    assert page.status_code == 400 and "location" not in page.headers
    assert "refused" in page.text
    refusal = oidc.audit("oidc.authorize", "denied")[-1]
    assert refusal["redirect_uri"] == wrong and refusal["error"] == "invalid_request"


def test_an_unknown_client_gets_an_error_page(oidc):
    with browser(oidc) as person:
        sign_in(oidc, person, "alice")
        page = person.get(
            "/oauth/authorize", params={"response_type": "code", "client_id": "oc-nope", "redirect_uri": REDIRECT}
        )
    assert page.status_code == 400 and "location" not in page.headers
    assert oidc.audit("oidc.authorize", "denied")[-1]["error"] == "invalid_client"


def test_a_replayed_code_is_refused_and_revokes_what_the_first_exchange_got(oidc):
    registered = oidc.app_client()
    client = public_client(oidc, registered)
    with browser(oidc) as person:
        sign_in(oidc, person, "alice")
        location, verifier, _ = authorize(oidc, person, client)
    token = client.fetch_token(f"{oidc.url}/oauth/token", authorization_response=location, code_verifier=verifier)
    code = query_of(location)["code"]
    replay = httpx.post(
        f"{oidc.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": registered["client_id"],
            "code_verifier": verifier,
        },
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    service = oidc.service_client()
    rs = OAuth2Client(service["client_id"], service["client_secret"])
    assert rs.introspect_token(f"{oidc.url}/oauth/introspect", token=token["access_token"]).json() == {"active": False}
    with pytest.raises(OAuthError):
        client.refresh_token(f"{oidc.url}/oauth/token", refresh_token=token["refresh_token"])
    record = oidc.audit("oidc.code.replay")[-1]
    assert record["outcome"] == "denied" and record["reason"] == "replayed authorization code"
    assert record["revoked"] == {"refresh_tokens": 1, "access_tokens": 1}


def test_consent_without_csrf_token_is_refused(oidc):
    registered = oidc.app_client()
    client = public_client(oidc, registered)
    with browser(oidc) as person:
        sign_in(oidc, person, "alice")
        uri, _ = client.create_authorization_url(f"{oidc.url}/oauth/authorize", code_verifier="v" * 50)
        form = hidden_fields(person.get(uri).text)
        form.pop("csrf_token")
        refused = person.post("/oauth/authorize", data={**form, "decision": "allow"})
    assert refused.status_code == 403 and "location" not in refused.headers
    assert oidc.audit("oidc.authorize", "denied")[-1]["error"] == "csrf"


def test_a_disabled_user_gets_no_tokens(oidc):
    registered = oidc.app_client()
    client = public_client(oidc, registered)
    with browser(oidc) as person:
        sign_in(oidc, person, "bob")
        location, verifier, _ = authorize(oidc, person, client)
        oidc.api.ok("PUT", "/admin/v1/users/bob", json={"state": "disabled", "groups": ["sre"]})
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(f"{oidc.url}/oauth/token", authorization_response=location, code_verifier=verifier)
        assert refused.value.error == "invalid_grant"
        uri, _ = client.create_authorization_url(f"{oidc.url}/oauth/authorize", code_verifier="v" * 50)
        page = person.get(uri)  # a disabled user's session is no longer honoured: back to sign-in, no code
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")


def test_s256_challenge_helper_matches_authlib():
    verifier = secrets.token_urlsafe(48)
    ours = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    assert ours == create_s256_code_challenge(verifier)
