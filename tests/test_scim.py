"""SCIM 2.0 (/scim/v2) driven by a real SCIM client (scim2-client) against a running server, on SQLite and PostgreSQL.

The caller is the service "okta-scim", whose right comes from the charter:
`Service "okta-scim" may provision "directory:*".` (appended to the sample charter here).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from scim2_client.client import BaseSyncSCIMClient
from scim2_models import (
    Context,
    EnterpriseUser,
    Error,
    Group,
    GroupMember,
    ListResponse,
    Manager,
    NotFoundException,
    PatchOp,
    PatchOperation,
    SearchRequest,
    User,
)

from charter.bootstrap import sample

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PROVISION = '\nClause 21. Service "okta-scim" may provision "directory:*".\n'
SCIM_JSON = "application/scim+json"


class HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client's synchronous client over an httpx.Client (its own engine wants httpx2, not installed here)."""

    def __init__(self, client: httpx.Client, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url, base = self.client.build_request("GET", endpoint).url, self.client.base_url
        same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
        return same_origin and url.raw_path.startswith(base.raw_path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)


@pytest.fixture
def scim(live) -> Iterator[tuple[HttpxSCIMClient, httpx.Client, Any]]:
    """A discovered SCIM client as okta-scim, a raw httpx client with the same credential, and the admin `Api`."""
    server, api = live
    api.ok("PUT", "/admin/v1/services/okta-scim", json={"owner": "admin"})
    api.ok("PUT", "/admin/v1/charter", content=(sample("charter.charter") + PROVISION).encode())
    credential = api.new_credential("okta-scim", "service")
    headers = {"Authorization": f"Bearer {credential}"}
    with httpx.Client(base_url=server.url + "/scim/v2", headers=headers) as http:
        client = HttpxSCIMClient(http)
        client.discover()
        yield client, http, api


def _user(name: str, department: str | None = None, **fields: Any) -> User:
    user = User[EnterpriseUser](user_name=name, **fields)
    if department is not None:
        user[EnterpriseUser] = EnterpriseUser(department=department)
    return user


def test_discovery(scim):
    client, http, _ = scim
    config = client.provider.config
    assert config.patch.supported and config.etag.supported and config.sort.supported and config.filter.supported
    assert config.filter.max_results == 1000 and not config.bulk.supported
    assert {str(t.name) for t in client.provider.resource_types} == {"User", "Group"}
    schemas = http.get("/Schemas").json()
    assert ENTERPRISE in {s["id"] for s in schemas["Resources"]}
    assert http.get(f"/Schemas/{ENTERPRISE}").json()["name"] == "EnterpriseUser"
    assert http.get("/ResourceTypes/User").json()["schemaExtensions"][0]["schema"] == ENTERPRISE
    assert http.get("/ServiceProviderConfig").headers["content-type"].startswith(SCIM_JSON)


def test_a_provisioned_department_is_what_charter_conditions_see(scim):
    client, http, api = scim
    assert api.decide("zoe", "read", "reports:finance/q1")["decision"] is False  # no such user yet
    user = _user("zoe", "finance", display_name="Zoe Z", emails=[{"value": "zoe@acme.example", "type": "work"}])
    user[EnterpriseUser].manager = Manager(value="frank", ref=f"{http.base_url}/Users/frank")
    created = client.create(user)
    assert created.id == "zoe" and created.active is True and created.meta.version.startswith('W/"')
    assert created[EnterpriseUser].department == "finance" and created[EnterpriseUser].manager.value == "frank"
    decision = api.decide("zoe", "read", "reports:finance/q1")
    assert decision["decision"] is True and decision["context"]["clause"] == 7
    stored = api.ok("GET", "/admin/v1/users/zoe")
    assert stored["attributes"]["department"] == "finance" and stored["attributes"]["manager"] == "frank"
    assert stored["attributes"]["email"] == "zoe@acme.example" and stored["display_name"] == "Zoe Z"
    # the change went through Admin: audited as the SCIM client, with the clause that allowed it
    records = api.ok("GET", "/admin/v1/audit/audit?target=directory:users/zoe")["items"]
    assert records[0]["action"] == "directory.user.put" and "okta-scim" in records[0]["actor"]
    # a second create of the same userName (in any case) is a uniqueness conflict
    conflict = http.post("/Users", json=_user("ZOE").model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST))
    assert conflict.status_code == 409 and conflict.json()["scimType"] == "uniqueness"


def test_filters_paging_sorting_and_attributes(scim):
    client, http, _ = scim
    for name, department in (("u1", "finance"), ("u2", "finance"), ("u3", "sales"), ("u4", "sales")):
        client.create(_user(name, department, title="Analyst" if name in ("u1", "u3") else "Clerk"))
    client.modify(User[EnterpriseUser], "u4", PatchOp[User[EnterpriseUser]](operations=[_replace("active", False)]))

    def names(filter: str, **parameters: Any) -> list[str]:
        found = client.query(User[EnterpriseUser], query_parameters=SearchRequest(filter=filter, **parameters))
        assert isinstance(found, ListResponse)
        return [each.user_name for each in found.resources or []]

    dept = f"{ENTERPRISE}:department"
    assert names('userName eq "U1"') == ["u1"]  # userName is case-insensitive
    assert names('userName ne "u1" and userName sw "u"', sort_by="userName") == ["u2", "u3", "u4"]
    assert names(f'{dept} eq "finance"', sort_by="userName") == ["frank", "u1", "u2"]  # frank: the sample's
    assert names('title co "naly" and userName ew "3"') == ["u3"]
    assert names('userName sw "u" and not (active eq true)') == ["u4"]
    assert names(f'userName sw "u" and ({dept} eq "sales" or title eq "analyst")', sort_by="userName") == [
        "u1",
        "u3",
        "u4",
    ]
    assert names('userName gt "u2" and userName le "u4"', sort_by="userName", sort_order="descending") == ["u4", "u3"]
    assert names('userName ge "u3" and userName lt "u4"') == ["u3"]
    assert names('userName sw "u" and title pr', sort_by="userName") == ["u1", "u2", "u3", "u4"]
    assert names('emails pr and userName sw "u"') == []
    # paging: startIndex is 1-based, totalResults counts all
    page = client.query(
        User[EnterpriseUser],
        query_parameters=SearchRequest(filter='userName sw "u"', sort_by="userName", start_index=2, count=2),
    )
    assert (page.total_results, page.start_index, page.items_per_page) == (4, 2, 2)
    assert [u.user_name for u in page.resources] == ["u2", "u3"]
    # attributes / excludedAttributes
    raw = http.get("/Users", params={"filter": 'userName eq "u1"', "attributes": "userName"}).json()
    assert set(raw["Resources"][0]) == {"schemas", "id", "userName"}
    raw = http.get("/Users/u1", params={"excludedAttributes": "groups,title"}).json()
    assert "title" not in raw and "groups" not in raw and raw["userName"] == "u1"
    # a search body (POST /.search) says the same
    searched = http.post("/Users/.search", json={"filter": f'{dept} eq "sales"', "sortBy": "userName", "count": 1})
    assert [r["userName"] for r in searched.json()["Resources"]] == ["u3"]


def _replace(path: str | None, value: Any) -> PatchOperation:
    return PatchOperation(op=PatchOperation.Op.replace_, path=path, value=value)


def test_replace_with_if_match_and_etags(scim):
    client, http, _ = scim
    created = client.create(_user("yann", "finance", title="Clerk"))
    stale = created.meta.version
    replacement = _user("yann", "sales", title="Lead")
    replacement.id, replacement.meta = created.id, created.meta
    replaced = client.replace(replacement)  # sends If-Match: the version it was read at
    assert replaced[EnterpriseUser].department == "sales" and replaced.title == "Lead"
    assert replaced.meta.version != stale
    # the stale version no longer matches: 412, in the SCIM error format
    refused = http.put(
        "/Users/yann",
        json=_user("yann", "legal").model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST),
        headers={"If-Match": stale},
    )
    assert refused.status_code == 412
    assert refused.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert http.get("/Users/yann").headers["etag"] == replaced.meta.version
    assert http.get("/Users/yann", headers={"If-None-Match": replaced.meta.version}).status_code == 304
    # a PUT may not rename: the name is what the charter speaks of
    renamed = http.put("/Users/yann", json={"schemas": [str(User.__schema__)], "userName": "yannick"})
    assert renamed.status_code == 400 and renamed.json()["scimType"] == "mutability"


def test_groups_patch_members_and_active_then_delete(scim):
    client, http, api = scim
    for name in ("gina", "hugo"):
        client.create(_user(name))
    group = client.create(Group(display_name="scim-team", members=[GroupMember(value="gina", type="User")]))
    assert [m.value for m in group.members] == ["gina"]
    patch = PatchOp[Group](
        operations=[
            PatchOperation(op=PatchOperation.Op.add, path="members", value=[{"value": "hugo", "type": "User"}]),
            PatchOperation(op=PatchOperation.Op.add, path="members", value=[{"value": "sre", "type": "Group"}]),
            PatchOperation(op=PatchOperation.Op.remove, path='members[value eq "gina"]'),
        ]
    )
    patched = client.modify(Group, "scim-team", patch)
    assert sorted((m.value, str(m.type)) for m in patched.members) == [("hugo", "User"), ("sre", "Group")]
    admin_view = api.ok("GET", "/admin/v1/groups/scim-team")
    assert admin_view["members"] == [{"kind": "user", "name": "hugo"}]
    assert "scim-team" in api.ok("GET", "/admin/v1/groups/sre")["parents"]
    assert [g.value for g in client.query(User[EnterpriseUser], "hugo").groups] == ["scim-team"]
    # replace active with a patch: the identity is disabled
    client.modify(User[EnterpriseUser], "hugo", PatchOp[User[EnterpriseUser]](operations=[_replace("active", False)]))
    assert api.ok("GET", "/admin/v1/users/hugo")["state"] == "disabled"
    # a value path on a multi-valued attribute
    client.modify(
        User[EnterpriseUser],
        "gina",
        PatchOp[User[EnterpriseUser]](
            operations=[
                PatchOperation(
                    op=PatchOperation.Op.add, path="emails", value=[{"value": "g@a.example", "type": "work"}]
                ),
                _replace('emails[type eq "work"].value', "gina@acme.example"),
            ]
        ),
    )
    assert api.ok("GET", "/admin/v1/users/gina")["attributes"]["email"] == "gina@acme.example"
    # an unknown member is refused
    bad = http.patch(
        "/Groups/scim-team",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": "nobody"}]}],
        },
    )
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidValue"
    # delete (with a stale If-Match first)
    assert http.delete("/Groups/scim-team", headers={"If-Match": group.meta.version}).status_code == 412
    client.delete(Group, "scim-team")
    client.delete(User[EnterpriseUser], "gina")
    missing = http.get("/Users/gina")
    assert missing.status_code == 404 and missing.json()["status"] == "404"
    assert api.get("/admin/v1/users/gina").status_code == 404


def test_concurrent_writers_neither_lose_a_change_nor_both_win_an_if_match(scim):
    """Eight writers at once: PATCH `add` without If-Match is re-applied to whatever is there (every member
    lands); PATCH with the same If-Match is a compare-and-set (exactly one wins, the others get 412)."""
    client, http, api = scim
    names = [f"racer{i}" for i in range(8)]
    for name in names:
        client.create(_user(name))
    group = client.create(Group(display_name="race-team", members=[]))

    def add(name: str) -> int:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": name, "type": "User"}]}],
        }
        return http.patch("/Groups/race-team", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(add, names)) == [200] * 8
    assert sorted(m["name"] for m in api.ok("GET", "/admin/v1/groups/race-team")["members"]) == names

    version = http.get("/Groups/race-team").headers["etag"]

    def remove_one(name: str) -> int:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": f'members[value eq "{name}"]'}],
        }
        return http.patch("/Groups/race-team", json=body, headers={"If-Match": version}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(remove_one, names))
    assert sorted(statuses) == [200] + [412] * 7
    left = sorted(m["name"] for m in api.ok("GET", "/admin/v1/groups/race-team")["members"])
    assert len(left) == 7 and names[statuses.index(200)] not in left
    assert group.meta.version != version


def test_errors_are_scim_errors(scim, live):
    client, http, api = scim
    bad = http.get("/Users", params={"filter": 'userName xx "a"'})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith(SCIM_JSON)
    body = bad.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and body["scimType"] == "invalidFilter"
    assert http.get("/Users", params={"filter": 'nosuch eq "a"'}).json()["scimType"] == "invalidFilter"
    assert http.get("/Users", params={"sortBy": "emails[type eq 1]"}).status_code == 400
    with pytest.raises(NotFoundException):
        client.query(User[EnterpriseUser], "nobody")
    # no credential: 401; a plain user (alice) has no provision right: 403, and the refusal is audited
    server, _ = live
    assert httpx.get(server.url + "/scim/v2/Users").status_code == 401
    alice = api.new_credential("alice")
    as_alice = {"Authorization": f"Bearer {alice}"}
    refused = httpx.get(server.url + "/scim/v2/Users", headers=as_alice)
    assert refused.status_code == 403 and refused.json()["schemas"] == [str(Error.__schema__)]
    created = httpx.post(
        server.url + "/scim/v2/Users",
        headers=as_alice,
        json=_user("mallory").model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST),
    )
    assert created.status_code == 403 and api.get("/admin/v1/users/mallory").status_code == 404
    denied = api.ok("GET", "/admin/v1/audit/audit?outcome=denied&target=directory:users/mallory")["items"]
    assert denied and "alice" in denied[0]["actor"]


def test_what_identity_providers_send(scim):
    """Okta-style payloads: a manager without $ref, a PATCH without a path, a password (accepted, not kept)."""
    _, http, api = scim
    body = {
        "schemas": [str(User.__schema__), ENTERPRISE],
        "userName": "olga@acme.example",
        "password": "not-kept-1234",
        "name": {"givenName": "Olga", "familyName": "O"},
        ENTERPRISE: {"department": "finance", "manager": {"value": "frank"}},
    }
    created = http.post("/Users", json=body, headers={"Content-Type": SCIM_JSON})
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith("/scim/v2/Users/olga@acme.example")
    assert created.json()[ENTERPRISE]["manager"]["value"] == "frank" and "password" not in created.json()
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False, "name.givenName": "Olivia"}}],
    }
    patched = http.patch("/Users/olga@acme.example", json=patch)
    assert patched.status_code == 200, patched.text
    assert patched.json()["active"] is False
    stored = api.ok("GET", "/admin/v1/users/olga@acme.example")
    assert stored["state"] == "disabled" and "not-kept" not in str(stored)
    assert api.decide("olga@acme.example", "read", "reports:finance/q1")["decision"] is False  # disabled
