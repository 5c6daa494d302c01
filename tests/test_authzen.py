"""The AuthZEN 1.0 API over HTTP: evaluation, evaluations, the three searches and the PDP metadata.

The app runs in-process (starlette's TestClient, lifespan and all) over a real SQLite store initialised
with the sample charter and directory (`charter.bootstrap.initialize`); nothing is mocked. Every request
that depends on the time passes `context.time`, and the engine's clock is fixed, so the answers do not
depend on the day the tests run. Facts used, from the sample charter:

- clause 1: group "sre" (alice, bob) may read and write "db:prod/*";
- clause 2: group "support" (carol) may read "tickets/*" with MFA, on weekdays 08:00-18:00 UTC;
- clause 3: group "contractors" (dave) may request write on "db:staging/*";
- clause 4: no one may delete "db:prod/*" except by break glass;
- clause 6: service "billing-api" may read "db:prod/invoices" from network 10.0.0.0/8;
- clause 10: members of group "admins" (erin) must use MFA;
- clause 19: group "iam-admins" (admin) may read and manage "directory:*", ...
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator

import pytest

from charter.bootstrap import initialize, sample
from charter.clock import FixedClock
from charter.engine import Engine
from charter.store.db import make_engine
from charter.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient prefers httpx2 and says so on import
    from starlette.testclient import TestClient

CHARTER = "Acme Production Access"
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)  # the engine's clock: a Tuesday
TUESDAY = "2026-11-24T10:00:00Z"
SATURDAY = "2026-11-28T10:00:00Z"
KNOWN_RESOURCES = ("db:prod/orders", "db:prod/invoices", "db:staging/app", "tickets/42", "reports:finance/q3")

EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"
SEARCH_SUBJECT = "/access/v1/search/subject"
SEARCH_RESOURCE = "/access/v1/search/resource"
SEARCH_ACTION = "/access/v1/search/action"


class Pdp:
    """The running app and the admin credential `charter init` minted."""

    def __init__(self, http: TestClient, credential: str):
        self.http = http
        self.credential = credential
        self.revision = 0  # the last revision written through the admin API; every request waits for it

    def post(self, path: str, body: object, **headers: str):
        sent = {"Authorization": f"Bearer {self.credential}", "Charter-Min-Revision": str(self.revision), **headers}
        return self.http.post(path, json=body, headers=sent)

    def ok(self, path: str, body: object) -> dict:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        return response.json()

    def admin_put(self, path: str, headers: dict | None = None, **kwargs) -> None:
        sent = {"Authorization": f"Bearer {self.credential}", **(headers or {})}
        response = self.http.put(path, headers=sent, **kwargs)
        assert response.status_code == 200, response.text
        self.revision = response.json()["revision"]

    def decide(self, subject: str, action: str, resource: str, subject_type: str = "user", **context) -> dict:
        body = {
            "subject": {"type": subject_type, "id": subject},
            "action": {"name": action},
            "resource": {"type": "resource", "id": resource},
            "context": {"time": TUESDAY, **context},
        }
        return self.ok(EVALUATION, body)


def _start(directory) -> Iterator[Pdp]:
    db = make_engine(f"sqlite:///{directory / 'charter.db'}")
    clock = FixedClock(NOW)
    initialized = initialize(db, clock)
    assert initialized.admin_credential is not None
    try:
        with TestClient(create_app(Engine(db, clock=clock, poll_interval=0.05))) as http:
            yield Pdp(http, initialized.admin_credential)
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def pdp(tmp_path_factory) -> Iterator[Pdp]:
    """The sample charter and directory, with the resources the directory's `resources` section lists added."""
    for started in _start(tmp_path_factory.mktemp("authzen")):
        for name in KNOWN_RESOURCES:
            started.admin_put(f"/admin/v1/resources/{name}", json={"attributes": {}})
        yield started


def _subject(id_: str, type_: str = "user") -> dict:
    return {"type": type_, "id": id_}


def _resource(name: str) -> dict:
    return {"type": "resource", "id": name}


# --- evaluation ----------------------------------------------------------------------------------


def test_an_allow_carries_the_deciding_clause_the_charter_version_and_the_revision(pdp: Pdp):
    response = pdp.post(
        EVALUATION,
        {
            "subject": _subject("alice"),
            "action": {"name": "read"},
            "resource": {"type": "db", "id": "prod/orders"},
            "context": {"time": TUESDAY},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["decision"] is True
    context = body["context"]
    assert (context["charter"], context["version"], context["clause"], context["basis"]) == (
        CHARTER,
        0,
        1,
        "permission",
    )
    assert context["reasons"] == []
    assert context["revision"] == int(response.headers["charter-revision"]) == pdp.revision
    assert "obligations" not in context  # standing access: nothing lapses


@pytest.mark.parametrize(
    "resource",
    [{"type": "db", "id": "prod/orders"}, {"type": "db", "id": "db:prod/orders"}, _resource("db:prod/orders")],
)
def test_the_three_spellings_of_a_resource_name_the_same_resource(pdp: Pdp, resource: dict):
    body = {"subject": _subject("alice"), "action": {"name": "delete"}, "resource": resource}
    assert pdp.ok(EVALUATION, body)["context"]["clause"] == 4


def test_a_prohibition_denies_citing_its_clause_and_the_reason(pdp: Pdp):
    body = pdp.decide("alice", "delete", "db:prod/orders")
    assert body["decision"] is False
    assert (body["context"]["clause"], body["context"]["basis"]) == (4, "prohibition")
    reason = 'forbidden by clause 4: No one may delete "db:prod/*" except by break glass.'
    assert body["context"]["reasons"] == [reason]
    assert body["context"]["reason_admin"] == {"en": reason}


def test_a_default_deny_names_no_clause_but_the_clause_to_request_it_under(pdp: Pdp):
    body = pdp.decide("dave", "write", "db:staging/app")
    assert body["decision"] is False
    assert (body["context"]["clause"], body["context"]["basis"], body["context"]["eligible_clause"]) == (
        None,
        "default",
        3,
    )
    assert body["context"]["reasons"] == [
        'no clause allows write on "db:staging/app" for user "dave"',
        "clause 3 lets the subject request it",
    ]


def test_an_unknown_subject_is_denied_not_an_error(pdp: Pdp):
    body = pdp.decide("mallory", "read", "db:prod/orders")
    assert (body["decision"], body["context"]["basis"], body["context"]["reasons"]) == (
        False,
        "subject",
        ["unknown subject"],
    )


def test_mfa_from_context_mfa(pdp: Pdp):
    without = pdp.decide("carol", "read", "tickets/42")
    assert (without["decision"], without["context"]["clause"], without["context"]["basis"]) == (False, 2, "condition")
    assert without["context"]["reasons"] == ["clause 2 would allow it, but needs MFA"]
    with_mfa = pdp.decide("carol", "read", "tickets/42", mfa=True)
    assert (with_mfa["decision"], with_mfa["context"]["clause"]) == (True, 2)


@pytest.mark.parametrize(("amr", "allowed"), [(["pwd", "otp"], True), (["hwk"], True), (["pwd"], False), ([], False)])
def test_mfa_from_the_amr_of_the_authentication(pdp: Pdp, amr: list[str], allowed: bool):
    assert pdp.decide("carol", "read", "tickets/42", amr=amr)["decision"] is allowed


def test_a_must_use_mfa_requirement_denies_everything_without_it(pdp: Pdp):
    without = pdp.decide("erin", "read", "tickets/42")
    assert (without["decision"], without["context"]["clause"], without["context"]["basis"]) == (
        False,
        10,
        "requirement",
    )
    assert without["context"]["reasons"] == ['needs MFA: clause 10 requires it of members of group "admins"']
    with_mfa = pdp.decide("erin", "read", "tickets/42", amr=["mfa"])
    assert (with_mfa["decision"], with_mfa["context"]["basis"]) == (False, "default")


def test_the_source_address_decides_a_network_condition(pdp: Pdp):
    inside = pdp.decide("billing-api", "read", "db:prod/invoices", "service", ip="10.1.2.3")
    assert (inside["decision"], inside["context"]["clause"]) == (True, 6)
    outside = pdp.decide("billing-api", "read", "db:prod/invoices", "service", ip="192.168.1.4")
    assert (outside["decision"], outside["context"]["clause"]) == (False, 6)
    assert outside["context"]["reasons"] == ["clause 6 would allow it, but network 192.168.1.4 not in 10.0.0.0/8"]
    assert pdp.decide("billing-api", "read", "db:prod/invoices", "service")["decision"] is False


@pytest.mark.parametrize(
    ("time", "allowed"),
    [
        ("2026-11-24T08:00:00Z", True),  # Tuesday, the window opens
        ("2026-11-24T07:59:00Z", False),
        ("2026-11-24T17:59:00Z", True),
        ("2026-11-24T18:00:00Z", False),  # the window is closed at its end
        ("2026-11-24T08:30:00+01:00", False),  # 07:30 UTC: the offset is honoured, not dropped
        ("2026-11-24T06:30-02:00", True),  # 08:30 UTC, written as the spec's examples are (no seconds)
        (SATURDAY, False),
    ],
)
def test_the_time_of_the_request_decides_a_time_window(pdp: Pdp, time: str, allowed: bool):
    assert pdp.decide("carol", "read", "tickets/42", mfa=True, time=time)["decision"] is allowed


def test_a_denial_outside_the_window_says_when_it_was(pdp: Pdp):
    body = pdp.decide("carol", "read", "tickets/42", mfa=True, time=SATURDAY)
    assert body["context"]["clause"] == 2
    assert body["context"]["reasons"] == [
        "clause 2 would allow it, but outside weekdays 08:00-18:00 UTC (it is Saturday 10:00 UTC)"
    ]


def test_standing_access_has_no_end(pdp: Pdp):
    for moment in ("2026-12-31T23:59:00Z", "2031-01-01T00:00:00Z"):
        decision = pdp.decide("alice", "read", "db:prod/orders", time=moment)
        assert (decision["decision"], decision["context"]["clause"]) == (True, 1)
        assert "obligations" not in decision["context"]


def test_unknown_fields_are_ignored(pdp: Pdp):
    body = {
        "subject": {"type": "user", "id": "alice", "properties": {"department": "sales"}, "extra": 1},
        "action": {"name": "read", "properties": {"method": "GET"}},
        "resource": {"type": "db", "id": "prod/orders", "note": "x"},
        "context": {"time": TUESDAY, "schema": "https://schema.example.com/x.json"},
        "options": {"anything": True},
    }
    assert pdp.ok(EVALUATION, body)["decision"] is True


def test_a_request_identifier_is_echoed(pdp: Pdp):
    body = {"subject": _subject("alice"), "action": {"name": "read"}, "resource": _resource("db:prod/orders")}
    response = pdp.post(EVALUATION, body, **{"X-Request-ID": "bfe9eb29-ab87"})
    assert response.headers["x-request-id"] == "bfe9eb29-ab87"


# --- resource properties (a charter with a clause on a resource attribute) -------------------------


@pytest.fixture
def classified(tmp_path) -> Iterator[Pdp]:
    """The sample charter plus clause 21 (on a resource attribute), and two documents in the directory."""
    for started in _start(tmp_path):
        clause = '\nClause 21. Users may read "doc:*" when the resource\'s "classification" is "public".\n'
        started.admin_put(
            "/admin/v1/charter",
            content=(sample("charter.charter") + clause).encode(),
            headers={"Content-Type": "text/plain"},
        )
        started.admin_put("/admin/v1/resources/doc:plan", json={"attributes": {"classification": "secret"}})
        started.admin_put("/admin/v1/resources/doc:brochure", json={"attributes": {"classification": "public"}})
        yield started


def _read_doc(pdp: Pdp, id_: str, **properties: str) -> dict:
    resource: dict = {"type": "doc", "id": id_}
    if properties:
        resource["properties"] = properties
    return pdp.ok(EVALUATION, {"subject": _subject("dave"), "action": {"name": "read"}, "resource": resource})


def test_resource_properties_are_the_resources_attributes_over_the_directorys(classified: Pdp):
    assert (_read_doc(classified, "brochure")["decision"], _read_doc(classified, "brochure")["context"]["clause"]) == (
        True,
        21,
    )
    assert _read_doc(classified, "plan")["decision"] is False  # the directory says secret
    assert _read_doc(classified, "plan", classification="public")["decision"] is True  # the request says otherwise
    assert _read_doc(classified, "brochure", classification="secret")["decision"] is False
    assert _read_doc(classified, "unlisted")["decision"] is False  # no attributes at all
    assert _read_doc(classified, "unlisted", classification="public")["decision"] is True


def test_resource_search_honours_the_directorys_attributes_and_the_requests_properties(classified: Pdp):
    body = {"subject": _subject("dave"), "action": {"name": "read"}, "resource": {"type": "doc"}}
    assert classified.ok(SEARCH_RESOURCE, body)["results"] == [{"type": "doc", "id": "brochure"}]
    body["resource"]["properties"] = {"classification": "public"}
    assert classified.ok(SEARCH_RESOURCE, body)["results"] == [
        {"type": "doc", "id": "brochure"},
        {"type": "doc", "id": "plan"},
    ]


# --- evaluations -----------------------------------------------------------------------------------


def _decisions(body: dict) -> list[tuple[bool, int | None]]:
    assert "decision" not in body  # the spec recommends leaving it out when `evaluations` is present
    return [(item["decision"], item["context"]["clause"]) for item in body["evaluations"]]


def test_evaluations_take_defaults_from_the_top_level_and_items_override_them(pdp: Pdp):
    body = {
        "subject": _subject("alice"),
        "action": {"name": "read"},
        "context": {"time": TUESDAY},
        "evaluations": [
            {"resource": {"type": "db", "id": "prod/orders"}},
            {"resource": {"type": "db", "id": "prod/invoices"}},
            {"action": {"name": "delete"}, "resource": {"type": "db", "id": "prod/orders"}},
            {"subject": _subject("dave"), "action": {"name": "write"}, "resource": _resource("db:staging/app")},
            {
                "subject": _subject("carol"),
                "resource": _resource("tickets/42"),
                "context": {"time": "2026-06-06T10:00:00Z", "mfa": True},  # a Saturday: outside clause 2's window
            },
        ],
    }
    assert _decisions(pdp.ok(EVALUATIONS, body)) == [(True, 1), (True, 1), (False, 4), (False, None), (False, 2)]


def test_an_items_context_replaces_the_default_context_whole(pdp: Pdp):
    body = {
        "subject": _subject("carol"),
        "action": {"name": "read"},
        "resource": _resource("tickets/42"),
        "context": {"time": TUESDAY, "mfa": True},
        "evaluations": [{}, {"context": {"time": TUESDAY}}],
    }
    result = pdp.ok(EVALUATIONS, body)["evaluations"]
    assert [item["decision"] for item in result] == [True, False]
    assert result[1]["context"]["reasons"] == ["clause 2 would allow it, but needs MFA"]


def _three(semantic: str | None, resources: list[str]) -> dict:
    body: dict = {
        "subject": _subject("alice"),
        "action": {"name": "read"},
        "context": {"time": TUESDAY},
        "evaluations": [{"resource": _resource(name)} for name in resources],
    }
    if semantic is not None:
        body["options"] = {"evaluations_semantic": semantic}
    return body


ALLOW, DENY = "db:prod/orders", "tickets/42"


@pytest.mark.parametrize(
    ("semantic", "resources", "expected"),
    [
        (None, [ALLOW, DENY, ALLOW], [True, False, True]),
        ("execute_all", [ALLOW, DENY, ALLOW], [True, False, True]),
        ("deny_on_first_deny", [ALLOW, DENY, ALLOW], [True, False]),
        ("deny_on_first_deny", [DENY, ALLOW, ALLOW], [False]),
        ("deny_on_first_deny", [ALLOW, ALLOW, ALLOW], [True, True, True]),
        ("permit_on_first_permit", [DENY, ALLOW, DENY], [False, True]),
        ("permit_on_first_permit", [ALLOW, DENY, DENY], [True]),
        ("permit_on_first_permit", [DENY, DENY, DENY], [False, False, False]),
    ],
)
def test_evaluation_semantics_short_circuit(pdp: Pdp, semantic, resources, expected):
    result = pdp.ok(EVALUATIONS, _three(semantic, resources))["evaluations"]
    assert [item["decision"] for item in result] == expected


@pytest.mark.parametrize("evaluations", ["absent", []])
def test_without_evaluations_the_request_is_one_evaluation_answered_with_one_decision(pdp: Pdp, evaluations):
    body: dict = {
        "subject": _subject("alice"),
        "action": {"name": "delete"},
        "resource": _resource("db:prod/orders"),
        "options": {"evaluations_semantic": "permit_on_first_permit"},
    }
    if evaluations != "absent":
        body["evaluations"] = evaluations
    result = pdp.ok(EVALUATIONS, body)
    assert "evaluations" not in result
    assert (result["decision"], result["context"]["clause"], result["context"]["charter"]) == (False, 4, CHARTER)


# --- the searches ----------------------------------------------------------------------------------


def _fed_back(pdp: Pdp, body: dict) -> bool:
    """What an evaluation says of one search result (the spec: results should evaluate to true)."""
    return pdp.ok(EVALUATION, body)["decision"]


def test_subject_search_finds_the_identities_of_the_type_that_are_allowed(pdp: Pdp):
    body = {
        "subject": {"type": "user", "id": "ignored"},
        "action": {"name": "read"},
        "resource": {"type": "db", "id": "prod/orders"},
        "context": {"time": TUESDAY},
    }
    result = pdp.ok(SEARCH_SUBJECT, body)
    assert result["results"] == [_subject("alice"), _subject("bob")]
    assert result["page"] == {"next_token": "", "count": 2, "total": 2}
    assert result["context"] == {"charter": CHARTER, "version": 0, "revision": pdp.revision}
    assert list(result) == ["page", "context", "results"]  # the spec recommends `page` first
    for subject in result["results"]:
        assert _fed_back(pdp, {**body, "subject": subject})
    body["action"] = {"name": "delete"}
    assert pdp.ok(SEARCH_SUBJECT, body)["results"] == []


def test_subject_search_asks_with_the_requests_context(pdp: Pdp):
    tickets = {"subject": {"type": "user"}, "action": {"name": "read"}, "resource": _resource("tickets/42")}
    assert pdp.ok(SEARCH_SUBJECT, {**tickets, "context": {"time": TUESDAY}})["results"] == []
    assert pdp.ok(SEARCH_SUBJECT, {**tickets, "context": {"time": TUESDAY, "mfa": True}})["results"] == [
        _subject("carol")
    ]
    invoices = {"subject": {"type": "service"}, "action": {"name": "read"}, "resource": _resource("db:prod/invoices")}
    assert pdp.ok(SEARCH_SUBJECT, {**invoices, "context": {"ip": "10.0.0.7"}})["results"] == [
        _subject("billing-api", "service")
    ]
    assert pdp.ok(SEARCH_SUBJECT, {**invoices, "context": {"ip": "192.168.1.4"}})["results"] == []
    assert pdp.ok(SEARCH_SUBJECT, {**invoices, "subject": {"type": "group"}})["results"] == []


def test_subject_search_pages(pdp: Pdp):
    body = {
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": {"type": "db", "id": "prod/orders"},
        "context": {"time": TUESDAY},
        "page": {"limit": 1},
    }
    first = pdp.ok(SEARCH_SUBJECT, body)
    assert first["results"] == [_subject("alice")]
    assert first["page"]["count"] == 1 and first["page"]["total"] == 2 and first["page"]["next_token"]
    # The spec's own example leaves the limit out of the follow-up request: the token remembers it.
    second = pdp.ok(SEARCH_SUBJECT, {**body, "page": {"token": first["page"]["next_token"]}})
    assert second["results"] == [_subject("bob")]
    assert second["page"] == {"next_token": "", "count": 1, "total": 2}
    same = pdp.ok(SEARCH_SUBJECT, {**body, "page": {"token": first["page"]["next_token"], "limit": 1}})
    assert same["results"] == [_subject("bob")]
    drafts = pdp.ok(SEARCH_SUBJECT, {**body, "page": {"next_token": first["page"]["next_token"]}})
    assert drafts["results"] == [_subject("bob")]  # as drafts of the specification sent it


def test_a_page_token_is_refused_for_another_question_or_page_size(pdp: Pdp):
    body = {
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": _resource("db:prod/orders"),
        "context": {"time": TUESDAY},
        "page": {"limit": 1},
    }
    token = pdp.ok(SEARCH_SUBJECT, body)["page"]["next_token"]
    other = {**body, "action": {"name": "write"}, "page": {"token": token}}
    assert _field(pdp.post(SEARCH_SUBJECT, other)) == "page.token"
    assert _field(pdp.post(SEARCH_SUBJECT, {**body, "page": {"token": token, "limit": 5}})) == "page.limit"
    assert _field(pdp.post(SEARCH_SUBJECT, {**body, "page": {"token": "not-a-token"}})) == "page.token"
    assert _field(pdp.post(SEARCH_RESOURCE, {**body, "subject": _subject("alice"), "page": {"token": token}})) == (
        "page.token"
    )


def test_a_zero_limit_counts_without_listing(pdp: Pdp):
    body = {
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": _resource("db:prod/orders"),
        "context": {"time": TUESDAY},
        "page": {"limit": 0},
    }
    assert pdp.ok(SEARCH_SUBJECT, body) | {"context": None} == {
        "page": {"next_token": "", "count": 0, "total": 2},
        "context": None,
        "results": [],
    }


def test_resource_search_finds_the_known_resources_of_the_type_that_are_allowed(pdp: Pdp):
    body = {
        "subject": _subject("alice"),
        "action": {"name": "read"},
        "resource": {"type": "db", "id": "ignored"},
        "context": {"time": TUESDAY},
    }
    result = pdp.ok(SEARCH_RESOURCE, body)
    # db:prod/users would be allowed too, but the directory does not list it: only known resources are found.
    assert result["results"] == [{"type": "db", "id": "prod/invoices"}, {"type": "db", "id": "prod/orders"}]
    assert result["page"] == {"next_token": "", "count": 2, "total": 2}
    for resource in result["results"]:
        assert _fed_back(pdp, {**body, "resource": resource})
    everything = pdp.ok(SEARCH_RESOURCE, {**body, "resource": {"type": "resource"}})["results"]
    assert everything == [_resource("db:prod/invoices"), _resource("db:prod/orders")]
    carol = {**body, "subject": _subject("carol"), "resource": {"type": "resource"}}
    assert pdp.ok(SEARCH_RESOURCE, {**carol, "context": {"time": TUESDAY, "mfa": True}})["results"] == [
        _resource("tickets/42")
    ]
    assert pdp.ok(SEARCH_RESOURCE, {**carol, "context": {"time": SATURDAY, "mfa": True}})["results"] == []
    dave = {**body, "subject": _subject("dave"), "action": {"name": "write"}}
    assert pdp.ok(SEARCH_RESOURCE, dave)["results"] == []  # eligible to request it is not allowed


def test_resource_search_pages(pdp: Pdp):
    body = {
        "subject": _subject("alice"),
        "action": {"name": "write"},
        "resource": {"type": "resource"},
        "context": {"time": TUESDAY},
        "page": {"limit": 1},
    }
    seen, token, pages = [], None, []
    while len(pages) < 5:  # bounded: a token that never runs out fails below rather than hanging
        page = pdp.ok(SEARCH_RESOURCE, {**body, "page": {"limit": 1, **({"token": token} if token else {})}})
        pages.append(page["page"])
        seen += page["results"]
        token = page["page"]["next_token"]
        if not token:
            break
    assert [(p["count"], p["total"], bool(p["next_token"])) for p in pages] == [(1, 2, True), (1, 2, False)]
    assert seen == [_resource("db:prod/invoices"), _resource("db:prod/orders")]


def test_action_search_finds_the_actions_the_charter_names_that_are_allowed(pdp: Pdp):
    body = {"subject": _subject("alice"), "resource": {"type": "db", "id": "prod/orders"}, "context": {"time": TUESDAY}}
    result = pdp.ok(SEARCH_ACTION, body)
    assert result["results"] == [{"name": "read"}, {"name": "write"}]  # delete is forbidden by clause 4
    assert result["page"] == {"next_token": "", "count": 2, "total": 2}
    for action in result["results"]:
        assert _fed_back(pdp, {**body, "action": action})
    admin = {"subject": _subject("admin"), "resource": _resource("directory:users/alice")}
    assert pdp.ok(SEARCH_ACTION, admin)["results"] == [{"name": "manage"}, {"name": "read"}]
    carol = {"subject": _subject("carol"), "resource": _resource("tickets/42")}
    assert pdp.ok(SEARCH_ACTION, {**carol, "context": {"time": TUESDAY, "amr": ["otp"]}})["results"] == [
        {"name": "read"}
    ]
    assert pdp.ok(SEARCH_ACTION, {**carol, "context": {"time": TUESDAY}})["results"] == []
    assert pdp.ok(SEARCH_ACTION, {**body, "subject": _subject("mallory")})["results"] == []


def test_action_search_pages(pdp: Pdp):
    body = {
        "subject": _subject("alice"),
        "resource": _resource("db:prod/orders"),
        "context": {"time": TUESDAY},
        "action": {"name": "ignored"},
        "page": {"limit": 1},
    }
    first = pdp.ok(SEARCH_ACTION, body)
    assert (first["results"], first["page"]["count"], first["page"]["total"]) == ([{"name": "read"}], 1, 2)
    second = pdp.ok(SEARCH_ACTION, {**body, "page": {"token": first["page"]["next_token"]}})
    assert (second["results"], second["page"]["next_token"]) == ([{"name": "write"}], "")


# --- metadata --------------------------------------------------------------------------------------


def test_the_pdp_metadata_names_every_endpoint_and_needs_no_credential(pdp: Pdp):
    response = pdp.http.get("/.well-known/authzen-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    metadata = response.json()
    base = metadata["policy_decision_point"]
    assert base == "http://testserver"
    assert metadata == {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
        "search_subject_endpoint": f"{base}/access/v1/search/subject",
        "search_resource_endpoint": f"{base}/access/v1/search/resource",
        "search_action_endpoint": f"{base}/access/v1/search/action",
    }
    for key, url in metadata.items():
        if key.endswith("_endpoint"):  # each advertised endpoint answers a POST (here: 400 for an empty body)
            assert pdp.post(url.removeprefix(base), {}).status_code == 400, key


# --- errors ----------------------------------------------------------------------------------------


def _field(response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["details"][0]["field"] in body["message"] or body["details"][0]["message"] == body["message"]
    return body["details"][0]["field"]


GOOD = {"subject": _subject("alice"), "action": {"name": "read"}, "resource": _resource("db:prod/orders")}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (EVALUATION, {"action": GOOD["action"], "resource": GOOD["resource"]}, "subject"),
        (EVALUATION, {**GOOD, "subject": "alice"}, "subject"),
        (EVALUATION, {**GOOD, "subject": {"type": "user"}}, "subject.id"),
        (EVALUATION, {**GOOD, "subject": {"type": "", "id": "alice"}}, "subject.type"),
        (EVALUATION, {**GOOD, "action": {"name": 7}}, "action.name"),
        (EVALUATION, {**GOOD, "resource": {"id": "x"}}, "resource.type"),
        (EVALUATION, {**GOOD, "resource": {"type": "db", "id": "x", "properties": "p"}}, "resource.properties"),
        (EVALUATION, {**GOOD, "resource": {"type": "db", "id": "x", "properties": []}}, "resource.properties"),
        (EVALUATION, {**GOOD, "context": []}, "context"),
        (EVALUATION, {**GOOD, "context": {"time": "Tuesday"}}, "context.time"),
        (EVALUATION, {**GOOD, "context": {"time": "2026-11-24T10:00:00"}}, "context.time"),
        (EVALUATION, {**GOOD, "context": {"mfa": "yes"}}, "context.mfa"),
        (EVALUATION, {**GOOD, "context": {"amr": "mfa"}}, "context.amr"),
        (EVALUATION, {**GOOD, "context": {"ip": 10}}, "context.ip"),
        (EVALUATION, {**GOOD, "context": {"scopes": "a b"}}, "context.scopes"),
        (EVALUATIONS, {**GOOD, "evaluations": {"resource": GOOD["resource"]}}, "evaluations"),
        (EVALUATIONS, {**GOOD, "evaluations": [{}, "x"]}, "evaluations[1]"),
        (EVALUATIONS, {"evaluations": [GOOD, {"resource": GOOD["resource"]}]}, "evaluations[1].subject"),
        (EVALUATIONS, {**GOOD, "evaluations": [{"action": {}}]}, "evaluations[0].action.name"),
        (EVALUATIONS, {**GOOD, "evaluations": [{}], "options": []}, "options"),
        (
            EVALUATIONS,
            {**GOOD, "evaluations": [{}], "options": {"evaluations_semantic": "all"}},
            "options.evaluations_semantic",
        ),
        (EVALUATIONS, {"action": GOOD["action"], "resource": GOOD["resource"]}, "subject"),
        (SEARCH_SUBJECT, {**GOOD, "subject": {"id": "alice"}}, "subject.type"),
        (SEARCH_SUBJECT, {**GOOD, "resource": {"type": "db"}}, "resource.id"),
        (SEARCH_SUBJECT, {"subject": {"type": "user"}, "resource": GOOD["resource"]}, "action"),
        (SEARCH_SUBJECT, {**GOOD, "page": []}, "page"),
        (SEARCH_SUBJECT, {**GOOD, "page": {"limit": -1}}, "page.limit"),
        (SEARCH_SUBJECT, {**GOOD, "page": {"limit": "2"}}, "page.limit"),
        (SEARCH_SUBJECT, {**GOOD, "page": {"limit": True}}, "page.limit"),
        (SEARCH_SUBJECT, {**GOOD, "page": {"token": 5}}, "page.token"),
        (SEARCH_RESOURCE, {**GOOD, "subject": {"type": "user"}}, "subject.id"),
        (SEARCH_RESOURCE, {**GOOD, "resource": {"id": "x"}}, "resource.type"),
        (SEARCH_RESOURCE, {**GOOD, "action": None}, "action"),
        (SEARCH_RESOURCE, {**GOOD, "context": {"time": 12}}, "context.time"),
        (SEARCH_ACTION, {"subject": GOOD["subject"]}, "resource"),
        (SEARCH_ACTION, {**GOOD, "resource": {"type": "db"}}, "resource.id"),
        (SEARCH_ACTION, {**GOOD, "subject": {"type": "user", "id": ""}}, "subject.id"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(pdp: Pdp, path: str, body: dict, field: str):
    assert _field(pdp.post(path, body)) == field


@pytest.mark.parametrize("path", [EVALUATION, EVALUATIONS, SEARCH_SUBJECT, SEARCH_RESOURCE, SEARCH_ACTION])
def test_a_body_that_is_not_a_json_object_is_a_400(pdp: Pdp, path: str):
    headers = {"Authorization": f"Bearer {pdp.credential}", "Content-Type": "application/json"}
    not_json = pdp.http.post(path, content=b"{", headers=headers)
    assert (not_json.status_code, not_json.json()["error"]) == (400, "invalid_json")
    array = pdp.http.post(path, content=b"[]", headers=headers)
    assert (array.status_code, array.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("path", [EVALUATION, EVALUATIONS, SEARCH_SUBJECT, SEARCH_RESOURCE, SEARCH_ACTION])
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-credential", "Basic YWxpY2U6cHc="])
def test_without_a_valid_credential_it_is_a_401(pdp: Pdp, path: str, authorization: str | None):
    headers = {"Authorization": authorization} if authorization else {}
    response = pdp.http.post(path, json=GOOD, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"
