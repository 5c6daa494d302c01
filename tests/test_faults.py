"""Fault tests with real `charter serve` processes (bounded, loopback only; results in docs/reliability.md):

- the database goes away and comes back: a PostgreSQL cluster of the test's own (initdb in tmp_path, on a
  free port; the shared server is never touched) is stopped and started again while a server answers
  decisions from its snapshot (none fails), writes fail with a clean 503 naming the cause (no 500, no
  traceback), /readyz says 503, and writes resume once it is back, without restarting Charter;
- two servers on one PostgreSQL, one killed with SIGKILL mid-traffic: the other keeps answering decisions
  and writes, and a write made through the survivor is read back.

They need PostgreSQL's server binaries (initdb, pg_ctl) for the first and a PostgreSQL for the second; without
them they skip, or fail under CHARTER_REQUIRE_POSTGRES=1 as CI sets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from test_servers import evaluation, free_port, server_env

PG_BIN = Path(os.environ.get("CHARTER_PG_BIN", "/usr/lib/postgresql/15/bin"))
DOWN_FOR = 4.0  # seconds the database stays away
BACK_WITHIN = 30.0  # seconds for writes to resume once it is back


def _missing(reason: str) -> None:
    if os.environ.get("CHARTER_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class Cluster:
    """A throwaway PostgreSQL cluster: initdb into a temporary directory, served on a free loopback port."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(arg) for arg in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout.decode()} {done.stderr.decode()}")

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync")

    def pg_ctl(self, action: str, *more: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log", "-w", action, *more
        )

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast")


@pytest.fixture
def cluster():
    if not (PG_BIN / "initdb").exists():
        _missing(f"PostgreSQL server binaries not found in {PG_BIN} (set CHARTER_PG_BIN)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _missing("running as root without runuser: initdb cannot be run as another user")
    # Not under pytest's tmp_path: that is private to the user running the tests, and the cluster runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="charter-pg-"))
    os.chmod(root, 0o755)
    pg = Cluster(root / "cluster")
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        subprocess.run(
            [*(["runuser", "-u", "postgres", "--"] if pg._as_postgres else []), str(PG_BIN / "pg_ctl"), "-D",
             str(pg.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


class Traffic:
    """Decisions asked in a loop on a thread until stopped: every answer's status (or error) counted."""

    def __init__(self, url: str, credential: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {credential}"}
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        body = evaluation("alice", "read", "db", "prod/orders")
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=10) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/access/v1/evaluation", json=body)
                    ok = response.status_code == 200 and response.json()["decision"] is True
                    self.outcomes["ok" if ok else f"http {response.status_code}"] += 1
                    if not ok and len(self.failures) < 5:
                        self.failures.append(response.text[:300])
                except httpx.HTTPError as error:
                    self.outcomes[type(error).__name__] += 1
                time.sleep(0.005)


def _write(http: httpx.Client, name: str) -> httpx.Response:
    return http.put(f"/admin/v1/users/{name}", json={"groups": ["sre"]})


def test_postgresql_restarted_decisions_keep_coming_from_the_snapshot_writes_503_then_resume(cluster, servers):
    server = servers.start("a", {"CHARTER_DATABASE_URL": cluster.url, "CHARTER_POLL_INTERVAL": "0.2"})
    credential = server.credential()
    with (
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {credential}"}, timeout=15) as http,
        Traffic(server.url, credential) as traffic,
    ):
        assert _write(http, "before").status_code == 200
        assert http.get("/readyz").status_code == 200
        time.sleep(1.0)
        cluster.stop()
        down_at = time.monotonic()
        refused = _write(http, "during")
        ready = http.get("/readyz")
        while time.monotonic() - down_at < DOWN_FOR:
            time.sleep(0.2)
        answered_while_down = traffic.outcomes["ok"]
        cluster.start()
        back_at = time.monotonic()
        resumed = None
        while time.monotonic() - back_at < BACK_WITHIN:
            response = _write(http, "after")
            if response.status_code == 200:
                resumed = time.monotonic() - back_at
                break
            assert response.status_code == 503, response.text
            time.sleep(0.2)
        time.sleep(1.0)
    print(
        f"\nPostgreSQL away {DOWN_FOR:g} s: decisions {dict(traffic.outcomes)}, write while away "
        f"{refused.status_code}, writes resumed {resumed:.2f} s after it was back"
        if resumed is not None
        else ""
    )
    assert refused.status_code == 503, refused.text
    error = refused.json()
    assert error["error"] == "store_unavailable" and "OperationalError" in error["message"], error
    assert "Traceback" not in refused.text and refused.headers["retry-after"] == "1"
    assert ready.status_code == 503 and ready.json()["problems"], ready.text
    assert resumed is not None, f"writes did not resume within {BACK_WITHIN:g} s of PostgreSQL coming back"
    assert set(traffic.outcomes) == {"ok"}, (traffic.outcomes, traffic.failures)
    assert answered_while_down > 0 and traffic.outcomes["ok"] > answered_while_down
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {credential}"}) as http:
        assert http.get("/admin/v1/users/after").status_code == 200
        assert http.get("/admin/v1/users/during").status_code == 404  # the refused write left nothing
        assert http.get("/readyz").status_code == 200
    assert server.process.poll() is None, "the server exited"
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_one_of_two_servers_killed_the_other_carries_on_answering_and_writing(backend, servers):
    env = server_env(backend)
    first = servers.start("first", env)
    second = servers.start("second", env)
    credential = first.credential()
    headers = {"Authorization": f"Bearer {credential}"}
    writes: Counter[str] = Counter()
    with Traffic(second.url, credential) as traffic, httpx.Client(base_url=second.url, headers=headers) as http:
        for i in range(20):
            writes[str(_write(http, f"w{i}").status_code)] += 1
        first.kill()
        killed_at = traffic.outcomes["ok"]
        for i in range(20, 40):
            writes[str(_write(http, f"w{i}").status_code)] += 1
        time.sleep(1.0)
    assert first.process.returncode is not None
    assert set(traffic.outcomes) == {"ok"}, (traffic.outcomes, traffic.failures)
    assert traffic.outcomes["ok"] > killed_at > 0
    assert writes == Counter({"200": 40}), writes
    with httpx.Client(base_url=second.url, headers=headers) as http:
        assert http.get("/admin/v1/users/w39").json()["groups"] == ["sre"]
    print(f"\nkilled one of two: the other answered {dict(traffic.outcomes)} decisions and {dict(writes)} writes")
