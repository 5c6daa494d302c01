# ruff: noqa: E402
"""HTTP decision benchmark: the AuthZEN endpoints over loopback, driven by wrk.

    .venv/bin/python bench/http.py [--workers 1,2] [--duration 10] [--rate 5000]
                                   [--single-connections 32] [--batch-connections 4]
                                   [--threads 1] [--database-url URL] [--quiet-wait S]

Needs wrk (`apt-get install wrk` on Debian or Ubuntu, `brew install wrk` on
macOS); without it the script says so and exits 2.

For each worker count it starts `charter serve --workers N` as a subprocess on
a free loopback port, with a fresh store in a temporary CHARTER_DATA_DIR
(SQLite), or on `--database-url` (PostgreSQL; the store is initialised if it is
empty). The server runs under `timeout`, so it cannot outlive the run, and is
killed at the end whatever happens. The admin credential is read from the
server's output (on a PostgreSQL store that was already initialised, a bench
client acting as the admin user is created in the store instead).

The requests are drawn with `random.Random(7)` from the sample directory that
`charter init` loads: half are any subject (its users, services and partners,
and one it does not know) with any of read, write, delete and manage on a
resource the sample charter names or not; half are what one of its clauses is
about (alice on db:prod, carol on tickets, billing-api on invoices...); each
with a context with or without MFA, an address, and a time on a weekday, an
evening or a weekend. So the answers differ: 40% are allowed (by clauses 1,
2, 6, 7 and 19) and the rest denied: by default, by clause 4 or 10, or because
the context misses a condition of clause 2, 6 or 7 (MFA, hours, network).
Every request carries a time, so the answers do not depend on when the
benchmark runs. 1,000 single bodies and 50 batch bodies are sent in turn.

Before any timing, correctness: a sample of single evaluations and a few
batches are sent over HTTP and each answer must equal, field for field,
`decision_json(Snapshot.evaluate(...))` computed in this process on a snapshot
of the same store, and the Charter-Revision header must name that snapshot's
revision. The script exits 1 on any difference, or if any timed response was
not a 2xx.

Then three wrk runs per worker count, each after a short warm-up:

- `single max`: single evaluations (`POST /access/v1/evaluation`), each
  connection sending its next request as soon as the answer arrives: the most
  the server answers, with the latency that load causes;
- `single paced`: single evaluations at about `--rate` requests/s. wrk has no
  fixed-rate mode (wrk2 is not packaged in Debian), so each connection pauses
  after each answer (wrk's `delay()` hook) for a random 0 to 20 ms, 10 ms on
  average (random, so that the connections do not fall into step and send in
  bursts, as a fixed pause makes them do), and the connection count is
  calibrated in short runs first so that the total comes to about the rate;
  the achieved rate is reported, with its latency distribution;
- `batch max`: `POST /access/v1/evaluations` with 100 evaluations a request;
  decisions/s = requests/s x 100.

wrk reports latency from the request's write to the end of its answer, per
request; p50 and p99 are wrk's percentiles. "server CPU" and "wrk CPU" are the
cores each used during the timed run (from /proc and getrusage; the progress
lines also split the server's by process, which shows how evenly the workers
shared the connections); "server µs/request" is the server's CPU time per
request; "other CPU" is what the rest of the machine used meanwhile (from
/proc/stat): on a shared 2-core VM a run where that is not near 0 was slowed
by other jobs. Before each mode the script waits, up to `--quiet-wait`
seconds, for the machine to be quiet. It never fails because of a timing: the
targets are printed with a met/missed mark, for reading.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where this file (http.py) would hide the
# standard library's `http` package from urllib and from the server code it imports: drop the folder first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata

import yaml

SEED = 7
BATCH = 100
PACE_DELAY_MS = 10
TARGET_SINGLE_RATE = 5_000
TARGET_SINGLE_P99_MS = 5.0
TARGET_BATCH_DECISIONS = 100_000
SINGLE_PATH = "/access/v1/evaluation"
BATCH_PATH = "/access/v1/evaluations"

ACTIONS = ("read", "read", "write", "delete", "manage")
RESOURCES = (
    ("db", "prod/orders"),
    ("db", "prod/invoices"),
    ("db", "prod/users"),
    ("db", "staging/orders"),
    ("resource", "tickets/4711"),
    ("resource", "tickets/12"),
    ("reports", "finance/q3"),
    ("reports", "sales/q3"),
    ("directory", "users"),
    ("charter", "text"),
    ("grants", "all"),
    ("clients", "all"),
    ("resource", "wiki/home"),
)
LIKELY = (  # subject type, subject, actions, resources: requests clauses 1, 2, 6, 7 and 19 are about
    ("user", "alice", ("read", "write"), (("db", "prod/orders"), ("db", "prod/users"))),
    ("user", "bob", ("read", "write", "delete"), (("db", "prod/invoices"),)),
    ("user", "carol", ("read",), (("resource", "tickets/4711"), ("resource", "tickets/12"))),
    ("user", "frank", ("read",), (("reports", "finance/q3"),)),
    ("user", "admin", ("read", "manage"), (("directory", "users"), ("charter", "text"), ("clients", "all"))),
    ("service", "billing-api", ("read",), (("db", "prod/invoices"),)),
)
WEEKDAY = "2026-11-24T10:00:00Z"  # a Tuesday, inside clause 2's hours
EVENING = "2026-11-24T20:00:00Z"
WEEKEND = "2026-11-28T10:00:00Z"


# --- the requests ----------------------------------------------------------------------------------


def subjects() -> list[dict]:
    from charter.bootstrap import sample

    directory = yaml.safe_load(sample("directory.yaml"))
    found = []
    for section, kind in (("users", "user"), ("services", "service"), ("partners", "partner")):
        found += [{"type": kind, "id": name} for name in directory.get(section) or {}]
    found.append({"type": "user", "id": "mallory"})  # not in the directory
    return found


def evaluations(count: int, rng: random.Random) -> list[dict]:
    people = subjects()
    result = []
    for _ in range(count):
        if rng.random() < 0.5:  # someone, anything
            subject, action, (kind, name) = rng.choice(people), rng.choice(ACTIONS), rng.choice(RESOURCES)
        else:  # what a clause of the sample charter may allow (the context decides some), so answers are mixed
            subject_type, subject_id, actions, resources = rng.choice(LIKELY)
            subject = {"type": subject_type, "id": subject_id}
            action, (kind, name) = rng.choice(actions), rng.choice(resources)
        context: dict[str, object] = {"time": rng.choice((WEEKDAY, WEEKDAY, EVENING, WEEKEND))}
        if rng.random() < 0.5:
            context["mfa"] = True
        elif rng.random() < 0.3:
            context["amr"] = ["pwd", "otp"]
        if subject["type"] == "service" or rng.random() < 0.2:
            context["ip"] = rng.choice(("10.1.2.3", "192.0.2.7"))
        result.append(
            {"subject": subject, "action": {"name": action}, "resource": {"type": kind, "id": name}}
            | {"context": context}
        )
    return result


def single_bodies(rng: random.Random, count: int) -> list[bytes]:
    return [json.dumps(e, separators=(",", ":")).encode() for e in evaluations(count, rng)]


def batch_bodies(rng: random.Random, count: int) -> list[bytes]:
    return [json.dumps({"evaluations": evaluations(BATCH, rng)}, separators=(",", ":")).encode() for _ in range(count)]


# --- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    credential: str
    output: list[str]
    split: list[float] | None = None  # cores each busy process used in the last wrk run, most first

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The server's process tree (the timeout wrapper, uvicorn's supervisor, its workers)."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    parents[int(entry)] = int(_stat(int(entry))[1])
        tree, frontier = {self.process.pid}, [self.process.pid]
        while frontier:
            parent = frontier.pop()
            for pid, ppid in parents.items():
                if ppid == parent and pid not in tree:
                    tree.add(pid)
                    frontier.append(pid)
        return sorted(tree)

    def cpu_by_pid(self) -> dict[int, float]:
        """CPU seconds used so far by each process of the server."""
        used = {}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = _stat(pid)
                used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return used

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [0] state, [1] ppid, ..., [11] utime, [12] stime."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def start_server(workers: int, env: dict[str, str], lifetime: float, credential: str | None) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "charter", "serve", "--port", str(port), "--workers", str(workers)]
    if shutil.which("timeout"):
        command = ["timeout", "--kill-after=5", f"{int(lifetime)}", *command]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so stop() reaches the workers too
    )
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith("OpenAPI:"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    server = Server(process, port, credential or "", output)
    try:
        if not ready.wait(60) or process.poll() is not None:
            raise RuntimeError("the server did not start:\n" + "\n".join(output))
        if not server.credential:
            found = [w for line in output for w in line.split() if w.startswith("chr_")]
            if not found:
                raise RuntimeError("no credential in the server's output:\n" + "\n".join(output))
            server.credential = found[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = call(server, "GET", "/.well-known/authzen-configuration")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not answer:\n" + "\n".join(output))
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    return server


def call(server: Server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, object]:
    request = urllib.request.Request(server.base + path, data=body, method=method)
    request.add_header("Authorization", f"Bearer {server.credential}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def mint_credential(env: dict[str, str]) -> str | None:
    """The admin credential of a PostgreSQL store: minted by `initialize` if the store is empty, else a new
    bench client acting as the admin user (the server prints a credential only when it creates the store)."""
    from charter import clients
    from charter.bootstrap import ADMIN_USER, initialize
    from charter.store.db import bump_revision, make_engine, sessions

    db = make_engine(env["CHARTER_DATABASE_URL"])
    try:
        result = initialize(db)
        if result.created:
            return result.admin_credential
        now = dt.datetime.now(dt.UTC)
        with sessions(db).begin() as session:
            bump_revision(session)
            _, credential = clients.create(session, "bench/http.py", "user", ADMIN_USER, "bench/http.py", now)
        return credential
    finally:
        db.dispose()


# --- correctness -----------------------------------------------------------------------------------


def check_answers(server: Server, env: dict[str, str], singles: list[bytes], batches: list[bytes]) -> list[str]:
    """Answers over HTTP against Snapshot.evaluate in this process, on the same store."""
    from charter.engine import Engine
    from charter.store.db import make_engine
    from charter.web import authzen

    db = make_engine(env.get("CHARTER_DATABASE_URL") or f"sqlite:///{env['CHARTER_DATA_DIR']}/charter.db")
    try:
        snapshot = Engine(db).rebuild()
    finally:
        db.dispose()

    def expected(evaluation: dict) -> dict:
        return authzen.decision_json(snapshot.evaluate(authzen.to_request(evaluation)), snapshot.revision)

    problems: list[str] = []
    allowed = 0
    for body in singles:
        status, headers, answer = call(server, "POST", SINGLE_PATH, body)
        revision = {k.lower(): v for k, v in headers.items()}.get("charter-revision")
        want = expected(json.loads(body))
        allowed += want["decision"]
        if status != 200 or answer != want or revision != str(snapshot.revision):
            problems.append(f"{body.decode()}: HTTP {status} revision {revision} {answer} != {want}")
    for body in batches:
        status, _, answer = call(server, "POST", BATCH_PATH, body)
        want = {"evaluations": [expected(e) for e in json.loads(body)["evaluations"]]}
        if status != 200 or answer != want:
            problems.append(f"batch: HTTP {status}, answers differ from Snapshot.evaluate")
    status, _, answer = call(server, "POST", SINGLE_PATH, b"{}")
    if status != 400:
        problems.append(f"an empty evaluation gave HTTP {status}, not 400")
    print(
        f"  correctness: {len(singles)} single evaluations ({allowed} allowed) and {len(batches)} batches of "
        f"{BATCH} answered as Snapshot.evaluate does at revision {snapshot.revision}: "
        + ("yes" if not problems else f"NO, {len(problems)} differences")
    )
    return problems


# --- wrk -------------------------------------------------------------------------------------------

LUA = r"""
local bodies = {
%(bodies)s
}
local path = "%(path)s"
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(credential)s"}
local requests = {}
local next_one = 1

function init(args)
  for k, body in ipairs(bodies) do
    requests[k] = wrk.format("POST", path, headers, body)
  end
  next_one = math.random(#requests)
end

function request()
  next_one = next_one %% #requests + 1
  return requests[next_one]
end
%(delay)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%%d duration_us=%%d bytes=%%d\n", summary.requests, summary.duration,
    summary.bytes))
  io.write(string.format("BENCH connect=%%d read=%%d write=%%d status=%%d timeout=%%d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("BENCH p%%s=%%d\n", tostring(p), latency:percentile(p)))
  end
  io.write(string.format("BENCH max=%%d mean=%%f\n", latency.max, latency.mean))
end
"""


def lua_script(path: str, bodies: list[bytes], credential: str, delay_ms: int, directory: Path, name: str) -> Path:
    for body in bodies:
        if b"]==]" in body:
            raise ValueError("a body would end the Lua long string")
    text = LUA % {
        "bodies": ",\n".join("[==[" + b.decode() + "]==]" for b in bodies),
        "path": path,
        "credential": credential,
        # A random pause, 0 to 2x the mean, so the connections do not fall into step and arrive in bursts.
        "delay": f"function delay() return math.random(0, {2 * delay_ms}) end\n" if delay_ms else "",
    }
    script = directory / f"{name}.lua"
    script.write_text(text)
    return script


@dataclass
class Run:
    mode: str
    workers: int
    threads: int
    connections: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    server_cpu: float  # cores used on average
    wrk_cpu: float
    other_cpu: float  # cores the rest of the machine used meanwhile (other jobs on a shared VM)
    per_request: int  # decisions per request

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def decisions(self) -> float:
        return self.rate * self.per_request

    @property
    def server_us(self) -> float:
        """Server CPU time per request, in microseconds: what one request costs, whatever else runs."""
        return self.server_cpu * self.seconds / self.requests * 1e6 if self.requests else 0.0


def speed() -> float:
    """Millions of iterations a second of a fixed pure-Python loop, for one second: a shared VM's speed varies
    (this loop ran 1.7 times slower at one hour than at another on 2026-11-24), so compare runs at like speeds."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        count += 1
    return count / (time.perf_counter() - started) / 1e6


def busy_cores() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat, steal included), in seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit: float, most: float) -> float:
    """Wait (at most `most` seconds) until the machine's other load is under `limit` cores; the last reading."""
    deadline = time.monotonic() + most
    while True:
        before, started = busy_cores(), time.monotonic()
        time.sleep(1)
        load = (busy_cores() - before) / (time.monotonic() - started)
        if load < limit or time.monotonic() > deadline:
            return load


def run_wrk(
    server: Server, script: Path, path: str, threads: int, connections: int, seconds: float
) -> tuple[dict[str, float], tuple[float, float, float], str]:
    """wrk's own figures (from the script's done()); the cores the server, wrk and everything else used; and
    wrk's text output."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        server.base + path,
    ]
    before_server = server.cpu_by_pid()
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_all = busy_cores()
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    elapsed = time.monotonic() - started
    all_cpu = (busy_cores() - before_all) / elapsed
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_server = server.cpu_by_pid()
    per_process = sorted(
        ((used - before_server.get(pid, 0.0)) / elapsed for pid, used in after_server.items()), reverse=True
    )
    server.split = [cores for cores in per_process if cores >= 0.01]  # the busy processes: the workers
    server_cpu = sum(per_process)
    wrk_cpu = (
        after_children.ru_utime + after_children.ru_stime - before_children.ru_utime - before_children.ru_stime
    ) / elapsed
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    figures: dict[str, float] = {}
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            for key, value in re.findall(r"(\S+)=(\S+)", line):
                figures[key] = float(value)
    if "requests" not in figures:
        raise RuntimeError("could not read wrk's output:\n" + done.stdout + done.stderr)
    return figures, (server_cpu, wrk_cpu, max(0.0, all_cpu - server_cpu - wrk_cpu)), done.stdout


def measure(
    server: Server,
    mode: str,
    workers: int,
    script: Path,
    path: str,
    threads: int,
    connections: int,
    seconds: float,
    per_request: int,
    verbose: bool,
) -> Run:
    figures, (server_cpu, wrk_cpu, other_cpu), text = run_wrk(server, script, path, threads, connections, seconds)
    if verbose:
        print(text)
    errors = sum(int(figures[k]) for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        mode,
        workers,
        threads,
        connections,
        int(figures["requests"]),
        figures["duration_us"] / 1e6,
        errors,
        figures["p50"] / 1000,
        figures["p90"] / 1000,
        figures["p99"] / 1000,
        figures["p99.9"] / 1000,
        figures["max"] / 1000,
        server_cpu,
        wrk_cpu,
        other_cpu,
        per_request,
    )


def paced_connections(server: Server, script: Path, threads: int, rate: int, seconds: float) -> int:
    """A connection count that gives about `rate` requests/s with a pause of PACE_DELAY_MS on average between an
    answer and the connection's next request."""
    goal = rate * 1.02  # a little above, so that the timed run's variation leaves it at `rate` or more
    connections = max(threads, math.ceil(goal * PACE_DELAY_MS / 1000))
    for _ in range(4):
        figures, *_ = run_wrk(server, script, SINGLE_PATH, threads, connections, seconds)
        achieved = figures["requests"] / (figures["duration_us"] / 1e6)
        if rate <= achieved <= rate * 1.04:
            break
        connections = max(threads, math.ceil(connections * goal / achieved))
    return connections


# --- the report --------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


def print_table(runs: list[Run]) -> None:
    header = (
        "mode",
        "workers",
        "wrk threads",
        "connections",
        "requests/s",
        "decisions/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "server CPU",
        "server µs/request",
        "wrk CPU",
        "other CPU",
        "errors",
    )
    rows = [
        (
            r.mode,
            str(r.workers),
            str(r.threads),
            str(r.connections),
            f"{r.rate:,.0f}",
            f"{r.decisions:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p90_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.p999_ms:.2f}",
            f"{r.max_ms:.2f}",
            f"{r.server_cpu:.2f}",
            f"{r.server_us:,.0f}",
            f"{r.wrk_cpu:.2f}",
            f"{r.other_cpu:.2f}",
            str(r.errors),
        )
        for r in runs
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_targets(runs: list[Run]) -> None:
    print()
    paced = [r for r in runs if r.mode == "single paced"]
    for r in paced:
        met = r.rate >= TARGET_SINGLE_RATE and r.p99_ms < TARGET_SINGLE_P99_MS
        print(
            f"target: {TARGET_SINGLE_RATE:,} single evaluations/s with p99 under {TARGET_SINGLE_P99_MS:g} ms "
            f"({r.workers} worker{'s' if r.workers > 1 else ''}): {r.rate:,.0f}/s at p99 {r.p99_ms:.2f} ms: "
            + ("met" if met else "missed")
        )
    for r in (r for r in runs if r.mode == "single max"):
        print(
            f"  most single evaluations/s ({r.workers} worker{'s' if r.workers > 1 else ''}): {r.rate:,.0f}/s: "
            + ("at least the target rate" if r.rate >= TARGET_SINGLE_RATE else "below the target rate")
        )
    for r in (r for r in runs if r.mode == "batch max"):
        print(
            f"target: {TARGET_BATCH_DECISIONS:,} decisions/s through the batch endpoint "
            f"({r.workers} worker{'s' if r.workers > 1 else ''}): {r.decisions:,.0f}/s: "
            + ("met" if r.decisions >= TARGET_BATCH_DECISIONS else "missed")
        )


def versions() -> str:
    names = ("charter-iam", "uvicorn", "httptools", "uvloop", "starlette", "fastapi", "orjson")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (wrk.stdout or wrk.stderr).splitlines()[:1]
    return ", ".join(found) + (f"; {first[0].split(' Copyright')[0]}" if first else "")


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated (default 1,2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed wrk run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each mode (default 2)")
    parser.add_argument("--rate", type=int, default=TARGET_SINGLE_RATE, help="paced single evaluations/s")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--single-connections", type=int, default=32, help="connections, single max (default 32)")
    parser.add_argument("--batch-connections", type=int, default=4, help="connections, batch max (default 4)")
    parser.add_argument("--database-url", help="a PostgreSQL URL instead of a fresh SQLite store")
    parser.add_argument("--modes", default="single max,single paced,batch max", help="comma-separated modes")
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.3,
        help="before each mode, wait until the machine uses fewer cores than this (default 0.3)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=120.0, help="wait at most this many seconds for that (0: never wait)"
    )
    parser.add_argument("--verbose", action="store_true", help="print wrk's own report of each run")
    options = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench/http.py needs wrk, the HTTP load generator, on PATH: `apt-get install wrk` (Debian, Ubuntu), "
            "`brew install wrk` (macOS), or build it from its sources.",
            file=sys.stderr,
        )
        return 2
    worker_counts = [int(w) for w in options.workers.split(",")]
    modes = [m.strip() for m in options.modes.split(",")]
    print(f"Python {platform.python_version()}; {versions()}")
    print(f"machine: {machine()}")
    print("load average before the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"speed check before the run: {speed():.2f} M loop iterations/s")
    print("command: " + " ".join(["bench/http.py", *(argv if argv is not None else sys.argv[1:])]))

    rng = random.Random(SEED)
    singles = single_bodies(rng, 1_000)
    batches = batch_bodies(rng, 50)
    runs: list[Run] = []
    problems: list[str] = []
    per_server = len(modes) * (options.duration + options.warmup + options.quiet_wait + 5) + 4 * 5 + 120
    with tempfile.TemporaryDirectory(prefix="charter-bench-http-") as temporary:
        work = Path(temporary)
        credential: str | None = None
        for workers in worker_counts:
            data = work / f"data-{workers}"
            env = {**os.environ, "CHARTER_DATA_DIR": str(data)}
            env.pop("CHARTER_DATABASE_URL", None)
            if options.database_url:
                env["CHARTER_DATABASE_URL"] = options.database_url
                if credential is None:
                    credential = mint_credential(env)
            server = start_server(workers, env, per_server, credential)
            try:
                if options.database_url:
                    credential = server.credential
                print(f"\n{workers} worker{'s' if workers > 1 else ''} on {server.base} (pid {server.process.pid})")
                found = check_answers(server, env, singles[:60], batches[:3])
                problems += found
                if found:
                    print("\n".join(found[:10]))
                    break
                single = lua_script(SINGLE_PATH, singles, server.credential, 0, work, f"single-{workers}")
                paced = lua_script(SINGLE_PATH, singles, server.credential, PACE_DELAY_MS, work, f"paced-{workers}")
                batch = lua_script(BATCH_PATH, batches, server.credential, 0, work, f"batch-{workers}")
                for mode in modes:
                    if options.quiet_wait:
                        load = wait_for_quiet(options.quiet_below, options.quiet_wait)
                        if load >= options.quiet_below:
                            print(f"  (the machine is busy: {load:.2f} cores in use before {mode}; measuring anyway)")
                    if mode == "single max":
                        args = (single, SINGLE_PATH, options.threads, options.single_connections, 1)
                    elif mode == "single paced":
                        connections = paced_connections(server, paced, options.threads, options.rate, 3)
                        args = (paced, SINGLE_PATH, options.threads, connections, 1)
                    elif mode == "batch max":
                        args = (batch, BATCH_PATH, options.threads, options.batch_connections, BATCH)
                    else:
                        parser.error(f"unknown mode {mode!r}")
                    script, path, threads, connections, per_request = args
                    if options.warmup and mode != "single paced":
                        run_wrk(server, script, path, threads, connections, options.warmup)
                    run = measure(
                        server,
                        mode,
                        workers,
                        script,
                        path,
                        threads,
                        connections,
                        options.duration,
                        per_request,
                        options.verbose,
                    )
                    runs.append(run)
                    print(
                        f"  {mode}: {run.rate:,.0f} requests/s, {run.decisions:,.0f} decisions/s, "
                        f"p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms ({connections} connections, "
                        f"server {run.server_cpu:.2f} cores ("
                        + " + ".join(f"{c:.2f}" for c in server.split or [])
                        + f"), {run.server_us:,.0f} µs a request; wrk {run.wrk_cpu:.2f}; "
                        f"others {run.other_cpu:.2f})"
                    )
                    if run.errors:
                        problems.append(f"{mode}, {workers} workers: {run.errors} errors or non-2xx answers")
            finally:
                server.stop()
    print()
    print_table(runs)
    print_targets(runs)
    return finish(problems)


def finish(problems: list[str]) -> int:
    """The run's closing lines (machine speed and load now, the problems found) and its exit status."""
    print(f"speed check after the run: {speed():.2f} M loop iterations/s")
    print("load average after the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if problems:
        print(f"FAILED: {len(problems)} problems", file=sys.stderr)
        for problem in problems[:20]:
            print("  " + problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
