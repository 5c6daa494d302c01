"""The incremental refresh (charter.incremental) against a from-scratch compile of the same store, on both backends.

After random sequences of directory changes made through `Admin` (identities created, changed, disabled,
deleted; groups created, nested, deleted; memberships added and removed; resources), the snapshot the
engine maintained step by step must decide exactly as `Engine.rebuild()` on a fresh engine reading the
same store. Nothing is mocked: the store is SQLite or PostgreSQL.
"""

from __future__ import annotations

import random
import time

import pytest

from charter.admin import Admin
from charter.bootstrap import ADMIN_USER, initialize
from charter.clients import Caller
from charter.clock import FixedClock
from charter.directory.repository import Conflict, NotFound
from charter.engine import Engine
from charter.policy.request import Context, Request
from charter.policy.snapshot import Snapshot
from charter.store.db import current_revision
from conftest import API_TEST_TIME

CALLER = Caller("test", "user", ADMIN_USER)
SAMPLE_GROUPS = ["sre", "support", "contractors", "admins", "legacy-admins", "engineering", "finance-team"]
ACTIONS = ["read", "write", "delete"]
RESOURCES = ["db:prod/orders", "db:staging/x", "tickets/1", "reports:finance/q1", "db:prod/invoices"]


def principals_of(snapshot: Snapshot) -> dict:
    """Everything a principal carries, as comparable data."""
    return {
        type_: {
            id_: (
                p.key,
                p.groups,
                dict(p.attributes),
                p.blocked and (p.blocked.basis, p.blocked.clause, p.blocked.reasons),
                p.mfa_decision and (p.mfa_decision.clause, p.mfa_decision.reasons),
            )
            for id_, p in kind.items()
        }
        for type_, kind in snapshot.principals.items()
    }


def assert_same(incremental: Snapshot, fresh: Snapshot) -> None:
    assert incremental.revision == fresh.revision
    assert principals_of(incremental) == principals_of(fresh)
    assert {k: dict(v) for k, v in incremental.resources.items()} == {k: dict(v) for k, v in fresh.resources.items()}
    for type_, kind in fresh.principals.items():
        for id_ in kind:
            for action in ACTIONS:
                for resource in RESOURCES:
                    for mfa in (False, True):
                        request = Request(id_, action, resource, Context(mfa=mfa), subject_type=type_)
                        assert incremental.evaluate(request) == fresh.evaluate(request), (id_, action, resource)


def fresh_snapshot(engine: Engine) -> Snapshot:
    return Engine(engine.db, engine.clock, listen=False).rebuild()


def random_change(admin: Admin, rng: random.Random, made: dict[str, list[str]]) -> None:
    """One random directory change; refusals of the store (a cycle, a missing name) are part of the game."""
    groups = SAMPLE_GROUPS + made["groups"]
    users = made["users"]
    choice = rng.random()
    try:
        if choice < 0.35 or not users:
            name = rng.choice(users) if users and rng.random() < 0.4 else f"t{len(users)}-{rng.randrange(10**6)}"
            fields = {
                "state": rng.choice(["active", "active", "disabled", "left"]),
                "attributes": {"department": rng.choice(["finance", "engineering", "it"])},
                "groups": rng.sample(groups, rng.randrange(0, 4)),
            }
            admin.put_identity(CALLER, "users", name, fields)
            if name not in users:
                users.append(name)
        elif choice < 0.45:
            name = users.pop(rng.randrange(len(users)))
            admin.delete_identity(CALLER, "users", name)
        elif choice < 0.6:
            admin.add_member(CALLER, rng.choice(groups), "users", rng.choice(users))
        elif choice < 0.7:
            admin.remove_member(CALLER, rng.choice(groups), "users", rng.choice(users))
        elif choice < 0.82:
            name = rng.choice(made["groups"]) if made["groups"] and rng.random() < 0.3 else f"tg{rng.randrange(10**6)}"
            admin.put_group(CALLER, name, {"parents": rng.sample(groups, rng.randrange(0, 2))})
            if name not in made["groups"]:
                made["groups"].append(name)
        elif choice < 0.87 and made["groups"]:
            admin.delete_group(CALLER, made["groups"].pop(rng.randrange(len(made["groups"]))))
        elif choice < 0.95:
            admin.put_identity(CALLER, "services", "billing-api", {"owner": "alice", "groups": rng.sample(groups, 1)})
        else:
            admin.put_resource(CALLER, "db:prod/orders", {"owner": rng.choice(users), "attributes": {"env": "prod"}})
    except (Conflict, NotFound):
        pass


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_steps_decide_as_a_fresh_compile(db, seed):
    clock = FixedClock(API_TEST_TIME)
    initialize(db, clock)
    engine = Engine(db, clock, listen=False)
    engine.rebuild()
    admin = Admin(engine)
    rng = random.Random(seed)
    made: dict[str, list[str]] = {"users": [], "groups": []}
    for _ in range(12):
        for _ in range(rng.randrange(1, 6)):  # several changes coalesce into one step
            random_change(admin, rng, made)
        assert engine.refresh_if_stale()
        assert_same(engine.snapshot, fresh_snapshot(engine))
    assert engine.steps["incremental"] > 0


def test_only_directory_changes_are_incremental(db):
    clock = FixedClock(API_TEST_TIME)
    initialize(db, clock)
    engine = Engine(db, clock, listen=False)
    engine.rebuild()
    admin = Admin(engine)
    admin.put_identity(CALLER, "users", "zed", {"groups": ["sre"]})
    engine.refresh_if_stale()
    assert engine.steps == {"full": 1, "incremental": 1}
    before = engine.snapshot
    assert before.principal("user", "zed").groups == {"sre", "engineering"}
    # Re-nesting a known group moves the closure of its members: a full rebuild.
    admin.put_group(CALLER, "sre", {"parents": []})
    engine.refresh_if_stale()
    assert engine.steps == {"full": 2, "incremental": 1}
    assert engine.snapshot.principal("user", "zed").groups == {"sre"}
    admin.put_identity(CALLER, "users", "zed", {"groups": ["support"]})
    engine.refresh_if_stale()
    assert engine.steps == {"full": 2, "incremental": 2}
    # An API client (not the directory), with a directory change in the same refresh: full.
    admin.put_identity(CALLER, "users", "zed", {"groups": ["support", "admins"]})
    admin.create_client(CALLER, "zed's client", "user", "zed")
    engine.refresh_if_stale()
    assert engine.steps == {"full": 3, "incremental": 2}
    assert "user:zed" in {key.caller.subject_type + ":" + key.caller.subject for key in engine.clients.values()}
    # The snapshot readers held is untouched.
    assert before.principal("user", "zed").groups == {"sre", "engineering"}
    assert_same(engine.snapshot, fresh_snapshot(engine))


def test_a_second_server_applies_the_changes_incrementally(db):
    """Two engines on one store: one writes, the other (its refresh thread running) converges step by step."""
    clock = FixedClock(API_TEST_TIME)
    initialize(db, clock)
    writer = Engine(db, clock, listen=False)
    writer.rebuild()
    reader = Engine(db, clock, poll_interval=0.05)
    reader.start()
    try:
        admin = Admin(writer)
        rng = random.Random(7)
        made: dict[str, list[str]] = {"users": [], "groups": []}
        for _ in range(40):
            random_change(admin, rng, made)
            if rng.random() < 0.2:
                time.sleep(0.06)  # let the reader step between some changes, and coalesce others
        writer.refresh_if_stale()
        assert reader.wait_for(writer.snapshot.revision, 10), reader.last_error
        assert reader.last_error is None
        assert reader.steps["incremental"] > 0
        assert_same(reader.snapshot, fresh_snapshot(writer))
    finally:
        reader.stop()


def test_concurrent_writers_are_applied_incrementally(db):
    """Writers in parallel on one server (a bulk load): every change is applied without a full rebuild."""
    import threading

    clock = FixedClock(API_TEST_TIME)
    initialize(db, clock)
    engine = Engine(db, clock, poll_interval=0.05)
    engine.start()
    try:
        admin = Admin(engine)
        admin.put_group(CALLER, "bulk", {})

        def write(start: int) -> None:
            for i in range(start, start + 25):
                admin.put_identity(CALLER, "users", f"bulk{i}", {"groups": ["bulk", "sre"]})

        threads = [threading.Thread(target=write, args=(n * 100,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with engine.sessions() as session:
            stored = current_revision(session)
        assert stored == 1 + 1 + 150  # initialize, the group, the users
        assert engine.wait_for(stored, 10)
        assert engine.steps["full"] == 1, engine.steps  # the start only
        assert engine.last_error is None
        assert_same(engine.snapshot, fresh_snapshot(engine))
    finally:
        engine.stop()
