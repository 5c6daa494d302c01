"""The server's side of enforcement points (docs/enforcement.md): the replica's data and their decision log.

- `GET /access/v1/snapshot`: what a local replica compiles (charter.replication), for callers allowed
  `read` on `charter:<name>/snapshot`; the answer carries `Charter-Revision` like every other.
- `POST /access/v1/decision-log`: decisions an enforcement point made from its replica, in batches, for
  callers allowed `manage` on `audit:decisions`; they join the "decisions" chain through the server's own
  DecisionLog queue, marked with the caller's client id as the PEP. Translation only.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio
from fastapi import FastAPI, Request
from starlette.responses import Response

from charter.policy.decision import Basis, Decision
from charter.policy.request import Context
from charter.policy.request import Request as PolicyRequest
from charter.replication import snapshot_document
from charter.web.app import _json, _json_body, caller_of
from charter.web.errors import bad_request

MAX_BATCH = 5_000
DECISION_LOG_RESOURCE = "audit:decisions"
_SUBJECT_TYPES = frozenset({"user", "service", "partner", "token"})


def enforcement_routes(app: FastAPI) -> None:
    @app.get("/access/v1/snapshot", tags=["enforcement"], summary="The decision data a local replica compiles")
    async def snapshot(request: Request) -> Response:
        caller = caller_of(request)
        admin = request.app.state.admin
        engine = request.app.state.engine
        await anyio.to_thread.run_sync(admin.authorize, caller, "read", f"charter:{engine.snapshot.charter}/snapshot")
        return _json(await anyio.to_thread.run_sync(snapshot_document, engine))

    @app.post("/access/v1/decision-log", tags=["enforcement"], summary="Decisions an enforcement point made")
    async def decision_log(request: Request) -> Response:
        caller = caller_of(request)
        admin = request.app.state.admin
        await anyio.to_thread.run_sync(admin.authorize, caller, "manage", DECISION_LOG_RESOURCE)
        body = await _json_body(request)
        items = body.get("decisions")
        if not isinstance(items, list) or len(items) > MAX_BATCH:
            raise bad_request(f"decisions must be a JSON array of at most {MAX_BATCH} decisions", "decisions")
        parsed = [reported(item, f"decisions[{i}]") for i, item in enumerate(items)]
        log = request.app.state.decision_log
        if log is not None:
            for moment_ns, policy_request, decision, request_id in parsed:
                log.record_at(moment_ns, policy_request, decision, caller.client_id, request_id)
        return _json({"accepted": len(parsed), "logged": log is not None}, 202)


def reported(item: object, field: str) -> tuple[int, PolicyRequest, Decision, str | None]:
    """One reported decision: (time in ns, the request, the decision, the request id); 400 naming the field."""
    if not isinstance(item, Mapping):
        raise bad_request(f"{field} must be a JSON object", field)

    def string(key: str, optional: bool = False) -> str | None:
        value = item.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value or len(value) > 4096:
            raise bad_request(f"{field}.{key} must be a non-empty string", f"{field}.{key}")
        return value

    at = item.get("at")
    if type(at) is not int or at <= 0:
        raise bad_request(f"{field}.at must be a time in nanoseconds since the epoch", f"{field}.at")
    subject_type = string("subject_type")
    if subject_type not in _SUBJECT_TYPES:
        raise bad_request(f"{field}.subject_type must be one of {', '.join(sorted(_SUBJECT_TYPES))}", field)
    try:
        basis = Basis(item.get("basis"))
    except ValueError:
        raise bad_request(f"{field}.basis is not a basis of a decision", f"{field}.basis") from None
    allowed, clause, version = item.get("allowed"), item.get("clause"), item.get("version", 0)
    reasons = item.get("reasons", [])
    if not isinstance(allowed, bool):
        raise bad_request(f"{field}.allowed must be true or false", f"{field}.allowed")
    if clause is not None and type(clause) is not int:
        raise bad_request(f"{field}.clause must be a number or null", f"{field}.clause")
    if type(version) is not int:
        raise bad_request(f"{field}.version must be a number", f"{field}.version")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise bad_request(f"{field}.reasons must be a list of strings", f"{field}.reasons")
    context = Context(mfa=item.get("mfa") is True, ip=string("ip", optional=True))
    request = PolicyRequest(string("subject"), string("action"), string("resource"), context, subject_type)  # type: ignore[arg-type]
    decision = Decision(
        allowed, basis, str(item.get("charter", "")), version, clause, tuple(reasons), grant=string("grant", True)
    )
    return at, request, decision, string("request_id", optional=True)
