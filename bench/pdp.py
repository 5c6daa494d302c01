"""Decision benchmark: Charter against cedarpy and pycasbin, in one process, on the same requests.

    .venv/bin/python bench/pdp.py [--shape a|b|both] [--requests N] [--skip-casbin-b]
                                  [--casbin-b-requests M] [--cedar-b-batch-requests M]

(`pip install -e '.[bench]'` installs cedarpy and casbin.) Shape (b) takes about
15 minutes and 3.5 GiB, nearly all of it cedarpy's: about 60 s to parse 1.1
million entities, then 15-25 ms a decision.

Builds the workload of ../shared/bench/pdp_workload.md, seeded with
`random.Random(7)`: users each in 2 random groups, resources `gK/rN` each under
a random group's folder, and N requests (random user, read/write/delete, random
resource). Shape (a) is 1,000 users, 100 groups and 10,000 resources; shape (b)
100,000 users, 10,000 groups and 1,000,000 resources. The expected answer is
allow iff the action is not delete and the resource's folder is one of the
user's groups.

The same rules are given to each engine:

- Charter: one clause per group, `Members of group "gK" may read and write "gK/*".`,
  and `No one may delete "*".`; parsed, consolidated and compiled into a snapshot.
  Measured with `Snapshot.evaluate` (single) and `Snapshot.evaluate_many` (batch),
  each returning the full Decision with its deciding clause; the clause is checked too.
- cedarpy: one `permit` per group and a `forbid` on delete, users' parents their
  groups, resources' parent their folder; the policy set and the entities are
  parsed once into handles (`PolicySet.from_str`, `Entities.from_json_str`).
  Measured with `is_authorized` (single) and `is_authorized_batch` (batch).
- pycasbin: an RBAC model with `keyMatch` on the object and an explicit deny
  effect (`some allow && !some deny`), one `p` line per group and action, a deny
  line for delete (first, so that deletes stop at it), `g` lines for memberships.
  Measured with `Enforcer.enforce`; its `batch_enforce` is a Python loop over
  `enforce`, so there is no batch row. On shape (b) it takes tens of milliseconds
  a decision, so it is measured on the first M requests only (default 1,000),
  which the output says.
- floor: not an engine; the workload doc's hand-written dict-and-set check on
  the same Request objects, the lower bound for any Python engine. Its growth
  from (a) to (b) is what the larger working set costs in cache misses alone.

Single-call figures time each call with `time.perf_counter_ns` (p50 and p99 by
nearest rank; decisions/s is N over the sum of the per-call times). Batch
figures time one call over all N requests, best of a few runs (cedarpy on
shape (b): one call over the first M requests, default 2,000, as one call over
20,000 would take about 6 minutes; its single calls cover all N). What setup
built is frozen (`gc.freeze`) before timing, as a server would after loading a
snapshot, so that collections do not walk it. Every engine's
answer (single and batch) is compared with every other's and with the expected
answer; the script exits 1 on any disagreement. It never fails because of a
timing: the targets are printed with a pass/miss mark, for reading.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from rich.console import Console
from rich.table import Table

from charter.directory.model import load_directory
from charter.language import consolidate, parse_charter
from charter.policy.decision import Decision
from charter.policy.request import Request
from charter.policy.snapshot import Snapshot, compile_snapshot

ACTIONS = ("read", "write", "delete")
ALLOWED_ACTIONS = ("read", "write")
SEED = 7

# Targets from the issue (shape (b) may be twice as slow as (a) per decision).
TARGET_P50_US = 3.0
TARGET_P99_US = 10.0
TARGET_VS_CEDAR = {"a": 30.0, "b": 300.0}
TARGET_SLOWDOWN_B = 2.0


@dataclass(frozen=True)
class Shape:
    name: str
    users: int
    groups: int
    resources: int


SHAPES = {
    "a": Shape("a", users=1_000, groups=100, resources=10_000),
    "b": Shape("b", users=100_000, groups=10_000, resources=1_000_000),
}


@dataclass
class Workload:
    shape: Shape
    memberships: list[tuple[int, ...]]  # user i -> its groups
    folders: list[int]  # resource n -> the group whose folder holds it
    requests: list[tuple[int, str, int]]  # (user, action, resource)
    expected: list[bool] = field(default_factory=list)

    def resource(self, n: int) -> str:
        return f"g{self.folders[n]}/r{n}"


def build_workload(shape: Shape, count: int) -> Workload:
    """Exactly as pdp_workload.md says; with the draws in this order (users, resources, requests)."""
    rng = random.Random(SEED)
    memberships = [tuple(rng.sample(range(shape.groups), 2)) for _ in range(shape.users)]
    folders = [rng.randrange(shape.groups) for _ in range(shape.resources)]
    requests = [(rng.randrange(shape.users), rng.choice(ACTIONS), rng.randrange(shape.resources)) for _ in range(count)]
    workload = Workload(shape, memberships, folders, requests)
    workload.expected = [action != "delete" and folders[res] in memberships[user] for user, action, res in requests]
    return workload


# --- engines -------------------------------------------------------------------------------------


@dataclass
class Engine:
    """One engine, ready: `single(arg)` decides one request; `batch(args)` many; `allowed(result)` reads the answer."""

    name: str
    setup_seconds: float
    setup_note: str
    single: Callable[[object], object]
    args: Sequence[object]
    allowed: Callable[[object], bool]
    batch: Callable[[Sequence[object]], Sequence[object]] | None = None
    subset: int | None = None  # measured on the first `subset` requests only
    batch_subset: int | None = None  # the batch is measured on the first `batch_subset` requests only
    check: Callable[[int, object], str | None] | None = None  # extra per-request check (Charter's clause)


def charter_text(shape: Shape) -> str:
    lines = ['Charter "PDP Bench".', "  Effective 2026-01-01.", ""]
    for k in range(shape.groups):
        lines.append(f'Clause {k + 1}. Members of group "g{k}" may read and write "g{k}/*".')
    lines.append(f'Clause {shape.groups + 1}. No one may delete "*".')
    return "\n".join(lines) + "\n"


def charter_directory(workload: Workload) -> dict:
    return {
        "users": {f"u{i}": {"groups": [f"g{k}" for k in groups]} for i, groups in enumerate(workload.memberships)},
        "groups": [f"g{k}" for k in range(workload.shape.groups)],
    }


def setup_charter(workload: Workload) -> tuple[Engine, dict[str, float]]:
    shape = workload.shape
    steps: dict[str, float] = {}
    t = time.perf_counter()
    text = charter_text(shape)
    version = consolidate(parse_charter(text), [], None)
    steps["parse + consolidate"] = time.perf_counter() - t
    data = charter_directory(workload)
    t = time.perf_counter()
    directory = load_directory(data)
    steps["load_directory"] = time.perf_counter() - t
    del data
    t = time.perf_counter()
    snapshot: Snapshot = compile_snapshot(version, directory)
    steps["compile_snapshot"] = time.perf_counter() - t
    requests = [Request(f"u{user}", action, workload.resource(res)) for user, action, res in workload.requests]
    forbid_clause = shape.groups + 1

    def check(i: int, decision: object) -> str | None:
        assert isinstance(decision, Decision)
        _user, action, res = workload.requests[i]
        if action == "delete":
            wanted = forbid_clause
        elif workload.expected[i]:
            wanted = workload.folders[res] + 1
        else:
            wanted = None
        if decision.clause != wanted:
            return f"deciding clause {decision.clause}, expected {wanted}"
        return None

    engine = Engine(
        name="charter",
        setup_seconds=sum(steps.values()),
        setup_note=", ".join(f"{k} {v:.2f} s" for k, v in steps.items()),
        single=snapshot.evaluate,
        args=requests,
        allowed=lambda d: d.allowed,  # type: ignore[attr-defined]
        batch=snapshot.evaluate_many,
        check=check,
    )
    return engine, steps


def cedar_policies(shape: Shape) -> str:
    parts = [
        f'permit(principal in Group::"g{k}", action in [Action::"read", Action::"write"], resource in Folder::"g{k}");'
        for k in range(shape.groups)
    ]
    parts.append('forbid(principal, action == Action::"delete", resource);')
    return "\n".join(parts)


def cedar_entities(workload: Workload) -> str:
    groups = workload.shape.groups
    entities: list[dict] = []
    entities.extend({"uid": {"type": "Group", "id": f"g{k}"}, "attrs": {}, "parents": []} for k in range(groups))
    entities.extend({"uid": {"type": "Folder", "id": f"g{k}"}, "attrs": {}, "parents": []} for k in range(groups))
    entities.extend(
        {
            "uid": {"type": "User", "id": f"u{i}"},
            "attrs": {},
            "parents": [{"type": "Group", "id": f"g{k}"} for k in member_of],
        }
        for i, member_of in enumerate(workload.memberships)
    )
    entities.extend(
        {
            "uid": {"type": "Resource", "id": workload.resource(n)},
            "attrs": {},
            "parents": [{"type": "Folder", "id": f"g{folder}"}],
        }
        for n, folder in enumerate(workload.folders)
    )
    return json.dumps(entities)


def setup_cedar(workload: Workload, batch_subset: int | None) -> Engine:
    import cedarpy

    t = time.perf_counter()
    policies = cedarpy.PolicySet.from_str(cedar_policies(workload.shape))
    entities_json = cedar_entities(workload)
    entities = cedarpy.Entities.from_json_str(entities_json)
    del entities_json
    seconds = time.perf_counter() - t
    requests = [
        {
            "principal": f'User::"u{user}"',
            "action": f'Action::"{action}"',
            "resource": f'Resource::"{workload.resource(res)}"',
        }
        for user, action, res in workload.requests
    ]
    is_authorized = cedarpy.is_authorized
    is_authorized_batch = cedarpy.is_authorized_batch

    def single(request: object) -> object:
        return is_authorized(request, policies, entities)  # type: ignore[arg-type]

    def batch(requests: Sequence[object]) -> Sequence[object]:
        return is_authorized_batch(requests, policies, entities)  # type: ignore[arg-type]

    return Engine(
        name="cedarpy",
        setup_seconds=seconds,
        setup_note=f"{workload.shape.groups + 1:,} policies, {len(entities):,} entities, parsed once into handles",
        single=single,
        args=requests,
        allowed=lambda r: r.allowed,  # type: ignore[attr-defined]
        batch=batch,
        batch_subset=batch_subset,
    )


CASBIN_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.act == p.act && keyMatch(r.obj, p.obj) && (p.sub == "*" || g(r.sub, p.sub))
"""


def setup_casbin(workload: Workload, subset: int | None) -> Engine:
    import casbin
    from casbin.persist.adapter import Adapter

    groups = workload.shape.groups
    # The deny line first: casbin stops scanning at the first deny, which favours it on deletes.
    policy = [["*", "*", "delete", "deny"]]
    policy.extend([f"g{k}", f"g{k}/*", action, "allow"] for k in range(groups) for action in ALLOWED_ACTIONS)
    grouping = [[f"u{i}", f"g{k}"] for i, member_of in enumerate(workload.memberships) for k in member_of]

    class InMemory(Adapter):
        def load_policy(self, model):
            model.model["p"]["p"].policy.extend(policy)
            model.model["g"]["g"].policy.extend(grouping)

    t = time.perf_counter()
    enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=CASBIN_MODEL), InMemory())
    seconds = time.perf_counter() - t
    requests = [(f"u{user}", workload.resource(res), action) for user, action, res in workload.requests]
    enforce = enforcer.enforce

    def single(request: object) -> object:
        return enforce(*request)  # type: ignore[misc]

    return Engine(
        name="pycasbin",
        setup_seconds=seconds,
        setup_note=f"{len(policy):,} p lines, {len(grouping):,} g lines",
        single=single,
        args=requests[:subset] if subset is not None else requests,
        allowed=bool,
        subset=subset,
    )


def setup_floor(workload: Workload, requests: Sequence[Request]) -> Engine:
    """The doc's floor: a hand-written dict-and-set check on the same Request objects; no charter, no clause."""
    users = {f"u{i}": frozenset(f"g{k}" for k in member_of) for i, member_of in enumerate(workload.memberships)}

    def single(request: Any) -> object:
        groups = users.get(request.subject)
        resource = request.resource
        return groups is not None and request.action != "delete" and resource[: resource.find("/")] in groups

    return Engine(
        name="floor",
        setup_seconds=0.0,
        setup_note="dict of user -> frozenset of groups; not an engine, the lower bound for Python on this shape",
        single=single,
        args=requests,
        allowed=bool,
    )


# --- measurement ---------------------------------------------------------------------------------


@dataclass
class Figures:
    engine: str
    mode: str
    requests: int
    per_second: float
    p50_us: float | None = None
    p99_us: float | None = None
    mean_us: float = 0.0
    note: str = ""


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile, in microseconds."""
    rank = max(1, math.ceil(q * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1000


def measure_single(engine: Engine, warmup: int) -> tuple[Figures, list[object]]:
    call = engine.single
    args = engine.args
    for arg in args[:warmup]:
        call(arg)
    pc = time.perf_counter_ns
    latencies = [0] * len(args)
    results: list[object] = [None] * len(args)
    for i, arg in enumerate(args):
        t0 = pc()
        result = call(arg)
        t1 = pc()
        latencies[i] = t1 - t0
        results[i] = result
    total = sum(latencies)
    latencies.sort()
    count = len(args)
    figures = Figures(
        engine.name,
        "single",
        count,
        per_second=count / (total / 1e9),
        p50_us=percentile(latencies, 0.50),
        p99_us=percentile(latencies, 0.99),
        mean_us=total / count / 1000,
        note=f"first {count:,} requests only" if engine.subset is not None else "",
    )
    return figures, results


def measure_batch(engine: Engine, budget: float = 3.0, runs: int = 5) -> tuple[Figures, list[object]]:
    assert engine.batch is not None
    args = list(engine.args[: engine.batch_subset] if engine.batch_subset is not None else engine.args)
    best = math.inf
    results: Sequence[object] = ()
    spent = 0.0
    done = 0
    while done < runs and (done == 0 or spent + best <= budget):
        t0 = time.perf_counter()
        results = engine.batch(args)
        elapsed = time.perf_counter() - t0
        best = min(best, elapsed)
        spent += elapsed
        done += 1
    count = len(args)
    figures = Figures(
        engine.name,
        "batch",
        count,
        per_second=count / best,
        mean_us=best / count * 1e6,
        note=(f"first {count:,} requests only; " if engine.batch_subset is not None else "")
        + f"one call, best of {done}",
    )
    return figures, list(results)


# --- a shape, end to end --------------------------------------------------------------------------


@dataclass
class ShapeResult:
    shape: Shape
    figures: list[Figures]
    setup: list[tuple[str, float, str]]
    disagreements: int


def run_shape(
    console: Console,
    shape: Shape,
    count: int,
    casbin: bool,
    casbin_subset: int | None,
    cedar_batch_subset: int | None,
) -> ShapeResult:
    console.rule(f"[bold]Shape ({shape.name})[/]: {describe(shape)}")
    t = time.perf_counter()
    workload = build_workload(shape, count)
    console.print(
        f"workload built in {time.perf_counter() - t:.2f} s: {count:,} requests, "
        f"{sum(workload.expected):,} expected allows"
    )

    engines: list[Engine] = []
    charter, _ = setup_charter(workload)
    engines.append(charter)
    console.print(f"charter ready in {charter.setup_seconds:.2f} s ({charter.setup_note})")
    cedar = setup_cedar(workload, min(cedar_batch_subset, count) if cedar_batch_subset is not None else None)
    engines.append(cedar)
    console.print(f"cedarpy ready in {cedar.setup_seconds:.2f} s ({cedar.setup_note})")
    if casbin:
        peer = setup_casbin(workload, min(casbin_subset, count) if casbin_subset is not None else None)
        engines.append(peer)
        console.print(f"pycasbin ready in {peer.setup_seconds:.2f} s ({peer.setup_note})")
    else:
        console.print("pycasbin skipped (--skip-casbin-b)")
    engines.append(setup_floor(workload, charter.args))  # type: ignore[arg-type]

    # Freeze what setup built, so that collections during the timed loops do not walk it.
    gc.collect()
    gc.freeze()

    figures: list[Figures] = []
    answers: dict[str, list[bool]] = {}
    problems: list[str] = []
    for engine in engines:
        warmup = min(len(engine.args), 2_000 if engine.name in ("charter", "floor") else 20)
        single, results = measure_single(engine, warmup)
        figures.append(single)
        allowed = [engine.allowed(r) for r in results]
        answers[f"{engine.name} single"] = allowed
        if engine.check is not None:
            for i, result in enumerate(results):
                problem = engine.check(i, result)
                if problem is not None:
                    problems.append(f"{engine.name} request {i}: {problem}")
        console.print(
            f"  {engine.name} single: {single.per_second:,.0f} decisions/s, p50 {single.p50_us:.2f} µs, "
            f"p99 {single.p99_us:.2f} µs"
        )
        if engine.batch is not None:
            batch, results = measure_batch(engine)
            figures.append(batch)
            answers[f"{engine.name} batch"] = [engine.allowed(r) for r in results]
            if engine.check is not None:
                for i, result in enumerate(results):
                    problem = engine.check(i, result)
                    if problem is not None:
                        problems.append(f"{engine.name} batch request {i}: {problem}")
            console.print(f"  {engine.name} batch: {batch.per_second:,.0f} decisions/s")
        del results

    expected = workload.expected
    for label, allowed in answers.items():
        for i, got in enumerate(allowed):
            if got != expected[i]:
                user, action, res = workload.requests[i]
                problems.append(
                    f"{label} request {i} (u{user} {action} {workload.resource(res)}): "
                    f"{'allow' if got else 'deny'}, expected {'allow' if expected[i] else 'deny'}"
                )
    # Pairwise agreement follows from agreement with the expected answer; say so explicitly all the same.
    labels = list(answers)
    for x in range(len(labels)):
        for y in range(x + 1, len(labels)):
            a, b = answers[labels[x]], answers[labels[y]]
            differ = sum(1 for i in range(min(len(a), len(b))) if a[i] != b[i])
            if differ:
                problems.append(f"{labels[x]} and {labels[y]} disagree on {differ:,} requests")

    print_shape(console, shape, figures, engines, problems)
    gc.unfreeze()
    setup = [(e.name, e.setup_seconds, e.setup_note) for e in engines]
    return ShapeResult(shape, figures, setup, len(problems))


def find(figures: Sequence[Figures], engine: str, mode: str) -> Figures | None:
    return next((f for f in figures if f.engine == engine and f.mode == mode), None)


def describe(shape: Shape) -> str:
    return f"{shape.users:,} users, {shape.groups:,} groups, {shape.resources:,} resources"


def print_shape(
    console: Console, shape: Shape, figures: list[Figures], engines: list[Engine], problems: list[str]
) -> None:
    table = Table(title=f"Shape ({shape.name}): {describe(shape)}")
    table.add_column("engine")
    table.add_column("mode")
    table.add_column("requests", justify="right")
    table.add_column("decisions/s", justify="right")
    table.add_column("p50 µs", justify="right")
    table.add_column("p99 µs", justify="right")
    table.add_column("mean µs", justify="right")
    table.add_column("note")
    for f in figures:
        table.add_row(
            f.engine,
            f.mode,
            f"{f.requests:,}",
            f"{f.per_second:,.0f}",
            f"{f.p50_us:.2f}" if f.p50_us is not None else "-",
            f"{f.p99_us:.2f}" if f.p99_us is not None else "-",
            f"{f.mean_us:.2f}",
            f.note,
        )
    console.print(table)

    setup = Table(title=f"Shape ({shape.name}): setup (not part of the figures above)")
    setup.add_column("engine")
    setup.add_column("seconds", justify="right")
    setup.add_column("what")
    for e in engines:
        setup.add_row(e.name, f"{e.setup_seconds:.2f}", e.setup_note)
    console.print(setup)

    for peer in ("cedarpy", "pycasbin"):
        for mode in ("single", "batch"):
            ours, theirs = find(figures, "charter", mode), find(figures, peer, mode)
            if ours is None or theirs is None:
                continue
            line = f"Charter/{peer} {mode}: {ours.per_second / theirs.per_second:,.0f}x the decisions/s"
            if ours.p50_us and theirs.p50_us:
                line += f", p50 {theirs.p50_us / ours.p50_us:,.0f}x lower"
            if theirs.note:
                line += f" ({peer}: {theirs.note})"
            console.print(line)
    ours, floor = find(figures, "charter", "single"), find(figures, "floor", "single")
    if ours is not None and floor is not None and ours.p50_us and floor.p50_us:
        console.print(
            f"Charter/floor single: p50 {ours.p50_us / floor.p50_us:.1f}x the hand-written dict-and-set check "
            "(which attributes no clause)"
        )

    if problems:
        console.print(f"[bold red]{len(problems):,} disagreements[/]; the first ones:")
        for problem in problems[:20]:
            console.print(f"  {problem}")
    else:
        console.print(
            "[green]all engines agree with each other and with the expected answer on every request measured; "
            "Charter's deciding clause is the expected one on every request[/]"
        )


def print_targets(console: Console, results: list[ShapeResult]) -> None:
    by_shape = {r.shape.name: r for r in results}
    table = Table(title="Targets (for reading; the exit status depends only on the answers)")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("met")

    def row(name: str, value: str, ok: bool) -> None:
        table.add_row(name, value, "[green]yes[/]" if ok else "[red]no[/]")

    base = None
    for name, result in by_shape.items():
        single = find(result.figures, "charter", "single")
        assert single is not None and single.p50_us is not None and single.p99_us is not None
        factor = 1.0 if name == "a" else TARGET_SLOWDOWN_B
        p50, p99 = TARGET_P50_US * factor, TARGET_P99_US * factor
        row(f"({name}) Charter p50 < {p50:g} µs", f"{single.p50_us:.2f} µs", single.p50_us < p50)
        row(f"({name}) Charter p99 < {p99:g} µs", f"{single.p99_us:.2f} µs", single.p99_us < p99)
        wanted = TARGET_VS_CEDAR[name]
        cedar = find(result.figures, "cedarpy", "single")
        if cedar is not None:
            ratio = single.per_second / cedar.per_second
            row(f"({name}) Charter ≥ {wanted:g}x cedarpy decisions/s (single)", f"{ratio:,.0f}x", ratio >= wanted)
        ours_batch, cedar_batch = find(result.figures, "charter", "batch"), find(result.figures, "cedarpy", "batch")
        if ours_batch is not None and cedar_batch is not None:
            ratio = ours_batch.per_second / cedar_batch.per_second
            row(f"({name}) Charter ≥ {wanted:g}x cedarpy decisions/s (batch)", f"{ratio:,.0f}x", ratio >= wanted)
        if name == "a":
            base = single
    if base is not None and "b" in by_shape:
        single_b = find(by_shape["b"].figures, "charter", "single")
        assert single_b is not None and single_b.p50_us is not None and base.p50_us is not None
        growth = single_b.p50_us / base.p50_us
        row(f"Charter p50 (b)/(a) ≤ {TARGET_SLOWDOWN_B:g}", f"{growth:.2f}", growth <= TARGET_SLOWDOWN_B)
        floor_a, floor_b = (
            find(by_shape["a"].figures, "floor", "single"),
            find(by_shape["b"].figures, "floor", "single"),
        )
        if floor_a is not None and floor_b is not None and floor_a.p50_us and floor_b.p50_us:
            table.add_row(
                "for reference: floor p50 (b)/(a), memory misses alone",
                f"{floor_b.p50_us / floor_a.p50_us:.2f}",
                "-",
            )
    console.print(table)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("a", "b", "both"), default="both")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per shape (default 20,000)")
    parser.add_argument("--skip-casbin-b", action="store_true", help="do not run pycasbin on shape (b)")
    parser.add_argument(
        "--casbin-b-requests",
        type=int,
        default=1_000,
        help="pycasbin on shape (b): measure the first M requests only (default 1,000)",
    )
    parser.add_argument(
        "--cedar-b-batch-requests",
        type=int,
        default=2_000,
        help="cedarpy on shape (b): one batch of the first M requests (default 2,000; single calls use all N)",
    )
    options = parser.parse_args(argv)

    console = Console(width=None if sys.stdout.isatty() else 140)
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("charter-iam", "cedarpy", "casbin"))
    console.print(f"Python {platform.python_version()}, {versions}; {machine()}")
    console.print("load average before the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    console.print("command: " + " ".join(["bench/pdp.py", *(argv if argv is not None else sys.argv[1:])]))
    shapes = ("a", "b") if options.shape == "both" else (options.shape,)
    results = []
    for name in shapes:
        big = name == "b"
        result = run_shape(
            console,
            SHAPES[name],
            options.requests,
            casbin=not (big and options.skip_casbin_b),
            casbin_subset=options.casbin_b_requests if big else None,
            cedar_batch_subset=options.cedar_b_batch_requests if big else None,
        )
        results.append(result)
        gc.collect()
    print_targets(console, results)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak resident memory of the whole run: {peak:,.0f} MiB")
    console.print("load average after the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    failed = sum(r.disagreements for r in results)
    if failed:
        console.print(f"[bold red]FAILED: {failed:,} disagreements[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
