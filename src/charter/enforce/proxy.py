"""`charter proxy`: an identity-aware reverse proxy in front of any HTTP service.

    proxy = Proxy(gate, "http://127.0.0.1:9000")      # an ASGI application; `charter proxy` runs it in uvicorn

Every request goes through the gate (charter.enforce.gate: route mapping, Charter access token, the local
replica's decision, the decision cache) before anything is sent upstream. A refusal is answered by the
proxy (400, 401, 403 naming the clause, 503 when Charter has not been reachable) and never reaches the
upstream. An allowed request is forwarded with:

- the caller's identity as `X-Charter-Subject`, `-Subject-Type`, `-Client`, `-Mfa`, the deciding clause as
  `X-Charter-Clause` and the revision as `X-Charter-Revision`; any `X-Charter-*` header the client sent is
  removed first, so the upstream can trust them (put the upstream where only the proxy reaches it);
- `X-Forwarded-For`, `-Proto`, `-Host`; hop-by-hop headers removed; the `Authorization` header removed
  unless `forward_token` (the upstream then has the identity headers only);
- the request body streamed as it arrives, the response body streamed as the upstream sends it.

With `login` (charter.enforce.browser), a browser with no token is sent to sign in with Charter
(authorization code + PKCE) and comes back with a session cookie holding its access token, which the
gate verifies like a bearer token; the proxy's cookies are removed from what the upstream receives.

Upstream connections are pooled keep-alive HTTP/1.1 (charter.enforce.upstream: httpx measured too slow
for the latency target). An upstream that cannot be reached or times out is a 502 / 504. Each decision
goes to the decision log through the gate's reporter.
"""

from __future__ import annotations

import gc
import logging

from charter.enforce.browser import CALLBACK, BrowserLogin
from charter.enforce.gate import IDENTITY_HEADERS, Gate
from charter.enforce.middleware import refuse
from charter.enforce.upstream import UpstreamError, UpstreamPool

log = logging.getLogger("charter.proxy")
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"expect",
    }
)
_IDENTITY = frozenset(name.encode() for name in IDENTITY_HEADERS)
_RESPONSE_DROP = frozenset({b"connection", b"keep-alive", b"transfer-encoding"})


class Proxy:
    def __init__(
        self,
        gate: Gate,
        upstream: str,
        *,
        forward_token: bool = False,
        timeout: float = 30.0,
        max_connections: int = 256,
        freeze_gc: bool = False,
        login: BrowserLogin | None = None,
    ):
        self.gate = gate
        self.upstream = upstream.rstrip("/")
        self.forward_token = forward_token
        self.timeout = timeout
        self.max_connections = max_connections
        self.freeze_gc = freeze_gc
        self.login = login  # browsers: sign in with Charter, then a session cookie (charter.enforce.browser)
        self._pool: UpstreamPool | None = None

    def pool(self) -> UpstreamPool:
        if self._pool is None:
            self._pool = UpstreamPool(self.upstream, max_idle=self.max_connections, timeout=self.timeout)
        return self._pool

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return  # websockets are not proxied
        login = self.login
        if login is not None and scope["path"] == CALLBACK:
            return await _answer(send, *await login.callback(scope))
        headers = scope["headers"]
        authorization = request_id = None
        for key, value in headers:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"x-request-id":
                request_id = value.decode("latin-1")
        if authorization is None and login is not None:
            token = login.session_token(scope)
            authorization = f"Bearer {token}" if token else None
        client = scope.get("client")
        ip = client[0] if client else None
        outcome = self.gate.check(
            scope["method"], scope["path"], authorization, ip, raw_path=scope.get("raw_path"), request_id=request_id
        )
        if not outcome.allowed:
            if outcome.status == 401 and login is not None and login.wants_page(scope):
                location, cookie = login.start(scope)
                redirect = [(b"location", location.encode()), (b"set-cookie", cookie.encode())]
                return await _answer(send, 302, [*redirect, (b"cache-control", b"no-store")], b"")
            return await refuse(outcome, send)
        await self._forward(scope, receive, send, outcome.identity_headers(), ip)

    async def _forward(self, scope, receive, send, identity, ip) -> None:
        headers, host, length, chunked = self._headers(scope["headers"])
        headers.extend(identity)
        if ip is not None:
            headers.append((b"x-forwarded-for", ip.encode()))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if host is not None:
            headers.append((b"x-forwarded-host", host))
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        body = _body(receive) if chunked or (length or 0) > 0 else None
        sent = False

        async def start(status: int, answer: list[tuple[bytes, bytes]]) -> None:
            nonlocal sent
            sent = True
            out = [(k, v) for k, v in answer if k.lower() not in _RESPONSE_DROP]
            await send({"type": "http.response.start", "status": status, "headers": out})

        async def chunk(piece: bytes) -> None:
            await send({"type": "http.response.body", "body": piece, "more_body": bool(piece)})

        try:
            await self.pool().request(scope["method"], target, headers, body, None if chunked else length, start, chunk)
        except UpstreamError as error:
            if sent:
                raise
            log.warning("upstream: %s", error)
            await _plain(send, 504 if error.timeout else 502, str(error).encode())

    def _headers(self, given) -> tuple[list[tuple[bytes, bytes]], bytes | None, int | None, bool]:
        """The headers to send on (the body's framing is the pool's), the Host, the body's length, chunked."""
        headers, host, length, chunked = [], None, None, False
        for key, value in given:
            if key in HOP_BY_HOP or key in _IDENTITY or key.startswith(b"x-forwarded-"):
                if key == b"host":
                    host = value
                elif key == b"transfer-encoding":
                    chunked = True
                continue
            if key == b"content-length":
                length = int(value)
                continue
            if key == b"authorization" and not self.forward_token:
                continue
            if key == b"cookie" and self.login is not None:
                value = BrowserLogin.without_our_cookies(value)  # the session cookie holds the access token
                if value is None:
                    continue
            headers.append((key, value))
        return headers, host, length, chunked

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool()
                if self.freeze_gc:  # what is loaded stays: keep full collections from walking it (as the server)
                    gc.collect()
                    gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _body(receive):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _answer(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send, status: int, message: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(message)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": message})
