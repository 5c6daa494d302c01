"""Decision log overhead: the same HTTP decision load with the decision log on and off, in one run.

    .venv/bin/python bench/decision_log.py [--rounds 3] [--duration 10] [--modes "single max,batch max,single paced"]
                                           [--workers 1] [--rate 5000] [--database-url URL] [--quiet-wait S]

Needs wrk, like bench/http.py, whose requests, server start-up, correctness check and wrk runs it reuses
(it imports that script): this script only adds the on/off comparison, so the HTTP figures of both come
from one harness.

For each round, each mode, and each setting of the log (on: `charter serve` as shipped, every decision
queued and written to the "decisions" chain by the background writer; off: CHARTER_DECISION_LOG=off), a
fresh server is started on a fresh SQLite store (or on `--database-url`, PostgreSQL), then:

- correctness: 60 single evaluations and 3 batches of 100 must be answered as `Snapshot.evaluate` answers
  in this process (bench/http.py's check), and the first 200 single bodies and 10 batch bodies are sent
  once more and their answers kept: they must be the same, decision and clause, with the log on and off;
- a 2 s wrk warm-up, then the timed wrk run: "single max" (32 connections sending single evaluations as
  fast as answered), "batch max" (4 connections, batches of 100 to /access/v1/evaluations), or "single
  paced" (about `--rate` single evaluations/s; the connection count is calibrated once, on the first
  log-off server, and then used for every run, so on and off get the same offered load);
- SIGTERM; the server drains the decision log and exits (the time it takes is reported). The decisions
  written are counted in the store, and the allowed ones dropped because the sampled queue was full are
  read from the warning the log prints at shutdown. written + dropped must cover every decision the clients
  got an answer for (it may exceed it by the requests wrk left unanswered when it stopped); the script
  exits 1 otherwise, or if the answers differ, or on any non-2xx answer, or if the chain does not verify.

The on/off order alternates from round to round, so a drift of the VM's speed does not favour one.
Before each run the script waits (up to `--quiet-wait` s) for the machine to be quiet. The ratio reported
is the median of the log-on runs over the median of the log-off runs, with the spread of the runs.

In process, before the HTTP runs: `DecisionLog.record` per call next to `Snapshot.evaluate` per call (each
call timed with perf_counter_ns, p50/p99 by nearest rank, as bench/pdp.py does), on the same 2,000
requests, and the writer's cost per decision (`DecisionLog.flush` of 20,000 queued decisions into a SQLite
store, wall and thread CPU time).
"""

from __future__ import annotations

import benchkit  # first: it keeps bench/ off sys.path (see benchkit)

# isort: split

import argparse
import contextlib
import gc
import logging
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

http_bench = benchkit.load_http_bench()
SINGLE_PATH, BATCH_PATH, BATCH = http_bench.SINGLE_PATH, http_bench.BATCH_PATH, http_bench.BATCH
SETTINGS = ("off", "on")
DROPPED = re.compile(r"decision log stopped: (\d+) decisions written, (\d+) allowed ones dropped")
NOT_LOGGED = re.compile(r"(\d+) denied or privileged ones not logged")


# --- in process -------------------------------------------------------------------------------------------


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in nanoseconds."""
    return sorted_ns[max(1, math.ceil(q * len(sorted_ns))) - 1]


def timed_calls(call, args: list[tuple], rounds: int = 5) -> tuple[float, float, float]:
    """p50, p99 and mean ns of `call(*arg)` over `args`, each call timed alone; the best of `rounds` passes."""
    pc = time.perf_counter_ns
    best = None
    for _ in range(rounds):
        latencies = [0] * len(args)
        for i, arg in enumerate(args):
            t0 = pc()
            call(*arg)
            latencies[i] = pc() - t0
        latencies.sort()
        figures = (percentile(latencies, 0.5), percentile(latencies, 0.99), sum(latencies) / len(latencies))
        best = figures if best is None or figures[2] < best[2] else best
    assert best is not None
    return best


def in_process(count: int = 2_000, written: int = 20_000) -> None:
    from charter.audit.decisions import DecisionLog
    from charter.bootstrap import initialize
    from charter.engine import Engine
    from charter.store.db import make_engine, upgrade
    from charter.web import authzen

    with tempfile.TemporaryDirectory(prefix="charter-bench-decision-log-") as directory:
        previous = os.environ.get("CHARTER_DATA_DIR")
        os.environ["CHARTER_DATA_DIR"] = directory  # the audit signing key goes there
        db = make_engine(f"sqlite:///{directory}/charter.db")
        try:
            upgrade(db)
            initialize(db)
            engine = Engine(db)
            snapshot = engine.rebuild()
            requests = [authzen.to_request(e) for e in http_bench.evaluations(count, random.Random(http_bench.SEED))]
            decisions = [snapshot.evaluate(r) for r in requests]
            allowed = sum(d.allowed for d in decisions)
            gc.collect()
            gc.freeze()  # as the server does once started

            evaluate = timed_calls(snapshot.evaluate, [(r,) for r in requests])
            pairs = [(r, d, "bench", "request-id") for r, d in zip(requests, decisions, strict=True)]
            log = DecisionLog(engine.sessions, engine.audit, capacity=10 * count)  # never started: queues only
            recorded = timed_calls(log.record, pairs)
            full = DecisionLog(engine.sessions, engine.audit, capacity=1)  # every allow drops the oldest
            logging.getLogger("charter.audit").disabled = True  # its "queue full" warnings, expected here
            dropping = timed_calls(full.record, [p for p in pairs if p[1].allowed and p[1].grant is None])
            logging.getLogger("charter.audit").disabled = False
            print(f"\nin process, {count:,} requests of the HTTP mix ({allowed:,} allowed), ns a call:")
            print("| call | p50 ns | p99 ns | mean ns |")
            print("|---|---:|---:|---:|")
            for name, figures in (
                ("Snapshot.evaluate", evaluate),
                ("DecisionLog.record (queued)", recorded),
                ("DecisionLog.record (sampled queue full: drops the oldest)", dropping),
            ):
                print(f"| {name} | {figures[0]:,.0f} | {figures[1]:,.0f} | {figures[2]:,.0f} |")

            writer = DecisionLog(engine.sessions, engine.audit)
            for i in range(written):
                writer.record(*pairs[i % count])
            wall, cpu = time.perf_counter(), time.thread_time()
            writer.flush()
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            assert writer.written == written
            print(
                f"writer (DecisionLog.flush, batches of {writer.batch:,}, SQLite): {written:,} decisions in "
                f"{wall:.2f} s, {wall / written * 1e6:.1f} µs a decision ({cpu / written * 1e6:.1f} µs of CPU)"
            )
            gc.unfreeze()
        finally:
            db.dispose()
            if previous is None:
                os.environ.pop("CHARTER_DATA_DIR", None)
            else:
                os.environ["CHARTER_DATA_DIR"] = previous


# --- over HTTP ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One server's run of one mode."""

    setting: str
    mode: str
    round: int
    run: object  # bench/http.py's Run
    answered: int  # decisions the clients got an answer for (checks, warm-up, timed run)
    slack: int  # decisions in requests wrk may have left unanswered when it stopped
    written: int
    dropped: int
    drain_s: float
    answers: list = field(default_factory=list)
    not_logged: int = 0  # denies/privileged decisions past the kept queue's limit, as the server reported

    @property
    def decisions(self) -> float:
        return self.run.decisions  # type: ignore[attr-defined]


def fixed_answers(server, singles: list[bytes], batches: list[bytes]) -> list[tuple]:
    """(decision, clause) of each evaluation of a fixed set of requests."""
    answers = []
    for body in singles:
        status, _, answer = http_bench.call(server, "POST", SINGLE_PATH, body)
        assert status == 200, answer
        answers.append((answer["decision"], answer["context"].get("clause")))
    for body in batches:
        status, _, answer = http_bench.call(server, "POST", BATCH_PATH, body)
        assert status == 200, answer
        answers += [(a["decision"], a["context"].get("clause")) for a in answer["evaluations"]]
    return answers


def decision_rows(env: dict[str, str]) -> int:
    from sqlalchemy import func, select

    from charter.store.db import make_engine, sessions
    from charter.store.models import DecisionRecordRow

    db = make_engine(env.get("CHARTER_DATABASE_URL") or f"sqlite:///{env['CHARTER_DATA_DIR']}/charter.db")
    try:
        with sessions(db)() as session:
            return int(session.scalar(select(func.count()).select_from(DecisionRecordRow)) or 0)
    finally:
        db.dispose()


def verify_decisions(env: dict[str, str]) -> str | None:
    """None if the decisions chain verifies, else the finding."""
    from charter.audit import store
    from charter.store.db import make_engine, sessions

    db = make_engine(env.get("CHARTER_DATABASE_URL") or f"sqlite:///{env['CHARTER_DATA_DIR']}/charter.db")
    try:
        with sessions(db)() as session:
            report = store.verify_chain(session, store.DECISIONS)
    finally:
        db.dispose()
    return None if report.intact else str(report.finding)


def terminate(server, timeout: float) -> float:
    """SIGTERM to the server (not to bench/http.py's `timeout` wrapper, whose --kill-after would cut the drain
    short); seconds until it exited."""
    children = [pid for pid in server.pids() if pid != server.process.pid and _parent(pid) == server.process.pid]
    target = children[0] if shutil.which("timeout") and children else server.process.pid
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(target, signal.SIGTERM)
    try:
        server.process.wait(timeout=timeout)
    except Exception:
        server.stop()
        raise
    return time.monotonic() - started


def _parent(pid: int) -> int:
    with contextlib.suppress(OSError):
        return int(http_bench._stat(pid)[1])
    return 0


def run_one(setting, mode, round_, options, env, credential, bodies, connections, work) -> Outcome:
    singles, batches = bodies
    env = {**env, "CHARTER_DECISION_LOG": setting}
    before = decision_rows(env) if options.database_url else 0
    server = http_bench.start_server(options.workers, env, 3600, credential)
    try:
        scripts = {
            "single": http_bench.lua_script(SINGLE_PATH, singles, server.credential, 0, work, "single"),
            "paced": http_bench.lua_script(
                SINGLE_PATH, singles, server.credential, http_bench.PACE_DELAY_MS, work, "paced"
            ),
            "batch": http_bench.lua_script(BATCH_PATH, batches, server.credential, 0, work, "batch"),
        }
        problems = http_bench.check_answers(server, env, singles[:60], batches[:3])
        if problems:
            raise SystemExit("answers differ from Snapshot.evaluate:\n" + "\n".join(problems[:10]))
        answers = fixed_answers(server, singles[:200], batches[:10])
        answered = 60 + 3 * BATCH + len(answers)
        script, path, conns, per_request = {
            "single max": (scripts["single"], SINGLE_PATH, options.single_connections, 1),
            "batch max": (scripts["batch"], BATCH_PATH, options.batch_connections, BATCH),
            "single paced": (scripts["paced"], SINGLE_PATH, connections.get("paced", 0), 1),
        }[mode]
        if mode == "single paced" and not conns:
            conns = connections["paced"] = http_bench.paced_connections(server, script, 1, options.rate, 3)
            print(f"  (single paced: {conns} connections give about {options.rate:,}/s; used for every run)")
            answered = None  # calibration runs were not counted: no coverage check on this server
        if options.warmup:
            figures, *_ = http_bench.run_wrk(server, script, path, 1, conns, options.warmup)
            if answered is not None:
                answered += int(figures["requests"]) * per_request
        run = http_bench.measure(
            server, mode, options.workers, script, path, 1, conns, options.duration, per_request, False
        )
        if answered is not None:
            answered += run.requests * per_request
    except BaseException:
        server.stop()
        raise
    drain = terminate(server, options.drain_timeout)
    output = "\n".join(server.output)
    written = decision_rows(env) - before
    dropped = sum(int(m.group(2)) for m in DROPPED.finditer(output))
    not_logged = sum(int(m.group(1)) for m in NOT_LOGGED.finditer(output))  # the kept queue past its limit
    slack = (2 if options.warmup else 1) * conns * per_request
    return Outcome(
        setting,
        mode,
        round_,
        run,
        answered if answered is not None else -1,
        slack,
        written,
        dropped,
        drain,
        answers,
        not_logged,
    )


def summary(outcomes: list[Outcome], modes: list[str]) -> None:
    print()
    header = (
        "mode",
        "log",
        "decisions/s, each run",
        "median",
        "spread",
        "p50 ms",
        "p99 ms",
        "server µs/decision",
        "written",
        "dropped",
        "drain s",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|")
    for mode in modes:
        for setting in SETTINGS:
            runs = [o for o in outcomes if o.mode == mode and o.setting == setting]
            if not runs:
                continue
            rates = [o.decisions for o in runs]
            median = statistics.median(rates)
            spread = f"{(min(rates) / median - 1) * 100:+.1f}% / {(max(rates) / median - 1) * 100:+.1f}%"
            print(
                f"| {mode} | {setting} | " + ", ".join(f"{r:,.0f}" for r in rates) + f" | {median:,.0f} | {spread} | "
                f"{statistics.median(o.run.p50_ms for o in runs):.2f} | "  # type: ignore[attr-defined]
                f"{statistics.median(o.run.p99_ms for o in runs):.2f} | "  # type: ignore[attr-defined]
                f"{statistics.median(o.run.server_us / o.run.per_request for o in runs):,.1f} | "  # type: ignore[attr-defined]
                f"{sum(o.written for o in runs):,} | {sum(o.dropped for o in runs):,} | "
                f"{max(o.drain_s for o in runs):.1f} |"
            )
    print()
    for mode in modes:
        on = [o.decisions for o in outcomes if o.mode == mode and o.setting == "on"]
        off = [o.decisions for o in outcomes if o.mode == mode and o.setting == "off"]
        if not on or not off:
            continue
        ratio = statistics.median(on) / statistics.median(off)
        pairs = {}
        for o in outcomes:
            if o.mode == mode:
                pairs.setdefault(o.round, {})[o.setting] = o.decisions
        per_round = [p["on"] / p["off"] for p in pairs.values() if "on" in p and "off" in p]
        print(
            f"{mode}: log on / log off = {ratio:.3f} (median over median; per round "
            + ", ".join(f"{r:.3f}" for r in per_round)
            + "): "
            + ("within 10%" if ratio >= 0.9 else "NOT within 10%")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode and setting (default 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed wrk run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before it (default 2)")
    parser.add_argument("--modes", default="single max,batch max,single paced", help="comma-separated modes")
    parser.add_argument("--workers", type=int, default=1, help="charter serve --workers (default 1)")
    parser.add_argument("--rate", type=int, default=5_000, help="single paced: evaluations/s (default 5,000)")
    parser.add_argument("--single-connections", type=int, default=32, help="connections, single max (default 32)")
    parser.add_argument("--batch-connections", type=int, default=4, help="connections, batch max (default 4)")
    parser.add_argument("--database-url", help="a PostgreSQL URL instead of a fresh SQLite store per server")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds a server may take to stop")
    parser.add_argument("--quiet-below", type=float, default=0.3, help="wait for fewer busy cores than this")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="wait at most this long (0: never)")
    parser.add_argument("--skip-in-process", action="store_true", help="only the HTTP runs")
    options = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/decision_log.py needs wrk on PATH (`apt-get install wrk`), as bench/http.py does", file=sys.stderr)
        return 2
    modes = [m.strip() for m in options.modes.split(",")]
    for mode in modes:
        if mode not in ("single max", "batch max", "single paced"):
            parser.error(f"unknown mode {mode!r}")
    print(f"Python {platform.python_version()}; {http_bench.versions()}")
    print(f"machine: {http_bench.machine()}")
    print("load average before the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"speed check before the run: {http_bench.speed():.2f} M loop iterations/s")
    print("command: " + " ".join(["bench/decision_log.py", *(argv if argv is not None else sys.argv[1:])]))
    if not options.skip_in_process:
        in_process()

    rng = random.Random(http_bench.SEED)
    singles = http_bench.single_bodies(rng, 1_000)
    batches = http_bench.batch_bodies(rng, 50)
    outcomes: list[Outcome] = []
    problems: list[str] = []
    connections: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="charter-bench-decision-log-") as temporary:
        work = Path(temporary)
        base = {k: v for k, v in os.environ.items() if k not in ("CHARTER_DATABASE_URL", "CHARTER_DECISION_LOG")}
        credential = None
        if options.database_url:
            base["CHARTER_DATABASE_URL"] = options.database_url
            base["CHARTER_DATA_DIR"] = str(work / "data")
            credential = http_bench.mint_credential(base)
        count = 0
        for round_ in range(1, options.rounds + 1):
            for mode in modes:
                for setting in SETTINGS if round_ % 2 else tuple(reversed(SETTINGS)):
                    count += 1
                    env = dict(base)
                    if not options.database_url:
                        env["CHARTER_DATA_DIR"] = str(work / f"data-{count}")
                    if options.quiet_wait:
                        load = http_bench.wait_for_quiet(options.quiet_below, options.quiet_wait)
                        if load >= options.quiet_below:
                            print(f"  (the machine is busy: {load:.2f} cores in use; measuring anyway)")
                    outcome = run_one(
                        setting,
                        mode,
                        round_,
                        options,
                        env,
                        credential,
                        (singles, batches),
                        connections,
                        work,
                    )
                    outcomes.append(outcome)
                    report(outcome, problems)
                    if setting == "on" and not options.database_url:
                        finding = verify_decisions(env)
                        if finding:
                            problems.append(f"{mode}, round {round_}: the decisions chain is broken: {finding}")
        if options.database_url:
            finding = verify_decisions(base)
            if finding:
                problems.append(f"the decisions chain is broken: {finding}")
    reference = outcomes[0].answers
    for outcome in outcomes[1:]:
        if outcome.answers != reference:
            problems.append(f"{outcome.mode}, log {outcome.setting}, round {outcome.round}: different answers")
    allowed = sum(1 for decision, _ in reference if decision)
    print(
        f"\nanswers: {len(reference):,} evaluations sent to each of the {len(outcomes)} servers, {allowed:,} allowed "
        f"and {len(reference) - allowed:,} denied: "
        + (
            "the same, decision and clause, in every run"
            if not any("different answers" in p for p in problems)
            else "DIFFERENT"
        )
    )
    summary(outcomes, modes)
    return http_bench.finish(problems)


def report(outcome: Outcome, problems: list[str]) -> None:
    run = outcome.run
    print(
        f"round {outcome.round}, {outcome.mode}, log {outcome.setting}: {run.decisions:,.0f} decisions/s, "  # type: ignore[attr-defined]
        f"p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, server {run.server_cpu:.2f} cores, "  # type: ignore[attr-defined]
        f"{run.server_us / run.per_request:,.1f} µs a decision, others {run.other_cpu:.2f}; "  # type: ignore[attr-defined]
        f"written {outcome.written:,}, dropped {outcome.dropped:,}, answered {outcome.answered:,}; "
        f"stopped in {outcome.drain_s:.1f} s"
    )
    if run.errors:  # type: ignore[attr-defined]
        problems.append(f"{outcome.mode}, log {outcome.setting}: {run.errors} errors or non-2xx answers")  # type: ignore[attr-defined]
    if outcome.setting == "off" and outcome.written:
        problems.append(f"{outcome.mode}, log off: {outcome.written} decisions written")
    if outcome.setting == "on" and outcome.answered >= 0:
        logged = outcome.written + outcome.dropped
        if not outcome.answered <= logged <= outcome.answered + outcome.slack:
            problems.append(
                f"{outcome.mode}, round {outcome.round}: {outcome.answered:,} decisions answered but "
                f"{outcome.written:,} written + {outcome.dropped:,} dropped"
                + (f"; the server said {outcome.not_logged:,} were not logged" if outcome.not_logged else "")
            )


if __name__ == "__main__":
    sys.exit(main())
