"""Soak: N minutes (default 10) of mixed traffic against a real `charter serve` on loopback, paced and bounded.

Four kinds of traffic, each from its own thread with its own connection, at a fixed pace:

- decisions: AuthZEN evaluations (allows and denies) at --decision-rate per second;
- logins: the sign-in page read for its CSRF token, then the password form posted (a fresh session each);
- tokens: OAuth client credentials grants at the token endpoint;
- admin writes: a user of a pool of 200 put with alternating groups (each a new revision, so the snapshot
  is refreshed under the decisions).

Reported: requests and errors per kind (an error is any answer other than the expected status, or a transport
failure), throughput, p50/p99 latency, and the server's resident memory (its whole process tree) sampled
every 2 s: the median of the minute after a warm-up (--warm-up, 120 s: pools, caches and the allocator's
arenas fill first) against the last minute's, and the trend. Exit status 1 when any request failed or memory
grew by more than --max-growth (a leak), never because of a speed.

    .venv/bin/python bench/soak.py                       # 10 minutes on a fresh SQLite store
    .venv/bin/python bench/soak.py --minutes 1           # a quick look
    .venv/bin/python bench/soak.py --database-url postgresql://postgres@127.0.0.1:5432/charter_soak
"""

from __future__ import annotations

import benchkit

# isort: split

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

bench_http = benchkit.load_http_bench()

PASSWORD = "soak staple orbit lantern"
USER = "soaker"
POOL = 200  # users the admin writes cycle through
SAMPLE_EVERY = 2.0  # seconds between memory samples


@dataclass
class Kind:
    """One kind of traffic: what it sent, how long each took, what went wrong."""

    name: str
    rate: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def record(self, seconds: float, ok: bool, detail: str) -> None:
        self.latencies.append(seconds)
        if not ok:
            self.errors += 1
            if len(self.samples) < 5:
                self.samples.append(detail[:300])


def paced(kind: Kind, until: float, stop: threading.Event, step: Callable[[], tuple[bool, str]]) -> None:
    """Call `step` kind.rate times a second until `until` (monotonic), recording each outcome."""
    interval = 1.0 / kind.rate
    due = time.monotonic()
    while not stop.is_set() and time.monotonic() < until:
        started = time.perf_counter()
        try:
            ok, detail = step()
        except httpx.HTTPError as error:
            ok, detail = False, f"{type(error).__name__}: {error}"
        kind.record(time.perf_counter() - started, ok, detail)
        due += interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        elif pause < -1.0:  # fell behind by more than a second: do not burst to catch up
            due = time.monotonic()


def setup(base: str, credential: str) -> dict:
    """A user with a password to sign in as, and a service's OAuth client for the token endpoint."""
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {credential}"}, timeout=30)
    with admin:
        assert admin.put(f"/admin/v1/users/{USER}", json={"groups": []}).status_code == 200
        answer = admin.put(f"/admin/v1/users/{USER}/password", json={"password": PASSWORD})
        assert answer.status_code == 200, answer.text
        body = {"name": "soak client", "grant_types": ["client_credentials"], "service": "billing-api"}
        made = admin.post("/admin/v1/oauth-clients", json=body)
        assert made.status_code == 201, made.text
        return made.json()


def steps(base: str, credential: str, client: dict) -> dict[str, Callable[[], tuple[bool, str]]]:
    """One request (or sign-in) of each kind, answering (as expected?, what came back)."""
    bearer = {"Authorization": f"Bearer {credential}"}
    deciding = httpx.Client(base_url=base, headers=bearer, timeout=30)
    writing = httpx.Client(base_url=base, headers=bearer, timeout=30)
    tokens = httpx.Client(base_url=base, timeout=30)
    counter = {"decision": 0, "write": 0}
    asks = [
        ("alice", "read", "db", "prod/orders", True),
        ("alice", "delete", "db", "prod/orders", False),
        ("dave", "write", "db", "staging/app", False),
        ("bob", "read", "reports", "finance/q1", None),
    ]

    def decision() -> tuple[bool, str]:
        subject, action, kind, resource, expected = asks[counter["decision"] % len(asks)]
        counter["decision"] += 1
        body = {
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": kind, "id": resource},
            "context": {"time": "2026-06-01T12:00:00Z"},
        }
        response = deciding.post("/access/v1/evaluation", json=body)
        ok = response.status_code == 200 and (expected is None or response.json()["decision"] is expected)
        return ok, f"{response.status_code} {response.text}"

    def login() -> tuple[bool, str]:
        with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as browser:
            page = browser.get("/login")
            found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            if page.status_code != 200 or found is None:
                return False, f"login page {page.status_code}"
            form = {"csrf_token": found.group(1), "username": USER, "password": PASSWORD}
            signed = browser.post("/login", data=form)
            return signed.status_code == 303 and "charter_session" in signed.cookies, f"{signed.status_code}"

    def token() -> tuple[bool, str]:
        response = tokens.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        return response.status_code == 200 and "access_token" in response.json(), f"{response.status_code}"

    def write() -> tuple[bool, str]:
        number = counter["write"]
        counter["write"] += 1
        groups = ["sre"] if (number // POOL) % 2 == 0 else ["support"]
        response = writing.put(f"/admin/v1/users/soak-{number % POOL}", json={"groups": groups})
        return response.status_code == 200, f"{response.status_code} {response.text}"

    return {"decisions": decision, "logins": login, "tokens": token, "admin writes": write}


def rss_mib(server) -> float:
    """Resident memory of the server's whole process tree, MiB."""
    return _status_sum(server, "VmRSS:") / 1024


def thread_count(server) -> int:
    """Threads of the server's whole process tree (the thread pool grows under load, and memory with it)."""
    return _status_sum(server, "Threads:")


def _status_sum(server, field: str) -> int:
    total = 0
    for pid in server.pids():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB): MiB per second."""
    mean_t = statistics.fmean(t for t, _ in points)
    mean_m = statistics.fmean(m for _, m in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (m - mean_m) for t, m in points) / spread if spread else 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace) -> int:
    seconds = args.minutes * 60
    env = dict(os.environ)
    env.pop("CHARTER_DATABASE_URL", None)
    data = tempfile.mkdtemp(prefix="charter-soak-")
    env["CHARTER_DATA_DIR"] = data
    credential = None
    if args.database_url:
        env["CHARTER_DATABASE_URL"] = args.database_url
        credential = bench_http.mint_credential(env)
    env["CHARTER_LOG_LEVEL"] = "warning"
    server = bench_http.start_server(1, env, seconds + 180, credential)
    try:
        client = setup(server.base, server.credential)
        kinds = {
            "decisions": Kind("decisions", args.decision_rate),
            "logins": Kind("logins", args.login_rate),
            "tokens": Kind("tokens", args.token_rate),
            "admin writes": Kind("admin writes", args.write_rate),
        }
        actions = steps(server.base, server.credential, client)
        stop = threading.Event()
        started = time.monotonic()
        until = started + seconds
        threads = [
            threading.Thread(target=paced, args=(kinds[name], until, stop, actions[name]), daemon=True)
            for name in kinds
        ]
        for thread in threads:
            thread.start()
        memory: list[tuple[float, float]] = []
        try:
            while time.monotonic() < until:
                memory.append((time.monotonic() - started, rss_mib(server)))
                if args.verbose and len(memory) % 5 == 1:
                    done = {name: len(kind.latencies) for name, kind in kinds.items()}
                    print(
                        f"{memory[-1][0]:6.0f} s  RSS {memory[-1][1]:7.1f} MiB  threads {thread_count(server)}  {done}",
                        flush=True,
                    )
                time.sleep(min(SAMPLE_EVERY, max(0.0, until - time.monotonic())))
        except KeyboardInterrupt:
            stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.monotonic() - started
        memory.append((elapsed, rss_mib(server)))
        metrics = httpx.get(server.base + "/metrics", timeout=30).text
        ready = httpx.get(server.base + "/readyz", timeout=30).status_code
        alive = server.process.poll() is None
    finally:
        server.stop()
    return report(args, kinds, memory, elapsed, metrics, ready, alive, server.output)


def report(args, kinds: dict[str, Kind], memory, elapsed: float, metrics: str, ready: int, alive: bool, output):
    print(f"soak: {elapsed / 60:.1f} min on {bench_http.machine()}, Python {sys.version.split()[0]}")
    print(f"store: {'PostgreSQL' if args.database_url else 'SQLite'}; paced rates/s: " + ", ".join(
        f"{k.name} {k.rate:g}" for k in kinds.values()))  # fmt: skip
    print()
    print(f"| {'kind':<13} | {'requests':>9} | {'errors':>6} | {'per s':>7} | {'p50 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 15}|{'-' * 10}:|{'-' * 7}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|")
    for kind in kinds.values():
        count = len(kind.latencies)
        print(
            f"| {kind.name:<13} | {count:>9,} | {kind.errors:>6} | {count / elapsed:>7.1f} | "
            f"{percentile(kind.latencies, 0.5) * 1000:>7.2f} | {percentile(kind.latencies, 0.99) * 1000:>7.2f} |"
        )
    # Each sign-in's argon2id hash holds 64 MiB while it runs, so single samples swing by that much: the windows
    # are compared by their medians (and minimums), and the trend is a least-squares slope after the warm-up.
    end = memory[-1][0]
    warm = min(args.warm_up, max(0.0, end - 120))  # a short run compares what it has
    raw_first = [rss for at, rss in memory if at <= 60] or [memory[0][1]]
    first = [rss for at, rss in memory if warm <= at <= warm + 60] or [memory[0][1]]
    last = [rss for at, rss in memory if at >= end - 60] or [memory[-1][1]]
    growth = (statistics.median(last) - statistics.median(first)) / statistics.median(first)
    steady = [(at, rss) for at, rss in memory if at >= warm]
    slope = _slope(steady) * 60 if len(steady) > 2 else 0.0
    print()
    print(
        f"RSS (server process tree), {len(memory)} samples every {SAMPLE_EVERY:g} s; medians (min): first minute "
        f"{statistics.median(raw_first):.1f} ({min(raw_first):.1f}) MiB; minute from {warm:g} s "
        f"{statistics.median(first):.1f} ({min(first):.1f}) MiB; last minute {statistics.median(last):.1f} "
        f"({min(last):.1f}) MiB: {growth:+.1%} since {warm:g} s, trend {slope:+.2f} MiB/min; overall max "
        f"{max(r for _, r in memory):.1f} MiB at {max(memory, key=lambda m: m[1])[0]:.0f} s"
    )
    shown = memory[:: max(1, len(memory) // 15)]
    print("RSS over time (s: MiB): " + ", ".join(f"{at:.0f}: {rss:.0f}" for at, rss in shown))
    wanted = ("charter_decision_log_dropped_total", "charter_decision_log_queue_depth", "charter_snapshot_revision")
    for line in metrics.splitlines():
        if line.startswith(wanted):
            print("metric: " + line)
    problems = [f"{k.name}: {k.errors} errors, e.g. {k.samples}" for k in kinds.values() if k.errors]
    if not alive:
        problems.append("the server exited")
    if ready != 200:
        problems.append(f"/readyz answered {ready} at the end")
    if growth > args.max_growth:
        problems.append(f"memory grew {growth:.1%} after the warm-up to the last minute (limit {args.max_growth:.0%})")
    tracebacks = [line for line in output if "Traceback" in line]
    if tracebacks:
        problems.append(f"{len(tracebacks)} tracebacks in the server's output")
    print()
    print("result: " + ("ok: no errors, memory flat" if not problems else "PROBLEMS:\n  " + "\n  ".join(problems)))
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--decision-rate", type=float, default=200.0, help="decisions per second")
    parser.add_argument("--login-rate", type=float, default=2.0, help="sign-ins per second (argon2id each)")
    parser.add_argument("--token-rate", type=float, default=10.0, help="client credentials grants per second")
    parser.add_argument("--write-rate", type=float, default=5.0, help="admin writes per second")
    parser.add_argument(
        "--warm-up",
        type=float,
        default=120.0,
        help="seconds before the reference minute (pools, caches and malloc arenas fill; default 120)",
    )
    parser.add_argument("--max-growth", type=float, default=0.2, help="memory growth that counts as a leak")
    parser.add_argument("--database-url", help="PostgreSQL store (default: a fresh SQLite store)")
    parser.add_argument("--verbose", action="store_true", help="print progress every 10 s")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 120:
        parser.error("--minutes must be above 0 and at most 120")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
