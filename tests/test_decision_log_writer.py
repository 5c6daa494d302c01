"""The decision log's writer (`store.append_fields`) writes exactly what `store.append` writes for the same entries.

The writer skips the Entry, Record and row dict per decision and inserts plain tuples (see docs/performance.md,
"Decision log overhead"); a record must still be the same bytes: same hash, same stored columns, on both
backends. Here the same decisions go to the "decisions" chain through the writer and to the (empty) "audit"
chain through `store.append`, and the two tables are compared column by column as the database holds them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from charter.audit import decisions, store
from charter.audit.chain import GENESIS, extend
from charter.audit.signing import Keyring
from charter.audit.trail import AuditTrail
from charter.clock import FixedClock
from charter.policy.decision import Basis, Decision
from charter.policy.request import Context, Request
from charter.store.db import sessions, upgrade

COLUMNS = "seq, time, actor, action, target, outcome, charter_version, clause, request_id, details, prev_hash, hash"
DECISIONS = (
    Decision(True, Basis.PERMISSION, "c", 3, 1),
    Decision(False, Basis.DEFAULT, "c", 3, None, ("nothing allows it",)),
    Decision(False, Basis.CONDITION, "c", 4, 2, ("MFA required", "outside hours")),
    Decision(True, Basis.BREAK_GLASS, "c", 4, 5, grant="g-1"),
    Decision(True, Basis.GRANT, "c", 4, 9, grant="g-2"),
)
CONTEXTS = (
    Context(),
    Context(mfa=True, ip="10.1.2.3"),
    Context(time=dt.datetime(2026, 11, 24, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
    Context(scopes=frozenset({"b", "a"}), resource_attributes={"tags": ("x", "y"), "owner": "alice", "n": 3}),
    Context(ip="2001:db8::1", resource_attributes={"set": frozenset({"only"})}),
)
# Steps between decisions: a whole second (microseconds .000000), a microsecond, and across seconds.
STEPS = (dt.timedelta(0), dt.timedelta(microseconds=1), dt.timedelta(seconds=1), dt.timedelta(microseconds=999_999))


def test_the_writer_stores_the_records_store_append_stores(db, tmp_path):
    upgrade(db)
    clock = FixedClock(dt.datetime(2026, 11, 24, 23, 59, 58, tzinfo=dt.UTC))
    trail = AuditTrail(clock, Keyring(tmp_path / "keys"), checkpoint_every=7)
    log = decisions.DecisionLog(sessions(db), trail, clock, batch=11)  # several batches, checkpoints crossed
    queued = []
    for i in range(60):
        action, subject_type = ("read", "write", "ünïcode")[i % 3], ("user", "service", "partner")[i % 3]
        request = Request(f"user-{i % 7}", action, f"db:prod/t{i}", CONTEXTS[i % 5], subject_type)
        decision = DECISIONS[i % len(DECISIONS)]
        pep, request_id = (None, None) if i % 4 == 0 else (f"client-{i % 2}", f"req-{i}")
        clock.advance(STEPS[i % len(STEPS)])
        log.record(request, decision, pep, request_id)
        queued.append(
            (request.resource, decisions.queued(decisions._ns(clock.now()), request, decision, pep, request_id))
        )
    log.flush()
    assert log.written == 60 and log.pending == 0

    # The same decisions, in the order the writer wrote them (each batch sorted by time), the ordinary way.
    with sessions(db)() as session:
        order = [row.target for row in session.execute(text("SELECT target FROM decision_records ORDER BY seq"))]
    by_target = dict(queued)  # each decision's resource is its own
    assert sorted(order) == sorted(by_target)
    ordered = [by_target[target] for target in order]
    entries = [decisions._entry(item) for item in ordered]
    with sessions(db).begin() as session:
        store.append(session, store.AUDIT, entries[:30], trail.signing_key, 7, clock.now())
    with sessions(db).begin() as session:
        store.append(session, store.AUDIT, entries[30:], trail.signing_key, 7, clock.now())

    with sessions(db)() as session:
        written = [tuple(r) for r in session.execute(text(f"SELECT {COLUMNS} FROM decision_records ORDER BY seq"))]
        expected = [tuple(r) for r in session.execute(text(f"SELECT {COLUMNS} FROM audit_records ORDER BY seq"))]
        assert written == expected
        assert [r.hash for r in extend(0, GENESIS, entries)] == [row[-1] for row in written]
        for chain in store.CHAINS:
            report = store.verify_chain(session, chain)
            assert report.intact and report.records == 60, report
        signed = store.verify_chain(session, store.DECISIONS).signed_through
    assert signed // 7 == 60 // 7, "the writer signs a checkpoint whenever a batch crosses a multiple of 7"
