"""The HTTP API: AuthZEN decisions, the admin API and its OpenAPI document. Translates and delegates.

Every caller authenticates with `Authorization: Bearer <API client credential>` or a Charter access
token (charter.web.tokens).
A request may send `Charter-Min-Revision: R` to be answered only from revision
R or later; every response says the revision it was answered from in
`Charter-Revision`.
"""

from __future__ import annotations

import datetime as dt
import gc
import inspect
import logging
import os
import re
import secrets
import time
from functools import partial
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response

from charter import admin as admin_ops
from charter import amendments, charters, metrics
from charter.audit.decisions import DecisionLog, enabled_from_env, settings_from_env
from charter.audit.maintenance import AuditMaintenance
from charter.audit.trail import REQUEST_ID
from charter.clients import Caller, verify
from charter.engine import Engine
from charter.metrics import DECISIONS
from charter.scheduler import AmendmentScheduler
from charter.web import authzen, tokens
from charter.web.errors import ApiError, json_error
from charter.webhook_delivery import WebhookDeliverer

log = logging.getLogger("charter.web")
ACCESS_LOG = logging.getLogger("charter.access")  # one line per request at INFO (charter.logs)
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")  # a caller's X-Request-Id is used only when like this
# On every response (pages add a CSP of their own): no MIME sniffing, no framing, no referrer leaks.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
HSTS = ((b"strict-transport-security", b"max-age=31536000; includeSubDomains"),)
MAX_BODY = 1024 * 1024
MIN_REVISION_WAIT = 2.0


def create_app(
    engine: Engine,
    *,
    start_engine: bool = True,
    max_body: int = MAX_BODY,
    freeze_gc: bool = False,
    decision_log: DecisionLog | None = None,
    log_decisions: bool | None = None,
    decision_writer: str = "thread",
) -> FastAPI:
    """The API. `freeze_gc` (for a server process): once started, move everything loaded so far (modules,
    routes, the first snapshot) out of the cyclic garbage collector's sight (`gc.freeze`), so that its
    full collections, which otherwise walk all of it, pause requests for a fraction of a millisecond
    rather than tens of milliseconds.

    Decisions go to `decision_log` (by default one configured from the environment, see
    `charter.audit.decisions`, written by `decision_writer`, "thread" or "process", unless
    CHARTER_DECISION_LOG_WRITER says otherwise; `log_decisions=False` or `CHARTER_DECISION_LOG=off` for
    none). On shutdown
    the log is drained and both audit chains are checkpointed before the engine stops."""
    from contextlib import asynccontextmanager

    if log_decisions is None:
        log_decisions = enabled_from_env()
    if decision_log is None and log_decisions:
        decision_log = DecisionLog(engine.sessions, engine.audit, engine.clock, **settings_from_env(decision_writer))  # type: ignore[arg-type]

    maintenance = AuditMaintenance(engine)
    admin = admin_ops.Admin(engine)
    scheduler = AmendmentScheduler(admin)
    from charter.reviews import Reviews, ReviewSweeper  # access reviews (docs/reviews.md)

    reviews = Reviews(admin)
    review_sweeper = ReviewSweeper(reviews)
    deliverer = WebhookDeliverer(engine)  # sends the webhooks' queued deliveries (docs/notifications.md)
    store_gauges = metrics.StoreGauges(partial(_store_figures, engine), metrics_interval())
    metrics.install(store_gauges, decision_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_engine:
            await anyio.to_thread.run_sync(engine.start)
            if decision_log is not None:
                decision_log.start()
            maintenance.start()
            scheduler.start()
            review_sweeper.start()
            deliverer.start()
            store_gauges.start()
        if freeze_gc:
            gc.collect()
            gc.freeze()
        yield
        if start_engine:
            store_gauges.stop()
            review_sweeper.stop()
            deliverer.stop()
            scheduler.stop()
            maintenance.stop()
            await anyio.to_thread.run_sync(_shut_down, engine, decision_log)

    app = FastAPI(
        title="Charter",
        version="0.1.0",
        summary="Identity and access management whose configuration is a written access charter.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.admin = admin
    app.state.scheduler = scheduler
    app.state.decision_log = decision_log
    app.state.reviews = reviews
    app.state.deliverer = deliverer
    app.state.store_gauges = store_gauges
    _errors(app)
    _health_routes(app, engine)
    _authzen_routes(app, engine, decision_log)
    from charter.web.search import search_routes  # the AuthZEN search APIs

    search_routes(app, engine)
    _admin_routes(app)
    _access_routes(app)
    from charter.web.reviews import review_routes

    review_routes(app, reviews)
    from charter.web.notifications import notification_routes  # webhooks and the event stream

    notification_routes(app)
    from charter.web.login import login_routes  # sign-in pages, MFA resets, passwords (docs/authentication.md)

    login_routes(app)
    from charter.web.oidc import oidc_routes  # the OpenID Connect provider and OAuth clients (docs/oidc.md)

    oidc_routes(app)
    from charter.web.console import console_routes  # the web console (docs/console.md)

    console_routes(app)
    from charter.web.scim import scim_routes  # SCIM 2.0 provisioning of users and groups (docs/scim.md)

    scim_routes(app)
    from charter.web.enforce import enforcement_routes  # the replica's data, enforcement points' decision logs

    enforcement_routes(app)
    return RevisionMiddleware(app, engine, max_body, _direct_endpoints(app))  # type: ignore[return-value]


def metrics_interval() -> float:
    """CHARTER_METRICS_INTERVAL: seconds between reads of the store's gauges (default 15)."""
    text = os.environ.get("CHARTER_METRICS_INTERVAL", "").strip()
    try:
        seconds = float(text) if text else 15.0
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise SystemExit(f"CHARTER_METRICS_INTERVAL must be a number of seconds above 0, found {text!r}")
    return seconds


def _store_figures(engine: Engine) -> metrics.StoreFigures:
    rotation = engine.snapshot.auth.service_credentials
    with engine.sessions() as session:
        return metrics.read_figures(
            session, engine.clock.now().astimezone(dt.UTC), rotation.value if rotation else None
        )


READY_TIMEOUT = 2.0


def _health_routes(app: FastAPI, engine: Engine) -> None:
    """`/healthz`: the process answers. `/readyz`: a snapshot is loaded and the store answers within
    READY_TIMEOUT seconds; 503 naming what is not ready otherwise (a load balancer's readiness probe)."""

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", tags=["health"], summary="Readiness: snapshot loaded and store reachable (503 otherwise)")
    async def readyz() -> Response:
        revision = engine.snapshot.revision
        problems = []
        if revision < 0:
            problems.append("no snapshot loaded yet")
        try:
            with anyio.fail_after(READY_TIMEOUT):
                await anyio.to_thread.run_sync(_ping, engine, abandon_on_cancel=True)
        except TimeoutError:
            problems.append(f"the store did not answer within {READY_TIMEOUT:g} s")
        except Exception as error:
            problems.append(f"the store is unreachable: {type(error).__name__}")
        body = {"status": "ready" if not problems else "not ready", "revision": revision, "problems": problems}
        return _json(body, 200 if not problems else 503)


def _ping(engine: Engine) -> None:
    with engine.db.connect() as connection:
        connection.execute(text("select 1"))


def _shut_down(engine: Engine, decision_log: DecisionLog | None) -> None:
    """Drain the decision log, sign the heads of the audit chains, stop the engine. Each step is tried."""
    try:
        if decision_log is not None:
            decision_log.stop()
        engine.audit.checkpoint(engine.sessions)
    except Exception:
        log.exception("audit shutdown failed: the decision log or the checkpoint may be incomplete")
    finally:
        engine.stop()


def _missing(sent, wanted: tuple) -> list:
    """The headers of `wanted` whose names the response did not set itself (a page sets its own)."""
    names = {name.lower() for name, _ in sent}
    return [header for header in wanted if header[0] not in names]


class RevisionMiddleware:
    """Pure ASGI: refuse oversized bodies, honour Charter-Min-Revision, add Charter-Revision, the request id
    and the security headers to every response; at INFO, one access log line per request (charter.logs).

    A POST to one of `direct`'s paths (the AuthZEN decision endpoints, the hot path) calls that route's
    endpoint straight from here, skipping FastAPI's per-request middleware, routing and dependency
    machinery, none of which those endpoints use: they take the bare Request, return a Response and raise
    only ApiError, answered here as FastAPI's handler answers it. Everything else goes through FastAPI.
    """

    def __init__(self, app, engine: Engine, max_body: int, direct: dict | None = None):
        self.app = app
        self.engine = engine
        self.max_body = max_body
        self.direct = direct or {}  # path -> endpoint, for POST

    def __getattr__(self, name):  # FastAPI's attributes (openapi, state, routes) for tests and tools
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        # AuthZEN: a request's identifier is echoed in its response. One is made up when none is sent (or the
        # one sent is not short and plain), so every answer, log line and audit record of the request
        # carries one the caller can be told.
        request_id = headers.get(b"x-request-id", b"")
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = secrets.token_hex(8).encode()
        access = ACCESS_LOG.isEnabledFor(logging.INFO)
        started = time.perf_counter() if access else 0.0
        status = 0

        async def send_with_revision(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                sent = message.get("headers", [])
                message["headers"] = [
                    *sent,
                    (b"charter-revision", str(self.engine.snapshot.revision).encode()),
                    (b"x-request-id", request_id),
                    *_missing(sent, SECURITY_HEADERS + (HSTS if scope.get("scheme") == "https" else ())),
                ]
            await send(message)

        try:
            await self._serve(scope, receive, send_with_revision, headers, request_id)
        finally:
            if access:
                token = REQUEST_ID.set(request_id.decode("latin-1"))
                ACCESS_LOG.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
                REQUEST_ID.reset(token)

    async def _serve(self, scope, receive, send_with_revision, headers: dict, request_id: bytes) -> None:
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await json_error(413, "body_too_large", f"request bodies are limited to {self.max_body} bytes")(
                scope, receive, send_with_revision
            )
        wanted = headers.get(b"charter-min-revision")
        if wanted is not None:
            if not wanted.isdigit():
                return await json_error(400, "invalid_request", "Charter-Min-Revision must be a whole number")(
                    scope, receive, send_with_revision
                )
            if not await anyio.to_thread.run_sync(self.engine.wait_for, int(wanted), MIN_REVISION_WAIT):
                at = self.engine.snapshot.revision
                message = f"revision {int(wanted)} not reached within {MIN_REVISION_WAIT:g} s (at {at})"
                return await json_error(503, "revision_unavailable", message, headers={"Retry-After": "1"})(
                    scope, receive, send_with_revision
                )
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise ApiError(413, "body_too_large", f"request bodies are limited to {self.max_body} bytes")
            return message

        endpoint = self.direct.get(scope["path"]) if scope["method"] == "POST" else None
        token = REQUEST_ID.set(request_id.decode("latin-1"))
        try:
            if endpoint is None:
                await self.app(scope, limited_receive, send_with_revision)
            else:
                await self._call_direct(endpoint, scope, limited_receive, send_with_revision)
        except ApiError as error:
            await error.response()(scope, receive, send_with_revision)
        finally:
            REQUEST_ID.reset(token)

    async def _call_direct(self, endpoint, scope, receive, send) -> None:
        scope["app"] = self.app  # what FastAPI sets, for request.app
        try:
            response = await endpoint(Request(scope, receive))
        except ApiError as error:
            response = error.response()
        except Exception as error:  # as Starlette's ServerErrorMiddleware: the app's 500 handler answers, then raise
            handlers = self.app.exception_handlers
            handler = handlers.get(500) or handlers.get(Exception)
            if handler is None:
                answer = PlainTextResponse("Internal Server Error", status_code=500)
            else:
                answer = handler(Request(scope), error)
                if inspect.isawaitable(answer):
                    answer = await answer
            await answer(scope, receive, send)
            raise
        await response(scope, receive, send)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return error.response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        # The details go to the log only: an error message can carry data that is not the caller's to see.
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, REQUEST_ID.get())
        return json_error(500, "internal_error", "the server failed to answer this request; nothing was changed")

    @app.exception_handler(DBAPIError)
    async def store_error(request: Request, error: DBAPIError) -> Response:
        if isinstance(error, DataError):  # a value the store cannot hold (a NUL character on PostgreSQL)
            return _unstorable(error)
        if not store_unavailable(error):
            return await unexpected(request, error)
        return _store_away(request, error)

    @app.exception_handler(PoolTimeout)
    async def pool_timeout(request: Request, error: PoolTimeout) -> Response:
        return _store_away(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        return _invalid(error.errors()).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        message = {
            404: f"no such path: {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(error.status_code, str(error.detail))
        return json_error(error.status_code, code, message, headers=error.headers)

    @app.exception_handler(admin_ops.Forbidden)
    async def forbidden(request: Request, error: admin_ops.Forbidden) -> Response:
        decision = error.decision
        detail = {
            "action": error.action,
            "resource": error.resource,
            "charter": decision.charter,
            "version": decision.version,
            "clause": decision.clause,
            "basis": decision.basis.value,
            "reasons": list(decision.reasons),
        }
        return json_error(
            403,
            "forbidden",
            f"the charter does not allow {error.action} on {error.resource}: {decision}",
            [detail],
        )

    @app.exception_handler(admin_ops.NotFound)
    async def not_found(request: Request, error: admin_ops.NotFound) -> Response:
        return json_error(404, "not_found", str(error))

    @app.exception_handler(admin_ops.Conflict)
    async def conflict(request: Request, error: admin_ops.Conflict) -> Response:
        return json_error(409, "conflict", str(error))

    @app.exception_handler(admin_ops.Invalid)
    async def invalid_field(request: Request, error: admin_ops.Invalid) -> Response:
        return json_error(400, "invalid_request", str(error), [{"field": error.field, "message": error.message}])

    @app.exception_handler(amendments.Refused)
    async def refused(request: Request, error: amendments.Refused) -> Response:
        code = {400: "invalid_request", 403: "forbidden", 404: "not_found"}.get(error.status, "conflict")
        details = [{"clause": error.clause, "message": str(error)}] if error.clause is not None else None
        return json_error(error.status, code, str(error), details)

    @app.exception_handler(charters.Rejected)
    async def rejected(request: Request, error: charters.Rejected) -> Response:
        details = [
            {"line": d.span.line, "column": d.span.column, "clause": d.clause, "message": d.message, "hint": d.hint}
            for d in error.diagnostics
        ]
        return json_error(422, "charter_rejected", error.diagnostics[0].headline(), details)


def store_unavailable(error: BaseException) -> bool:
    """The store could not be reached or the connection broke (PostgreSQL restarting, the network away):
    nothing was committed, and the same request may succeed later. Other database errors are bugs (500)."""
    if isinstance(error, PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    )


def _unstorable(error: DataError) -> Response:
    """400: the request carried a value the store refuses (nothing was written: the change's transaction
    rolled back). The driver's message names the problem, never the values."""
    cause = str(getattr(error, "orig", None) or "").splitlines()[0][:200] or "a value was refused"
    return json_error(400, "invalid_request", f"the store cannot hold a value of this request: {cause}")


def _store_away(request: Request, error: BaseException) -> Response:
    """503 naming the cause, with Retry-After; the details (host, port, the driver's message) go to the log only."""
    cause = type(getattr(error, "orig", None) or error).__name__
    log.warning("store unavailable on %s %s: %s", request.method, request.url.path, cause)
    message = f"the store is unavailable ({cause}); nothing was changed, retry later"
    return json_error(503, "store_unavailable", message, headers={"Retry-After": "1"})


def _invalid(errors) -> ApiError:
    """A 400 naming each field at fault (`groups[1]`, `attributes.team`, `limit`) from pydantic's errors."""
    details = []
    for e in errors:
        loc = list(e["loc"])
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"
        details.append({"field": field, "message": e["msg"].removeprefix("Value error, ")})
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return ApiError(400, "invalid_request", f"{first['field']}: {first['message']}", details)


def caller_of(request: Request) -> Caller:
    """The caller: an API client credential, or a Charter access token (charter.web.tokens; a refusal is audited)."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    caller = verify(request.app.state.engine.clients, credential) if scheme.lower() == "bearer" else None
    if caller is None and scheme.lower() == "bearer" and tokens.looks_like_jwt(credential):
        caller = tokens.caller_from_token(request.app.state.engine, credential)
    if caller is None:
        raise ApiError(
            401, "unauthorized", "a valid API client credential is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


async def _json_body(request: Request) -> dict:
    body = await request.body()
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return value


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


# --- AuthZEN -------------------------------------------------------------------------------------

_ENTITY = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "properties": {"type": "object"}},
}
_EVALUATION = {
    "type": "object",
    "required": ["subject", "action", "resource"],
    "properties": {
        "subject": _ENTITY,
        "action": {"type": "object", "properties": {"name": {"type": "string"}}},
        "resource": _ENTITY,
        "context": {"type": "object"},
    },
}


DIRECT_PATHS = ("/access/v1/evaluation", "/access/v1/evaluations")


def _direct_endpoints(app: FastAPI) -> dict:
    """The AuthZEN decision endpoints, for RevisionMiddleware to call directly (the routes stay, for OpenAPI).

    Only an endpoint that takes nothing but the Request qualifies: one given a dependency or a parameter
    (which FastAPI would resolve) is left to FastAPI, so the shortcut can never skip a check.
    """
    found = {}
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.path in DIRECT_PATHS and route.methods == {"POST"}:
            needs = route.dependant
            if not (
                needs.dependencies
                or needs.path_params
                or needs.query_params
                or needs.header_params
                or needs.cookie_params
                or needs.body_params
                or needs.response_param_name
                or needs.background_tasks_param_name
            ):
                found[route.path] = route.endpoint
    return found


def _authzen_routes(app: FastAPI, engine: Engine, decision_log: DecisionLog | None) -> None:
    # The decision log takes each exchange whole (the body as received, the answer as sent): nothing per decision.
    record = decision_log.record_exchange if decision_log is not None else None

    async def answer_one(request: Request, caller: Caller, decision, revision: int) -> Response:
        answer = orjson.dumps(authzen.decision_json(decision, revision))
        if record is not None:
            keep = not decision.allowed or decision.grant is not None
            record(await request.body(), answer, 1, keep, caller.client_id, REQUEST_ID.get())
        return Response(answer, media_type="application/json")

    @app.post(
        "/access/v1/evaluation",
        tags=["AuthZEN"],
        summary="Access evaluation (AuthZEN 1.0)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _EVALUATION}}}},
    )
    async def evaluation(request: Request) -> Response:
        caller = caller_of(request)
        body = await _json_body(request)
        if tokens.mentions_token(await request.body(), body):  # a subject given by an access token
            return await tokens.evaluate(engine, record, caller, body, many=False)
        request_ = authzen.to_request(body)
        snapshot = engine.snapshot
        return await answer_one(request, caller, DECISIONS.evaluate(snapshot, request_), snapshot.revision)

    @app.post(
        "/access/v1/evaluations",
        tags=["AuthZEN"],
        summary="Access evaluations, with defaults and evaluation semantics (AuthZEN 1.0)",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def evaluations(request: Request) -> Response:
        caller = caller_of(request)
        body = await _json_body(request)
        if tokens.mentions_token(await request.body(), body):
            return await tokens.evaluate(engine, record, caller, body, many=True)
        items = authzen.evaluation_items(body)
        semantic = authzen.semantic(body.get("options"))
        defaults = {key: body[key] for key in authzen.EVALUATION_KEYS if key in body}
        snapshot = engine.snapshot
        if items is None:  # absent or empty: a single evaluation, answered with a single decision
            decision = DECISIONS.evaluate(snapshot, authzen.to_request(defaults))
            return await answer_one(request, caller, decision, snapshot.revision)
        requests = [
            authzen.to_request(authzen.merged(defaults, item, i), f"evaluations[{i}]") for i, item in enumerate(items)
        ]
        results = []
        keep = False
        for request_ in requests:
            decision = DECISIONS.evaluate(snapshot, request_)
            keep = keep or not decision.allowed or decision.grant is not None
            results.append(authzen.decision_json(decision, snapshot.revision))
            if (semantic == "deny_on_first_deny" and not decision.allowed) or (
                semantic == "permit_on_first_permit" and decision.allowed
            ):
                break
        answer = orjson.dumps({"evaluations": results})
        if record is not None:
            record(await request.body(), answer, len(results), keep, caller.client_id, REQUEST_ID.get())
        return Response(answer, media_type="application/json")

    @app.get("/.well-known/authzen-configuration", tags=["AuthZEN"], summary="PDP metadata (AuthZEN 1.0)")
    async def configuration(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return _json(
            {
                "policy_decision_point": base,
                "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
                "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
                "search_subject_endpoint": f"{base}/access/v1/search/subject",
                "search_resource_endpoint": f"{base}/access/v1/search/resource",
                "search_action_endpoint": f"{base}/access/v1/search/action",
            }
        )


# --- admin API -------------------------------------------------------------------------------------
# Translation only: parse and type-check the request, call `admin.Admin`, shape the answer. Who may do
# what, and every rule about the stored data, lives in admin.py.

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API client credential, `chr_<client id>_<secret>`, acting as one identity of the directory; "
    "or a Charter access token (JWT), acting as its subject.",
)


async def _authenticated(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None
) -> Caller:
    """Every admin route: the caller from the bearer credential (401 otherwise), before anything else is read."""
    caller = caller_of(request)
    request.state.caller = caller
    return caller


def _attribute(value: object) -> object:
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        return value
    raise ValueError("expected a string or a list of strings")


# An attribute's value: one error naming the attribute, not one per branch of the union.
AttributeValue = Annotated[str | list[str], PlainValidator(_attribute, json_schema_input_type=str | list[str])]


class _Body(BaseModel):
    # Unknown fields and wrong types are errors (no "3" for 3), so a typo is never silently ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class IdentityIn(_Body):
    state: str = Field("active", description="active, disabled or left")
    owner: str | None = None
    display_name: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    groups: list[str] | None = Field(None, description="Direct groups; omitted keeps the current ones")


class GroupIn(_Body):
    owner: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    parents: list[str] | None = Field(None, description="Groups this group is nested in; omitted keeps the current")


class ResourceIn(_Body):
    owner: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)


class GrantIn(_Body):
    kind: str = Field("request", description='"request" or "break glass"')
    subject_type: str = Field(description="user, service or partner")
    subject: str
    actions: list[str] = Field(description="The actions granted; empty means every action")
    resource: str = Field(description='A resource name or pattern, such as "db:staging/*"')
    starts: str | None = Field(None, description="ISO 8601 with a zone; omitted means now")
    ends: str = Field(description="ISO 8601 with a zone; the grant ends before this instant")
    clause: int = Field(description="The clause of the charter in force the grant is under")


class ClientIn(_Body):
    name: str = Field(min_length=1, max_length=255)
    subject_type: str = Field(description="user, service or partner: whom the credential acts as")
    subject: str


class ErrorOut(BaseModel):
    """Every error: a code, a message for people, and details (the fields at fault, a charter's diagnostics)."""

    error: str = Field(description="invalid_json, invalid_request, unauthorized, forbidden, not_found, ...")
    message: str
    details: list[dict] | None = None


_ERRORS: dict = {
    "4XX": {
        "model": ErrorOut,
        "description": "400 bad JSON or fields (naming them), 401 no valid credential, 403 the charter does not "
        "allow it (with its reason), 404 no such thing, 409 a conflict (a cycle, a duplicate), 413 body over "
        "1 MiB, 422 a charter text that fails the check. Nothing is written.",
    }
}


def _body_schema(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _fields(request: Request, model: type[BaseModel]) -> dict:
    """The JSON body checked against `model`: only the fields the caller sent (a PUT replaces the rest)."""
    value = await _json_body(request)
    try:
        return model.model_validate(value).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise _invalid(error.errors()) from None


def _done(done: admin_ops.Done, status: int = 200) -> Response:
    result = done.result if isinstance(done.result, dict) else {}
    return _json({**result, "revision": done.revision}, status)


_LIMIT = Query(
    admin_ops.DEFAULT_LIMIT, ge=1, le=admin_ops.MAX_LIMIT, description="Items in the page (lists are sorted)"
)
# Bounded so that it fits every store's integer (schemathesis: an offset past 2^63 made SQLite fail, a 500).
MAX_OFFSET = 2**31 - 1
_OFFSET = Query(0, ge=0, le=MAX_OFFSET, description="Items to skip")
# A number in a path (an amendment's, a version's): past 2^63 it failed in the store's driver (a 500).
Number = Annotated[int, Path(ge=0, le=MAX_OFFSET)]
_SUBJECT_TYPE = Query(None, description="With subject: only those of this identity (user, service or partner)")
_SUBJECT = Query(None, description="With subject_type: only those of this identity")


class AccessIn(_Body):
    action: str = Field(description="The action asked for, e.g. write")
    resource: str = Field(description="The resource, within the clause's pattern")
    duration: str | int = Field(description="How long: 8h, 90m, 1d, 8 hours, or seconds")
    reason: str | None = Field(None, max_length=4000, description="Why (required where the clause says so)")
    starts: str | None = Field(None, description="A later start (ISO 8601 with a zone); default: from approval")


class RequestVerdictIn(_Body):
    comment: str | None = Field(None, max_length=4000)


def _ops(request: Request) -> tuple[admin_ops.Admin, Caller]:
    """What an authenticated route acts through: the server's Admin, and the caller."""
    return request.app.state.admin, request.state.caller


async def run_in_thread(function, *args):
    """Run a blocking service call (store I/O) off the event loop."""
    return await anyio.to_thread.run_sync(function, *args)


def _access_routes(app: FastAPI) -> None:
    """Just-in-time access for people and services acting as themselves: requests, verdicts, revocation,
    break glass; and the Prometheus metrics."""
    router = APIRouter(prefix="/access/v1", dependencies=[Security(_authenticated)], responses=_ERRORS)

    ops, run = _ops, run_in_thread

    @router.post(
        "/requests",
        tags=["access"],
        summary="Request access under an eligibility clause (refused with the clause when not allowed)",
        status_code=201,
        openapi_extra=_body_schema(AccessIn),
    )
    async def create_request(request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.request_access, caller, await _fields(request, AccessIn)), 201)

    @router.get("/requests", tags=["access"], summary="Your requests and those you may decide, newest first")
    async def list_requests(request: Request, status: str | None = None) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_requests, caller, status))

    @router.get("/requests/{request_id}", tags=["access"], summary="One request: status, quorum, verdicts, grant")
    async def get_request(request_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_request, caller, request_id))

    for verdict in ("approve", "deny"):
        _request_verdict_route(router, ops, run, verdict)

    @router.post("/requests/{request_id}/cancel", tags=["access"], summary="Cancel your pending request")
    async def cancel_request(request_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.cancel_request, caller, request_id))

    @router.delete("/grants/{grant_id}", tags=["access"], summary="Revoke a grant: its holder, an approver, an admin")
    async def revoke(grant_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.revoke_access, caller, grant_id))

    @router.post(
        "/break-glass",
        tags=["access"],
        summary="Break glass under a clause: access at once, loudly audited, a review due",
        status_code=201,
        openapi_extra=_body_schema(AccessIn),
    )
    async def break_glass(request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.break_glass, caller, await _fields(request, AccessIn)), 201)

    app.include_router(router)

    @app.get("/metrics", tags=["metrics"], summary="Prometheus metrics of this server process")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _request_verdict_route(router: APIRouter, ops, run, verdict: str) -> None:
    @router.post(
        f"/requests/{{request_id}}/{verdict}",
        tags=["access"],
        summary=f"{verdict.capitalize()} a request as a member of a group that decides it",
        name=f"{verdict}_request",
        openapi_extra=_body_schema(RequestVerdictIn),
    )
    async def decide(request_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        comment = None
        if await request.body():
            comment = (await _fields(request, RequestVerdictIn)).get("comment")
        return _done(await run(admin.decide_request, caller, request_id, verdict, comment))


def _admin_routes(app: FastAPI) -> None:
    router = APIRouter(prefix="/admin/v1", dependencies=[Security(_authenticated)], responses=_ERRORS)

    ops, run = _ops, run_in_thread

    @router.get("/revision", tags=["admin"], summary="This server's revision, the store's, and the charter in force")
    async def revision(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.revision, caller))

    for section in admin_ops.IDENTITY_SECTIONS:
        _identity_routes(router, section, ops, run)

    @router.get("/groups", tags=["directory"], summary="List groups, with their parents and members")
    async def list_groups(request: Request, limit: int = _LIMIT, offset: int = _OFFSET) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_groups, caller, admin_ops.Page(limit, offset)))

    @router.get("/groups/{name}", tags=["directory"], summary="One group, its parents and members")
    async def get_group(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_group, caller, name))

    @router.delete("/groups/{name}", tags=["directory"], summary="Delete a group (and its memberships)")
    async def delete_group(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.delete_group, caller, name))

    @router.put(
        "/groups/{name}", tags=["directory"], summary="Create or replace a group", openapi_extra=_body_schema(GroupIn)
    )
    async def put_group(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_group, caller, name, await _fields(request, GroupIn)))

    @router.put("/groups/{group}/members/{section}/{name}", tags=["directory"], summary="Add a member to a group")
    async def add_member(group: str, section: str, name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.add_member, caller, group, section, name))

    @router.delete("/groups/{group}/members/{section}/{name}", tags=["directory"], summary="Remove a member")
    async def remove_member(group: str, section: str, name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.remove_member, caller, group, section, name))

    @router.get("/resources", tags=["directory"], summary="List the resources the directory knows")
    async def list_resources(request: Request, limit: int = _LIMIT, offset: int = _OFFSET) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_resources, caller, admin_ops.Page(limit, offset)))

    @router.get("/resources/{name:path}", tags=["directory"], summary="One resource's owner and attributes")
    async def get_resource(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_resource, caller, name))

    @router.put(
        "/resources/{name:path}",
        tags=["directory"],
        summary="Create or replace a resource's owner and attributes",
        openapi_extra=_body_schema(ResourceIn),
    )
    async def put_resource(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_resource, caller, name, await _fields(request, ResourceIn)))

    @router.delete("/resources/{name:path}", tags=["directory"], summary="Delete a resource")
    async def delete_resource(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.delete_resource, caller, name))

    @router.get("/charter", tags=["charter"], summary="The charter text and the version in force")
    async def get_charter(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_charter, caller))

    @router.put(
        "/charter",
        tags=["charter"],
        summary="Upload a new charter text (checked first; all or nothing)",
        openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def put_charter(request: Request) -> Response:
        admin, caller = ops(request)
        body = await request.body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            message = f"the charter text must be UTF-8 (byte {error.start} is not)"
            raise ApiError(400, "invalid_request", message, [{"field": "body", "message": message}]) from None
        return _done(await run(admin.upload_charter, caller, text))

    _rollback_route(router, ops, run)  # before the amendment routes: "rollback" is not an amendment number
    _amendment_routes(router, ops, run)
    _charter_file_routes(router, ops, run)

    @router.get("/grants", tags=["grants"], summary="List grants (revoked and lapsed ones too), newest first")
    async def list_grants(
        request: Request,
        subject_type: str | None = _SUBJECT_TYPE,
        subject: str | None = _SUBJECT,
        limit: int = _LIMIT,
        offset: int = _OFFSET,
    ) -> Response:
        admin, caller = ops(request)
        page = admin_ops.Page(limit, offset)
        return _json(await run(admin.list_grants, caller, subject_type, subject, page))

    @router.post(
        "/grants",
        tags=["grants"],
        summary="Create a grant under a clause of the charter in force",
        status_code=201,
        openapi_extra=_body_schema(GrantIn),
    )
    async def create_grant(request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.create_grant, caller, await _fields(request, GrantIn)), 201)

    @router.delete("/grants/{grant_id}", tags=["grants"], summary="Revoke a grant at once")
    async def revoke_grant(grant_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.revoke_grant, caller, grant_id))

    @router.get("/clients", tags=["clients"], summary="List API clients (never their credentials)")
    async def list_clients(
        request: Request,
        subject_type: str | None = _SUBJECT_TYPE,
        subject: str | None = _SUBJECT,
        limit: int = _LIMIT,
        offset: int = _OFFSET,
    ) -> Response:
        admin, caller = ops(request)
        page = admin_ops.Page(limit, offset)
        return _json(await run(admin.list_clients, caller, subject_type, subject, page))

    @router.post(
        "/clients",
        tags=["clients"],
        summary="Create an API client; the credential is shown once",
        status_code=201,
        openapi_extra=_body_schema(ClientIn),
    )
    async def create_client(request: Request) -> Response:
        admin, caller = ops(request)
        body = await _fields(request, ClientIn)
        return _done(await run(admin.create_client, caller, body["name"], body["subject_type"], body["subject"]), 201)

    @router.delete("/clients/{client_id}", tags=["clients"], summary="Revoke an API client at once")
    async def revoke_client(client_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.revoke_client, caller, client_id))

    @router.get(
        "/audit/{chain}",
        tags=["audit"],
        summary="Search an audit chain (audit or decisions), newest first",
        description="Each item is a record as `charter audit export --format jsonl` writes it, hashes included. "
        "Authorised as `read` on `audit:<chain>`.",
    )
    async def search_audit(
        chain: str,
        request: Request,
        since: Annotated[str | None, Query(description="From this date or ISO 8601 time with a zone")] = None,
        until: Annotated[str | None, Query(description="Before this date or ISO 8601 time with a zone")] = None,
        actor: Annotated[str | None, Query(description="Exact, or a prefix ending in *")] = None,
        action: Annotated[str | None, Query(description="Exact, or a prefix ending in *")] = None,
        target: Annotated[str | None, Query(description="Exact, or a prefix ending in *")] = None,
        outcome: Annotated[str | None, Query(description="ok or denied (audit), allow or deny (decisions)")] = None,
        request_id: Annotated[str | None, Query(description="The X-Request-ID of the request recorded")] = None,
        limit: int = _LIMIT,
        offset: int = _OFFSET,
    ) -> Response:
        admin, caller = ops(request)
        filters = {
            "since": since,
            "until": until,
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "request_id": request_id,
        }
        return _json(await run(admin.search_audit, caller, chain, filters, admin_ops.Page(limit, offset)))

    _drift_routes(router, ops, run)
    app.include_router(router)


class VerdictIn(_Body):
    comment: str | None = Field(None, max_length=4000)


class CanaryIn(_Body):
    group: str | None = Field(None, description="Its members go first")
    percent: float | None = Field(None, description="Or this share of subjects, by a stable hash (0-100]")
    margin: float | None = Field(None, description="Percentage points the cohort's deny rate may rise (default 5)")
    promote_after_hours: int | None = Field(None, description="Everyone follows after this without trouble (168)")
    baseline_days: int | None = Field(None, description="The days before the canary its rate is compared with (7)")
    min_decisions: int | None = Field(None, description="Decisions needed before it can be withdrawn (100)")


class AmendmentIn(_Body):
    text: str = Field(description="The amendment's text")
    draft: bool = Field(False, description="Store it as a draft, to edit before proposing")
    expectations: dict[str, str | None] | None = Field(
        None, description="Expectation files it updates when it takes effect: name -> text, or null to delete"
    )
    canary: CanaryIn | None = Field(None, description="Take effect first for a cohort")


_AMENDMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": AmendmentIn.model_json_schema()},
        },
    }
}


async def _amendment_body(request: Request) -> dict:
    """An amendment as text/plain (just the text) or JSON (`AmendmentIn`)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return {"text": await _text_body(request)}
    fields = await _fields(request, AmendmentIn)
    if "canary" in fields and fields["canary"] is not None:
        fields["canary"] = {k: v for k, v in fields["canary"].items() if v is not None}
    return fields


def _amendment_routes(router: APIRouter, ops, run) -> None:
    """The amendment lifecycle: propose, read, plan, approve, reject, withdraw (applying is the scheduler's)."""

    @router.get("/amendments", tags=["amendments"], summary="Amendments to the charter in force, by number")
    async def list_amendments(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_amendments, caller))

    @router.post(
        "/amendments",
        tags=["amendments"],
        summary="Propose an amendment, or store it as a draft (checked first; all or nothing)",
        description="The text as text/plain, or JSON with the text, `draft`, the expectation files it updates "
        "and a canary plan.",
        status_code=201,
        openapi_extra=_AMENDMENT_BODY,
    )
    async def propose(request: Request) -> Response:
        admin, caller = ops(request)
        body = await _amendment_body(request)
        return _done(await run(lambda: admin.propose_amendment(caller, body.pop("text"), **body)), 201)

    @router.put(
        "/amendments/{number}",
        tags=["amendments"],
        summary="Replace a draft (its text, expectation updates and canary plan)",
        openapi_extra=_AMENDMENT_BODY,
    )
    async def edit(number: Number, request: Request) -> Response:
        admin, caller = ops(request)
        body = await _amendment_body(request)
        if body.pop("draft", True) is not True:
            raise ApiError(400, "invalid_request", "draft: a draft is proposed by POST .../propose")
        return _done(await run(lambda: admin.edit_amendment(caller, number, body.pop("text"), **body)))

    @router.post("/amendments/{number}/propose", tags=["amendments"], summary="Propose a draft (checked again)")
    async def submit(number: Number, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.submit_amendment, caller, number))

    @router.get("/amendments/{number}", tags=["amendments"], summary="One amendment: status, quorum, verdicts, text")
    async def get_amendment(number: Number, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_amendment, caller, number))

    @router.get(
        "/amendments/{number}/plan", tags=["amendments"], summary="Who gains and who loses what if it takes effect"
    )
    async def plan(number: Number, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.plan_amendment, caller, number))

    @router.get(
        "/amendments/{number}/simulate",
        tags=["amendments"],
        summary="Replay the decision log against it: every decision that would flip, grouped by clause",
    )
    async def simulate(
        number: Number,
        request: Request,
        days: Annotated[int, Query(ge=1, le=3660)] = amendments.DEFAULT_SIMULATION_DAYS,
    ) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.simulate_amendment, caller, number, days))

    for verdict in ("approve", "reject"):
        _verdict_route(router, ops, run, verdict)

    @router.post("/amendments/{number}/withdraw", tags=["amendments"], summary="Withdraw a pending amendment")
    async def withdraw(number: Number, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.withdraw_amendment, caller, number))


def _charter_file_routes(router: APIRouter, ops, run) -> None:
    """The charter's expectation files (the approval gate of amendments) and its consolidated versions."""

    @router.get("/charter/expectations", tags=["charter"], summary="The expectation files kept with the charter")
    async def list_expectations(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_expectation_files, caller))

    @router.put(
        "/charter/expectations/{name}",
        tags=["charter"],
        summary="Store an expectation file (it must parse and pass against the version in force)",
        openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def put_expectations(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_expectation_file, caller, name, await _text_body(request)))

    @router.delete("/charter/expectations/{name}", tags=["charter"], summary="Delete an expectation file")
    async def delete_expectations(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_expectation_file, caller, name, None))

    @router.get("/charter/versions", tags=["charter"], summary="Every consolidated version made, oldest first")
    async def list_versions(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_versions, caller))

    @router.get("/charter/versions/{number}", tags=["charter"], summary="One consolidated version, as rendered")
    async def get_version(number: Number, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_version, caller, number))


def _verdict_route(router: APIRouter, ops, run, verdict: str) -> None:
    @router.post(
        f"/amendments/{{number}}/{verdict}",
        tags=["amendments"],
        summary=f"{verdict.capitalize()} an amendment as one member of an approving group",
        name=f"{verdict}_amendment",
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": VerdictIn.model_json_schema()}},
            }
        },
    )
    async def decide(number: Number, request: Request) -> Response:
        admin, caller = ops(request)
        comment = None
        if await request.body():
            comment = (await _fields(request, VerdictIn)).get("comment")
        return _done(await run(admin.decide_amendment, caller, number, verdict, comment))


class RollbackIn(_Body):
    to_version: int = Field(ge=0, description="The version to restore: 0 for the original text, N for amendment N's")
    effective: str | None = Field(None, description="YYYY-MM-DD; omitted means tomorrow (the server's clock)")
    reason: str = Field(min_length=1, max_length=admin_ops.MAX_REASON, description="One line: why")


def _rollback_route(router: APIRouter, ops, run) -> None:
    """A roll back: a new amendment restoring an earlier version's clauses (docs/rollback.md)."""

    @router.post(
        "/amendments/rollback",
        tags=["amendments"],
        summary="Propose the amendment that restores an earlier version's clauses",
        status_code=201,
        openapi_extra=_body_schema(RollbackIn),
    )
    async def propose_rollback(request: Request) -> Response:
        admin, caller = ops(request)
        body = await _fields(request, RollbackIn)
        done = await run(admin.propose_rollback, caller, body["to_version"], body.get("effective"), body["reason"])
        return _done(done, 201)


async def _text_body(request: Request) -> str:
    body = await request.body()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"the text must be UTF-8 (byte {error.start} is not)"
        raise ApiError(400, "invalid_request", message, [{"field": "body", "message": message}]) from None


def _identity_routes(router: APIRouter, section: str, ops, run) -> None:
    """List, read, put and delete for one section of the directory: users, services or partners."""
    noun = section[:-1]

    @router.get(f"/{section}", tags=["directory"], summary=f"List {section}", name=f"list_{section}")
    async def list_identities(request: Request, limit: int = _LIMIT, offset: int = _OFFSET) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_identities, caller, section, admin_ops.Page(limit, offset)))

    @router.get(f"/{section}/{{name}}", tags=["directory"], summary=f"One {noun}", name=f"get_{noun}")
    async def get_identity(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_identity, caller, section, name))

    @router.put(
        f"/{section}/{{name}}",
        tags=["directory"],
        summary=f"Create or replace a {noun}",
        name=f"put_{noun}",
        openapi_extra=_body_schema(IdentityIn),
    )
    async def put_identity(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_identity, caller, section, name, await _fields(request, IdentityIn)))

    @router.delete(f"/{section}/{{name}}", tags=["directory"], summary=f"Delete a {noun}", name=f"delete_{noun}")
    async def delete_identity(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.delete_identity, caller, section, name))


def _drift_routes(router: APIRouter, ops, run) -> None:
    """Drift: where live state disagrees with the obligations of the charter in force (docs/drift.md)."""

    @router.get(
        "/drift",
        tags=["drift"],
        summary="Where live state disagrees with the obligations of the charter in force",
        description="Findings sorted by check, then subject, each with the clause its obligation comes from; "
        "`not_checked` lists the checks whose state Charter does not hold yet. Authorised as `read` on "
        "`charter:<name>`.",
    )
    async def drift(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.drift, caller))
