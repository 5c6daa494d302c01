"""The access review API under `/access/v1/reviews`: list and read review tasks, give verdicts. Translation only.

- `GET /access/v1/reviews?status=open|done|overdue&mine=true`: tasks by due date (all of them for whoever may
  read the charter, else those the caller reviews);
- `GET /access/v1/reviews/{id}`: one task;
- `POST /access/v1/reviews/{id}/members/{type}/{member}` `{"verdict": "keep"|"revoke", "comment"}`: a membership
  review's verdict on one member (a revoke removes the membership at once);
- `POST /access/v1/reviews/{id}/complete` `{"outcome": "ok"|"misuse", "comment"}`: close a break-glass review.

Who may do what is `charter.reviews`; docs/reviews.md describes the shapes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, Security
from pydantic import Field
from starlette.responses import Response

from charter import admin as admin_ops
from charter.reviews import MAX_COMMENT, Reviews
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


class MemberVerdictIn(_Body):
    verdict: str = Field(description='"keep" or "revoke" (which removes the membership at once)')
    comment: str | None = Field(None, max_length=MAX_COMMENT)


class CompleteIn(_Body):
    outcome: str = Field(description='"ok" (the break glass was justified) or "misuse"')
    comment: str | None = Field(None, max_length=MAX_COMMENT)


def review_routes(app: FastAPI, reviews: Reviews) -> None:
    router = APIRouter(prefix="/access/v1/reviews", dependencies=[Security(_authenticated)], responses=_ERRORS)

    run = run_in_thread

    @router.get(
        "",
        tags=["reviews"],
        summary="Review tasks by due date",
        description="All of them for whoever may `read` the charter (and not asking `mine`), else those whose "
        "reviewer group the caller is in. `status=overdue`: open and past due.",
    )
    async def list_tasks(
        request: Request,
        status: Annotated[str | None, Query(description="open, done or overdue")] = None,
        mine: Annotated[bool, Query(description="Only tasks whose reviewer group the caller is in")] = False,
        limit: int = _LIMIT,
        offset: int = _OFFSET,
    ) -> Response:
        page = admin_ops.Page(limit, offset)
        return _json(await run(reviews.list_tasks, request.state.caller, status, mine, page))

    @router.get("/{task_id}", tags=["reviews"], summary="One review task, with its members and verdicts")
    async def get_task(task_id: str, request: Request) -> Response:
        return _json(await run(reviews.get_task, request.state.caller, task_id))

    @router.post(
        "/{task_id}/members/{member_type}/{member_id}",
        tags=["reviews"],
        summary="Keep or revoke one member of a membership review",
        description="Only a member of the task's reviewer group, never about themselves. A revoke removes the "
        "direct memberships that make the member one of the reviewed group, at once.",
        openapi_extra=_body_schema(MemberVerdictIn),
    )
    async def decide_member(task_id: str, member_type: str, member_id: str, request: Request) -> Response:
        body = await _fields(request, MemberVerdictIn)
        caller = request.state.caller
        done = await run(
            reviews.decide_member, caller, task_id, member_type, member_id, body["verdict"], body.get("comment")
        )
        return _done(done)

    @router.post(
        "/{task_id}/complete",
        tags=["reviews"],
        summary="Complete a break-glass review",
        description="Only a member of the task's reviewer group who did not use the break glass.",
        openapi_extra=_body_schema(CompleteIn),
    )
    async def complete(task_id: str, request: Request) -> Response:
        body = await _fields(request, CompleteIn)
        done = await run(reviews.complete, request.state.caller, task_id, body["outcome"], body.get("comment"))
        return _done(done)

    app.include_router(router)
