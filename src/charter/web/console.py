"""The web console under `/console`: server-rendered pages over the existing services. Translation only.

Every page needs a signed-in browser session (else a 303 to `/login?next=...`); the person is the caller
of the services (`Admin`, `Reviews`, `charter.overview`), so the charter decides what they may see and do,
and every refusal is audited there and shown as a 403 page naming the clause (or that none allows it).
Every form is a POST carrying the CSRF token (`pages.check_csrf`), answered with a 303 back to a page
(post/redirect/get) with a fixed notice. No JavaScript: charts are inline SVG drawn here.

| path | page |
|---|---|
| `GET /console` | dashboard: the service figures of the last 24 hours, what awaits me, overdue reviews, drift |
| `GET /console/charter?as_of=DATE` | the text in force with clause numbers and origins, every version made |
| `GET /console/amendments`, `POST` | amendments I may read; propose one |
| `GET /console/amendments/{n}`, `POST .../decide` | text side by side, plan, simulation; approve or reject |
| `GET /console/explorer?ask=who\\|what\\|why` | who may do A on R; what may S do; why a decision, with its trace |
| `GET /console/access`, `POST .../request`, `.../break-glass` | request access, break glass |
| `POST /console/access/requests/{id}/decide`, `.../grants/{id}/revoke` | approve or deny; revoke a grant |
| `GET /console/reviews`, `POST .../{id}/members`, `.../{id}/complete` | review tasks: keep or revoke each member |
| `GET /console/directory?section=` | users, groups, services, partners with owners and state |
| `GET /console/audit`, `GET /console/audit/export` | the audit and decision chains searched; JSON Lines |

docs/console.md says who may do what.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import orjson
from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from charter import admin as admin_ops
from charter import amendments, charters, overview
from charter.admin import Admin, Page
from charter.clients import Caller
from charter.reviews import Reviews
from charter.web.app import run_in_thread
from charter.web.errors import ApiError
from charter.web.login import login_redirect, signed_in
from charter.web.pages import check_csrf, render

PREFIX = "/console"
CLIENT_ID = "console"  # how the audit trail names the console as the client a person acted through
STATIC = Path(__file__).parent / "static"
SECTIONS = ("users", "groups", "services", "partners")
AUDIT_PAGE = 50
EXPORT_LIMIT = 1000
MAX_TEXT = 20000
NOTICES = {
    "requested": "Your request is in. Its approvers can see it now.",
    "approved": "Your approval is recorded.",
    "denied": "Your denial is recorded.",
    "revoked": "The grant is revoked.",
    "broke-glass": "Break glass used: access is yours at once, and a review is due.",
    "proposed": "The amendment is proposed. Its approvers can see it now.",
    "approve": "Your approval of the amendment is recorded.",
    "reject": "Your rejection of the amendment is recorded.",
    "keep": "Kept: your verdict is recorded.",
    "revoke": "Revoked: the membership is removed.",
    "completed": "The review is complete.",
}


class Shown(Exception):
    """An error page to answer with instead of the page asked for."""

    def __init__(self, status: int, title: str, message: str, more=()):
        super().__init__(message)
        self.status, self.title, self.message, self.more = status, title, message, list(more)


def console_routes(app: FastAPI) -> None:
    """Mount the console's pages and the stylesheet every page uses."""
    reviews: Reviews = app.state.reviews

    @app.get("/static/charter.css", include_in_schema=False)
    async def stylesheet() -> Response:
        css = (STATIC / "charter.css").read_bytes()
        return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=300"})

    @app.get(PREFIX, include_in_schema=False)
    @page
    async def dashboard(request: Request, who: Caller) -> Response:
        admin = _admin(request)
        figures, figures_refused = None, _quietly_refused(admin, who, "audit:audit", "audit:decisions")
        if figures_refused is None:
            figures = await _call(overview.service_figures, admin, who)
        drift, drift_refused = None, _quietly_refused(admin, who, f"charter:{admin.engine.snapshot.charter}")
        if drift_refused is None:
            drift = await _call(admin.drift, who)
        requests = await _call(admin.list_requests, who, "pending")
        amendment_items = await _call(overview.amendments_for, admin, who)
        tasks = await _call(reviews.list_tasks, who, "overdue", False, Page(limit=20))
        groups = _groups(admin, who)
        return _render(
            request,
            "dashboard.html",
            who,
            figures=figures,
            figures_refused=figures_refused,
            charts=[_chart(s) for s in figures["series"]] if figures else [],
            my_requests=[r for r in requests["items"] if r["subject"] == {"type": "user", "id": who.subject}],
            to_decide=overview.awaiting(requests["items"], who.subject, groups),
            to_approve=overview.awaiting(amendment_items, who.subject, groups),
            overdue=tasks["items"],
            drift=drift,
            drift_refused=drift_refused,
        )

    @app.get(f"{PREFIX}/charter", include_in_schema=False)
    @page
    async def charter_page(request: Request, who: Caller, as_of: str = "") -> Response:
        admin = _admin(request)
        day = _date(as_of, "as_of") if as_of else admin.now().date()
        version = await _call(overview.charter_as_of, admin, who, day)
        versions = await _call(admin.list_versions, who)
        return _render(request, "charter.html", who, version=version, day=day, versions=versions["items"])

    @app.get(PREFIX + "/charter/versions/{number}", include_in_schema=False)
    @page
    async def version_page(request: Request, who: Caller, number: int) -> Response:
        version = await _call(_admin(request).get_version, who, number)
        return _render(request, "version.html", who, version=version)

    @app.get(f"{PREFIX}/amendments", include_in_schema=False)
    @page
    async def amendments_page(request: Request, who: Caller) -> Response:
        items = await _call(overview.amendments_for, _admin(request), who)
        return _render(request, "amendments.html", who, items=items, text="")

    @app.post(f"{PREFIX}/amendments", include_in_schema=False)
    @page
    async def propose(request: Request, who: Caller) -> Response:
        form = await _form(request)
        text = _text(form, "text")
        try:
            done = await _call(_admin(request).propose_amendment, who, text)
        except Shown as shown:
            if shown.status == 403:
                raise
            items = await _call(overview.amendments_for, _admin(request), who)
            error = " ".join([shown.message, *shown.more])
            return _render(request, "amendments.html", who, shown.status, items=items, text=text, error=error)
        return _back(f"{PREFIX}/amendments/{done.result['number']}", "proposed")

    @app.get(PREFIX + "/amendments/{number}", include_in_schema=False)
    @page
    async def amendment_page(request: Request, who: Caller, number: int, simulate: str = "") -> Response:
        admin = _admin(request)
        item = await _call(admin.get_amendment, who, number)
        diff = _fold(await _call(overview.amendment_diff, admin, who, number))
        plan = await _call(admin.plan_amendment, who, number)
        simulation = await _call(admin.simulate_amendment, who, number, 7) if simulate else None
        groups = _groups(admin, who)
        may_decide = bool(overview.awaiting([item], who.subject, groups))
        return _render(
            request,
            "amendment.html",
            who,
            item=item,
            diff=diff,
            plan=plan,
            simulation=simulation,
            may_decide=may_decide,
        )

    @app.post(PREFIX + "/amendments/{number}/decide", include_in_schema=False)
    @page
    async def decide_amendment(request: Request, who: Caller, number: int) -> Response:
        form = await _form(request)
        verdict = str(form.get("verdict", ""))
        await _call(_admin(request).decide_amendment, who, number, verdict, _comment(form))
        return _back(f"{PREFIX}/amendments/{number}", verdict if verdict in NOTICES else "")

    @app.get(f"{PREFIX}/explorer", include_in_schema=False)
    @page
    async def explorer(request: Request, who: Caller) -> Response:
        admin, q = _admin(request), request.query_params
        ask = q.get("ask", "")
        mfa = q.get("mfa") == "on"
        fields = {k: q.get(k, "") for k in ("action", "resource", "subject_type", "subject")}
        fields["subject_type"] = fields["subject_type"] or "user"
        answer = None
        if ask == "who":
            answer = await _call(overview.who_may, admin, who, fields["action"], fields["resource"], mfa)
        elif ask == "what":
            answer = await _call(overview.what_may, admin, who, fields["subject_type"], fields["subject"])
        elif ask == "why":
            answer = await _call(
                overview.why,
                admin,
                who,
                fields["subject_type"],
                fields["subject"],
                fields["action"],
                fields["resource"],
                mfa,
            )
        return _render(request, "explorer.html", who, ask=ask, answer=answer, fields=fields, mfa=mfa)

    @app.get(f"{PREFIX}/access", include_in_schema=False)
    @page
    async def access_page(request: Request, who: Caller) -> Response:
        admin = _admin(request)
        listed = await _call(admin.list_requests, who, None)
        mine = [r for r in listed["items"] if (r["subject"]["type"], r["subject"]["id"]) == ("user", who.subject)]
        groups = _groups(admin, who)
        to_decide = overview.awaiting(listed["items"], who.subject, groups)
        others = [r for r in listed["items"] if r not in mine and r not in to_decide]
        return _render(request, "access.html", who, mine=mine, to_decide=to_decide, others=others)

    @app.post(f"{PREFIX}/access/request", include_in_schema=False)
    @page
    async def request_access(request: Request, who: Caller) -> Response:
        form = await _form(request)
        await _call(_admin(request).request_access, who, _ask(form))
        return _back(f"{PREFIX}/access", "requested")

    @app.post(f"{PREFIX}/access/break-glass", include_in_schema=False)
    @page
    async def break_glass(request: Request, who: Caller) -> Response:
        form = await _form(request)
        await _call(_admin(request).break_glass, who, _ask(form))
        return _back(f"{PREFIX}/access", "broke-glass")

    @app.post(PREFIX + "/access/requests/{request_id}/decide", include_in_schema=False)
    @page
    async def decide_request(request: Request, who: Caller, request_id: str) -> Response:
        form = await _form(request)
        verdict = str(form.get("verdict", ""))
        await _call(_admin(request).decide_request, who, request_id, verdict, _comment(form))
        return _back(f"{PREFIX}/access", {"approve": "approved", "deny": "denied"}.get(verdict, ""))

    @app.post(PREFIX + "/access/grants/{grant_id}/revoke", include_in_schema=False)
    @page
    async def revoke(request: Request, who: Caller, grant_id: str) -> Response:
        await _form(request)
        await _call(_admin(request).revoke_access, who, grant_id)
        return _back(f"{PREFIX}/access", "revoked")

    @app.get(f"{PREFIX}/reviews", include_in_schema=False)
    @page
    async def reviews_page(request: Request, who: Caller, status: str = "open") -> Response:
        status = status if status in ("open", "done", "overdue") else "open"
        tasks = await _call(reviews.list_tasks, who, status, False, Page(limit=100))
        return _render(request, "reviews.html", who, tasks=tasks, showing=status)

    @app.post(PREFIX + "/reviews/{task_id}/members", include_in_schema=False)
    @page
    async def review_member(request: Request, who: Caller, task_id: str) -> Response:
        form = await _form(request)
        member_type, _, member_id = str(form.get("member", "")).partition(":")
        verdict = str(form.get("verdict", ""))
        await _call(reviews.decide_member, who, task_id, member_type, member_id, verdict, _comment(form))
        return _back(f"{PREFIX}/reviews", verdict if verdict in ("keep", "revoke") else "")

    @app.post(PREFIX + "/reviews/{task_id}/complete", include_in_schema=False)
    @page
    async def review_complete(request: Request, who: Caller, task_id: str) -> Response:
        form = await _form(request)
        await _call(reviews.complete, who, task_id, str(form.get("outcome", "")), _comment(form))
        return _back(f"{PREFIX}/reviews", "completed")

    @app.get(f"{PREFIX}/directory", include_in_schema=False)
    @page
    async def directory(request: Request, who: Caller, section: str = "users", offset: int = 0) -> Response:
        admin = _admin(request)
        section = section if section in SECTIONS else "users"
        listing = Page(limit=100, offset=max(offset, 0))
        if section == "groups":
            listed = await _call(admin.list_groups, who, listing)
        else:
            listed = await _call(admin.list_identities, who, section, listing)
        return _render(request, "directory.html", who, section=section, listed=listed)

    @app.get(f"{PREFIX}/audit", include_in_schema=False)
    @page
    async def audit(request: Request, who: Caller, chain: str = "audit", offset: int = 0) -> Response:
        filters = _audit_filters(request)
        listed = await _call(
            _admin(request).search_audit, who, chain, filters, Page(limit=AUDIT_PAGE, offset=max(offset, 0))
        )
        query = urlencode({"chain": chain, **{k: v for k, v in filters.items() if v}})
        return _render(request, "audit.html", who, chain=chain, filters=filters, listed=listed, query=query)

    @app.get(f"{PREFIX}/audit/export", include_in_schema=False)
    @page
    async def audit_export(request: Request, who: Caller, chain: str = "audit") -> Response:
        listed = await _call(
            _admin(request).search_audit, who, chain, _audit_filters(request), Page(limit=EXPORT_LIMIT)
        )
        body = b"".join(orjson.dumps(item) + b"\n" for item in listed["items"])
        name = f"charter-{chain}-{_admin(request).now():%Y%m%dT%H%M%SZ}.jsonl"
        return Response(
            body,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )


# --- the shared path ------------------------------------------------------------------------------------


def page(handler: Callable) -> Callable:
    """A console route: the signed-in person (else the sign-in page) as `who`; error pages for refusals."""

    @functools.wraps(handler)
    async def route(request: Request, **kwargs) -> Response:
        signed = await run_in_thread(signed_in, request)
        if signed is None:
            return login_redirect(request) if request.method == "GET" else RedirectResponse("/login", 303)
        who = Caller(CLIENT_ID, "user", signed.user, signed.mfa)
        try:
            return await handler(request, who, **kwargs)
        except ApiError as error:  # the CSRF check, or a bad form
            shown = Shown(error.status, "Not done", error.message)
        except Shown as error:
            shown = error
        more = shown.more
        return _render(request, "error.html", who, shown.status, title=shown.title, message=shown.message, more=more)

    # FastAPI reads the route's parameters from the signature: the handler's, without `who`.
    import inspect

    signature = inspect.signature(handler)
    route.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for name, p in signature.parameters.items() if name != "who"]
    )
    return route


async def _call(function, *args):
    """A service call off the event loop; its refusals and errors become the page to show (`Shown`)."""
    try:
        return await run_in_thread(function, *args)
    except admin_ops.Forbidden as refused:
        message = _refusal(refused.action, refused.resource, refused.decision)
        raise Shown(403, "Not allowed", message, refused.decision.reasons) from None
    except amendments.Refused as refused:
        status = refused.status if refused.status in (400, 403, 404) else 409
        clause = f" (clause {refused.clause})" if refused.clause is not None else ""
        raise Shown(status, "Not done", f"{refused}{clause}.") from None
    except admin_ops.NotFound as missing:
        raise Shown(404, "Not found", str(missing)) from None
    except admin_ops.Invalid as invalid:
        raise Shown(400, "Not done", f"{invalid.field}: {invalid.message}") from None
    except admin_ops.Conflict as conflict:
        raise Shown(409, "Not done", str(conflict)) from None
    except charters.Rejected as rejected:
        lines = [d.headline() for d in rejected.diagnostics]
        raise Shown(422, "Not accepted", lines[0], lines[1:]) from None


def _refusal(action: str, resource: str, decision) -> str:
    why = (
        f"clause {decision.clause} of the charter decides it"
        if decision.clause is not None
        else "no clause of the charter allows it"
    )
    return f"The charter does not allow you to {action} {resource}: {why}."


def _quietly_refused(admin: Admin, who: Caller, *resources: str) -> str | None:
    """Why a part of a page is not shown (the first of `resources` the person may not read), or None.

    Asked quietly, so that opening the dashboard does not audit a refusal for each part it leaves out."""
    for resource in resources:
        decision = overview.allowed(admin, who, "read", resource)
        if not decision.allowed:
            return _refusal("read", resource, decision)
    return None


def _render(request: Request, template: str, who: Caller, status: int = 200, **context) -> Response:
    notice = NOTICES.get(request.query_params.get("done", ""))
    return render(request, f"console/{template}", status, who=who.subject, notice=notice, **context)


def _back(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={done}" if done else path, status_code=303)


def _admin(request: Request) -> Admin:
    return request.app.state.admin


def _groups(admin: Admin, who: Caller) -> frozenset[str]:
    principal = admin.engine.snapshot.principal(who.subject_type, who.subject)
    return principal.groups if principal is not None else frozenset()


async def _form(request: Request):
    form = await request.form()
    check_csrf(request, form)
    return form


def _text(form, name: str) -> str:
    value = str(form.get(name, ""))
    if len(value) > MAX_TEXT:
        raise ApiError(400, "invalid_request", f"{name}: at most {MAX_TEXT} characters")
    return value


def _comment(form) -> str | None:
    comment = _text(form, "comment").strip()
    return comment or None


def _ask(form) -> dict:
    return {k: _text(form, k).strip() or None for k in ("action", "resource", "duration", "reason")}


def _date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Shown(400, "Not a date", f"{field}: {value!r} is not a date as YYYY-MM-DD") from None


def _audit_filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    return {k: (q.get(k) or "").strip() or None for k in ("since", "until", "actor", "action", "target", "outcome")}


def _fold(rows: list[tuple[str, str, str]], context: int = 2) -> list[tuple[str, str, str]]:
    """Long runs of unchanged lines folded to `context` lines each side of a change and one "fold" row."""
    folded: list[tuple[str, str, str]] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == "same":
            j += 1
        run = rows[i:j]
        keep_head = context if i > 0 else 0
        keep_tail = context if j < len(rows) else 0
        if len(run) > keep_head + keep_tail + 1:
            hidden = len(run) - keep_head - keep_tail
            folded += [*run[:keep_head], ("fold", f"{hidden} unchanged lines", ""), *run[len(run) - keep_tail :]]
        else:
            folded += run
        if j < len(rows):
            folded.append(rows[j])
        i = j + 1
    return folded


def _chart(series: overview.Series, width: int = 240, height: int = 48) -> dict:
    """A bar chart of an hourly series as SVG rectangles (drawn with attributes: no inline style, per CSP)."""
    top = max(series.hourly) or 1
    step = width / len(series.hourly)
    bars = []
    for i, count in enumerate(series.hourly):
        h = round((height - 2) * count / top, 1) if count else 0
        bars.append({"x": round(i * step, 1), "y": round(height - h, 1), "w": round(step - 1, 1), "h": h, "n": count})
    return {"name": series.name, "total": series.total, "bars": bars, "width": width, "height": height}
