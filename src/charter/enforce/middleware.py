"""Enforce Charter's decisions in a Starlette or FastAPI application (any ASGI application).

    replica = LocalReplica(CHARTER_URL, CREDENTIAL)
    app.add_middleware(CharterMiddleware, gate=Gate(RouteMap.load("routes.yaml"), replica),
                       attributes={"/todos/{id}": lambda match: {"owner": owner_of(match.parameters["id"])}})

Every HTTP request goes through the gate (charter.enforce.gate) before the application sees it: the
route mapping gives its action and resource (path parameters fill the resource's id), the caller's Charter
access token is verified, and the local replica decides. A refusal is answered here, as JSON with the
reason and, on a 403, the deciding clause (401s carry `WWW-Authenticate: Bearer`). An allowed request goes
on with `request.state.charter` set to the gate's Outcome (`.decision.clause`, `.token.subject`, ...).

`attributes` maps a route's path (as declared) to a callable of the Match giving the resource's attributes
for conditions such as `they own`; it may be a coroutine function. Lifespan and websocket scopes pass
through untouched (websockets are not enforced: declare none, or put the proxy in front).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from charter.enforce.gate import Gate, Outcome

AttributesFor = Callable[..., object]


class CharterMiddleware:
    def __init__(self, app, gate: Gate, attributes: Mapping[str, AttributesFor] | None = None):
        self.app = app
        self.gate = gate
        self.attributes = dict(attributes or {})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        outcome = await self._outcome(scope)
        if not outcome.allowed:
            return await refuse(outcome, send)
        scope.setdefault("state", {})["charter"] = outcome
        return await self.app(scope, receive, send)

    async def _outcome(self, scope) -> Outcome:
        authorization = _header(scope, b"authorization")
        client = scope.get("client")
        ip = client[0] if client else None
        gate = self.gate
        match = gate.routes.match(scope["method"], scope["path"])
        function = self.attributes.get(match.route.path) if match is not None else None
        given = None
        if function is not None and match is not None and match.action is not None:
            try:
                given = function(match)
                if inspect.isawaitable(given):
                    given = await given
            except Exception:  # without them a prohibition that tests them could miss: deny
                return Outcome(False, 503, "the resource's attributes could not be read: denied", match)
        return gate.check(
            scope["method"],
            scope["path"],
            authorization,
            ip,
            raw_path=scope.get("raw_path"),
            attributes=(lambda _match: given) if given is not None else None,
            request_id=_header(scope, b"x-request-id"),
        )


async def refuse(outcome: Outcome, send) -> None:
    """Answer a refused request: the outcome's status and JSON body."""
    body = outcome.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if outcome.status == 401:
        headers.append((b"www-authenticate", b'Bearer error="invalid_token"'))
    if outcome.revision >= 0:
        headers.append((b"charter-revision", str(outcome.revision).encode()))
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
