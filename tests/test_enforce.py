"""Enforcement's pure pieces: the route mapping, the decision cache, Decision.until, the gate's refusals, and
the middleware with resource attributes from a callable; no server (a replica stand-in over a compiled
snapshot of examples/todo-gateway.charter)."""

from __future__ import annotations

import datetime as dt
import os

import httpx
import pytest
import yaml

from charter.clock import FixedClock
from charter.directory.model import directory_document, load_directory
from charter.enforce.cache import DecisionCache
from charter.enforce.gate import Gate
from charter.enforce.middleware import CharterMiddleware
from charter.enforce.routes import MappingError, RouteMap, unsafe_path
from charter.language.consolidate import consolidate
from charter.language.parser import parse_charter
from charter.oidc.verify import InvalidToken, VerifiedToken
from charter.policy.decision import Basis, Decision
from charter.policy.grants import Grant, GrantKind
from charter.policy.request import Context, Request
from charter.policy.snapshot import compile_snapshot
from charter.sdk.replica import compile_document
from enforce_kit import upstream_app

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


def example(name: str) -> str:
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as file:
        return file.read()


def todo_snapshot(clock, grants=(), revision=7):
    directory = load_directory(yaml.safe_load(example("todo-gateway-directory.yaml")))
    version = consolidate(parse_charter(example("todo-gateway.charter")), [], clock.now().date())
    return compile_snapshot(version, directory, grants, clock, revision)


class Replica:
    """A LocalReplica stand-in: a snapshot, tokens that are the subject's name, freshness set by the test."""

    def __init__(self, snapshot, fresh: bool = True):
        self.snapshot = snapshot
        self.fresh = fresh
        self.listeners = []

    @property
    def revision(self) -> int:
        return self.snapshot.revision

    def on_change(self, listener) -> None:
        self.listeners.append(listener)

    def verify(self, token: str) -> VerifiedToken:
        if token not in self.snapshot.principals["user"]:
            raise InvalidToken("signature", "the signature does not verify")
        return VerifiedToken("user", token, "app", ("openid",), ("pwd",), (), "jti", 0, {})


# --- the route mapping -------------------------------------------------------------------------------


def test_the_example_mapping_matches_routes_methods_and_parameters():
    routes = RouteMap.from_document(yaml.safe_load(example("todo-gateway.routes.yaml")))
    found = routes.match("PUT", "/todos/42")
    assert (found.action, found.resource, dict(found.parameters)) == ("put", "todo:42", {"id": "42"})
    assert routes.match("GET", "/todos").resource == "todos:list"
    assert routes.match("PATCH", "/todos/1").action is None  # a method the route does not declare
    assert routes.match("GET", "/todos/1/comments") is None  # one segment per parameter
    assert routes.match("GET", "/elsewhere") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "list of routes"),
        ({"routes": [{"path": "todos", "methods": ["GET"], "resource": "x"}]}, r"routes\[0\].path"),
        ({"routes": [{"path": "/t", "methods": ["get"], "resource": "x"}]}, "in capitals"),
        ({"routes": [{"path": "/t", "methods": {"GET": "Read"}, "resource": "x"}]}, "lowercase word"),
        ({"routes": [{"path": "/t/{id}", "methods": ["GET"], "resource": "t:{other}"}]}, "does not have"),
        ({"routes": [{"path": "/t", "methods": ["GET"], "resource": "x", "verbs": 1}]}, "unknown field 'verbs'"),
        ({"routes": [{"path": "/t", "methods": ["GET"]}]}, "resource must be"),
    ],
)
def test_a_bad_mapping_names_the_entry(document, message):
    with pytest.raises(MappingError, match=message):
        RouteMap.from_document(document)


def test_unsafe_paths_are_refused_before_matching():
    assert unsafe_path("/todos/1") is None
    assert unsafe_path("/todos/../users/1") == "dot segments in the path"
    assert unsafe_path("/todos/.") == "dot segments in the path"
    assert unsafe_path("/todos//1") == "an empty segment in the path"
    assert unsafe_path("/todos/a/b", b"/todos/a%2Fb") == "an encoded slash in the path"


# --- the decision cache and Decision.until -----------------------------------------------------------


def _allow(until=None) -> Decision:
    return Decision(True, Basis.PERMISSION, "C", 0, 1, until=until)


def test_the_cache_drops_everything_when_the_revision_moves():
    cache = DecisionCache()
    cache.observe(5)
    cache.put("k", _allow(), 5, now=100.0)
    assert cache.get("k", 101.0) is not None
    cache.observe(6)  # a revocation, say
    assert cache.get("k", 101.0) is None
    cache.put("k", _allow(), 5, now=101.0)  # decided on the old snapshot, stored late: never kept
    assert cache.get("k", 101.0) is None


def test_the_cache_never_outlives_a_decision_and_skips_those_that_turned_on_the_moment():
    cache = DecisionCache(max_age=60)
    cache.observe(1)
    cache.put("grant", _allow(until=110.0), 1, now=100.0)
    assert cache.get("grant", 109.9) is not None and cache.get("grant", 110.0) is None
    cache.put("window", _allow(until=0.0), 1, now=100.0)
    assert cache.get("window", 100.0) is None
    cache.put("plain", _allow(), 1, now=100.0)
    assert cache.get("plain", 159.0) is not None and cache.get("plain", 160.0) is None  # max_age, a belt


def test_decisions_say_until_when_time_alone_may_change_them():
    clock = FixedClock(NOW)
    grant = Grant(
        "g1", GrantKind.REQUEST, "user", "jerry", frozenset({"post"}), "todos:list", NOW, NOW + dt.timedelta(hours=1), 2
    )
    snapshot = todo_snapshot(clock, [grant])
    assert snapshot.evaluate(Request("jerry", "get", "todos:list")).until is None  # standing permission
    by_grant = snapshot.evaluate(Request("jerry", "post", "todos:list"))
    assert by_grant.allowed and by_grant.basis is Basis.GRANT and by_grant.until == grant.ends.timestamp()
    december = FixedClock(dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC))  # a Wednesday, acme.charter in force
    sample = consolidate(parse_charter(example("acme.charter")), [], december.now().date())
    acme = compile_snapshot(sample, load_directory(yaml.safe_load(example("acme-directory.yaml"))), (), december)
    lapsing = acme.evaluate(Request("alice", "read", "db:prod/orders"))
    assert lapsing.allowed and lapsing.until is not None and lapsing.until > december.now().timestamp()  # "for 30 days"
    window = acme.evaluate(Request("carol", "read", "tickets/1", Context(mfa=True)))
    assert window.until == 0.0  # on weekdays between 08:00 and 18:00: not to be cached


def test_a_replica_document_compiles_to_the_same_decisions():
    clock = FixedClock(NOW)
    snapshot = todo_snapshot(clock, revision=3)
    directory = load_directory(yaml.safe_load(example("todo-gateway-directory.yaml")))
    document = {
        "format": 1,
        "revision": 3,
        "charter": example("todo-gateway.charter"),
        "amendments": [],
        "directory": directory_document(directory),
        "grants": [],
    }
    replica = compile_document(document, clock)
    for who in ("rick", "morty", "summer", "beth", "jerry", "nobody"):
        for action in ("get", "post", "put", "delete"):
            for resource in ("todos:list", "todo:1", "todo:2", "user:rick"):
                request = Request(who, action, resource)
                assert replica.evaluate(request) == snapshot.evaluate(request)


# --- the gate and the middleware --------------------------------------------------------------------


def _gate(fresh: bool = True) -> Gate:
    routes = RouteMap.from_document(yaml.safe_load(example("todo-gateway.routes.yaml")))
    return Gate(routes, Replica(todo_snapshot(FixedClock(NOW)), fresh))


def test_the_gate_denies_by_default_and_when_charter_is_out_of_sight():
    gate = _gate()
    assert gate.check("GET", "/todos", "Bearer jerry").allowed
    assert gate.check("GET", "/todos", None).status == 401
    assert gate.check("GET", "/todos", "Bearer mallory").status == 401
    assert gate.check("GET", "/nowhere", "Bearer rick").status == 403
    assert gate.check("GET", "/todos/../todos", "Bearer rick").status == 400
    denied = gate.check("DELETE", "/todos", "Bearer rick")
    assert (denied.status, denied.clause) == (403, 6) and "clause 6" in denied.reason
    assert _gate(fresh=False).check("GET", "/todos", "Bearer jerry").status == 503

    def broken(match):
        raise RuntimeError("boom")

    assert gate.check("GET", "/todos", "Bearer jerry", attributes=broken).status == 503


def test_the_middleware_takes_resource_attributes_from_a_callable():
    owners = {"3": "morty"}  # a todo the directory does not know: its owner comes from the application

    async def owner_of(match):
        return {"owner": owners.get(match.parameters["id"], "nobody")}

    app = CharterMiddleware(upstream_app(), _gate(), attributes={"/todos/{id}": owner_of})

    async def run() -> list[tuple[int, dict]]:
        answers = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://app") as client:
            for who, method, path in (
                ("morty", "PUT", "/todos/3"),
                ("summer", "PUT", "/todos/3"),
                ("rick", "GET", "/users/x"),
            ):
                response = await client.request(method, path, headers={"Authorization": f"Bearer {who}"})
                answers.append((response.status_code, response.json()))
        return answers

    import asyncio

    (ok, seen), (refused, why), (read, by) = asyncio.run(run())
    assert ok == 200 and seen["subject"] == "morty" and seen["clause"] == "3"
    assert refused == 403 and why["clause"] == 3 and "owner is morty" in why["message"]
    assert read == 200 and by["clause"] == "1"


def test_charter_proxy_refuses_a_bad_mapping_or_an_unreachable_charter(tmp_path):
    from click.testing import CliRunner

    from charter.cli.main import cli

    bad = tmp_path / "routes.yaml"
    bad.write_text("routes:\n  - path: /t\n    methods: [get]\n    resource: t\n")
    base = ["proxy", "--upstream", "http://127.0.0.1:9", "--charter-url", "http://127.0.0.1:9", "--credential", "x"]
    refused = CliRunner().invoke(cli, [*base, "--routes", str(bad)])
    assert refused.exit_code == 2 and "routes[0].methods" in refused.output
    good = tmp_path / "good.yaml"
    good.write_text(example("todo-gateway.routes.yaml"))
    unreachable = CliRunner().invoke(cli, [*base, "--routes", str(good)])
    assert unreachable.exit_code == 2 and "could not fetch the snapshot" in unreachable.output


def test_the_proxy_answers_502_when_the_upstream_is_down_and_never_forwards_a_refusal():
    import asyncio

    from charter.enforce.proxy import Proxy
    from enforce_kit import free_port

    proxy = Proxy(_gate(), f"http://127.0.0.1:{free_port()}")  # nothing listens there

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(proxy), base_url="http://proxy") as client:
            down = await client.get("/todos", headers={"Authorization": "Bearer jerry"})
            refused = await client.post("/todos", headers={"Authorization": "Bearer jerry"})
            return down, refused

    down, refused = asyncio.run(run())
    assert down.status_code == 502 and "could not be reached" in down.text
    assert refused.status_code == 403  # decided before any attempt to reach the upstream
