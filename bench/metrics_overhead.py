"""What the decision metrics cost on the hot path: `Snapshot.evaluate` alone against `DecisionMeter.evaluate`
(the same call, counted by effect and clause, one in 64 timed into the latency histogram).

    .venv/bin/python bench/metrics_overhead.py [--requests N] [--repeat R]

The sample charter and directory (what `charter init` loads), a mix of allows and denies, evaluated N times
each way, R rounds alternating, best round reported in ns per decision. No I/O.
"""

from __future__ import annotations

import benchkit  # noqa: F401  (keeps bench/ off sys.path, where http.py would hide the standard library's)

# isort: split

import argparse
import datetime as dt
import gc
import platform
import time
from importlib import resources

import yaml

from charter.clock import FixedClock
from charter.directory.model import load_directory
from charter.language.consolidate import consolidate
from charter.language.parser import parse_charter
from charter.metrics import DecisionMeter
from charter.policy.request import Request
from charter.policy.snapshot import compile_snapshot

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def snapshot():
    samples = resources.files("charter.samples")
    charter = parse_charter(samples.joinpath("charter.charter").read_text(encoding="utf-8"))
    directory = load_directory(yaml.safe_load(samples.joinpath("directory.yaml").read_text(encoding="utf-8")))
    return compile_snapshot(consolidate(charter, [], NOW.date()), directory, clock=FixedClock(NOW), revision=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    snap = snapshot()
    asks = [
        Request("alice", "read", "db:prod/orders"),
        Request("alice", "delete", "db:prod/orders"),
        Request("dave", "write", "db:staging/app"),
        Request("bob", "read", "reports:finance/q1"),
    ]
    requests = [asks[i % len(asks)] for i in range(args.requests)]
    meter = DecisionMeter()
    plain_best = metered_best = float("inf")
    gc.collect()
    gc.freeze()
    for _ in range(args.repeat):
        started = time.perf_counter_ns()
        for request in requests:
            snap.evaluate(request)
        plain_best = min(plain_best, (time.perf_counter_ns() - started) / len(requests))
        started = time.perf_counter_ns()
        for request in requests:
            meter.evaluate(snap, request)
        metered_best = min(metered_best, (time.perf_counter_ns() - started) / len(requests))
    assert meter.total() == args.requests * args.repeat, "a decision was not counted"
    print(f"metrics overhead, Python {platform.python_version()}, {args.requests:,} decisions x {args.repeat}")
    print("| path | ns per decision |")
    print("|---|---:|")
    print(f"| Snapshot.evaluate | {plain_best:,.0f} |")
    print(f"| DecisionMeter.evaluate (counted, 1 in 64 timed) | {metered_best:,.0f} |")
    print(f"| overhead | {metered_best - plain_best:+,.0f} ({(metered_best - plain_best) / plain_best:+.1%}) |")


if __name__ == "__main__":
    main()
