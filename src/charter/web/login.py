"""Who is signed in to this browser, and where to send them to sign in.

A stand-in with only the two functions the OpenID Connect pages use; the sign-in pages (password, TOTP,
lockout) provide the full module with the same two functions.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse

from charter.auth.sessions import COOKIE, Sessions, SignedIn

_UNSET = object()


def signed_in(request: Request) -> SignedIn | None:
    """The live session of this browser's `charter_session` cookie (looked up once per request), or None."""
    cached = getattr(request.state, "signed_in", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    engine = request.app.state.engine
    found = Sessions(engine.sessions, engine.clock).current(request.cookies.get(COOKIE), engine.snapshot.auth)
    request.state.signed_in = found
    return found


def login_redirect(request: Request) -> RedirectResponse:
    """303 to the sign-in page, which comes back here (path and query) once signed in."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
