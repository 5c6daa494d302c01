"""The decision log in real server processes: a clean shutdown loses nothing, a kill -9 loses only the queue.

Each server is `python -m charter serve` (tests/test_servers.py's `Server`), on SQLite and on a fresh
PostgreSQL database (conftest.py's `backend`). Every request carries its own X-Request-ID, which the
decision log stores with each decision, so the store can be compared with what the clients were told,
request by request. The chain is checked the operator's way, with `charter audit verify`.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from charter.store.db import make_engine, sessions
from charter.store.models import DecisionRecordRow
from test_servers import STORE_ENV, ClientThreads, Server, bearer, evaluation, server_env

# Four allowed and two denied questions under the sample charter (at DURING_CLAUSE_1, a Monday noon).
MIX = (
    evaluation("alice", "read", "db", "prod/orders"),  # allow, clause 1
    evaluation("alice", "delete", "db", "prod/orders"),  # deny, clause 4
    evaluation("alice", "write", "db", "prod/orders"),  # allow, clause 1
    evaluation("bob", "read", "db", "prod/invoices"),  # allow, clause 1
    evaluation("mallory", "read", "db", "prod/orders"),  # deny: no clause allows it
    evaluation("frank", "read", "reports", "finance/q3"),  # allow, clause 7
)


class Load(ClientThreads):
    """Client threads sending single evaluations and /evaluations batches, counting every answered decision.

    Thread T's requests are X-Request-ID `<tag>-T-N`; for each, `sent` holds how many decisions it asked for
    and `answered` the outcomes it got back. A thread stops after `requests` requests, or at the first
    transport error (the server went away), or at the first answer that is not a 200 (`unexpected`).
    `rate` paces each thread to about that many decisions a second (None: as fast as it can).
    """

    def __init__(
        self,
        server: Server,
        credential: str,
        tag: str,
        *,
        threads: int = 4,
        requests: int | None = None,
        batch_every: int = 5,
        batch_size: int = 16,
        rate: float | None = None,
    ):
        self.server = server
        self.credential = credential
        self.tag = tag
        self.requests = requests
        self.batch_every = batch_every
        self.batch_size = batch_size
        self.rate = rate
        self.lock = threading.Lock()
        self.sent: dict[str, int] = {}
        self.answered: dict[str, collections.Counter] = {}
        self.cut_off: list[str] = []
        self.unexpected: list[str] = []
        self.threads = [threading.Thread(target=self._send, args=(t,), daemon=True) for t in range(threads)]

    def count(self, outcome: str | None = None) -> int:
        with self.lock:
            return sum(c[outcome] if outcome else c.total() for c in self.answered.values())

    def single_allows(self) -> int:
        """Allowed single evaluations answered (batch requests not counted)."""
        with self.lock:
            return sum(c["allow"] for r, c in self.answered.items() if self.sent[r] == 1)

    def _send(self, number: int) -> None:
        headers = {**bearer(self.credential), "Content-Type": "application/json"}
        next_at = time.monotonic()
        with httpx.Client(base_url=self.server.url, timeout=30.0, headers=headers) as client:
            index = 0
            while self.requests is None or index < self.requests:
                request_id = f"{self.tag}-{number}-{index}"
                if index % self.batch_every == self.batch_every - 1:
                    items = [MIX[(number + index + i) % len(MIX)] for i in range(self.batch_size)]
                    path, body = "/access/v1/evaluations", {"evaluations": items}
                else:
                    items = [MIX[(number + index) % len(MIX)]]
                    path, body = "/access/v1/evaluation", items[0]
                with self.lock:
                    self.sent[request_id] = len(items)
                try:
                    response = client.post(path, json=body, headers={"X-Request-ID": request_id})
                except httpx.TransportError as error:
                    with self.lock:
                        self.cut_off.append(f"{request_id}: {type(error).__name__}")
                    return
                if response.status_code != 200:
                    with self.lock:
                        self.unexpected.append(f"{request_id}: {response.status_code} {response.text}")
                    return
                answer = response.json()
                decisions = answer.get("evaluations", [answer])
                assert len(decisions) == len(items), answer
                with self.lock:
                    self.answered[request_id] = collections.Counter(
                        "allow" if d["decision"] else "deny" for d in decisions
                    )
                index += 1
                if self.rate is not None:
                    next_at += len(items) / self.rate
                    pause = next_at - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)


def stored(database_url: str) -> dict[str, collections.Counter]:
    """The decision log as stored: request id -> outcomes."""
    db = make_engine(database_url)
    try:
        with sessions(db)() as session:
            found: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
            for request_id, outcome in session.execute(select(DecisionRecordRow.request_id, DecisionRecordRow.outcome)):
                found[request_id][outcome] += 1
            return dict(found)
    finally:
        db.dispose()


def audit_verify(backend, cwd: Path) -> subprocess.CompletedProcess:
    """`charter audit verify` (both chains) on the backend's store, as an operator runs it."""
    environment = {key: value for key, value in os.environ.items() if key not in STORE_ENV}
    environment.update(server_env(backend))
    return subprocess.run(
        [sys.executable, "-m", "charter", "audit", "verify"],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def terminate(server: Server, timeout: float = 30.0) -> None:
    """SIGTERM, and wait for the server to shut down on its own (failing the test if it does not).

    uvicorn shuts down gracefully (the lifespan's shutdown drains the decision log), then raises the
    signal it caught again, so a clean exit is 0 or -SIGTERM."""
    server.process.terminate()
    try:
        code = server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)
        pytest.fail(f"server {server.name} did not exit within {timeout:g} s of SIGTERM:\n{server.output()}")
    assert code in (0, -signal.SIGTERM), f"server {server.name} exited with {code}:\n{server.output()}"


def total(counters) -> collections.Counter:
    return sum(counters, collections.Counter())


# --- (a) a clean shutdown ---------------------------------------------------------------------------


def test_sigterm_writes_every_answered_decision_and_the_chain_verifies(backend, servers, tmp_path, capsys):
    """2,000 decisions (1,000 single evaluations, 1,000 in /evaluations batches of 50, allows and denies);
    the writer is told to wait a minute between rounds, so at SIGTERM every decision is still queued and
    only the shutdown drain can write it. Afterwards the chain holds exactly the 2,000 answered decisions,
    request by request and outcome by outcome, and `charter audit verify` exits 0."""
    store = server_env(backend)
    server = servers.start("clean", {**store, "CHARTER_DECISION_LOG_INTERVAL": "60"})
    load = Load(server, server.credential(), "clean", requests=250 + 5, batch_every=51, batch_size=50)
    load.start()
    load.join(timeout=60.0)
    assert not load.unexpected and not load.cut_off, load.unexpected + load.cut_off
    answered = load.count()
    assert answered == 2000 and load.count("allow") and load.count("deny")
    queued_before = sum(c.total() for c in stored(backend.url).values())

    terminate(server)
    log = stored(backend.url)
    assert log == load.answered, "the decision log differs from the answers, request by request"
    verified = audit_verify(backend, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"decisions: records 1..{answered} " in verified.stdout, verified.stdout

    with capsys.disabled():
        print(
            f"\nclean shutdown on {backend.name}: {answered} answered ({load.count('allow')} allow, "
            f"{load.count('deny')} deny), {queued_before} in the store before SIGTERM, "
            f"{sum(c.total() for c in log.values())} after; audit verify exit {verified.returncode}",
            end="",
        )


# --- (b) kill -9 under load --------------------------------------------------------------------------

CAPACITY, BATCH, INTERVAL = 2000, 500, 0.5
KEPT_LIMIT = 10 * CAPACITY  # DecisionLog's default kept_limit (no knob sets it)
SIZE = 16  # decisions in each batch request of `Load` (its default batch_size)
BOUND = CAPACITY + KEPT_LIMIT + 2 * BATCH + SIZE - 1
CRASH_ENV = {
    "CHARTER_DECISION_LOG_CAPACITY": str(CAPACITY),
    "CHARTER_DECISION_LOG_BATCH": str(BATCH),
    "CHARTER_DECISION_LOG_INTERVAL": str(INTERVAL),
}


def test_kill_9_under_load_loses_at_most_the_queue_and_the_chain_verifies(backend, servers, tmp_path, capsys):
    """Four client threads send about 3,000 decisions/s (two in three allowed) to a server whose decision log
    queues up to CAPACITY allows, writes up to BATCH of each queue a round and sleeps INTERVAL s between
    rounds; the server is killed with SIGKILL mid-load.

    What a crash can lose, from charter/audit/decisions.py: the endpoint queues its exchange before the
    answer is sent, so every answered decision was accepted; a decision accepted and not committed is
    either still queued or in the batch being written (`pending` = the sampled queue + the kept queue +
    the batch in flight), or was dropped earlier because the sampled queue was full (`dropped`), or not
    logged because the kept queue was past `kept_limit` (`kept_overflow`). Both of those are logged as
    warnings, and this load (a tenth of what the writer manages) must cause neither. The kill reaches
    the server's writer process too (its process group), so a batch it was writing is lost with it. So,
    for the decisions the clients got an answer for, lost = answered - stored is at most `pending` at the
    kill. A batch in flight takes exchanges from the front of each queue until it holds BATCH decisions
    or more (at most BATCH + SIZE - 1, an exchange being taken whole). A single evaluation allowed goes to
    the sampled queue; a denied one, and every batch request of this load (each holds a deny), to the
    kept queue:

    - allowed single evaluations (sampled queue, at most CAPACITY decisions): lost <= CAPACITY + BATCH;
    - the rest (kept queue, at most KEPT_LIMIT = 10 x CAPACITY): lost <= KEPT_LIMIT + BATCH + SIZE - 1;
    - in all: 0 <= lost <= CAPACITY + KEPT_LIMIT + 2 x BATCH + SIZE - 1.

    lost >= 0 holds request by request (each X-Request-ID is unique), and nothing is stored that was not
    sent; a request cut off by the kill may have been logged without its answer arriving, which is
    counted separately ("committed, unanswered"). The load runs until more than twice CAPACITY + BATCH
    single evaluations were allowed, so a server that wrote nothing fails the first bound. Then `charter
    audit verify` must exit 0, and a restarted server must extend the same chain (verified again)."""
    store = server_env(backend)
    server = servers.start("crash", {**store, **CRASH_ENV})
    credential = server.credential()
    load = Load(server, credential, "crash", threads=4, rate=750.0, batch_every=20)
    load.start()
    deadline = time.monotonic() + 30.0
    while load.single_allows() <= 2 * (CAPACITY + BATCH) and time.monotonic() < deadline and not load.unexpected:
        time.sleep(0.01)
    server.kill()
    load.join(timeout=60.0)
    assert not load.unexpected, load.unexpected
    assert len(load.cut_off) == len(load.threads), "every client thread should have been cut off by the kill"
    output = server.output()
    assert "dropped so far" not in output and "not logged" not in output, f"the writer fell behind:\n{output}"

    log = stored(backend.url)
    assert set(log) <= set(load.sent), "the log holds decisions no client asked for"
    assert all(log[r].total() <= load.sent[r] for r in log), "a request's decisions were logged twice"
    lost, lost_single_allows = collections.Counter(), 0
    for request_id, answers in load.answered.items():
        missing = answers - log.get(request_id, collections.Counter())
        assert (answers - missing) == log.get(request_id, collections.Counter()), f"{request_id}: not its answers"
        lost += missing
        if load.sent[request_id] == 1:
            lost_single_allows += missing["allow"]
    unanswered = total(c for r, c in log.items() if r not in load.answered)
    answered, kept = load.count(), total(log.values())
    assert load.single_allows() > 2 * (CAPACITY + BATCH), "the load was too slow to test the bound"
    assert lost_single_allows <= CAPACITY + BATCH, f"{lost_single_allows} allowed single evaluations lost"
    assert lost.total() - lost_single_allows <= KEPT_LIMIT + BATCH + SIZE - 1
    assert 0 <= lost.total() <= BOUND
    assert kept["deny"] > 0 and kept["allow"] > 0

    verified = audit_verify(backend, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"decisions: records 1..{kept.total()} " in verified.stdout, verified.stdout

    # A restart extends the same chain: ten more decisions, a clean stop, the chain still verifies.
    after = servers.start("after-crash", store)
    more = Load(after, credential, "after", threads=1, requests=2, batch_every=2, batch_size=9)
    more.start()
    more.join(timeout=30.0)
    assert more.count() == 10 and not more.unexpected and not more.cut_off
    terminate(after)
    again = audit_verify(backend, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"decisions: records 1..{kept.total() + 10} " in again.stdout, again.stdout

    with capsys.disabled():
        print(
            f"\nkill -9 on {backend.name}: {answered} answered ({load.count('allow')} allow, {load.count('deny')} "
            f"deny), {kept.total()} stored ({kept['allow']} allow, {kept['deny']} deny; "
            f"{unanswered.total()} of them committed, unanswered), lost {lost.total()} "
            f"({lost['allow']} allow, {lost_single_allows} of them single <= {CAPACITY + BATCH}, {lost['deny']} "
            f"deny), bound {BOUND}; audit verify exit {verified.returncode}, "
            f"after restart +10: exit {again.returncode}",
            end="",
        )
