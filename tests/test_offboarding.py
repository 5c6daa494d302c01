"""Offboarding: a person deactivated by SCIM, disabled or deleted loses, at once, every session, refresh token, access token and
just-in-time grant they held (issue 10). A real server with a test clock, both backends; the person signs in
through the real pages and gets tokens through the OpenID Connect flow with authlib's client."""

from __future__ import annotations

import pytest
from authlib.integrations.base_client.errors import OAuthError

from charter.bootstrap import sample
from oidc_helpers import authorize, browser, public_client, running, sign_in
from test_scim import PROVISION

STAGING = {"action": "write", "resource": "db:staging/app", "reason": "migrate the orders table", "duration": "8h"}


def _token_decision(api, token: str) -> dict:
    body = {
        "subject": {"type": "token", "id": token},
        "action": {"name": "write"},
        "resource": {"type": "resource", "id": "db:staging/app"},
    }
    return api.ok("POST", "/access/v1/evaluation", json=body)


def _holding_everything(oidc):
    """dave (a contractor): an approved 8-hour grant, a browser session, and OAuth access and refresh tokens."""
    api = oidc.api
    dave, alice = api.new_credential("dave"), api.new_credential("alice")
    asked = api.ok("POST", "/access/v1/requests", 201, json=STAGING, credential=dave)
    api.ok("POST", f"/access/v1/requests/{asked['id']}/approve", json={}, credential=alice)
    client = public_client(oidc, oidc.app_client())
    person = browser(oidc)
    sign_in(oidc, person, "dave", amr=("pwd",))
    location, verifier, _ = authorize(oidc, person, client)
    tokens = client.fetch_token(f"{oidc.url}/oauth/token", authorization_response=location, code_verifier=verifier)
    assert api.decide("dave", "write", "db:staging/app")["decision"] is True  # the grant
    assert _token_decision(api, tokens["access_token"])["decision"] is True  # as dave, by his token
    assert person.get("/account").status_code == 200  # the session
    return person, client, tokens


def _scim_deactivates(api, user: str) -> None:
    """The identity provider's way: `active: false` by SCIM PATCH, as okta-scim (clause 21 lets it provision)."""
    api.ok("PUT", "/admin/v1/services/okta-scim", json={"owner": "admin"})
    api.ok("PUT", "/admin/v1/charter", content=(sample("charter.charter") + PROVISION).encode())
    credential = api.new_credential("okta-scim", "service")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    answer = api.http.patch(
        f"/scim/v2/Users/{user}",
        json=patch,
        headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/scim+json"},
    )
    assert answer.status_code == 200 and answer.json()["active"] is False, answer.text


@pytest.mark.parametrize("how", ["scim", "disabled", "deleted"])
def test_a_person_offboarded_loses_session_refresh_token_access_token_and_grant_at_once(live, how):
    oidc = running(live)
    api = oidc.api
    person, client, tokens = _holding_everything(oidc)

    if how == "scim":
        _scim_deactivates(api, "dave")
    elif how == "disabled":
        api.ok("PUT", "/admin/v1/users/dave", json={"state": "disabled", "groups": ["contractors"]})
    else:
        api.ok("DELETE", "/admin/v1/users/dave")

    # No sweeper and no waiting: the change and its consequences are one transaction and one revision.
    assert person.get("/account").status_code == 303  # the session is over: back to sign-in
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(f"{oidc.url}/oauth/token", refresh_token=tokens["refresh_token"])
    assert refused.value.error == "invalid_grant"
    answer = _token_decision(api, tokens["access_token"])
    assert answer["decision"] is False and "invalid token" in " ".join(answer["context"]["reasons"])
    userinfo = api.http.post("/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
    assert api.decide("dave", "write", "db:staging/app")["decision"] is False  # the grant
    grants = api.ok("GET", "/admin/v1/grants", params={"subject_type": "user", "subject": "dave"})["items"]
    assert grants and all(g["revoked"] for g in grants)

    if how == "disabled":  # enabled again: the account is back, what offboarding ended is not
        api.ok("PUT", "/admin/v1/users/dave", json={"state": "active", "groups": ["contractors"]})
        assert api.decide("dave", "write", "db:staging/app")["decision"] is False
        again = api.http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert again.status_code == 200  # the access token itself was not revoked; it counts again
        assert person.get("/account").status_code == 303

    action = "directory.user.delete" if how == "deleted" else "directory.user.put"
    records = api.ok("GET", "/admin/v1/audit/audit", params={"action": action, "target": "directory:users/dave"})
    record = next(r for r in records["items"] if "offboarded" in r["details"])
    assert record["details"]["offboarded"] == {"sessions": 1, "refresh_tokens": 1, "grants": 1, "requests": 0}
