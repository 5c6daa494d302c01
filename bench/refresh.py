"""The snapshot refresh at scale: a full rebuild against single admin writes with the incremental refresh.

    .venv/bin/python bench/refresh.py [--users 100000] [--groups 10000] [--writes 200] [--database-url URL]

Initialises a store (fresh SQLite file by default), inserts `--users` users (3 direct groups each) and
`--groups` groups in bulk (rows straight into the tables: this measures the refresh, not provisioning; see
bench/scim.py for that), times `Engine.rebuild()` with its parts (loading the directory, compiling), then
starts the engine's refresh thread and times `--writes` `Admin.put_identity` calls one after another, each
answered once this engine's snapshot has it (`catch_up`), and prints how each refresh was made.
"""

from __future__ import annotations

import benchkit  # noqa: F401  (keeps bench/ off sys.path: charter.metrics imports prometheus_client, which needs http)

# isort: split

import argparse
import datetime as dt
import os
import tempfile
import time

from sqlalchemy import insert, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--database-url")
    options = parser.parse_args()
    data = tempfile.mkdtemp(prefix="charter-bench-refresh-")
    os.environ["CHARTER_DATA_DIR"] = data

    from charter.admin import Admin
    from charter.bootstrap import ADMIN_USER, initialize
    from charter.clients import Caller
    from charter.directory import repository
    from charter.engine import Engine
    from charter.policy.snapshot import compile_snapshot
    from charter.store.db import make_engine, sessions
    from charter.store.models import GroupRow, IdentityRow, MembershipRow

    db = make_engine(options.database_url or f"sqlite:///{data}/charter.db")
    initialize(db)
    now = dt.datetime.now(dt.UTC)
    begin = time.perf_counter()
    with sessions(db).begin() as session:
        session.execute(
            insert(GroupRow),
            [dict(name=f"g{i}", attributes={}, created_at=now, updated_at=now) for i in range(options.groups)],
        )
        group_ids = {name: id_ for id_, name in session.execute(text("SELECT id, name FROM groups"))}
        session.execute(
            insert(IdentityRow),
            [
                dict(
                    kind="user",
                    name=f"u{i}",
                    state="active",
                    attributes={"department": "eng"},
                    created_at=now,
                    updated_at=now,
                )
                for i in range(options.users)
            ],
        )
        user_ids = {
            name: id_ for id_, name in session.execute(text("SELECT id, name FROM identities WHERE kind = 'user'"))
        }
        session.execute(
            insert(MembershipRow),
            [
                dict(identity_id=user_ids[f"u{i}"], group_id=group_ids[f"g{(i * 7 + k) % options.groups}"])
                for i in range(options.users)
                for k in range(3)
            ],
        )
        session.execute(text("UPDATE revision SET value = value + 1 WHERE id = 1"))
    print(f"bulk insert of {options.users} users, {options.groups} groups: {time.perf_counter() - begin:.1f} s")

    engine = Engine(db, listen=False)
    for _ in range(2):
        begin = time.perf_counter()
        engine.rebuild()
        print(f"full rebuild: {time.perf_counter() - begin:.2f} s")
    begin = time.perf_counter()
    with engine.sessions() as session:
        directory = repository.load(session)
    print(f"  load the directory: {time.perf_counter() - begin:.2f} s")
    begin = time.perf_counter()
    compile_snapshot(engine.snapshot.version, directory, (), engine.clock, 0)
    print(f"  compile: {time.perf_counter() - begin:.2f} s")

    engine.start()
    try:
        admin = Admin(engine)
        caller = Caller("bench", "user", ADMIN_USER)
        steps = dict(engine.steps)
        latencies = []
        for i in range(options.writes):
            begin = time.perf_counter()
            admin.put_identity(caller, "users", f"new{i}", {"groups": ["g1", "g2"]})
            latencies.append((time.perf_counter() - begin) * 1e3)
        latencies.sort()
        made = {kind: engine.steps[kind] - steps[kind] for kind in steps}
        print(
            f"{options.writes} put_identity (each waits for its own snapshot): "
            f"p50 {latencies[len(latencies) // 2]:.1f} ms, "
            f"max {latencies[-1]:.1f} ms; refreshes {made}; snapshot revision {engine.snapshot.revision}"
        )
    finally:
        engine.stop()
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
