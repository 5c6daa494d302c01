"""Bulk provisioning over HTTP: users and groups pushed to a running `charter serve` by concurrent clients.

    .venv/bin/python bench/scim.py [--users 100000] [--groups 10000] [--threads 8] [--api scim|admin]
                                   [--database-url URL]

Starts `charter serve` (one worker) on a free loopback port with a fresh store (SQLite in a temporary
CHARTER_DATA_DIR, or `--database-url`, e.g. PostgreSQL), then provisions as an identity provider would,
`--threads` connections in parallel, each request timed with perf_counter_ns:

* `--api scim` (the default): `POST /scim/v2/Users` (userName, active), then `POST /scim/v2/Groups`
  (displayName, members by the users' SCIM ids: each user in `--memberships` groups);
* `--api admin`: `PUT /admin/v1/groups/{name}` first, then `PUT /admin/v1/users/{name}` with its direct
  `groups` in the body (the same memberships).

Every write is one change: its own revision, audit record and snapshot refresh; the server answers once its
own snapshot has the change (`Admin._transaction` -> `Engine.catch_up`). Prints the total time, requests/s,
per-request p50/p99/max (nearest rank) for each phase, and the server's snapshot revision against the
store's at the end (`GET /admin/v1/revision`); then checks a sample of users: each must be known to the
decision point (an AuthZEN evaluation of a user not provisioned says "unknown subject"). Target (issue 10):
100,000 users and 10,000 groups in under 10 minutes on a 2-core machine.
"""

from __future__ import annotations

import benchkit  # first: it keeps bench/ off sys.path (see benchkit)

# isort: split

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def in_parallel(base: str, headers: dict, threads: int, items: list, send: Callable) -> tuple[list[float], list]:
    """`send(http, item)` for every item over `threads` keep-alive connections; (latencies in ms, results)."""
    import httpx

    latencies: list[float] = []
    results: list = [None] * len(items)
    failures: list[str] = []
    cursor = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            while not failures:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    break
                begin = time.perf_counter_ns()
                try:
                    results[index] = send(http, items[index])
                except Exception as error:  # stop every thread: the figure would mean nothing
                    failures.append(f"{items[index]!r}: {error}")
                    break
                mine.append((time.perf_counter_ns() - begin) / 1e6)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise RuntimeError(f"{len(failures)} request(s) failed, first: {failures[0]}")
    latencies.sort()
    return latencies, results


def expect(response, *statuses: int):
    if response.status_code not in statuses:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response


def plan(users: int, groups: int, memberships: int, seed: int = 10) -> dict[str, list[str]]:
    """Each user's direct groups (the same for both APIs)."""
    rng = random.Random(seed)
    names = [f"group-{i:05d}" for i in range(groups)]
    return {f"user-{i:06d}": rng.sample(names, min(memberships, groups)) for i in range(users)}


def provision_admin(base, headers, threads, users, groups, report) -> None:
    names = sorted({g for gs in users.values() for g in gs} | {f"group-{i:05d}" for i in range(groups)})
    report(
        "groups",
        *in_parallel(
            base, headers, threads, names, lambda h, n: expect(h.put(f"/admin/v1/groups/{n}", json={}), 200, 201)
        ),
    )
    items = list(users.items())
    report(
        "users",
        *in_parallel(
            base,
            headers,
            threads,
            items,
            lambda h, item: expect(h.put(f"/admin/v1/users/{item[0]}", json={"groups": item[1]}), 200, 201),
        ),
    )


def provision_scim(base, headers, threads, users, groups, report) -> None:
    items = list(users)

    def create_user(http, name):
        body = {"schemas": [USER_SCHEMA], "userName": name, "active": True}
        return expect(http.post("/scim/v2/Users", json=body), 201).json()["id"]

    latencies, ids = in_parallel(base, headers, threads, items, create_user)
    report("users", latencies, ids)
    members: dict[str, list[str]] = {f"group-{i:05d}": [] for i in range(groups)}
    for scim_id, name in zip(ids, items, strict=True):
        for group in users[name]:
            members[group].append(scim_id)

    def create_group(http, group):
        body = {"schemas": [GROUP_SCHEMA], "displayName": group, "members": [{"value": v} for v in members[group]]}
        return expect(http.post("/scim/v2/Groups", json=body), 201)

    report("groups", *in_parallel(base, headers, threads, sorted(members), create_group))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--memberships", type=int, default=3, help="direct groups per user")
    parser.add_argument("--threads", type=int, default=8, help="concurrent connections")
    parser.add_argument("--api", choices=["scim", "admin"], default="scim")
    parser.add_argument("--database-url", help="PostgreSQL (or another) store instead of a fresh SQLite file")
    parser.add_argument("--lifetime", type=float, default=3600, help="kill the server after this many seconds")
    options = parser.parse_args()

    import httpx

    http_bench = benchkit.load_http_bench()
    users = plan(options.users, options.groups, options.memberships)
    with tempfile.TemporaryDirectory(prefix="charter-bench-scim-") as data:
        env = {**os.environ, "CHARTER_DATA_DIR": data, "CHARTER_DECISION_LOG": "off"}
        env.pop("CHARTER_ISSUER", None)
        env.pop("CHARTER_DATABASE_URL", None)
        credential = None
        if options.database_url:
            env["CHARTER_DATABASE_URL"] = options.database_url
            credential = http_bench.mint_credential(env)
        server = http_bench.start_server(1, env, options.lifetime, credential)
        try:
            base = server.base
            headers = {"Authorization": f"Bearer {server.credential}"}
            lines: list[str] = []
            count = 0

            def report(phase: str, latencies: list[float], _results) -> None:
                nonlocal count
                count += len(latencies)
                lines.append(
                    f"  {phase:<6} {len(latencies):>7} requests: p50 {percentile(latencies, 0.5):.1f} ms, "
                    f"p99 {percentile(latencies, 0.99):.1f} ms, max {latencies[-1]:.1f} ms"
                )
                print(lines[-1], flush=True)

            print(
                f"provisioning {options.users} users and {options.groups} groups via the {options.api} API, "
                f"{options.threads} connections, {'PostgreSQL' if options.database_url else 'SQLite'}",
                flush=True,
            )
            begin = time.perf_counter()
            provision = provision_scim if options.api == "scim" else provision_admin
            provision(base, headers, options.threads, users, options.groups, report)
            elapsed = time.perf_counter() - begin
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                revision = expect(http.get("/admin/v1/revision"), 200).json()
                sample = random.Random(1).sample(sorted(users), min(200, len(users)))
                unknown = []
                for name in sample:
                    body = {
                        "subject": {"type": "user", "id": name},
                        "action": {"name": "read"},
                        "resource": {"type": "resource", "id": "db:prod/orders"},
                    }
                    answer = expect(http.post("/access/v1/evaluation", json=body), 200).json()
                    reasons = answer.get("context", {}).get("reason_admin", {})
                    if "unknown subject" in str(reasons):
                        unknown.append(name)
        finally:
            server.stop()
    print(
        f"total: {count} resources in {elapsed:.1f} s ({count / elapsed:.0f}/s); "
        f"server snapshot revision {revision['revision']}, store {revision['stored']}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    if unknown:
        print(f"FAIL: {len(unknown)} of {len(sample)} sampled users unknown to the decision point, e.g. {unknown[:3]}")
        return 1
    if revision["revision"] != revision["stored"]:
        print("FAIL: the server's snapshot is behind the store")
        return 1
    print(f"checked: {len(sample)} sampled users known to the decision point; snapshot at the store's revision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
