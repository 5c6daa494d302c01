"""The HTTP API: AuthZEN decisions, the admin API and its OpenAPI document. Translates and delegates.

Every caller authenticates with `Authorization: Bearer <API client credential>`.
A request may send `Charter-Min-Revision: R` to be answered only from revision
R or later; every response says the revision it was answered from in
`Charter-Revision`.
"""

from __future__ import annotations

import anyio
import orjson
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from charter import admin as admin_ops
from charter import charters
from charter.clients import Caller, verify
from charter.engine import Engine
from charter.web import authzen
from charter.web.errors import ApiError, json_error

MAX_BODY = 1024 * 1024
MIN_REVISION_WAIT = 2.0


def create_app(engine: Engine, *, start_engine: bool = True, max_body: int = MAX_BODY) -> FastAPI:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_engine:
            await anyio.to_thread.run_sync(engine.start)
        yield
        if start_engine:
            await anyio.to_thread.run_sync(engine.stop)

    app = FastAPI(
        title="Charter",
        version="0.1.0",
        summary="Identity and access management whose configuration is a written access charter.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.admin = admin_ops.Admin(engine)
    _errors(app)
    _authzen_routes(app, engine)
    _admin_routes(app)
    return RevisionMiddleware(app, engine, max_body)  # type: ignore[return-value]


class RevisionMiddleware:
    """Pure ASGI: refuse oversized bodies, honour Charter-Min-Revision, add Charter-Revision."""

    def __init__(self, app, engine: Engine, max_body: int):
        self.app = app
        self.engine = engine
        self.max_body = max_body

    def __getattr__(self, name):  # FastAPI's attributes (openapi, state, routes) for tests and tools
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await json_error(413, "body_too_large", f"request bodies are limited to {self.max_body} bytes")(
                scope, receive, send
            )
        wanted = headers.get(b"charter-min-revision")
        if wanted is not None:
            if not wanted.isdigit():
                return await json_error(400, "invalid_request", "Charter-Min-Revision must be a whole number")(
                    scope, receive, send
                )
            if not await anyio.to_thread.run_sync(self.engine.wait_for, int(wanted), MIN_REVISION_WAIT):
                at = self.engine.snapshot.revision
                message = f"revision {int(wanted)} not reached within {MIN_REVISION_WAIT:g} s (at {at})"
                return await json_error(503, "revision_unavailable", message, headers={"Retry-After": "1"})(
                    scope, receive, send
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

        async def send_with_revision(message):
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"charter-revision", str(self.engine.snapshot.revision).encode()),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_revision)
        except ApiError as error:
            await error.response()(scope, receive, send)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        details = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]} for e in error.errors()
        ]
        first = details[0] if details else {"field": "body", "message": "invalid"}
        return json_error(400, "invalid_request", f"{first['field']}: {first['message']}", details)

    @app.exception_handler(admin_ops.Forbidden)
    async def forbidden(request: Request, error: admin_ops.Forbidden) -> Response:
        return json_error(
            403, "forbidden", f"the charter does not allow {error.action} on {error.resource}: {error.decision}"
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

    @app.exception_handler(charters.Rejected)
    async def rejected(request: Request, error: charters.Rejected) -> Response:
        details = [
            {"line": d.span.line, "column": d.span.column, "clause": d.clause, "message": d.message, "hint": d.hint}
            for d in error.diagnostics
        ]
        return json_error(422, "charter_rejected", error.diagnostics[0].headline(), details)


def caller_of(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    caller = verify(request.app.state.engine.clients, credential.strip()) if scheme.lower() == "bearer" else None
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


def _authzen_routes(app: FastAPI, engine: Engine) -> None:
    @app.post(
        "/access/v1/evaluation",
        tags=["AuthZEN"],
        summary="Access evaluation (AuthZEN 1.0)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _EVALUATION}}}},
    )
    async def evaluation(request: Request) -> Response:
        caller_of(request)
        request_ = authzen.to_request(await _json_body(request))
        snapshot = engine.snapshot
        return _json(authzen.decision_json(snapshot.evaluate(request_), snapshot.revision))

    @app.post(
        "/access/v1/evaluations",
        tags=["AuthZEN"],
        summary="Access evaluations, with defaults and evaluation semantics (AuthZEN 1.0)",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def evaluations(request: Request) -> Response:
        caller_of(request)
        body = await _json_body(request)
        items = body.get("evaluations")
        semantic = authzen.semantic(body.get("options"))
        defaults = {key: body[key] for key in authzen.EVALUATION_KEYS if key in body}
        snapshot = engine.snapshot
        if not items:
            return _json(authzen.decision_json(snapshot.evaluate(authzen.to_request(defaults)), snapshot.revision))
        if not isinstance(items, list):
            raise ApiError(400, "invalid_request", "evaluations must be a list")
        requests = [
            authzen.to_request(authzen.merged(defaults, item, i), f"evaluations[{i}]") for i, item in enumerate(items)
        ]
        results = []
        for request_ in requests:
            decision = snapshot.evaluate(request_)
            results.append(authzen.decision_json(decision, snapshot.revision))
            if (semantic == "deny_on_first_deny" and not decision.allowed) or (
                semantic == "permit_on_first_permit" and decision.allowed
            ):
                break
        return _json({"evaluations": results})

    @app.get("/.well-known/authzen-configuration", tags=["AuthZEN"], summary="PDP metadata (AuthZEN 1.0)")
    async def configuration(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return _json(
            {
                "policy_decision_point": base,
                "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
                "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
            }
        )


# --- admin API -------------------------------------------------------------------------------------


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: str = Field("active", description="active, disabled or left")
    owner: str | None = None
    display_name: str | None = None
    attributes: dict[str, str | list[str]] = Field(default_factory=dict)
    groups: list[str] | None = Field(None, description="Direct groups; omitted keeps the current ones")


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str | None = None
    attributes: dict[str, str | list[str]] = Field(default_factory=dict)
    parents: list[str] | None = Field(None, description="Groups this group is nested in")


class ResourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str | None = None
    attributes: dict[str, str | list[str]] = Field(default_factory=dict)


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = "request"
    subject_type: str
    subject: str
    actions: list[str]
    resource: str
    starts: str | None = None
    ends: str
    clause: int


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    subject_type: str
    subject: str


def _done(done: admin_ops.Done, status: int = 200) -> Response:
    result = done.result if isinstance(done.result, dict) else {}
    return _json({**result, "revision": done.revision}, status)


def _admin_routes(app: FastAPI) -> None:
    def ops(request: Request) -> tuple[admin_ops.Admin, Caller]:
        return request.app.state.admin, caller_of(request)

    async def run(function, *args):
        return await anyio.to_thread.run_sync(function, *args)

    @app.get("/admin/v1/revision", tags=["admin"])
    async def revision(request: Request) -> Response:
        caller_of(request)
        snapshot = request.app.state.engine.snapshot
        return _json({"revision": snapshot.revision, "charter": snapshot.charter, "version": snapshot.version.version})

    for section in admin_ops.IDENTITY_SECTIONS:
        _identity_routes(app, section, ops, run)

    @app.get("/admin/v1/groups", tags=["directory"], summary="List groups")
    async def list_groups(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_groups, caller))

    @app.get("/admin/v1/groups/{name}", tags=["directory"], summary="One group, its parents and members")
    async def get_group(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_group, caller, name))

    @app.delete("/admin/v1/groups/{name}", tags=["directory"], summary="Delete a group")
    async def delete_group(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.delete_group, caller, name))

    @app.put("/admin/v1/groups/{name}", tags=["directory"], summary="Create or replace a group")
    async def put_group(name: str, body: GroupIn, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_group, caller, name, body.model_dump(exclude_unset=True)))

    @app.put("/admin/v1/groups/{group}/members/{section}/{name}", tags=["directory"], summary="Add a member to a group")
    async def add_member(group: str, section: str, name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.add_member, caller, group, section, name))

    @app.delete("/admin/v1/groups/{group}/members/{section}/{name}", tags=["directory"], summary="Remove a member")
    async def remove_member(group: str, section: str, name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.remove_member, caller, group, section, name))

    @app.put(
        "/admin/v1/resources/{name:path}",
        tags=["directory"],
        summary="Create or replace a resource's owner and attributes",
    )
    async def put_resource(name: str, body: ResourceIn, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_resource, caller, name, body.model_dump(exclude_unset=True)))

    @app.get("/admin/v1/charter", tags=["charter"], summary="The charter text and the version in force")
    async def get_charter(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_charter, caller))

    @app.put("/admin/v1/charter", tags=["charter"], summary="Upload a new charter text (checked first; all or nothing)")
    async def put_charter(request: Request, text: str = Body(..., media_type="text/plain")) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.upload_charter, caller, text))

    @app.post("/admin/v1/grants", tags=["grants"], summary="Create a grant", status_code=201)
    async def create_grant(body: GrantIn, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.create_grant, caller, body.model_dump()), 201)

    @app.delete("/admin/v1/grants/{grant_id}", tags=["grants"], summary="Revoke a grant at once")
    async def revoke_grant(grant_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.revoke_grant, caller, grant_id))

    @app.post(
        "/admin/v1/clients",
        tags=["clients"],
        summary="Create an API client; the credential is shown once",
        status_code=201,
    )
    async def create_client(body: ClientIn, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.create_client, caller, body.name, body.subject_type, body.subject), 201)

    @app.delete("/admin/v1/clients/{client_id}", tags=["clients"], summary="Revoke an API client")
    async def revoke_client(client_id: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.revoke_client, caller, client_id))


def _identity_routes(app: FastAPI, section: str, ops, run) -> None:
    """List, read, put and delete for one section of the directory: users, services or partners."""
    noun = section[:-1]

    @app.get(f"/admin/v1/{section}", tags=["directory"], summary=f"List {section}", name=f"list_{section}")
    async def list_identities(request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.list_identities, caller, section))

    @app.get(f"/admin/v1/{section}/{{name}}", tags=["directory"], summary=f"One {noun}", name=f"get_{noun}")
    async def get_identity(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _json(await run(admin.get_identity, caller, section, name))

    @app.put(
        f"/admin/v1/{section}/{{name}}", tags=["directory"], summary=f"Create or replace a {noun}", name=f"put_{noun}"
    )
    async def put_identity(name: str, body: IdentityIn, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.put_identity, caller, section, name, body.model_dump(exclude_unset=True)))

    @app.delete(f"/admin/v1/{section}/{{name}}", tags=["directory"], summary=f"Delete a {noun}", name=f"delete_{noun}")
    async def delete_identity(name: str, request: Request) -> Response:
        admin, caller = ops(request)
        return _done(await run(admin.delete_identity, caller, section, name))
