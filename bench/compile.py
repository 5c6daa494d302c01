"""Compile benchmark: how long `compile_snapshot` takes, and how much memory, for 1,000,000 memberships.

    .venv/bin/python bench/compile.py [--users U] [--groups G] [--per-user K] [--repeat R]

Builds, seeded with `random.Random(7)`, a directory of U users (default
100,000) each in K distinct random groups (default 10) out of G (default
10,000): U x K = 1,000,000 memberships. The charter is shape (b) of
../shared/bench/pdp_workload.md: one clause per group, `Members of group "gK"
may read and write "gK/*".`, and `No one may delete "*".`

Measures separately, with time.perf_counter: generating the directory data,
`load_directory`, parsing and consolidating the charter, and `compile_snapshot`
(best and median of R runs, default 3; each run's snapshot is dropped before
the next). Reports the resident memory before compiling, the peak resident
memory of the process (`ru_maxrss`, which includes the directory and the
charter) and the peak minus the resident memory before the first compile.

Targets from the issue: compile under 10 s and under 1 GiB resident. This is a
benchmark, not a test: it exits non-zero only if the compiled snapshot gives a
wrong answer on a sample of requests, never because of a timing.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from charter.directory.model import load_directory
from charter.language import consolidate, parse_charter
from charter.policy.request import Request
from charter.policy.snapshot import compile_snapshot

SEED = 7
TARGET_SECONDS = 10.0
TARGET_MIB = 1024.0


def resident_mib() -> float:
    """The current resident set, from /proc (Linux); the peak where that is not available."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_mib()


def peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def charter_text(groups: int) -> str:
    lines = ['Charter "Compile Bench".', "  Effective 2026-01-01.", ""]
    lines.extend(f'Clause {k + 1}. Members of group "g{k}" may read and write "g{k}/*".' for k in range(groups))
    lines.append(f'Clause {groups + 1}. No one may delete "*".')
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--per-user", type=int, default=10, help="groups per user (default 10)")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    console.print("load average before the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    console.print("command: " + " ".join(["bench/compile.py", *(argv if argv is not None else sys.argv[1:])]))

    rng = random.Random(SEED)
    steps: list[tuple[str, float, str]] = []

    t = time.perf_counter()
    memberships = [rng.sample(range(options.groups), options.per_user) for _ in range(options.users)]
    data = {
        "users": {f"u{i}": {"groups": [f"g{k}" for k in member_of]} for i, member_of in enumerate(memberships)},
        "groups": [f"g{k}" for k in range(options.groups)],
    }
    count = options.users * options.per_user
    steps.append(("generate the directory data", time.perf_counter() - t, f"{count:,} memberships"))

    t = time.perf_counter()
    directory = load_directory(data)
    loaded = f"{len(directory.users):,} users, {len(directory.groups):,} groups"
    steps.append(("load_directory", time.perf_counter() - t, loaded))
    del data

    t = time.perf_counter()
    version = consolidate(parse_charter(charter_text(options.groups)), [], None)
    steps.append(("parse + consolidate the charter", time.perf_counter() - t, f"{len(version.clauses):,} clauses"))

    gc.collect()
    before = resident_mib()
    times = []
    snapshot = None
    for _ in range(max(1, options.repeat)):
        snapshot = None
        gc.collect()
        t = time.perf_counter()
        snapshot = compile_snapshot(version, directory)
        times.append(time.perf_counter() - t)
    assert snapshot is not None
    peak = peak_mib()
    steps.append(
        (
            "compile_snapshot",
            min(times),
            f"best of {len(times)}; median {statistics.median(times):.2f} s; runs "
            + ", ".join(f"{x:.2f}" for x in times),
        )
    )

    # Check the compiled snapshot on a sample: allow iff not delete and the folder is one of the user's groups.
    wrong = 0
    sample = 10_000
    for _ in range(sample):
        user = rng.randrange(options.users)
        action = rng.choice(("read", "write", "delete"))
        folder = rng.choice(memberships[user]) if rng.random() < 0.5 else rng.randrange(options.groups)
        decision = snapshot.evaluate(Request(f"u{user}", action, f"g{folder}/r{rng.randrange(10**6)}"))
        if decision.allowed != (action != "delete" and folder in memberships[user]):
            wrong += 1

    table = Table(title=f"Snapshot compile: {count:,} memberships, {len(version.clauses):,} clauses")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("note")
    for name, seconds, note in steps:
        table.add_row(name, f"{seconds:.2f}", note)
    console.print(table)

    memory = Table(title="Resident memory")
    memory.add_column("what")
    memory.add_column("MiB", justify="right")
    memory.add_row("before compiling (interpreter, directory, charter)", f"{before:,.0f}")
    memory.add_row("peak of the process (ru_maxrss)", f"{peak:,.0f}")
    memory.add_row("peak minus before compiling", f"{peak - before:,.0f}")
    console.print(memory)

    best = min(times)

    def met(ok: bool) -> str:
        return "[green]yes[/]" if ok else "[red]no[/]"

    console.print(
        f"compile under {TARGET_SECONDS:g} s: {met(best < TARGET_SECONDS)} ({best:.2f} s); "
        f"peak under {TARGET_MIB:,.0f} MiB: {met(peak < TARGET_MIB)} ({peak:,.0f} MiB)"
    )
    if wrong:
        console.print(f"[bold red]FAILED: {wrong:,} wrong answers out of {sample:,} sampled requests[/]")
        return 1
    console.print(f"[green]{sample:,} sampled requests answered as expected[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
