"""Amendment simulation: replay 1,000,000 logged decisions against a proposed amendment.

    .venv/bin/python bench/simulate.py [--decisions 1000000] [--days 30] [--database-url URL]

Builds a fresh store (SQLite in a temporary directory, or `--database-url`, an empty PostgreSQL
database) with the sample charter and directory, and fills its decision log with `--decisions`
decisions: the request mix of bench/http.py (subjects of the sample directory, contexts with and
without MFA, addresses, times on weekdays, evenings and weekends), each decided by the snapshot in force
and written through the decision log's own writer (`ThreadWriter`, batches of 50,000), at times spread
over the last `--days` days. It then proposes the sample store's amendment 1 (the Acme amendment 4:
support reads tickets at any hour with MFA, a partner gains shipments, clause 15 struck) and times
`amendments.simulate` over the window: reading the log, rebuilding each question, asking both versions.

Check: the same questions, as generated (not read back from the store), are asked of both versions
directly; the flips counted that way, by direction and clause, must equal the simulation's, or the
script exits 1.
"""

from __future__ import annotations

import benchkit  # first: it keeps bench/ off sys.path (see benchkit)

# isort: split

import argparse
import collections
import datetime as dt
import os
import platform
import random
import sys
import tempfile
import time

WRITE_BATCH = 50_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--database-url", default=None)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="charter-bench-simulate-") as directory:
        os.environ["CHARTER_DATA_DIR"] = directory  # the audit signing key
        url = options.database_url or f"sqlite:///{directory}/charter.db"
        return run(url, options.decisions, options.days)


def run(url: str, count: int, days: int) -> int:
    from charter import amendments
    from charter.audit import decisions
    from charter.audit.writer import ThreadWriter
    from charter.bootstrap import initialize, sample
    from charter.clock import FixedClock
    from charter.directory import repository
    from charter.engine import Engine
    from charter.policy.request import Context, Request
    from charter.policy.snapshot import compile_snapshot
    from charter.store.db import make_engine, upgrade
    from charter.web import authzen

    http_bench = benchkit.load_http_bench()
    print(f"Python {platform.python_version()}; {http_bench.machine()}")
    print(
        f"command: bench/simulate.py --decisions {count} --days {days}"
        + ("" if url.startswith("sqlite") else " (PostgreSQL)")
    )
    db = make_engine(url)
    upgrade(db)
    initialize(db)
    engine = Engine(db)
    snapshot = engine.rebuild()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rng = random.Random(7)
    distinct = [authzen.to_request(e) for e in http_bench.evaluations(5_000, rng)]
    answers = [snapshot.evaluate(r) for r in distinct]

    # The log: `count` decisions at times spread over the window, written as the server's writer writes them.
    started = time.perf_counter()
    writer = ThreadWriter(engine.sessions, engine.audit)
    span_us = days * 86_400 * 1_000_000 - 60_000_000  # all inside the window, a minute clear of its start
    end_ns = int(now.timestamp()) * 1_000_000_000
    asked = []
    for first in range(0, count, WRITE_BATCH):
        batch = []
        for _ in range(min(WRITE_BATCH, count - first)):
            index = rng.randrange(len(distinct))
            moment_ns = end_ns - rng.randrange(span_us) * 1000 - 1000
            batch.append(decisions.queued(moment_ns, distinct[index], answers[index], "bench", None))
            asked.append((index, moment_ns))
        writer.write(batch)
        print(f"\r  logged {first + len(batch):,} decisions", end="", flush=True)
    print(f"\r  logged {count:,} decisions in {time.perf_counter() - started:.1f} s")

    with engine.sessions.begin() as session:
        directory = repository.load(session)
        row = amendments.propose(session, sample("amendment-1.amendment"), directory, "user:erin", now).row
        number = row.number

    # The measured part: what `charter amend simulate` and the API do.
    with engine.sessions() as session:
        row = amendments.find(session, amendments.charter_row(session).name, number)
        started, cpu = time.perf_counter(), time.process_time()
        report, since, _ = amendments.simulate(session, row, directory, now + dt.timedelta(seconds=1), days)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        current, proposed = amendments._versions(session, row, now, backdate=since.date())

    # The check: the same questions as generated, asked of both versions directly.
    before = compile_snapshot(current, directory, clock=FixedClock(now))
    after = compile_snapshot(proposed, directory, clock=FixedClock(now))
    expected: collections.Counter = collections.Counter()
    for index, moment_ns in asked:
        request = distinct[index]
        if request.context.time is None:  # as logged: the record's time stands in for a context without one
            moment = dt.datetime.fromtimestamp(moment_ns // 1000 / 1e6, dt.UTC)
            context = request.context
            with_time = Context(context.mfa, context.ip, moment, context.scopes, context.resource_attributes)
            request = Request(request.subject, request.action, request.resource, with_time, request.subject_type)
        old, new = before.evaluate(request), after.evaluate(request)
        if old.allowed != new.allowed:
            expected[("allow -> deny" if old.allowed else "deny -> allow", old.clause, new.clause)] += 1
    found = collections.Counter({(g.direction, g.clause_before, g.clause_after): g.count for g in report.ordered()})

    print(
        f"simulate: {report.replayed:,} decisions replayed in {wall:.1f} s ({cpu:.1f} s CPU), "
        f"{report.replayed / wall:,.0f} a second; {report.flips:,} flips "
        f"({report.flipped('allow -> deny'):,} allow -> deny, {report.flipped('deny -> allow'):,} deny -> allow)"
    )
    for group in report.ordered():
        print(f"  {group.count:>9,}  {group.direction}: {group.describe()}")
    problems = []
    if report.replayed != count:
        problems.append(f"replayed {report.replayed:,}, logged {count:,}")
    if found != expected:
        problems.append(f"flips differ from asking both versions directly: {dict(found)} != {dict(expected)}")
    if wall >= 60:
        problems.append(f"took {wall:.1f} s, the target is under 60 s")
    print("check: " + ("the flips match asking both versions directly" if not problems else "; ".join(problems)))
    db.dispose()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
