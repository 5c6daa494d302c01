"""Notifications over HTTP: the webhook admin routes and the event stream. Translation only.

- `POST /admin/v1/webhooks`, `GET /admin/v1/webhooks`, `DELETE /admin/v1/webhooks/{id}`,
  `GET /admin/v1/webhooks/{id}/deliveries`: `charter.webhooks`, authorised as `manage` / `read` on
  `charter:<name>/webhooks`;
- `GET /access/v1/events`: `charter.event_stream`, authorised as `read` on `charter:<name>/events`.

docs/notifications.md describes the events, the delivery contract and the stream.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, FastAPI, Header, Query, Request, Security
from pydantic import Field
from starlette.responses import Response, StreamingResponse

from charter import event_stream
from charter.admin import Page
from charter.clients import Caller
from charter.engine import Engine
from charter.policy.request import Request as Decide
from charter.web.app import (
    _ERRORS,
    _LIMIT,
    _OFFSET,
    _authenticated,
    _Body,
    _body_schema,
    _done,
    _fields,
    _json,
    run_in_thread,
)
from charter.web.errors import bad_request
from charter.webhooks import Webhooks


class WebhookIn(_Body):
    url: str = Field(description="Where events are POSTed: an http or https URL, without credentials")
    events: list[str] = Field(description='The event types sent, such as "request.created", or ["*"] for all')


def notification_routes(app: FastAPI) -> None:
    app.state.open_event_streams = 0  # how many event streams are being served (for operators and tests)
    _webhook_routes(app)
    _event_stream_route(app)


def _webhook_routes(app: FastAPI) -> None:
    router = APIRouter(prefix="/admin/v1", dependencies=[Security(_authenticated)], responses=_ERRORS)

    def webhooks(request: Request) -> tuple[Webhooks, Caller]:
        return Webhooks(request.app.state.admin), request.state.caller

    run = run_in_thread

    @router.post(
        "/webhooks",
        tags=["webhooks"],
        summary="Create a webhook; its signing secret is shown once",
        description="Authorised as `manage` on `charter:<name>/webhooks`.",
        status_code=201,
        openapi_extra=_body_schema(WebhookIn),
    )
    async def create_webhook(request: Request) -> Response:
        hooks, caller = webhooks(request)
        body = await _fields(request, WebhookIn)
        return _done(await run(hooks.create, caller, body["url"], body["events"]), 201)

    @router.get("/webhooks", tags=["webhooks"], summary="List webhooks, disabled ones too (never their secrets)")
    async def list_webhooks(request: Request, limit: int = _LIMIT, offset: int = _OFFSET) -> Response:
        hooks, caller = webhooks(request)
        return _json(await run(hooks.list, caller, Page(limit, offset)))

    @router.delete("/webhooks/{webhook_id}", tags=["webhooks"], summary="Disable a webhook: nothing more is sent to it")
    async def disable_webhook(webhook_id: str, request: Request) -> Response:
        hooks, caller = webhooks(request)
        return _done(await run(hooks.disable, caller, webhook_id))

    @router.get(
        "/webhooks/{webhook_id}/deliveries",
        tags=["webhooks"],
        summary="A webhook's deliveries, newest first: status, attempts, the receiver's last answer",
    )
    async def list_deliveries(
        webhook_id: str, request: Request, limit: int = _LIMIT, offset: int = _OFFSET
    ) -> Response:
        hooks, caller = webhooks(request)
        return _json(await run(hooks.deliveries, caller, webhook_id, Page(limit, offset)))

    app.include_router(router)


def _event_stream_route(app: FastAPI) -> None:
    @app.get(
        "/access/v1/events",
        tags=["events"],
        summary="The events as a server-sent event stream",
        description="`text/event-stream`: each event as `id`, `event` (its type) and `data` (its JSON). Starts "
        "after the `Last-Event-ID` header, else after `after`, else at the newest event (only new ones). "
        "`once=true` sends what is there and closes. Authorised as `read` on `charter:<name>/events`.",
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **_ERRORS},
        response_class=StreamingResponse,
        dependencies=[Security(_authenticated)],  # the bearer credential (401), as on every other route
    )
    async def events(
        request: Request,
        after: Annotated[
            int | None, Query(ge=0, le=MAX_EVENT_ID, description="Send the events after this event id")
        ] = None,
        once: Annotated[bool, Query(description="Send the events there are, then close")] = False,
        last_event_id: Annotated[str | None, Header(description="Resume after this event id (reconnects)")] = None,
    ) -> Response:
        caller: Caller = request.state.caller
        engine: Engine = request.app.state.engine
        resource = event_stream.resource(engine.snapshot.charter)
        await anyio.to_thread.run_sync(request.app.state.admin.authorize, caller, "read", resource)
        start = await _start(engine, last_event_id, after)

        async def read(after_id: int) -> list[dict]:
            return await anyio.to_thread.run_sync(event_stream.events_after, engine.sessions, after_id)

        frames = event_stream.stream(read, start, lambda: _still_allowed(engine, caller), once=once)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no buffering by nginx and the like
        return StreamingResponse(_counted(request.app, frames), media_type="text/event-stream", headers=headers)


MAX_EVENT_ID = 2**63 - 1  # what a store's integer holds: a larger one failed in the driver (a 500)


async def _start(engine: Engine, last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: a reconnecting browser sends Last-Event-ID with the URL it first used, so the
    header wins over `after`."""
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or int(last_event_id) > MAX_EVENT_ID:
            raise bad_request("Last-Event-ID must be an event id (a whole number)", "Last-Event-ID")
        return int(last_event_id)
    if after is not None:
        return after
    return await anyio.to_thread.run_sync(event_stream.last_event_id, engine.sessions)


def _still_allowed(engine: Engine, caller: Caller) -> bool:
    """The credential is still valid and the charter in force still lets its identity read the events."""
    if caller.client_id not in engine.clients:
        return False
    resource = event_stream.resource(engine.snapshot.charter)
    return engine.snapshot.evaluate(Decide(caller.subject, "read", resource, subject_type=caller.subject_type)).allowed


async def _counted(app: FastAPI, frames):
    app.state.open_event_streams += 1
    try:
        async for chunk in frames:
            yield chunk
    finally:
        app.state.open_event_streams -= 1
