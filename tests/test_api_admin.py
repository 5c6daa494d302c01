"""The admin API end to end, on SQLite and on PostgreSQL: every write authorised by the charter and all or nothing.

Each test gets its own freshly initialised store (the sample charter and directory) and a started
server (`api` in conftest.py), at a fixed time: 2026-06-01 10:00 UTC, a Monday.
"""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.usefixtures("backend")

ADMIN = "/admin/v1"
NEW_CHARTER = """Charter "Acme Production Access, second edition".
  Effective 2026-05-01.
  Owned by group "security".

Clause 1. Members of group "support" may read "db:prod/*".
Clause 2. Members of group "iam-admins" may read and manage "directory:*", "charter:*", "grants:*"
          and "clients:*".
"""


def error_of(response, status: int, code: str) -> dict:
    """The JSON error body, after checking the status and the shape every error shares."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


def fields_of(body: dict) -> list[str]:
    return [detail.get("field") for detail in body.get("details", [])]


# --- the directory ----------------------------------------------------------------------------


def test_identities_are_created_read_listed_replaced_and_deleted(api, subtests):
    for section, kind in [("users", "user"), ("services", "service"), ("partners", "partner")]:
        with subtests.test(section=section):
            _identity_lifecycle(api, section, kind)


def _identity_lifecycle(api, section: str, kind: str) -> None:
    path = f"{ADMIN}/{section}/zed"
    assert api.get(path).status_code == 404

    done = api.ok("PUT", path, json={"display_name": "Zed", "owner": "erin", "attributes": {"team": "blue"}})
    assert done["revision"] == api.stored_revision()
    assert api.ok("GET", path) == {
        "name": "zed",
        "kind": kind,
        "state": "active",
        "owner": "erin",
        "display_name": "Zed",
        "attributes": {"team": "blue"},
        "groups": [],
    }
    assert "zed" in [item["name"] for item in api.ok("GET", f"{ADMIN}/{section}")["items"]]

    api.ok("PUT", path, json={"state": "disabled"})  # a PUT replaces: what is not sent is cleared
    replaced = api.ok("GET", path)
    assert (replaced["state"], replaced["owner"], replaced["attributes"]) == ("disabled", None, {})

    api.ok("DELETE", path)
    assert error_of(api.get(path), 404, "not_found")["message"] == f'no {kind} "zed"'
    assert error_of(api.delete(path), 404, "not_found")


def test_an_identitys_groups_decide_its_access(api):
    api.ok("PUT", f"{ADMIN}/users/zed", json={"groups": ["sre"]})
    assert api.decide("zed", "read", "db:prod/orders")["decision"] is True

    api.ok("PUT", f"{ADMIN}/users/zed", json={"groups": []})
    assert api.decide("zed", "read", "db:prod/orders")["decision"] is False


def test_an_identity_naming_a_missing_group_is_a_400_for_that_field_and_writes_nothing(api):
    before = api.stored_revision()
    response = api.put(f"{ADMIN}/users/zed", json={"groups": ["sre", "no-such-group"]})
    body = error_of(response, 400, "invalid_request")
    assert fields_of(body) == ["groups[1]"]
    assert "no-such-group" in body["message"]
    assert api.stored_revision() == before
    assert api.get(f"{ADMIN}/users/zed").status_code == 404


def test_an_unknown_state_is_a_400_for_that_field(api):
    before = api.stored_revision()
    body = error_of(api.put(f"{ADMIN}/users/bob", json={"state": "asleep"}), 400, "invalid_request")
    assert fields_of(body) == ["state"]
    assert api.ok("GET", f"{ADMIN}/users/bob")["state"] == "active"
    assert api.stored_revision() == before


def test_nested_groups_pass_membership_upwards(api):
    api.ok("PUT", f"{ADMIN}/groups/dbas", json={"parents": ["sre"], "owner": "alice"})
    api.ok("PUT", f"{ADMIN}/users/zed", json={"groups": ["dbas"]})
    group = api.ok("GET", f"{ADMIN}/groups/dbas")
    assert group["parents"] == ["sre"]
    assert group["members"] == [{"kind": "user", "name": "zed"}]
    # Clause 1: members of "sre" may read "db:prod/*"; zed is in dbas, which is nested in sre.
    decision = api.decide("zed", "read", "db:prod/orders")
    assert (decision["decision"], decision["context"]["clause"]) == (True, 1)

    api.ok("PUT", f"{ADMIN}/groups/dbas", json={"parents": []})
    assert api.decide("zed", "read", "db:prod/orders")["decision"] is False


def test_a_nesting_cycle_is_a_409_and_writes_nothing(api):
    api.ok("PUT", f"{ADMIN}/groups/outer", json={})
    api.ok("PUT", f"{ADMIN}/groups/inner", json={"parents": ["outer"]})
    before = api.stored_revision()

    body = error_of(api.put(f"{ADMIN}/groups/outer", json={"parents": ["inner"]}), 409, "conflict")
    assert "cycle" in body["message"]
    assert error_of(api.put(f"{ADMIN}/groups/outer", json={"parents": ["outer"]}), 409, "conflict")

    assert api.ok("GET", f"{ADMIN}/groups/outer")["parents"] == []
    assert api.stored_revision() == before


def test_a_group_naming_a_missing_parent_is_a_400_and_is_not_created(api):
    before = api.stored_revision()
    body = error_of(api.put(f"{ADMIN}/groups/dbas", json={"parents": ["nowhere"]}), 400, "invalid_request")
    assert fields_of(body) == ["parents[0]"]
    assert api.get(f"{ADMIN}/groups/dbas").status_code == 404
    assert api.stored_revision() == before


def test_memberships_are_added_and_removed(api):
    members = f"{ADMIN}/groups/sre/members"
    assert api.ok("PUT", f"{members}/users/carol")["changed"] is True
    assert api.ok("PUT", f"{members}/users/carol")["changed"] is False
    assert {"kind": "user", "name": "carol"} in api.ok("GET", f"{ADMIN}/groups/sre")["members"]
    assert "sre" in api.ok("GET", f"{ADMIN}/users/carol")["groups"]
    assert api.decide("carol", "read", "db:prod/orders")["decision"] is True

    assert api.ok("DELETE", f"{members}/users/carol")["changed"] is True
    assert "sre" not in api.ok("GET", f"{ADMIN}/users/carol")["groups"]
    assert api.decide("carol", "read", "db:prod/orders")["decision"] is False


def test_memberships_of_missing_things_are_404s_and_write_nothing(api):
    before = api.stored_revision()
    assert error_of(api.put(f"{ADMIN}/groups/nope/members/users/carol"), 404, "not_found")
    assert error_of(api.put(f"{ADMIN}/groups/sre/members/users/nobody"), 404, "not_found")
    assert error_of(api.put(f"{ADMIN}/groups/sre/members/robots/carol"), 404, "not_found")
    assert api.stored_revision() == before


def test_deleting_a_group_ends_its_memberships(api):
    api.ok("DELETE", f"{ADMIN}/groups/sre")
    assert api.get(f"{ADMIN}/groups/sre").status_code == 404
    assert api.ok("GET", f"{ADMIN}/users/bob")["groups"] == []
    assert api.decide("bob", "read", "db:prod/orders")["decision"] is False


def test_resources_are_created_read_listed_and_deleted(api):
    path = f"{ADMIN}/resources/db:prod/orders"
    assert api.get(path).status_code == 404
    api.ok("PUT", path, json={"owner": "alice", "attributes": {"classification": "secret"}})
    assert api.ok("GET", path) == {
        "name": "db:prod/orders",
        "owner": "alice",
        "attributes": {"classification": "secret"},
    }
    assert [item["name"] for item in api.ok("GET", f"{ADMIN}/resources")["items"]] == ["db:prod/orders"]
    api.ok("DELETE", path)
    assert api.get(path).status_code == 404
    assert api.ok("GET", f"{ADMIN}/resources")["items"] == []


def test_lists_come_in_pages(api):
    users = sorted(item["name"] for item in api.ok("GET", f"{ADMIN}/users")["items"])
    assert users == ["admin", "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]

    page = api.ok("GET", f"{ADMIN}/users", params={"limit": 3, "offset": 2})
    assert [item["name"] for item in page["items"]] == users[2:5]
    assert (page["total"], page["limit"], page["offset"]) == (9, 3, 2)
    assert api.ok("GET", f"{ADMIN}/users", params={"offset": 9})["items"] == []

    for bad in ({"limit": 0}, {"limit": 100_000}, {"offset": -1}, {"limit": "many"}):
        body = error_of(api.get(f"{ADMIN}/users", params=bad), 400, "invalid_request")
        assert fields_of(body) == list(bad)


# --- the charter --------------------------------------------------------------------------------


def test_the_charter_in_force_is_served(api):
    charter = api.ok("GET", f"{ADMIN}/charter")
    assert charter["name"] == "Acme Production Access"
    assert charter["text"].startswith("# The sample charter")
    assert charter["in_force"]["name"] == "Acme Production Access"


def test_uploading_a_charter_puts_it_in_force_and_changes_decisions(api):
    assert api.decide("bob", "read", "db:prod/orders")["decision"] is True
    assert api.decide("carol", "read", "db:prod/orders")["decision"] is False

    done = api.ok("PUT", f"{ADMIN}/charter", content=NEW_CHARTER, headers={"Content-Type": "text/plain"})
    assert done["name"] == "Acme Production Access, second edition"

    charter = api.ok("GET", f"{ADMIN}/charter")
    assert charter["text"] == NEW_CHARTER
    assert charter["in_force"]["name"] == "Acme Production Access, second edition"
    assert charter["uploaded_by"].startswith("user:admin")
    assert api.decide("bob", "read", "db:prod/orders")["decision"] is False
    carol = api.decide("carol", "read", "db:prod/orders")
    assert carol["decision"] is True
    assert carol["context"]["charter"] == "Acme Production Access, second edition"


def test_a_charter_that_fails_the_check_is_a_422_with_positions_and_is_not_stored(api):
    before = api.ok("GET", f"{ADMIN}/charter")
    revision = api.stored_revision()
    bad = NEW_CHARTER.replace('may read "db:prod/*"', 'may read "db:prod/*" on Fridays and then')

    body = error_of(api.put(f"{ADMIN}/charter", content=bad), 422, "charter_rejected")
    detail = body["details"][0]
    assert detail["line"] == 5
    assert detail["column"] > 1
    assert detail["message"]

    assert api.ok("GET", f"{ADMIN}/charter") == before
    assert api.stored_revision() == revision
    assert api.decide("bob", "read", "db:prod/orders")["decision"] is True


def test_a_charter_that_is_not_utf8_is_a_400(api):
    revision = api.stored_revision()
    error_of(api.put(f"{ADMIN}/charter", content=b"Charter \xff\xfe"), 400, "invalid_request")
    assert api.stored_revision() == revision


# --- grants ------------------------------------------------------------------------------------


def _grant(api, hours_from: float = 0, hours_to: float = 8, **overrides) -> dict:
    now = api.clock.now()
    body = {
        "subject_type": "user",
        "subject": "dave",
        "actions": ["write"],
        "resource": "db:staging/*",
        "starts": (now + dt.timedelta(hours=hours_from)).isoformat(),
        "ends": (now + dt.timedelta(hours=hours_to)).isoformat(),
        "clause": 3,
    }
    return {**body, **overrides}


def test_a_grant_allows_within_its_window_until_revoked(api):
    denied = api.decide("dave", "write", "db:staging/orders")
    assert (denied["decision"], denied["context"].get("eligible_clause")) == (False, 3)

    grant = api.ok("POST", f"{ADMIN}/grants", 201, json=_grant(api, hours_from=0, hours_to=8))
    allowed = api.decide("dave", "write", "db:staging/orders")
    assert allowed["decision"] is True
    assert allowed["context"]["grant"] == grant["id"]
    assert allowed["context"]["basis"] == "grant"
    assert api.decide("dave", "delete", "db:staging/orders")["decision"] is False  # only the granted action
    after_window = (api.clock.now() + dt.timedelta(hours=9)).isoformat()
    assert api.decide("dave", "write", "db:staging/orders", time=after_window)["decision"] is False

    listed = api.ok("GET", f"{ADMIN}/grants", params={"subject_type": "user", "subject": "dave"})["items"]
    assert [(g["id"], g["revoked"]) for g in listed] == [(grant["id"], False)]

    api.ok("DELETE", f"{ADMIN}/grants/{grant['id']}")
    assert api.decide("dave", "write", "db:staging/orders")["decision"] is False
    listed = api.ok("GET", f"{ADMIN}/grants", params={"subject_type": "user", "subject": "dave"})["items"]
    assert [g["revoked"] for g in listed] == [True]
    assert error_of(api.delete(f"{ADMIN}/grants/{grant['id']}"), 409, "conflict")
    assert error_of(api.delete(f"{ADMIN}/grants/ffffffffffffffff"), 404, "not_found")


def test_a_grant_starting_later_does_not_allow_yet(api):
    api.ok("POST", f"{ADMIN}/grants", 201, json=_grant(api, hours_from=2, hours_to=3))
    assert api.decide("dave", "write", "db:staging/orders")["decision"] is False
    in_window = (api.clock.now() + dt.timedelta(hours=2, minutes=30)).isoformat()
    assert api.decide("dave", "write", "db:staging/orders", time=in_window)["decision"] is True


BAD_GRANTS = [
    ({"subject": "nobody"}, "subject"),
    ({"subject_type": "robot"}, "subject_type"),
    ({"clause": 99}, "clause"),
    ({"kind": "forever"}, "kind"),
    ({"ends": "2026-06-01T09:00:00+00:00"}, "ends"),
    ({"starts": "2026-06-01T10:00:00"}, "starts"),
    ({"ends": "tomorrow"}, "ends"),
]


def test_a_bad_grant_is_a_400_for_its_field_and_writes_nothing(api, subtests):
    before = api.stored_revision()
    for overrides, field in BAD_GRANTS:
        with subtests.test(**overrides):
            body = error_of(api.post(f"{ADMIN}/grants", json=_grant(api, **overrides)), 400, "invalid_request")
            assert fields_of(body) == [field]
            assert api.ok("GET", f"{ADMIN}/grants")["items"] == []
            assert api.stored_revision() == before


# --- API clients ----------------------------------------------------------------------------------


def test_a_client_credential_is_shown_once_works_at_once_and_stops_when_revoked(api):
    created = api.ok("POST", f"{ADMIN}/clients", 201, json={"name": "ci", "subject_type": "user", "subject": "admin"})
    credential = created["credential"]
    assert credential.startswith("chr_")

    listed = api.ok("GET", f"{ADMIN}/clients")["items"]
    mine = [c for c in listed if c["id"] == created["id"]]
    assert mine == [
        {
            "id": created["id"],
            "name": "ci",
            "subject_type": "user",
            "subject": "admin",
            "created_by": mine[0]["created_by"],
            "created_at": mine[0]["created_at"],
            "revoked": False,
        }
    ]
    assert credential not in api.get(f"{ADMIN}/clients").text
    secret = credential.removeprefix("chr_").partition("_")[2]  # chr_<id>_<secret>; the secret may hold "_"
    assert secret not in api.get(f"{ADMIN}/clients").text

    assert api.get(f"{ADMIN}/users/bob", credential=credential).status_code == 200
    api.ok("DELETE", f"{ADMIN}/clients/{created['id']}")
    response = api.get(f"{ADMIN}/users/bob", credential=credential)
    error_of(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(api.delete(f"{ADMIN}/clients/{created['id']}"), 409, "conflict")


def test_a_client_for_a_missing_identity_is_a_400_and_writes_nothing(api):
    before = api.stored_revision()
    count = api.ok("GET", f"{ADMIN}/clients")["total"]
    body = {"name": "ghost", "subject_type": "user", "subject": "nobody"}
    assert fields_of(error_of(api.post(f"{ADMIN}/clients", json=body), 400, "invalid_request")) == ["subject"]
    assert api.ok("GET", f"{ADMIN}/clients")["total"] == count
    assert api.stored_revision() == before


# --- authorisation by the charter -----------------------------------------------------------------


def test_a_user_the_charter_does_not_empower_gets_403_with_the_reason_and_writes_nothing(api, alice):
    before = api.stored_revision()
    response = api.get(f"{ADMIN}/users", credential=alice)
    body = error_of(response, 403, "forbidden")
    assert "read on directory:users/*" in body["message"]
    assert "no clause allows it" in body["message"]
    assert body["details"][0]["reasons"] == ["no clause allows it"]

    body = error_of(
        api.put(f"{ADMIN}/users/alice", credential=alice, json={"groups": ["iam-admins"]}), 403, "forbidden"
    )
    assert "manage on directory:users/alice" in body["message"]
    error_of(api.put(f"{ADMIN}/charter", credential=alice, content=NEW_CHARTER), 403, "forbidden")
    as_admin = {"name": "x", "subject_type": "user", "subject": "admin"}
    error_of(api.post(f"{ADMIN}/clients", credential=alice, json=as_admin), 403, "forbidden")

    assert "iam-admins" not in api.ok("GET", f"{ADMIN}/users/alice")["groups"]
    assert api.ok("GET", f"{ADMIN}/charter")["name"] == "Acme Production Access"
    assert api.stored_revision() == before


def test_an_auditor_may_read_but_not_change(api):
    api.ok("PUT", f"{ADMIN}/users/audrey", json={"groups": ["auditors"]})
    auditor = api.new_credential("audrey")
    before = api.stored_revision()

    assert api.get(f"{ADMIN}/users/bob", credential=auditor).status_code == 200
    assert api.get(f"{ADMIN}/groups", credential=auditor).status_code == 200
    assert api.get(f"{ADMIN}/charter", credential=auditor).status_code == 200
    assert api.get(f"{ADMIN}/grants", credential=auditor).status_code == 200
    error_of(api.get(f"{ADMIN}/clients", credential=auditor), 403, "forbidden")  # clause 20 leaves out clients

    error_of(api.put(f"{ADMIN}/users/bob", credential=auditor, json={"state": "left"}), 403, "forbidden")
    error_of(api.put(f"{ADMIN}/charter", credential=auditor, content=NEW_CHARTER), 403, "forbidden")
    error_of(api.post(f"{ADMIN}/grants", credential=auditor, json=_grant(api)), 403, "forbidden")
    assert api.ok("GET", f"{ADMIN}/users/bob")["state"] == "active"
    assert api.stored_revision() == before


# --- bad input ---------------------------------------------------------------------------------------

WRITES = [
    ("PUT", f"{ADMIN}/users/zed", f"{ADMIN}/users/zed"),
    ("PUT", f"{ADMIN}/groups/dbas", f"{ADMIN}/groups/dbas"),
    ("PUT", f"{ADMIN}/resources/db:prod/new", f"{ADMIN}/resources/db:prod/new"),
    ("POST", f"{ADMIN}/grants", None),
    ("POST", f"{ADMIN}/clients", None),
]


def _assert_nothing_written(api, before: int, check: str | None) -> None:
    assert api.stored_revision() == before
    if check is not None:
        assert api.get(check).status_code == 404
    assert api.ok("GET", f"{ADMIN}/grants")["total"] == 0
    assert api.ok("GET", f"{ADMIN}/clients")["total"] == 1  # the admin's own


def test_a_body_that_is_not_a_json_object_is_a_400(api, subtests):
    before = api.stored_revision()
    for body, code in [
        (b"{", "invalid_json"),
        (b'{"owner": "x",}', "invalid_json"),
        (b"\xff", "invalid_json"),
        (b"", "invalid_json"),
        (b"[]", "invalid_request"),
        (b'"text"', "invalid_request"),
    ]:
        for method, path, check in WRITES:
            with subtests.test(body=body, path=path):
                response = api.request(method, path, content=body, headers={"Content-Type": "application/json"})
                assert "JSON" in error_of(response, 400, code)["message"]
                _assert_nothing_written(api, before, check)


def test_unknown_fields_are_a_400_naming_them(api):
    before = api.stored_revision()
    for method, path, check in WRITES:
        response = api.request(method, path, json={**_valid_body(path), "colour": "blue"})
        body = error_of(response, 400, "invalid_request")
        assert fields_of(body) == ["colour"]
        assert "colour" in body["message"]
        _assert_nothing_written(api, before, check)


WRONG_TYPES = [
    (f"{ADMIN}/users/zed", "groups", "sre", "groups"),
    (f"{ADMIN}/users/zed", "display_name", 7, "display_name"),
    (f"{ADMIN}/users/zed", "attributes", ["a"], "attributes"),
    (f"{ADMIN}/users/zed", "attributes", {"team": 7}, "attributes.team"),
    (f"{ADMIN}/groups/dbas", "parents", ["sre", 1], "parents[1]"),
    (f"{ADMIN}/resources/db:prod/new", "owner", {"name": "alice"}, "owner"),
    (f"{ADMIN}/grants", "clause", "3", "clause"),
    (f"{ADMIN}/grants", "clause", True, "clause"),
    (f"{ADMIN}/grants", "actions", "write", "actions"),
    (f"{ADMIN}/clients", "name", None, "name"),
]


def test_wrong_types_are_a_400_naming_the_field(api, subtests):
    before = api.stored_revision()
    for path, field, value, named in WRONG_TYPES:
        with subtests.test(path=path, field=field, value=value):
            method = "POST" if path.endswith(("grants", "clients")) else "PUT"
            response = api.request(method, path, json={**_valid_body(path), field: value})
            body = error_of(response, 400, "invalid_request")
            assert fields_of(body)[0] == named
            assert body["message"].startswith(f"{named}: ")
            _assert_nothing_written(api, before, None if method == "POST" else path)


def test_a_missing_required_field_is_a_400_naming_it(api):
    body = _valid_body(f"{ADMIN}/grants")
    del body["resource"]
    assert fields_of(error_of(api.post(f"{ADMIN}/grants", json=body), 400, "invalid_request")) == ["resource"]


def test_an_oversized_body_is_a_413_and_writes_nothing(api):
    before = api.stored_revision()
    huge = {"attributes": {"blob": "x" * (1024 * 1024)}}
    error_of(api.put(f"{ADMIN}/users/zed", json=huge), 413, "body_too_large")

    def chunks():  # no Content-Length: the limit holds while reading
        yield b'{"attributes": {"blob": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}}'

    error_of(api.put(f"{ADMIN}/users/zed", content=chunks()), 413, "body_too_large")
    error_of(api.put(f"{ADMIN}/charter", content="#" * (1024 * 1024 + 1)), 413, "body_too_large")
    _assert_nothing_written(api, before, f"{ADMIN}/users/zed")
    assert api.ok("GET", f"{ADMIN}/charter")["name"] == "Acme Production Access"


def test_a_missing_or_invalid_credential_is_a_401_and_writes_nothing(api, subtests):
    before = api.stored_revision()
    tampered = api.admin_credential[:-2] + ("AA" if not api.admin_credential.endswith("AA") else "BB")
    for headers in [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {api.admin_credential}"},
        {"Authorization": "Bearer chr_x_y"},
        {"Authorization": f"Bearer {tampered}"},
    ]:
        with subtests.test(headers=headers):
            for method, path, check in WRITES:
                response = api.request(method, path, credential="", headers=headers, json=_valid_body(path))
                error_of(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"
                _assert_nothing_written(api, before, check)
            # Not even the body or the query is looked at before the caller is known.
            bad_body = api.put(f"{ADMIN}/groups/dbas", credential="", headers=headers, content=b"{")
            error_of(bad_body, 401, "unauthorized")
            bad_query = api.get(f"{ADMIN}/users", credential="", headers=headers, params={"limit": "many"})
            error_of(bad_query, 401, "unauthorized")
            error_of(api.get(f"{ADMIN}/revision", credential="", headers=headers), 401, "unauthorized")


def test_unknown_paths_and_methods_answer_in_the_error_shape(api):
    error_of(api.get(f"{ADMIN}/nothing-here"), 404, "not_found")
    error_of(api.request("PATCH", f"{ADMIN}/groups/sre", json={}), 405, "method_not_allowed")


def _valid_body(path: str) -> dict:
    if path.endswith("/grants"):
        return {
            "subject_type": "user",
            "subject": "dave",
            "actions": ["write"],
            "resource": "db:staging/*",
            "ends": "2026-06-01T18:00:00+00:00",
            "clause": 3,
        }
    if path.endswith("/clients"):
        return {"name": "ci", "subject_type": "user", "subject": "dave"}
    return {"owner": "alice"}


# --- the OpenAPI document ---------------------------------------------------------------------------


def test_the_openapi_document_describes_every_admin_and_authzen_operation(api):
    response = api.get("/openapi.json", credential="")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for path in (
        "/access/v1/evaluation",
        "/access/v1/evaluations",
        f"{ADMIN}/revision",
        f"{ADMIN}/users/{{name}}",
        f"{ADMIN}/groups/{{group}}/members/{{section}}/{{name}}",
        f"{ADMIN}/charter",
        f"{ADMIN}/grants",
        f"{ADMIN}/clients",
    ):
        assert path in paths, path
    admin_operations = [
        (path, method, operation)
        for path, item in paths.items()
        if path.startswith(ADMIN)
        for method, operation in item.items()
    ]
    assert len(admin_operations) >= 25
    for path, method, operation in admin_operations:
        assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        assert operation.get("security"), f"{method.upper()} {path} does not say it needs a bearer credential"
        errors = operation["responses"].get("4XX", {})
        assert errors["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
        assert "422" not in operation["responses"], f"{method.upper()} {path} documents FastAPI's 422, not ours"
    assert "bearer" in {s.get("scheme") for s in document["components"]["securitySchemes"].values()}
    grant_body = paths[f"{ADMIN}/grants"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"subject", "resource", "ends", "clause"} <= set(grant_body["required"])
    assert grant_body["additionalProperties"] is False
    assert "text/plain" in paths[f"{ADMIN}/charter"]["put"]["requestBody"]["content"]


def test_an_unexpected_failure_answers_in_the_json_error_shape(tmp_path):
    from starlette.testclient import TestClient

    from charter.bootstrap import initialize
    from charter.engine import Engine
    from charter.store.db import make_engine
    from charter.web.app import create_app

    db = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    credential = initialize(db).admin_credential
    app = create_app(Engine(db))

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail: password=hunter2")

    app.state.admin.list_groups = broken
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/admin/v1/groups", headers={"Authorization": f"Bearer {credential}"})
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "message": "the server failed to answer this request; nothing was changed",
    }
    assert "hunter2" not in response.text
