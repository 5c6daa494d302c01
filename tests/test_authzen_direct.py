"""The AuthZEN decision endpoints are called directly by RevisionMiddleware, skipping FastAPI's per-request
machinery (the hot path; see bench/http.py). They must answer exactly as the same routes through FastAPI do:
same status, headers and body, for answers and for every kind of error."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI, Request

from charter.bootstrap import initialize
from charter.clock import FixedClock
from charter.engine import Engine
from charter.store.db import make_engine
from charter.web import app as web_app
from charter.web.app import DIRECT_PATHS, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # starlette prefers httpx2 for its TestClient
    from starlette.testclient import TestClient

MAX_BODY = 4096
AT = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # a Monday, inside the sample charter's first year


def evaluation(subject: str, action: str, resource: str, **context) -> dict:
    body: dict = {
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "resource", "id": resource},
    }
    if context:
        body["context"] = context
    return body


@pytest.fixture
def pair(tmp_path, monkeypatch) -> Iterator[tuple[TestClient, TestClient, str]]:
    """The app as served (direct) and the same app with the shortcut off (routed), on one started engine."""
    monkeypatch.setattr(web_app, "MIN_REVISION_WAIT", 0.05)
    db = make_engine(f"sqlite:///{tmp_path / 'charter.db'}")
    clock = FixedClock(AT)
    credential = initialize(db, clock).admin_credential
    assert credential is not None
    engine = Engine(db, clock=clock)
    engine.start()
    try:
        direct = create_app(engine, start_engine=False, max_body=MAX_BODY)
        routed = create_app(engine, start_engine=False, max_body=MAX_BODY)
        routed.direct = {}
        with TestClient(direct) as a, TestClient(routed) as b:
            yield a, b, credential
    finally:
        engine.stop()
        db.dispose()


def test_both_decision_endpoints_take_the_direct_path_and_stay_in_the_openapi_document(pair):
    direct, _, _ = pair
    assert set(direct.app.direct) == set(DIRECT_PATHS)
    paths = direct.get("/openapi.json").json()["paths"]
    for path in DIRECT_PATHS:
        assert "post" in paths[path]
        assert paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_a_route_given_a_dependency_is_left_to_fastapi():
    app = FastAPI()

    async def check() -> None:
        return None

    @app.post(DIRECT_PATHS[0], dependencies=[Depends(check)])
    async def evaluation_with_dependency(request: Request):
        return None

    @app.post(DIRECT_PATHS[1])
    async def evaluations(request: Request):
        return None

    assert set(web_app._direct_endpoints(app)) == {DIRECT_PATHS[1]}


def _cases(credential: str) -> list[tuple[str, str, dict]]:
    bearer = {"Authorization": f"Bearer {credential}"}
    json_type = {"Content-Type": "application/json"}
    big = {"evaluations": [evaluation("alice", "read", f"db:prod/t{i}") for i in range(60)]}
    return [
        ("POST", "/access/v1/evaluation", {"json": evaluation("alice", "read", "db:prod/orders"), "headers": bearer}),
        ("POST", "/access/v1/evaluation", {"json": evaluation("carol", "read", "tickets/1"), "headers": bearer}),
        (
            "POST",
            "/access/v1/evaluation",
            {"json": evaluation("carol", "read", "tickets/1", mfa=True), "headers": {**bearer, "X-Request-ID": "r-1"}},
        ),
        ("POST", "/access/v1/evaluation", {"json": evaluation("mallory", "delete", "db:prod/x"), "headers": bearer}),
        ("POST", "/access/v1/evaluation", {"json": {"subject": {"type": "user"}}, "headers": bearer}),
        ("POST", "/access/v1/evaluation", {"json": [1, 2], "headers": bearer}),
        ("POST", "/access/v1/evaluation", {"content": b"{not json", "headers": {**bearer, **json_type}}),
        ("POST", "/access/v1/evaluation", {"json": evaluation("alice", "read", "db:prod/orders")}),
        (
            "POST",
            "/access/v1/evaluation",
            {"json": evaluation("alice", "read", "db:prod/orders"), "headers": {"Authorization": "Bearer chr_x_y"}},
        ),
        (
            "POST",
            "/access/v1/evaluation",
            {
                "json": evaluation("alice", "read", "db:prod/orders"),
                "headers": {"Authorization": f"Basic {credential}"},
            },
        ),
        (
            "POST",
            "/access/v1/evaluation",
            {"json": evaluation("alice", "read", "db:prod/orders"), "headers": {**bearer, "Charter-Min-Revision": "1"}},
        ),
        (
            "POST",
            "/access/v1/evaluation",
            {
                "json": evaluation("alice", "read", "db:prod/orders"),
                "headers": {**bearer, "Charter-Min-Revision": "99"},
            },
        ),
        (
            "POST",
            "/access/v1/evaluation",
            {"json": evaluation("alice", "read", "db:prod/orders"), "headers": {**bearer, "Charter-Min-Revision": "x"}},
        ),
        (
            "POST",
            "/access/v1/evaluations",
            {
                "json": {
                    "subject": {"type": "user", "id": "bob"},
                    "action": {"name": "read"},
                    "evaluations": [
                        {"resource": {"type": "db", "id": "prod/orders"}},
                        {"resource": {"type": "resource", "id": "tickets/1"}},
                        {"action": {"name": "delete"}, "resource": {"type": "db", "id": "prod/orders"}},
                    ],
                },
                "headers": bearer,
            },
        ),
        (
            "POST",
            "/access/v1/evaluations",
            {
                "json": {
                    "evaluations": [
                        evaluation("alice", "read", "db:prod/orders"),
                        evaluation("mallory", "read", "db:prod/orders"),
                        evaluation("alice", "write", "db:prod/orders"),
                    ],
                    "options": {"evaluations_semantic": "deny_on_first_deny"},
                },
                "headers": bearer,
            },
        ),
        (
            "POST",
            "/access/v1/evaluations",
            {"json": {**evaluation("alice", "read", "db:prod/orders"), "evaluations": []}, "headers": bearer},
        ),
        ("POST", "/access/v1/evaluations", {"json": {"evaluations": "all"}, "headers": bearer}),
        ("POST", "/access/v1/evaluations", {"json": {"evaluations": [evaluation("a", "", "b")]}, "headers": bearer}),
        ("POST", "/access/v1/evaluations", {"json": {"evaluations": [{}], "options": {}}, "headers": bearer}),
        ("POST", "/access/v1/evaluations", {"json": big, "headers": bearer}),
        (
            "POST",
            "/access/v1/evaluations",
            {"content": iter([b'{"evaluations": [', b" " * MAX_BODY]), "headers": bearer},
        ),
        ("GET", "/access/v1/evaluation", {"headers": bearer}),
        ("POST", "/access/v1/evaluation/", {"json": evaluation("alice", "read", "db:prod/orders"), "headers": bearer}),
    ]


def _without_request_id(headers) -> list:
    return [(name, value) for name, value in headers.multi_items() if name != "x-request-id"]


def test_every_answer_and_error_is_the_same_as_through_fastapi(pair):
    direct, routed, credential = pair
    statuses = set()
    for (method, path, kwargs), (_, _, again) in zip(_cases(credential), _cases(credential), strict=True):
        a = direct.request(method, path, follow_redirects=False, **kwargs)
        b = routed.request(method, path, follow_redirects=False, **again)  # a streamed body is read once
        where = f"{method} {path} {kwargs}"[:300]
        assert a.status_code == b.status_code, where
        # Each answer carries the request id sent, or one made up for it: then equal in shape, not in value.
        assert _without_request_id(a.headers) == _without_request_id(b.headers), where
        sent = kwargs.get("headers", {}).get("X-Request-ID")
        if sent is not None:
            assert a.headers["x-request-id"] == b.headers["x-request-id"] == sent, where
        else:
            assert len(a.headers["x-request-id"]) == len(b.headers["x-request-id"]) == 16, where
        assert a.content == b.content, where
        if a.status_code == 200:
            assert a.headers["charter-revision"] == "1", where
        statuses.add(a.status_code)
    assert {200, 400, 401, 405, 413, 503} <= statuses


class _Dict(dict):
    """A dict that is not exactly a dict: authzen.to_request's one-go check passes it to the field-by-field one."""


def _slow(value):
    if isinstance(value, dict):
        return _Dict({k: _slow(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_slow(v) for v in value]
    return value


def _outcome(body: dict, field: str = "") -> tuple:
    from charter.web import authzen
    from charter.web.errors import ApiError

    try:
        r = authzen.to_request(body, field)
    except ApiError as error:
        return ("error", error.status, error.code, error.message, error.details)
    return (r.subject_type, r.subject, r.action, r.resource, repr(r.context))


@pytest.mark.parametrize(
    "body",
    [
        evaluation("alice", "read", "db:prod/orders"),
        evaluation("carol", "read", "tickets/1", mfa=True, time="2026-06-01T10:00:00Z", ip="10.1.2.3"),
        evaluation("carol", "read", "tickets/1", amr=["otp"], scopes=["a", "b"]),
        evaluation("carol", "read", "tickets/1", scope="a b"),
        {**evaluation("alice", "read", "x"), "resource": {"type": "db", "id": "prod/orders"}, "extra": 1},
        {**evaluation("alice", "read", "x"), "resource": {"type": "db", "id": "db:prod/orders"}},
        {**evaluation("alice", "read", "x"), "resource": {"type": "resource", "id": "x", "properties": {"a": "b"}}},
        {**evaluation("alice", "read", "x"), "resource": {"type": "resource", "id": "x", "properties": None}},
        {**evaluation("alice", "read", "x"), "resource": {"type": "resource", "id": "x", "properties": [1]}},
        {**evaluation("alice", "read", "x"), "subject": {"type": "service", "id": "billing-api", "properties": {}}},
        {**evaluation("alice", "read", "x"), "subject": {"type": "user", "id": ""}},
        {**evaluation("alice", "read", "x"), "subject": {"type": "user", "id": 7}},
        {**evaluation("alice", "read", "x"), "subject": {"id": "alice"}},
        {**evaluation("alice", "read", "x"), "action": {"name": ""}},
        {**evaluation("alice", "read", "x"), "action": "read"},
        {**evaluation("alice", "read", "x"), "resource": {"type": "", "id": "x"}},
        {**evaluation("alice", "read", "x"), "resource": {"type": "db"}},
        {**evaluation("alice", "read", "x"), "context": []},
        evaluation("alice", "read", "x", mfa="yes"),
        evaluation("alice", "read", "x", time="noon"),
        {"subject": {"type": "user", "id": "alice"}},
        {},
    ],
)
def test_to_request_checks_a_well_formed_evaluation_in_one_go_with_the_same_outcome(body):
    for field in ("", "evaluations[3]"):
        assert _outcome(body, field) == _outcome(_slow(body), field)


def test_an_unexpected_error_is_answered_as_through_fastapi(pair, monkeypatch):
    from charter.web import authzen

    direct, routed, credential = pair

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, with data the caller must not see")

    monkeypatch.setattr(authzen, "to_request", broken)
    answers = []
    for client in (direct, routed):
        quiet = TestClient(client.app, raise_server_exceptions=False)
        answers.append(
            quiet.post(
                "/access/v1/evaluation",
                json=evaluation("alice", "read", "db:prod/orders"),
                headers={"Authorization": f"Bearer {credential}", "X-Request-ID": "broken-1"},
            )
        )
    a, b = answers
    assert a.status_code == b.status_code == 500
    assert a.headers.multi_items() == b.headers.multi_items()
    assert a.headers["x-request-id"] == "broken-1"  # so the failure can be found in the log
    assert a.content == b.content
    assert b"must not see" not in a.content
