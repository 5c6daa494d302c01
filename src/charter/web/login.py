"""Sign-in pages (server-rendered, no JavaScript needed) and the authentication API. Translation only.

Pages: `GET/POST /login?next=/path`, `GET/POST /login/mfa`, `GET/POST /login/enroll`, `POST /logout`,
`GET /account`, `POST /account/sign-out-everywhere`, `GET/POST /account/password`,
`POST /account/recovery-codes`. Every form is CSRF-checked (`pages.check_csrf`); `next` is followed only
when it is a path on this site (one leading `/`, no scheme, no `//`, no backslash).

API (a person's API credential, like `/access/v1`): `POST/GET /auth/v1/mfa-resets`,
`POST /auth/v1/mfa-resets/{id}/approve`; `PUT /admin/v1/users/{name}/password`.

For the OAuth authorize endpoint: `signed_in(request)` and `login_redirect(request)`.
docs/authentication.md describes the flow.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request, Security
from pydantic import Field
from starlette.responses import RedirectResponse, Response

from charter.auth import passwords
from charter.auth.login import GENERIC, GENERIC_CODE, Authn, Outcome, set_password_by_admin
from charter.auth.recovery import MAX_REASON, MfaResets
from charter.auth.sessions import COOKIE, SignedIn
from charter.web.app import _ERRORS, _authenticated, _Body, _body_schema, _done, _fields, _json, run_in_thread
from charter.web.pages import check_csrf, render, set_cookie

PENDING_COOKIE = "charter_login"  # sealed "password checked, second step next" state, a few minutes
DEFAULT_NEXT = "/account"


# --- for other route modules (the OAuth authorize endpoint) -----------------------------------------


def signed_in(request: Request) -> SignedIn | None:
    """The live session of this browser (the charter's absolute and idle limits applied), or None."""
    return _authn(request).current(request.cookies.get(COOKIE))


def login_redirect(request: Request) -> RedirectResponse:
    """303 to the sign-in page, coming back to this path and query afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


# --- helpers ------------------------------------------------------------------------------------------


def _authn(request: Request) -> Authn:
    return request.app.state.authn


def safe_next(value: object) -> str:
    """`value` when it is a path on this site, else the account page (no open redirect)."""
    text = str(value or "")
    if (
        not text.startswith("/")
        or text.startswith("//")
        or "\\" in text
        or len(text) > 2048
        or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in text)
    ):
        return DEFAULT_NEXT
    return text


def _source(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _with_next(path: str, next_path: str) -> str:
    return f"{path}?next={quote(next_path, safe='')}" if next_path != DEFAULT_NEXT else path


def _start(request: Request, response: Response, token: str) -> None:
    set_cookie(request, response, COOKIE, token)  # no Max-Age: a browser-session cookie; the server's limits rule
    if PENDING_COOKIE in request.cookies:
        response.delete_cookie(PENDING_COOKIE, path="/")


def _after_sign_in(request: Request, outcome: Outcome, next_path: str) -> Response:
    target = _with_next("/account/password", next_path) if outcome.must_change else next_path
    response = _redirect(target)
    _start(request, response, outcome.token or "")
    return response


def _rate_limited(request: Request, template: str, outcome: Outcome, **context) -> Response:
    response = render(
        request,
        template,
        429,
        error=f"Too many failed attempts from your address. Try again in {outcome.retry_after} seconds.",
        **context,
    )
    response.headers["Retry-After"] = str(outcome.retry_after)
    return response


# --- the pages --------------------------------------------------------------------------------------


def login_routes(app: FastAPI) -> None:
    app.state.authn = Authn(app.state.engine)
    run = run_in_thread

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request, next: str = DEFAULT_NEXT) -> Response:
        return render(request, "login.html", next=safe_next(next), username="")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form)
        next_path = safe_next(form.get("next"))
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        outcome = await run(_authn(request).password, username, password, _source(request), _agent(request))
        if outcome.kind == "rate_limited":
            return _rate_limited(request, "login.html", outcome, next=next_path, username=username)
        if outcome.kind == "refused":
            return render(request, "login.html", 401, error=GENERIC, next=next_path, username=username)
        if outcome.kind == "signed_in":
            return _after_sign_in(request, outcome, next_path)
        stage = outcome.kind  # mfa | enroll
        response = _redirect(_with_next(f"/login/{stage}", next_path))
        set_cookie(request, response, PENDING_COOKIE, _authn(request).pending(outcome.user or "", stage))
        return response

    @app.get("/login/mfa", include_in_schema=False)
    async def mfa_page(request: Request, next: str = DEFAULT_NEXT) -> Response:
        if _authn(request).pending_user(request.cookies.get(PENDING_COOKIE), "mfa") is None:
            return _redirect(_with_next("/login", safe_next(next)))
        return render(request, "mfa.html", next=safe_next(next))

    @app.post("/login/mfa", include_in_schema=False)
    async def mfa(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form)
        next_path = safe_next(form.get("next"))
        authn = _authn(request)
        user = authn.pending_user(request.cookies.get(PENDING_COOKIE), "mfa")
        if user is None:
            return _redirect(_with_next("/login", next_path))
        code = str(form.get("code", ""))
        outcome = await run(authn.second_factor, user, code, _source(request), _agent(request))
        if outcome.kind == "rate_limited":
            return _rate_limited(request, "mfa.html", outcome, next=next_path)
        if outcome.kind != "signed_in":
            return render(request, "mfa.html", 401, error=GENERIC_CODE, next=next_path)
        return _after_sign_in(request, outcome, next_path)

    def _enrolling(request: Request) -> tuple[str | None, bool]:
        """Who is enrolling: the pending sign-in (forced) or the signed-in user (voluntary)."""
        authn = _authn(request)
        user = authn.pending_user(request.cookies.get(PENDING_COOKIE), "enroll")
        if user is not None:
            return user, True
        signed = authn.current(request.cookies.get(COOKIE))
        return (signed.user, False) if signed is not None else (None, False)

    async def _enrol_page(request: Request, next_path: str, status: int = 200, error: str | None = None) -> Response:
        user, forced = _enrolling(request)
        if user is None:
            return _redirect(_with_next("/login", next_path))
        try:
            factor = await run(_authn(request).enrolment, user)
        except ValueError as problem:
            return render(request, "enroll.html", 409, error=str(problem), next=next_path, factor=None, user=user)
        return render(
            request, "enroll.html", status, error=error, next=next_path, factor=factor, user=user, forced=forced
        )

    @app.get("/login/enroll", include_in_schema=False)
    async def enroll_page(request: Request, next: str = DEFAULT_NEXT) -> Response:
        return await _enrol_page(request, safe_next(next))

    @app.post("/login/enroll", include_in_schema=False)
    async def enroll(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form)
        next_path = safe_next(form.get("next"))
        user, forced = _enrolling(request)
        if user is None:
            return _redirect(_with_next("/login", next_path))
        outcome = await run(
            _authn(request).confirm_enrolment,
            user,
            str(form.get("code", "")),
            _source(request),
            _agent(request),
            forced,
        )
        if outcome.kind != "signed_in":
            return await _enrol_page(
                request, next_path, 400, "That code is not right: enter the code the app shows now."
            )
        after = _with_next("/account/password", next_path) if outcome.must_change else next_path
        response = render(request, "codes.html", codes=outcome.codes, next=after)
        if outcome.token:
            _start(request, response, outcome.token)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form)
        signed = await run(signed_in, request)
        if signed is not None:
            await run(_authn(request).sign_out, signed, _source(request))
        response = _redirect("/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/account", include_in_schema=False)
    async def account(request: Request) -> Response:
        signed = await run(signed_in, request)
        if signed is None:
            return login_redirect(request)
        return render(request, "account.html", account=await run(_authn(request).account, signed))

    @app.post("/account/sign-out-everywhere", include_in_schema=False)
    async def sign_out_everywhere(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form)
        signed = await run(signed_in, request)
        if signed is None:
            return login_redirect(request)
        await run(_authn(request).sign_out_everywhere, signed.user, _source(request))
        response = _redirect("/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.post("/account/recovery-codes", include_in_schema=False)
    async def regenerate(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form)
        signed = await run(signed_in, request)
        if signed is None:
            return login_redirect(request)
        try:
            codes = await run(_authn(request).regenerate_codes, signed.user, _source(request))
        except ValueError as problem:
            return render(
                request, "account.html", 409, error=str(problem), account=await run(_authn(request).account, signed)
            )
        return render(request, "codes.html", codes=codes, next=DEFAULT_NEXT)

    @app.get("/account/password", include_in_schema=False)
    async def password_page(request: Request, next: str = DEFAULT_NEXT) -> Response:
        if await run(signed_in, request) is None:
            return login_redirect(request)
        return render(request, "password.html", next=safe_next(next))

    @app.post("/account/password", include_in_schema=False)
    async def change_password(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form)
        next_path = safe_next(form.get("next"))
        signed = await run(signed_in, request)
        if signed is None:
            return login_redirect(request)
        current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
        if new != again:
            return render(request, "password.html", 400, error="The two new passwords differ.", next=next_path)
        try:
            ok = await run(_authn(request).change_password, signed, current, new, _source(request))
        except passwords.WeakPassword as weak:
            return render(request, "password.html", 400, error=f"Not changed: {weak}.", next=next_path)
        if not ok:
            return render(request, "password.html", 401, error=GENERIC, next=next_path)
        if next_path != DEFAULT_NEXT:
            return _redirect(next_path)
        return render(
            request, "account.html", notice="Password changed.", account=await run(_authn(request).account, signed)
        )

    _api_routes(app)


# --- the API ----------------------------------------------------------------------------------------


class ResetIn(_Body):
    user: str = Field(description="The user whose factor is lost")
    reason: str = Field(min_length=1, max_length=MAX_REASON, description="Why: how the factor was lost, how checked")


class PasswordIn(_Body):
    password: str = Field(description="The new password (12 to 256 characters, not a common one)")


def _api_routes(app: FastAPI) -> None:
    resets = MfaResets(app.state.admin)
    run = run_in_thread
    router = APIRouter(prefix="/auth/v1", dependencies=[Security(_authenticated)], responses=_ERRORS)

    @router.post(
        "/mfa-resets",
        tags=["authentication"],
        summary="Ask for a lost factor to be reset (a member of the recovery clause's groups; counts as one approval)",
        status_code=201,
        openapi_extra=_body_schema(ResetIn),
    )
    async def request_reset(request: Request) -> Response:
        body = await _fields(request, ResetIn)
        return _done(await run(resets.request, request.state.caller, body["user"], body["reason"]), 201)

    @router.get("/mfa-resets", tags=["authentication"], summary="Factor resets you asked for, approved or may approve")
    async def list_resets(request: Request, status: str | None = None) -> Response:
        return _json(await run(resets.list, request.state.caller, status))

    @router.post(
        "/mfa-resets/{reset_id}/approve",
        tags=["authentication"],
        summary="Approve a factor reset; the last approval the quorum needs removes the factor and ends its sessions",
    )
    async def approve_reset(reset_id: str, request: Request) -> Response:
        return _done(await run(resets.approve, request.state.caller, reset_id))

    app.include_router(router)

    admin_router = APIRouter(prefix="/admin/v1", dependencies=[Security(_authenticated)], responses=_ERRORS)

    @admin_router.put(
        "/users/{name}/password",
        tags=["directory"],
        summary="Set a user's password (they must change it at the next sign-in); `manage` on directory:users/<name>",
        openapi_extra=_body_schema(PasswordIn),
    )
    async def set_password(name: str, request: Request) -> Response:
        body = await _fields(request, PasswordIn)
        return _done(
            await run(set_password_by_admin, request.app.state.admin, request.state.caller, name, body["password"])
        )

    app.include_router(admin_router)
