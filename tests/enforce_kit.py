"""Helpers for the enforcement tests: a small upstream application, free loopback ports, and the proxy or
the middleware in front of it, each run by uvicorn in a thread (tests/live.py) next to a live Charter."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from charter.client import CharterClient
from charter.enforce.browser import BrowserLogin
from charter.enforce.cache import DecisionCache
from charter.enforce.gate import Gate
from charter.enforce.middleware import CharterMiddleware
from charter.enforce.proxy import Proxy
from charter.enforce.reporter import Reporter
from charter.enforce.routes import RouteMap
from charter.sdk.replica import LocalReplica
from live import LiveServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def echo(request: Request) -> JSONResponse:
    """What the upstream saw: the method, path, the identity (headers from the proxy, state from the
    middleware) and whether a token reached it."""
    outcome = getattr(request.state, "charter", None)
    seen = {
        "method": request.method,
        "path": request.url.path,
        "subject": request.headers.get("x-charter-subject"),
        "clause": request.headers.get("x-charter-clause"),
        "authorization": "authorization" in request.headers,
        "forwarded_for": request.headers.get("x-forwarded-for"),
        "cookie": request.headers.get("cookie"),
    }
    if outcome is not None and outcome.token is not None:
        seen["subject"] = outcome.token.subject
        seen["clause"] = str(outcome.decision.clause)
    return JSONResponse(seen)


async def stream_out(request: Request) -> StreamingResponse:
    count = int(request.path_params["n"])

    async def chunks():
        for i in range(count):
            yield (f"{i:08d}" * 8192).encode()  # 64 KiB each

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def stream_in(request: Request) -> JSONResponse:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()})


def upstream_app() -> Starlette:
    methods = ["GET", "POST", "PUT", "DELETE"]
    return Starlette(
        routes=[
            Route("/stream/{n}", stream_out, methods=["GET"]),
            Route("/stream/{n}", stream_in, methods=["POST"]),
            Route("/{rest:path}", echo, methods=methods),
        ]
    )


SAMPLE_ROUTES = {
    "routes": [
        {"path": "/health", "methods": ["GET"], "public": True},
        {
            "path": "/db/{name:path}",
            "methods": {"GET": "read", "PUT": "write", "DELETE": "delete"},
            "resource": "db:{name}",
        },
        {"path": "/stream/{n}", "methods": {"GET": "read", "POST": "write"}, "resource": "db:prod/stream"},
    ]
}


@dataclass
class Front:
    """The upstream behind one enforcement point: `url` is where clients call."""

    kind: str
    url: str
    gate: Gate
    replica: LocalReplica
    reporter: Reporter


class Stack:
    """Starts the upstream and an enforcement point in front of it; `close()` stops everything it started."""

    def __init__(
        self, charter_url: str, credential: str, clock, routes: dict, kind: str, *, login_client=None, port=None
    ):
        self._closing: list = []
        self.replica = LocalReplica(charter_url, credential, clock=clock)  # the default polling, 0.25 s
        self._closing.append(self.replica.close)
        self.reporter = Reporter(CharterClient(charter_url, credential), clock, interval=0.2)
        self._closing.append(self.reporter.close)
        self.gate = Gate(RouteMap.from_document(routes), self.replica, cache=DecisionCache(), reporter=self.reporter)
        if kind == "proxy":
            self.upstream = self._serve(upstream_app())
            port = port or free_port()
            login = None
            if login_client is not None:
                login = BrowserLogin(charter_url, login_client, f"http://127.0.0.1:{port}", b"test secret")
            front = self._serve(Proxy(self.gate, self.upstream.url, login=login), port)
        else:
            front = self._serve(CharterMiddleware(upstream_app(), self.gate))
        self.front = Front(kind, front.url, self.gate, self.replica, self.reporter)

    def _serve(self, app, port: int | None = None) -> LiveServer:
        server = LiveServer(app, port or free_port())
        server.__enter__()
        self._closing.append(server.__exit__)
        return server

    def close(self) -> None:
        for close in reversed(self._closing):
            close()
