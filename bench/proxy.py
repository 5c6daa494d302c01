"""Proxy benchmark: what `charter proxy` adds to a request, over loopback, against calling the upstream directly.

    .venv/bin/python bench/proxy.py [--requests N] [--connections C] [--seconds S]

Three processes besides this one: a Charter server (the sample store on SQLite in a temporary directory,
started here in a child process, which also mints the access token), the upstream (a minimal ASGI
application under uvicorn with httptools and uvloop, answering 200 with a 40-byte JSON body) and
`charter proxy` in front of it (its route `/db/{name:path}`, `GET` is `read` on `db:{name}`: user "alice"
is allowed by clause 1 of the sample charter). The proxy decides from its local replica, with the
decision cache, and posts its decisions to Charter's decision log as it would in production.

Latency: N sequential `GET /db/prod/orders` with the token on one keep-alive connection, through a
minimal raw-socket HTTP/1.1 client (so the client's own cost is small and the same both ways), after a
warm-up; p50 and p99 by nearest rank, direct and through the proxy, and the added latency (the
difference of the percentiles). Throughput: C connections each sending requests back to back for S
seconds (asyncio, raw sockets), requests per second direct and proxied. The load generator shares the
machine with both servers: on 2 cores the throughput figures measure the machine as much as the proxy.
"""

from __future__ import annotations

import benchkit  # noqa: F401  # keeps bench/ off sys.path (bench/http.py)

# isort: split
import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUTES = """routes:
  - path: /db/{name:path}
    methods: {GET: read}
    resource: "db:{name}"
"""
UPSTREAM = textwrap.dedent(
    """
    BODY = b'{"ok":true,"service":"upstream","n":12345}'
    HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CHARTER = textwrap.dedent(
    """
    # The Charter server of the benchmark: the sample store, a server on PORT, a token for alice printed.
    import asyncio, datetime as dt, json, os, sys

    import uvicorn

    from charter.bootstrap import initialize
    from charter.engine import Engine
    from charter.oidc.rotation import ensure_keys
    from charter.oidc.tokens import mint_access_token
    from charter.store.db import make_engine
    from charter.web.app import create_app

    port = int(sys.argv[1])
    db = make_engine(f"sqlite:///{os.environ['CHARTER_DATA_DIR']}/charter.db")
    initialized = initialize(db)
    engine = Engine(db)
    app = create_app(engine, decision_writer="thread")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))

    async def serve():
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        ensure_keys(engine)
        minted = mint_access_token(
            engine.keyring, issuer=engine.issuer, audience=engine.issuer, subject_type="user", subject="alice",
            client_id="bench", scope="openid", lifetime=dt.timedelta(hours=1), now=engine.clock.now(), amr=["pwd"],
        )
        print(json.dumps([initialized.admin_credential, minted.token]), flush=True)
        await task

    asyncio.run(serve())
    """
)


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


class RawClient:
    """One keep-alive HTTP/1.1 connection; `get` sends a prepared request and reads one response."""

    def __init__(self, port: int, request: bytes):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = request
        self.buffer = b""

    def get(self) -> int:
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return status


def request_bytes(token: str) -> bytes:
    return (f"GET /db/prod/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n").encode()


def latencies(port: int, request: bytes, count: int) -> list[int]:
    client = RawClient(port, request)
    for _ in range(min(2000, count)):  # warm-up
        assert client.get() == 200
    times = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        status = client.get()
        times.append(clock() - started)
        assert status == 200, status
    client.sock.close()
    return times


def percentile(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))] / 1000


async def _connection(port: int, request: bytes, stop: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    while time.monotonic() < stop:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        done += 1
    counts.append(done)
    writer.close()


def throughput(port: int, request: bytes, connections: int, seconds: float) -> float:
    async def run() -> float:
        counts: list[int] = []
        started = time.monotonic()
        stop = started + seconds
        await asyncio.gather(*(_connection(port, request, stop, counts) for _ in range(connections)))
        return sum(counts) / (time.monotonic() - started)

    return asyncio.run(run())


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, load average {load:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-log", action="store_true", help="run the proxy with --no-log (no decision log)")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="the proxy's revision polling period")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="charter-bench-proxy-")
    charter_port, upstream_port, proxy_port = free_port(), free_port(), free_port()
    processes: list = []
    try:
        python = sys.executable
        Path(workdir, "charter_server.py").write_text(CHARTER)
        env = {**os.environ, "CHARTER_DATA_DIR": workdir, "CHARTER_ISSUER": f"http://127.0.0.1:{charter_port}"}
        charter = subprocess.Popen(
            [python, "charter_server.py", str(charter_port)], cwd=workdir, env=env, stdout=subprocess.PIPE, text=True
        )
        processes.append(charter)
        line = charter.stdout.readline() if charter.stdout is not None else ""
        if not line:
            raise SystemExit("the Charter server did not start")
        credential, token = json.loads(line)
        Path(workdir, "upstream.py").write_text(UPSTREAM)
        Path(workdir, "routes.yaml").write_text(ROUTES)
        uvicorn_args = ["--log-level", "warning", "--no-access-log", "--http", "httptools", "--loop", "uvloop"]
        upstream = subprocess.Popen(
            [python, "-m", "uvicorn", "upstream:app", "--port", str(upstream_port), *uvicorn_args], cwd=workdir
        )
        processes.append(upstream)
        env = {**os.environ, "CHARTER_URL": f"http://127.0.0.1:{charter_port}", "CHARTER_CREDENTIAL": credential}
        proxy = subprocess.Popen(
            [python, "-m", "charter", "proxy", "--upstream", f"http://127.0.0.1:{upstream_port}", "--routes"]
            + [str(Path(workdir, "routes.yaml")), "--port", str(proxy_port)]
            + ["--poll-interval", str(args.poll_interval)]
            + (["--no-log"] if args.no_log else []),
            env=env,
            stdout=subprocess.DEVNULL,
        )
        processes.append(proxy)
        wait_for_port(upstream_port)
        wait_for_port(proxy_port)
        request = request_bytes(token)

        print(f"machine: {machine()} (shared with other work while this ran)")
        print(f"python {platform.python_version()}; {args.requests} sequential requests per row, after a warm-up")
        direct = latencies(upstream_port, request, args.requests)
        proxied = latencies(proxy_port, request, args.requests)
        points = (50, 90, 99, 99.9)
        measured = (("direct", direct), ("through the proxy", proxied))
        rows = [(name, [percentile(v, p) for p in points]) for name, v in measured]
        print(f"{'path':<20}" + "".join(f"{f'p{p:g} µs':>11}" for p in points))
        for name, values in rows:
            print(f"{name:<20}" + "".join(f"{v:>11.0f}" for v in values))
        added = [b - a for a, b in zip(rows[0][1], rows[1][1], strict=True)]
        mark = "met" if added[2] < 1000 else "missed"
        print(f"{'added':<20}" + "".join(f"{v:>11.0f}" for v in added) + f"   (target: p99 under 1000 µs: {mark})")
        print(f"throughput, {args.connections} connections, {args.seconds:.0f} s each:")
        direct_rps = throughput(upstream_port, request, args.connections, args.seconds)
        proxied_rps = throughput(proxy_port, request, args.connections, args.seconds)
        print(f"  direct             {direct_rps:>10.0f} req/s")
        print(f"  through the proxy  {proxied_rps:>10.0f} req/s")
        return 0
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
