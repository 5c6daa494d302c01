"""Real servers, as separate processes: the README's run command, several servers on one PostgreSQL, kill -9.

Each server is `python -m charter serve --port P` on a free loopback port, with the store chosen by
CHARTER_DATA_DIR (SQLite) or CHARTER_DATABASE_URL (PostgreSQL); every process is ended in teardown.

The PostgreSQL tests take a fresh database from conftest.py's `backend` fixture (CHARTER_TEST_POSTGRES_URL):
without PostgreSQL they skip, saying why, unless CHARTER_REQUIRE_POSTGRES=1 (as `.ci/run` sets): then they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from charter.store.db import NOTIFY_CHANNEL, current_revision, make_engine, sessions
from charter.store.models import GroupRow, IdentityRow, MembershipRow

README = Path(__file__).parent.parent / "README.md"
STARTUP_TIMEOUT = 60.0  # seconds for a server to answer HTTP (imports, migrations, first snapshot)
PROPAGATION_LIMIT = 1.0  # the promise: a change through one server is used by the others within 1 s
# Ask as of a fixed moment (a Monday, inside business hours) so these tests do not depend on today's date.
# (The snapshot's charter version still follows the real date.)
DURING_CLAUSE_1 = "2026-06-01T12:00:00Z"
STORE_ENV = ("CHARTER_DATABASE_URL", "CHARTER_DATA_DIR", "CHARTER_DISABLE_LISTEN")


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One `charter serve` process; its stdout and stderr go to a log file in the test's tmp_path."""

    def __init__(self, name: str, log: Path, env: dict[str, str], cwd: Path):
        self.name = name
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {key: value for key, value in os.environ.items() if key not in STORE_ENV}
        environment.update(env)
        environment["PYTHONUNBUFFERED"] = "1"  # the credential line reaches the log at once
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "charter", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=environment,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server {self.name} exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/.well-known/authzen-configuration", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        pytest.fail(f"server {self.name} did not answer within {timeout:g} s:\n{self.output()}")

    def credential(self) -> str:
        match = re.search(r"Admin API credential[^\n]*\n\s+(\S+)", self.output())
        assert match, f"server {self.name} printed no admin credential:\n{self.output()}"
        return match.group(1)

    def kill(self) -> None:
        """SIGKILL to the server and every process it started (its decision log writer): no shutdown code
        runs, open transactions are cut off where they are."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own group: started with start_new_session
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class Servers:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[Server] = []

    def start(self, name: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Server:
        server = Server(name, self.tmp_path / f"{name}.log", env or {}, cwd or self.tmp_path)
        self.started.append(server)
        server.wait_ready()
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


# --- stores ----------------------------------------------------------------------------------------
# The stores come from conftest.py's `backend` fixture: a SQLite file in tmp_path, or a fresh PostgreSQL
# database (dropped afterwards; skipped without PostgreSQL, failed instead when CHARTER_REQUIRE_POSTGRES=1).


def server_env(backend) -> dict[str, str]:
    """The environment that puts a server on the backend's store: SQLite through its data directory
    (the embedded default's own path), PostgreSQL through CHARTER_DATABASE_URL."""
    if backend.name == "sqlite":
        path = Path(make_url(backend.url).database)
        assert path.name == "charter.db"
        return {"CHARTER_DATA_DIR": str(path.parent)}
    return {"CHARTER_DATABASE_URL": backend.url}


# --- HTTP ------------------------------------------------------------------------------------------


def evaluation(subject: str, action: str, resource_type: str, resource_id: str) -> dict:
    return {
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": resource_type, "id": resource_id},
        "context": {"time": DURING_CLAUSE_1},
    }


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def alice_may_read(client: httpx.Client, server: Server, credential: str, min_revision: int | None = None) -> dict:
    headers = bearer(credential)
    if min_revision is not None:
        headers["Charter-Min-Revision"] = str(min_revision)
    response = client.post(
        server.url + "/access/v1/evaluation", json=evaluation("alice", "read", "db", "prod/orders"), headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


# --- (a) the README's run command -----------------------------------------------------------------


def readme_example() -> tuple[dict, dict]:
    """The evaluation the README's curl sends, and the response the README shows for it."""
    text = README.read_text(encoding="utf-8")
    sent = re.search(r"^curl .*?-d '(\{.*?\})'", text, re.MULTILINE | re.DOTALL)
    shown = re.search(r"^```json\n(.*?)\n```", text[sent.end() :] if sent else "", re.MULTILINE | re.DOTALL)
    assert sent and shown, "the README should show a curl of /access/v1/evaluation and, below it, its response"
    return json.loads(sent.group(1)), json.loads(shown.group(1))


def test_readme_run_command_serves_a_decision_with_its_clause_on_the_embedded_default(tmp_path, servers):
    assert ".venv/bin/charter serve\n" in README.read_text(encoding="utf-8")
    # No CHARTER_DATA_DIR or CHARTER_DATABASE_URL: the default store, ./data/charter.db, in the working directory.
    server = servers.start("readme", cwd=tmp_path)
    output = server.output()
    assert "Created the store with the sample charter and directory." in output
    assert f"sqlite:///{tmp_path / 'data' / 'charter.db'}" in output
    assert (tmp_path / "data" / "charter.db").is_file()
    credential = server.credential()

    sent, shown = readme_example()
    sent.setdefault("context", {})["time"] = DURING_CLAUSE_1
    with httpx.Client(timeout=10.0) as client:
        response = client.post(server.url + "/access/v1/evaluation", json=sent, headers=bearer(credential))
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["decision"] is shown["decision"] is True
        for key in ("charter", "clause", "basis"):
            assert answer["context"][key] == shown["context"][key], key
        assert answer["context"]["clause"] == 1

        denied = client.post(
            server.url + "/access/v1/evaluation",
            json=evaluation("alice", "delete", "db", "prod/orders"),
            headers=bearer(credential),
        )
        assert denied.status_code == 200
        assert denied.json()["decision"] is False
        assert denied.json()["context"]["clause"] == 4

        anonymous = client.post(server.url + "/access/v1/evaluation", json=sent)
        assert anonymous.status_code == 401


# --- (b) several servers on one PostgreSQL ---------------------------------------------------------


def listening_backends(database_url: str) -> int:
    import psycopg

    name = make_url(database_url).database
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query = %s",
            (name, f"LISTEN {NOTIFY_CHANNEL}"),
        ).fetchone()
    return int(row[0])


def time_until(server: Server, credential: str, allowed: bool, revision: int, since: float) -> float | None:
    """Seconds from `since` until `server` answers alice's read with `allowed`; None if not within 5 s."""
    deadline = since + 5.0
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            answer = alice_may_read(client, server, credential)
            if answer["decision"] is allowed:
                assert answer["context"]["revision"] >= revision
                return time.monotonic() - since
            time.sleep(0.01)
    return None


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_membership_revoked_through_one_server_is_denied_by_the_others_within_a_second(backend, servers, capsys):
    env = server_env(backend)
    first = servers.start("first", env)
    credential = first.credential()
    # Each watcher measures one path alone: `notified` polls only once a minute, so only NOTIFY can make
    # it see a change within the second; `polling` does not LISTEN, so only its polling (every 0.5 s) can.
    notified = servers.start("notified", {**env, "CHARTER_POLL_INTERVAL": "60"})
    polling = servers.start("polling", {**env, "CHARTER_DISABLE_LISTEN": "1"})
    assert "Admin API credential" not in notified.output() + polling.output(), "the store is created only once"

    # first and notified LISTEN; polling, told not to, does not.
    deadline = time.monotonic() + 5.0
    while listening_backends(backend.url) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listening_backends(backend.url) == 2

    watched = {"notified (NOTIFY only)": notified, "polling (polling only)": polling}
    measured: dict[str, list[float]] = {name: [] for name in watched}
    with httpx.Client(timeout=10.0) as client:
        for server in (first, notified, polling):
            assert alice_may_read(client, server, credential)["decision"] is True

        member = first.url + "/admin/v1/groups/sre/members/users/alice"
        for method, allowed in (("DELETE", False), ("PUT", True), ("DELETE", False), ("PUT", True), ("DELETE", False)):
            response = client.request(method, member, headers=bearer(credential))
            since = time.monotonic()
            assert response.status_code == 200, response.text
            assert response.json()["changed"] is True
            revision = response.json()["revision"]
            with ThreadPoolExecutor(len(watched)) as pool:
                futures = {
                    name: pool.submit(time_until, server, credential, allowed, revision, since)
                    for name, server in watched.items()
                }
                for name, future in futures.items():
                    seconds = future.result(timeout=15)
                    assert seconds is not None, f"{name} still answered {not allowed} 5 s after {method}"
                    measured[name].append(seconds)
            # A caller that insists on the write's revision gets it from the writing server.
            assert alice_may_read(client, first, credential, min_revision=revision)["decision"] is allowed

    with capsys.disabled():
        for name, seconds in measured.items():
            print(f"\npropagation to {name}: " + ", ".join(f"{s * 1000:.0f} ms" for s in seconds), end="")
    for name, seconds in measured.items():
        assert max(seconds) < PROPAGATION_LIMIT, f"{name}: {seconds}"


# --- (c) kill -9 in the middle of a burst of admin writes ------------------------------------------


class ClientThreads:
    """Client threads (`self.threads`) started together and joined within one deadline."""

    threads: list[threading.Thread]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.threads), "a client thread did not finish"


class Burst(ClientThreads):
    """Client threads each creating users burst-T-I in groups g1 and g2, until the server goes away."""

    def __init__(self, server: Server, credential: str, threads: int = 4, limit: int = 2000):
        self.server = server
        self.credential = credential
        self.limit = limit
        self.lock = threading.Lock()
        self.attempted: set[str] = set()
        self.acknowledged: dict[str, int] = {}  # name -> the revision its response reported
        self.cut_off: list[str] = []  # per thread: the transport error that ended it
        self.unexpected: list[str] = []
        self.threads = [threading.Thread(target=self._write, args=(t,), daemon=True) for t in range(threads)]

    def _write(self, number: int) -> None:
        with httpx.Client(timeout=30.0, headers=bearer(self.credential)) as client:
            for index in range(self.limit):
                name = f"burst-{number}-{index}"
                with self.lock:
                    self.attempted.add(name)
                try:
                    response = client.put(f"{self.server.url}/admin/v1/users/{name}", json={"groups": ["g1", "g2"]})
                except httpx.TransportError as error:
                    with self.lock:
                        self.cut_off.append(f"{name}: {type(error).__name__}")
                    return
                with self.lock:
                    if response.is_success:
                        self.acknowledged[name] = response.json()["revision"]
                    else:
                        self.unexpected.append(f"{name}: {response.status_code} {response.text}")
                        return


def test_kill_9_mid_burst_loses_no_committed_change_and_leaves_none_half_applied(backend, servers, capsys):
    store = server_env(backend)
    server = servers.start("before", store)
    credential = server.credential()
    with httpx.Client(timeout=10.0, headers=bearer(credential)) as client:
        for group in ("g1", "g2"):
            response = client.put(f"{server.url}/admin/v1/groups/{group}", json={})
            assert response.status_code == 200, response.text
        start_revision = response.json()["revision"]

    burst = Burst(server, credential)
    burst.start()
    deadline = time.monotonic() + 60.0
    while len(burst.acknowledged) < 60 and time.monotonic() < deadline and not burst.unexpected:
        time.sleep(0.005)
    server.kill()
    burst.join(timeout=60.0)
    assert not burst.unexpected, burst.unexpected
    assert len(burst.acknowledged) >= 60, "the burst was too slow to reach 60 acknowledged writes"
    assert len(burst.cut_off) == len(burst.threads), "every writer should have been cut off by the kill"

    # The store itself, read directly after the crash (SQLite recovers its WAL on open).
    db = make_engine(backend.url)
    try:
        with sessions(db)() as session:
            stored_revision = current_revision(session)
            groups: dict[str, set[str]] = {}
            for user in session.scalars(select(IdentityRow.name).where(IdentityRow.name.like("burst-%"))):
                groups[user] = set()
            rows = session.execute(
                select(IdentityRow.name, GroupRow.name)
                .join(MembershipRow, MembershipRow.identity_id == IdentityRow.id)
                .join(GroupRow, GroupRow.id == MembershipRow.group_id)
                .where(IdentityRow.name.like("burst-%"))
            )
            for user, group in rows:
                groups[user].add(group)
    finally:
        db.dispose()

    lost = sorted(set(burst.acknowledged) - set(groups))
    half = sorted(name for name, held in groups.items() if held != {"g1", "g2"})
    assert not lost, f"acknowledged writes lost: {lost}"
    assert not half, f"users with only some of their memberships: {half}"
    assert set(groups) <= burst.attempted
    assert stored_revision == start_revision + len(groups), "one revision per committed change, no gap, no extra"
    revisions = sorted(burst.acknowledged.values())
    assert len(set(revisions)) == len(revisions)
    assert start_revision < revisions[0] and revisions[-1] <= stored_revision

    # The store still answers: a server restarts on it, sees the same, and takes new writes.
    after = servers.start("after", store)
    assert "Admin API credential" not in after.output(), "a restart must not re-create the store"
    with httpx.Client(timeout=10.0, headers=bearer(credential)) as client:
        response = client.get(after.url + "/admin/v1/revision")
        assert response.status_code == 200, response.text
        assert response.json()["revision"] == stored_revision
        served = {}
        for name in sorted(burst.attempted):
            response = client.get(f"{after.url}/admin/v1/users/{name}")
            assert response.status_code in (200, 404), response.text
            if response.status_code == 200:
                served[name] = set(response.json()["groups"])
        assert served == groups
        response = client.put(after.url + "/admin/v1/users/after-restart", json={"groups": ["g1"]})
        assert response.status_code == 200, response.text
        assert response.json()["revision"] == stored_revision + 1
        assert alice_may_read(client, after, credential)["decision"] is True

    in_flight = len(groups) - len(burst.acknowledged)
    with capsys.disabled():
        print(
            f"\nkill -9 on {backend.name}: {len(burst.acknowledged)} acknowledged, "
            f"{len(groups)} present (+{in_flight} committed but unanswered), {len(burst.attempted)} attempted, "
            f"revision {start_revision} -> {stored_revision}",
            end="",
        )
