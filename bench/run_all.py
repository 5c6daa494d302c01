"""Every benchmark in bench/ at a small size, one after another, as one suite; one table at the end.

Small sizes, so the suite takes a few minutes and tells whether each script still runs and answers right
(each exits non-zero only when a result is wrong, never because of a speed). The figures of record, at full
size, are in docs/performance.md with their commands; these are for a quick comparison on one machine.

    .venv/bin/python bench/run_all.py                 # everything
    .venv/bin/python bench/run_all.py parse pdp       # some, by name
    .venv/bin/python bench/run_all.py --list

Scripts that need a tool not installed (wrk for http and decision_log) are reported as skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]
    headline: str  # a regular expression: the first output line it matches is shown (else the last line)
    needs: str | None = None  # a program that must be on PATH
    timeout: float = 600.0


SUITE = (
    Bench("parse", ("--clauses", "1000", "--repeat", "1"), r"^\| parse\s+\|"),
    Bench("pdp", ("--requests", "2000", "--shape", "a"), r"charter.*p50|^\| charter"),
    Bench("metrics_overhead", ("--requests", "50000", "--repeat", "3"), r"^\| overhead"),
    Bench("compile", ("--users", "5000", "--groups", "500", "--repeat", "1"), r"^compile under"),
    Bench("refresh", ("--users", "5000", "--groups", "500", "--writes", "20"), r"put_identity"),
    Bench("token_verify", ("--tokens", "2000", "--repeats", "1"), r"^cached"),
    Bench("tokens", ("--requests", "200", "--warmup", "20"), r"tokens/s"),
    Bench("scim", ("--users", "500", "--groups", "50", "--threads", "2"), r"^total:"),
    Bench("simulate", ("--decisions", "20000", "--days", "7"), r"^simulate:"),
    Bench("http", ("--workers", "1", "--duration", "3", "--warmup", "1"), r"^single max:|^\s*single max:", needs="wrk"),
    Bench(
        "decision_log",
        ("--rounds", "1", "--duration", "3", "--warmup", "1", "--modes", "single max", "--quiet-wait", "0"),
        r"log on / log off",
        needs="wrk",
    ),
    Bench("soak", ("--minutes", "0.5"), r"^\| decisions"),
)


@dataclass
class Result:
    bench: Bench
    status: str
    seconds: float
    headline: str
    log: Path | None


def run(bench: Bench, logs: Path) -> Result:
    if bench.needs and shutil.which(bench.needs) is None:
        return Result(bench, f"skipped: needs {bench.needs}", 0.0, "", None)
    command = [sys.executable, str(HERE / f"{bench.name}.py"), *bench.args]
    log = logs / f"{bench.name}.log"
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=bench.timeout, cwd=HERE.parent)
        output, status = done.stdout + done.stderr, "ok" if done.returncode == 0 else f"FAILED ({done.returncode})"
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        status = f"FAILED (timeout {bench.timeout:g} s)"
    seconds = time.monotonic() - started
    log.write_text(" ".join(command) + "\n\n" + output, encoding="utf-8")
    return Result(bench, status, seconds, headline(output, bench.headline), log)


def headline(output: str, pattern: str) -> str:
    lines = [line.strip().replace("│", "|") for line in output.splitlines() if line.strip()]
    wanted = re.compile(pattern)
    chosen = next((line for line in lines if wanted.search(line)), lines[-1] if lines else "")
    chosen = re.sub(r"\s*\|\s*", " | ", chosen).strip(" |")
    return chosen if len(chosen) <= 110 else chosen[:107] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="name each benchmark and its arguments")
    parser.add_argument("--logs", type=Path, default=None, help="where each script's output goes (a temp dir)")
    args = parser.parse_args(argv)
    chosen = [b for b in SUITE if not args.names or b.name in args.names]
    unknown = set(args.names) - {b.name for b in SUITE}
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    if args.list:
        for bench in chosen:
            print(f"{bench.name:<13} bench/{bench.name}.py {' '.join(bench.args)}")
        return 0
    import tempfile

    logs = args.logs or Path(tempfile.mkdtemp(prefix="charter-bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"bench suite, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.platform()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; logs in {logs}", flush=True)  # fmt: skip
    results = []
    for bench in chosen:
        print(f"  {bench.name} ...", end=" ", flush=True)
        results.append(run(bench, logs))
        print(f"{results[-1].status} in {results[-1].seconds:.0f} s", flush=True)
    print()
    print(f"| {'benchmark':<13} | {'arguments':<44} | {'status':<18} | {'s':>5} | headline |")
    print(f"|{'-' * 15}|{'-' * 46}|{'-' * 20}|{'-' * 6}:|---|")
    for r in results:
        arguments = " ".join(r.bench.args)
        print(f"| {r.bench.name:<13} | {arguments:<44} | {r.status:<18} | {r.seconds:>5.0f} | {r.headline} |")
    failed = [r for r in results if r.status.startswith("FAILED")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
