"""The AuthZEN 1.0 search APIs: which subjects, resources or actions a decision would allow. Translation only.

- `POST /access/v1/search/subject`: identities of `subject.type` allowed `action` on `resource`;
- `POST /access/v1/search/resource`: resources of `resource.type` the subject may `action`, out of those the
  directory knows (its `resources` section);
- `POST /access/v1/search/action`: the actions, out of those the charter names, the subject may do on `resource`.

Each candidate is asked of the engine (`charter.policy.queries`, in a worker thread: a search walks the
directory), so a result fed back into `/access/v1/evaluation` with the same context is allowed. Responses
are `{"page", "context", "results"}`, sorted by id or name and paged with an opaque `page.next_token`
("" on the last page). docs/authzen.md describes the shapes.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from anyio import to_thread
from fastapi import FastAPI, Request
from starlette.responses import Response

from charter.engine import Engine
from charter.policy import queries
from charter.policy.snapshot import Snapshot
from charter.web import authzen
from charter.web.app import _json, _json_body, caller_of
from charter.web.errors import bad_request

_ENTITY = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "properties": {"type": "object"}},
}
_ACTION = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_PAGE = {
    "type": "object",
    "properties": {"token": {"type": "string"}, "limit": {"type": "integer", "minimum": 0}},
}


def _schema(*required: str) -> dict:
    properties = {"subject": _ENTITY, "action": _ACTION, "resource": _ENTITY, "context": {"type": "object"}}
    if "action" not in required:
        del properties["action"]
    schema = {"type": "object", "required": list(required), "properties": {**properties, "page": _PAGE}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def search_routes(app: FastAPI, engine: Engine) -> None:
    @app.post(
        "/access/v1/search/subject",
        tags=["AuthZEN"],
        summary="Subject search: who of a type may do an action on a resource (AuthZEN 1.0)",
        openapi_extra=_schema("subject", "action", "resource"),
    )
    async def search_subject(request: Request) -> Response:
        caller_of(request)
        body = await _json_body(request)
        subject = authzen.json_object(body.get("subject"), "subject")
        subject_type = authzen.text(subject, "type", "subject")
        action = _action(body)
        resource, context = _resource(body)
        snapshot = engine.snapshot
        found = await to_thread.run_sync(queries.who_may, snapshot, action, resource, context, subject_type)
        query = _query("subject", body, subject={"type": subject_type})
        return _answer(
            snapshot,
            body,
            query,
            [subject_id for _, subject_id, _ in found],
            lambda subject_id: {"type": subject_type, "id": subject_id},
        )

    @app.post(
        "/access/v1/search/resource",
        tags=["AuthZEN"],
        summary="Resource search: which resources of a type a subject may act on (AuthZEN 1.0)",
        openapi_extra=_schema("subject", "action", "resource"),
    )
    async def search_resource(request: Request) -> Response:
        caller_of(request)
        body = await _json_body(request)
        subject_type, subject_id = _subject(body)
        action = _action(body)
        resource = authzen.json_object(body.get("resource"), "resource")
        resource_type = authzen.text(resource, "type", "resource")
        properties = authzen.resource_properties(resource, "resource")
        context = authzen.context_of(body.get("context"), "context", properties)
        snapshot = engine.snapshot
        names = [name for name in snapshot.resources if authzen.resource_id(resource_type, name) is not None]
        found = await to_thread.run_sync(
            queries.resources_allowed, snapshot, subject_type, subject_id, action, context, names
        )
        query = _query("resource", body, resource={k: v for k, v in resource.items() if k != "id"})
        return _answer(
            snapshot,
            body,
            query,
            [name for name, _ in found],
            lambda name: {"type": resource_type, "id": authzen.resource_id(resource_type, name)},
        )

    @app.post(
        "/access/v1/search/action",
        tags=["AuthZEN"],
        summary="Action search: what a subject may do on a resource (AuthZEN 1.0)",
        openapi_extra=_schema("subject", "resource"),
    )
    async def search_action(request: Request) -> Response:
        caller_of(request)
        body = await _json_body(request)
        subject_type, subject_id = _subject(body)
        resource, context = _resource(body)
        snapshot = engine.snapshot
        found = await to_thread.run_sync(queries.actions_allowed, snapshot, subject_type, subject_id, resource, context)
        query = _query("action", body, action=None)
        return _answer(snapshot, body, query, [action for action, _ in found], lambda action: {"name": action})


# --- translation ------------------------------------------------------------------------------------


def _subject(body: Mapping) -> tuple[str, str]:
    subject = authzen.json_object(body.get("subject"), "subject")
    return authzen.text(subject, "type", "subject"), authzen.text(subject, "id", "subject")


def _action(body: Mapping) -> str:
    return authzen.text(authzen.json_object(body.get("action"), "action"), "name", "action")


def _resource(body: Mapping):
    """The resource's Charter name and the request's context (with the resource's properties as attributes)."""
    resource = authzen.json_object(body.get("resource"), "resource")
    name = authzen.resource_name(authzen.text(resource, "type", "resource"), authzen.text(resource, "id", "resource"))
    properties = authzen.resource_properties(resource, "resource")
    return name, authzen.context_of(body.get("context"), "context", properties)


def _query(kind: str, body: Mapping, **replaced: object) -> str:
    """The canonical text of the question asked (what a page token is bound to): the ignored parts left out."""
    question: dict[str, object] = {"search": kind}
    for key in authzen.EVALUATION_KEYS:
        value = replaced[key] if key in replaced else body.get(key)
        if value is not None:
            question[key] = value
    return orjson.dumps(question, option=orjson.OPT_SORT_KEYS).decode()


def _page_request(body: Mapping) -> tuple[int | None, str | None]:
    value = body.get("page")
    if value is None:
        return None, None
    page = authzen.json_object(value, "page")
    limit, token = page.get("limit"), page.get("token")
    if token is None:  # drafts of the specification sent the token back as `page.next_token`
        token = page.get("next_token")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise bad_request("page.limit must be a non-negative integer", "page.limit")
    if token is not None and not isinstance(token, str):
        raise bad_request("page.token must be a string", "page.token")
    return limit, token


def _answer(snapshot: Snapshot, body: Mapping, query: str, keys: list[str], entity) -> Response:
    limit, token = _page_request(body)
    try:
        chosen = queries.page(keys, str, query, limit, token)
    except queries.PageError as error:
        raise bad_request(error.message, error.field) from None
    return _json(
        {
            "page": {"next_token": chosen.next_token, "count": len(chosen.items), "total": chosen.total},
            "context": {
                "charter": snapshot.charter,
                "version": snapshot.version.version,
                "revision": snapshot.revision,
            },
            "results": [entity(key) for key in chosen.items],
        }
    )
