"""What the audit trail records: every change of state in its own transaction, refusals, and the decision log."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from charter.audit import store
from charter.audit.decisions import DecisionLog
from charter.audit.trail import AuditTrail
from charter.policy.decision import Basis, Decision
from charter.policy.request import Context, Request
from charter.store.db import sessions
from charter.store.models import AuditRecordRow, DecisionRecordRow


def audit_records(api, after: int = 0) -> list:
    engine = api.http.app.state.engine
    with engine.sessions() as session:
        return [r for r in store.records(session, "audit") if r.seq > after]


def head(api, chain: str = "audit") -> int:
    with api.http.app.state.engine.sessions() as session:
        return store.read_head(session, chain).seq


def test_the_first_run_is_recorded(api):
    first = audit_records(api)[:4]
    assert [(r.entry.actor, r.entry.action, r.entry.target) for r in first] == [
        ("charter init", "directory.import", "directory:*"),
        ("charter init", "charter.upload", "charter:Acme Production Access"),
        ("charter init", "expectations.put", "charter:Acme Production Access/expectations/sample.expect"),
        ("charter init", "client.create", "clients:user/admin"),
    ]
    assert "alice" in first[0].entry.details["after"]["users"]


def test_a_change_is_recorded_with_its_clause_revision_request_id_and_before_and_after(api):
    start = head(api)
    body = {"attributes": {"department": "finance"}, "groups": ["support"]}
    answer = api.ok("PUT", "/admin/v1/users/zoe", json=body, headers={"X-Request-ID": "change-42"})
    [record] = audit_records(api, start)
    entry = record.entry
    assert entry.actor.startswith("user:admin (client ")
    assert (entry.action, entry.target, entry.outcome) == ("directory.user.put", "directory:users/zoe", "ok")
    assert (entry.charter_version, entry.clause, entry.request_id) == (0, 19, "change-42")
    assert entry.time == api.clock.now()
    assert entry.details["revision"] == answer["revision"]
    assert entry.details["before"] is None
    assert entry.details["after"]["groups"] == ["support"]
    assert entry.details["after"]["attributes"] == {"department": "finance"}

    api.ok("PUT", "/admin/v1/users/zoe", json={"groups": []})
    [again] = audit_records(api, record.seq)
    assert again.entry.details["before"]["groups"] == ["support"]
    assert again.entry.details["after"]["groups"] == []


def test_a_refused_action_is_recorded_and_changes_nothing(api, alice):
    start = head(api)
    response = api.request("PUT", "/admin/v1/users/mallory", credential=alice, json={}, headers={"X-Request-ID": "r-9"})
    assert response.status_code == 403
    [record] = audit_records(api, start)
    entry = record.entry
    assert entry.actor.startswith("user:alice (client ")
    assert (entry.action, entry.target, entry.outcome, entry.request_id) == (
        "directory.user.put",
        "directory:users/mallory",
        "denied",
        "r-9",
    )
    assert entry.details["asked"] == "manage"
    assert api.request("GET", "/admin/v1/users/mallory").status_code == 404


def test_a_failed_change_leaves_no_record(api):
    start = head(api)
    response = api.request("PUT", "/admin/v1/users/zoe", json={"groups": ["no-such-group"]})
    assert response.status_code == 400
    assert head(api) == start  # the record went with the rolled-back change
    assert audit_records(api, start) == []


def test_grants_and_clients_are_recorded_without_secrets(api):
    start = head(api)
    credential = api.new_credential("alice")
    grant = api.ok(
        "POST",
        "/admin/v1/grants",
        201,
        json={
            "subject_type": "user",
            "subject": "alice",
            "actions": ["write"],
            "resource": "db:staging/x",
            "ends": (api.clock.now() + dt.timedelta(hours=1)).isoformat(),
            "clause": 3,
        },
    )
    api.ok("DELETE", f"/admin/v1/grants/{grant['id']}")
    actions = [(r.entry.action, r.entry.target) for r in audit_records(api, start)]
    assert actions == [
        ("client.create", "clients:user/alice"),
        ("grant.create", "grants:user/alice"),
        ("grant.revoke", "grants:user/alice"),
    ]
    secret = credential.removeprefix("chr_").partition("_")[2]  # chr_<id>_<secret>; the secret may hold "_"
    assert all(secret not in str(r.entry.details) for r in audit_records(api, start))


def test_decisions_are_logged_with_what_asked_and_why(api):
    log = api.http.app.state.decision_log
    api.decide("alice", "read", "db:prod/orders")
    api.decide("carol", "read", "tickets/1", mfa=True)
    api.decide("mallory", "delete", "db:prod/orders")
    log.flush()
    with api.http.app.state.engine.sessions() as session:
        # All at the same (fixed) instant, so the writer's order by time ties: compare in a set order.
        logged = sorted((r.entry for r in store.records(session, "decisions")), key=lambda e: e.actor)
    assert [(e.actor, e.action, e.target, e.outcome) for e in logged] == [
        ("user:alice", "read", "db:prod/orders", "allow"),
        ("user:carol", "read", "tickets/1", "allow"),
        ("user:mallory", "delete", "db:prod/orders", "deny"),
    ]
    assert logged[0].clause == 1 and logged[0].details["basis"] == "permission"
    assert logged[1].details["context"] == {"mfa": True}
    assert logged[2].details["reasons"]
    assert all(e.time == api.clock.now() for e in logged)


def test_an_exchange_is_logged_as_the_decisions_it_holds(api):
    """The endpoints hand the log whole exchanges (body as received, answer as sent); the writer takes them
    apart. What it stores must be what logging each decision on its own stores: for a single evaluation
    with a full context, a batch with defaults and item overrides, a batch cut short by its semantics, and
    an `evaluations` request without items."""
    from charter.audit import decisions
    from charter.web import authzen

    def entity(kind, name):
        return {"type": kind, "id": name}

    exchanges = [
        (
            "/access/v1/evaluation",
            {
                "subject": entity("user", "carol"),
                "action": {"name": "read"},
                "resource": {"type": "resource", "id": "tickets/1", "properties": {"owner": "carol", "tags": ["a"]}},
                "context": {"mfa": True, "ip": "10.1.2.3", "time": "2026-11-23T09:00:00+01:00"},
            },
        ),
        (
            "/access/v1/evaluations",
            {
                "subject": entity("user", "alice"),
                "context": {"mfa": True},
                "evaluations": [
                    {"action": {"name": "read"}, "resource": entity("resource", "db:prod/orders")},
                    {"action": {"name": "delete"}, "resource": entity("resource", "db:prod/orders")},
                    {"subject": entity("user", "mallory"), "action": {"name": "read"}, "resource": entity("db", "x")},
                ],
            },
        ),
        (
            "/access/v1/evaluations",
            {
                "options": {"evaluations_semantic": "deny_on_first_deny"},
                "action": {"name": "delete"},
                "evaluations": [
                    {"subject": entity("user", "bob"), "resource": entity("resource", "db:prod/a")},
                    {"subject": entity("user", "alice"), "resource": entity("resource", "db:prod/b")},
                ],
            },
        ),
        ("/access/v1/evaluations", {**{"subject": entity("user", "alice")}, "action": {"name": "read"},
                                    "resource": entity("resource", "db:prod/orders")}),
    ]  # fmt: skip
    from charter.clients import verify

    pep = verify(api.http.app.state.engine.clients, api.admin_credential).client_id
    snapshot = api.http.app.state.engine.snapshot
    expected = []
    for number, (path, body) in enumerate(exchanges):
        request_id = f"exchange-{number}"
        answer = api.ok("POST", path, json=body, headers={"X-Request-ID": request_id})
        results = answer.get("evaluations", [answer])
        if path.endswith("evaluation") or "evaluations" not in body:
            asked = [authzen.to_request(body)]
        else:
            defaults = {key: body[key] for key in authzen.EVALUATION_KEYS if key in body}
            asked = [authzen.to_request(authzen.merged(defaults, e, i)) for i, e in enumerate(body["evaluations"])]
        assert len(results) <= len(asked)
        for request in asked[: len(results)]:
            decision = snapshot.evaluate(request)
            item = decisions.queued(decisions._ns(api.clock.now()), request, decision, pep, request_id)
            expected.append(decisions.row_fields(item))
    assert len(expected) == 1 + 3 + 1 + 1  # the third exchange stops at its first deny
    log = api.http.app.state.decision_log
    log.flush()
    with api.http.app.state.engine.sessions() as session:
        logged = [r.entry for r in store.records(session, "decisions")]
    stored = sorted(
        (int((e.time - decisions.EPOCH) / dt.timedelta(microseconds=1)), e.actor, e.action, e.target, e.outcome,
         e.charter_version, e.clause, e.request_id, e.details)
        for e in logged
    )  # fmt: skip
    assert stored == sorted(expected, key=lambda row: row[:8])
    assert any(row[-1].get("context", {}).get("resource_attributes") for row in stored)


# --- the queue, without a server -------------------------------------------------------------------

ALLOW = Decision(True, Basis.PERMISSION, "c", 0, 1)
DENY = Decision(False, Basis.DEFAULT, "c", 0, None, ("nothing allows it",))
GRANTED = Decision(True, Basis.BREAK_GLASS, "c", 0, 5, grant="g1")


def _log(db, tmp_path, **settings) -> DecisionLog:
    from charter.audit.signing import Keyring
    from charter.store.db import sessions, upgrade

    upgrade(db)
    return DecisionLog(sessions(db), AuditTrail(keyring=Keyring(tmp_path / "keys")), **settings)


def _count(db, model) -> int:
    from charter.store.db import sessions

    with sessions(db)() as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def test_a_full_queue_drops_the_oldest_sampled_allows_never_denies_or_privileged(db, tmp_path):
    log = _log(db, tmp_path, capacity=5)
    for i in range(8):
        log.record(Request(f"u{i}", "read", "r"), ALLOW)
    for i in range(20):
        log.record(Request(f"d{i}", "read", "r"), DENY)
    log.record(Request("bg", "delete", "r"), GRANTED)
    assert (log.pending, log.dropped) == (5 + 20 + 1, 3)
    log.flush()
    with sessions(db)() as session:
        actors = [r.entry.actor for r in store.records(session, "decisions")]
    assert [a for a in actors if a.startswith("user:u")] == [f"user:u{i}" for i in range(3, 8)]  # the newest five
    assert len([a for a in actors if a.startswith("user:d")]) == 20
    assert "user:bg" in actors
    assert log.pending == 0 and log.written == 26


def test_sampling_keeps_every_deny_and_privileged_allow(db, tmp_path):
    log = _log(db, tmp_path, sample=0.0)
    for _ in range(50):
        log.record(Request("u", "read", "r"), ALLOW)
    log.record(Request("u", "write", "r"), DENY)
    log.record(Request("u", "delete", "r"), GRANTED)
    assert log.unsampled == 50
    log.flush()
    assert _count(db, DecisionRecordRow) == 2


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_stop_drains_the_queue(db, tmp_path, writer):
    log = _log(db, tmp_path, interval=60.0, writer=writer)  # the writer would not wake on its own for a minute
    log.start()
    for i in range(1234):
        context = Context(mfa=i % 2 == 0, ip="10.0.0.1", resource_attributes={"owner": f"o{i}"})
        log.record(Request(f"u{i}", "read", "r", context), ALLOW if i % 3 else DENY)
    log.stop()
    assert _count(db, DecisionRecordRow) == 1234
    assert log.pending == 0
    with sessions(db)() as session:
        records = {r.entry.actor: r.entry for r in store.records(session, "decisions")}
        assert store.verify_chain(session, "decisions").intact
    assert records["user:u7"].details == {
        "basis": "permission",
        "context": {"ip": "10.0.0.1", "resource_attributes": {"owner": "o7"}},
    }
    assert records["user:u6"].outcome == "deny" and records["user:u6"].details["context"]["mfa"] is True


def test_a_writer_process_that_died_is_replaced_and_nothing_queued_is_lost(db, tmp_path):
    log = _log(db, tmp_path, batch=100, writer="process")
    for i in range(250):
        log.record(Request(f"u{i}", "read", "r"), ALLOW)
    assert log._write_batch()  # starts the writer process, which writes 100
    child = log._writer._child
    child.kill()
    child.wait()
    log.flush()  # a new writer process takes the other 150
    assert log._writer._child is not child and log.written == 250 and log.pending == 0
    log.stop()
    assert log._writer._child is None
    with sessions(db)() as session:
        report = store.verify_chain(session, "decisions")
    assert report.intact and report.records == 250


def test_audit_chain_rows_are_only_added(api):
    """Reading back what was written gives the same chain: the store keeps records exactly as hashed."""
    api.ok("PUT", "/admin/v1/groups/newgroup", json={"owner": "alice"})
    with api.http.app.state.engine.sessions() as session:
        report = store.verify_chain(session, "audit")
        assert report.intact and report.records == int(session.scalar(select(func.count()).select_from(AuditRecordRow)))


def test_the_server_prunes_by_the_charters_retention_and_what_remains_verifies(api):
    """Sample clause 13: audit records are kept for 365 days. The decision chain has no clause: kept forever."""
    from charter.audit.maintenance import AuditMaintenance

    engine = api.http.app.state.engine
    api.decide("alice", "read", "db:prod/orders")
    api.http.app.state.decision_log.flush()
    before = head(api)
    maintenance = AuditMaintenance(engine)
    maintenance.run_once()  # signs both heads; nothing is a year old yet
    with engine.sessions() as session:
        assert store.read_head(session, "audit").pruned_through == 0
    api.clock.advance(dt.timedelta(days=366))
    api.ok("PUT", "/admin/v1/groups/later", json={})  # a record from the new day, which must stay
    maintenance = AuditMaintenance(engine)
    maintenance.run_once()
    with engine.sessions() as session:
        audit_head = store.read_head(session, "audit")
        assert audit_head.pruned_through == before
        remaining = list(store.records(session, "audit"))
        assert [r.entry.action for r in remaining] == ["directory.group.put", "audit.prune"]
        assert remaining[-1].entry.details["clause"] == 13
        assert store.verify_chain(session, "audit").intact
        assert store.read_head(session, "decisions").pruned_through == 0
        assert store.verify_chain(session, "decisions").intact
