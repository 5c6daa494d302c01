"""Server-rendered pages (Jinja2): one template environment, the page response, and form CSRF tokens.

Pages work without JavaScript. Every form that changes something carries a CSRF token bound to the
browser's `charter_csrf` cookie (double submit: a cross-site page can neither read the cookie nor guess
the token), checked in constant time by `check_csrf`; cookies are HttpOnly, SameSite=Lax, and Secure when
the page was served over https.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from charter.web.errors import ApiError

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
CSRF_COOKIE = "charter_csrf"
CSRF_FIELD = "csrf_token"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",  # no clickjacking of the login or consent page
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self' *",
    "Referrer-Policy": "no-referrer",
}


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    """A page from `template`, with a CSRF token for its forms (the cookie set when the browser has none)."""
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = TEMPLATES.TemplateResponse(
        request, template, {"csrf_token": token, **context}, status_code=status, headers=SECURITY_HEADERS
    )
    if request.cookies.get(CSRF_COOKIE) != token:
        set_cookie(request, response, CSRF_COOKIE, token)
    return response


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def check_csrf(request: Request, form) -> None:
    """Refuse (403) a form post whose token does not match the browser's CSRF cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = str(form.get(CSRF_FIELD, ""))
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise ApiError(
            403,
            "csrf",
            "the form has expired or did not come from this site; reload the page and try again",
        )
