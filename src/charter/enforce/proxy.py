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

Upstream connections are pooled (httpx.AsyncClient, HTTP/1.1 keep-alive). An upstream that cannot be
reached or times out is a 502 / 504. Each decision goes to the decision log through the gate's reporter.
"""

from __future__ import annotations

import logging

import httpx

from charter.enforce.gate import IDENTITY_HEADERS, Gate
from charter.enforce.middleware import refuse

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
        b"content-length",
    }
)
_IDENTITY = frozenset(name.encode() for name in IDENTITY_HEADERS)
_RESPONSE_DROP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})


class Proxy:
    def __init__(
        self,
        gate: Gate,
        upstream: str,
        *,
        forward_token: bool = False,
        timeout: float = 30.0,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.gate = gate
        self.upstream = upstream.rstrip("/")
        self.forward_token = forward_token
        self.timeout = timeout
        self.max_connections = max_connections
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
            self._client = httpx.AsyncClient(
                base_url=self.upstream, timeout=self.timeout, limits=limits, transport=self._transport
            )
        return self._client

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return  # websockets are not proxied
        headers = scope["headers"]
        authorization = request_id = None
        for key, value in headers:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"x-request-id":
                request_id = value.decode("latin-1")
        client = scope.get("client")
        ip = client[0] if client else None
        outcome = self.gate.check(
            scope["method"], scope["path"], authorization, ip, raw_path=scope.get("raw_path"), request_id=request_id
        )
        if not outcome.allowed:
            return await refuse(outcome, send)
        await self._forward(scope, receive, send, outcome.identity_headers(), ip)

    async def _forward(self, scope, receive, send, identity, ip) -> None:
        headers = []
        host = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
            if key in HOP_BY_HOP or key in _IDENTITY or key.startswith(b"x-forwarded-"):
                continue
            if key == b"authorization" and not self.forward_token:
                continue
            headers.append((key, value))
        headers.extend(identity)
        if ip is not None:
            headers.append((b"x-forwarded-for", ip.encode()))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if host is not None:
            headers.append((b"x-forwarded-host", host))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        has_body = any(k == b"content-length" and v != b"0" for k, v in scope["headers"]) or any(
            k == b"transfer-encoding" for k, _ in scope["headers"]
        )
        client = self.client()
        request = client.build_request(
            scope["method"],
            self.upstream + target.decode("latin-1"),
            headers=headers,
            content=_body(receive) if has_body else None,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            return await _plain(send, 504, b"the upstream did not answer in time")
        except httpx.HTTPError as error:
            log.warning("upstream unreachable: %s", type(error).__name__)
            return await _plain(send, 502, b"the upstream could not be reached")
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in _RESPONSE_DROP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
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


async def _plain(send, status: int, message: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(message)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": message})
