"""The OpenID Connect provider over HTTP (docs/oidc.md). Translation only: `charter.oidc.provider` does the work.

- `GET /.well-known/openid-configuration`, `GET /oauth/jwks`: discovery and the published keys;
- `GET /oauth/authorize`: sign in (`charter.web.login`), then the consent page, then a code to the client;
  `POST /oauth/authorize`: the consent form (CSRF-checked; allow or deny);
- `POST /oauth/token`, `POST /oauth/introspect` (RFC 7662), `POST /oauth/revoke` (RFC 7009),
  `GET|POST /oauth/userinfo`;
- `/admin/v1/oauth-clients`: registering clients and rotating their secrets (`charter.oidc.clients`).

An authorization request naming an unknown client or a redirect URI that is not one of the client's (exactly)
is answered with an error page, never a redirect to the unverified URI.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlencode

import orjson
from authlib.oauth2.rfc6749.errors import AccessDeniedError, OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from fastapi import APIRouter, FastAPI, Request, Security
from pydantic import Field
from starlette.responses import RedirectResponse, Response

from charter import metrics
from charter.admin import Page
from charter.auth import lockout
from charter.oidc import clients as oauth_clients
from charter.oidc.provider import (
    AUTH_PARAMETERS,
    CLAIMS_SUPPORTED,
    SCOPES_SUPPORTED,
    Grantee,
    Incoming,
    Provider,
    context,
)
from charter.oidc.verify import InvalidToken
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
from charter.web.errors import ApiError
from charter.web.login import login_redirect, signed_in
from charter.web.pages import CSRF_FIELD, check_csrf, render

SCOPE_WORDS = {
    "openid": "Confirm who you are (your user name)",
    "profile": "Your name",
    "email": "Your email address",
    "groups": "The groups you belong to",
}
JWKS_MAX_AGE = 300  # seconds: successors are published a day (or a tenth of the rotation period) ahead


def oidc_routes(app: FastAPI) -> None:
    provider = Provider(app.state.engine)
    app.state.oidc = provider
    _protocol_routes(app, provider)
    _client_routes(app)


# --- the protocol ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Consent:
    client_name: str
    client_id: str
    user: str
    scopes: tuple[str, ...]
    params: dict[str, str]


@dataclass(frozen=True)
class _Page:
    message: str
    status: int = 400


class _Login:
    pass


def _protocol_routes(app: FastAPI, provider: Provider) -> None:
    engine = app.state.engine

    @app.get("/.well-known/openid-configuration", tags=["OpenID Connect"], summary="OpenID Provider metadata")
    async def discovery() -> Response:
        issuer = engine.issuer
        return _json(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/oauth/authorize",
                "token_endpoint": f"{issuer}/oauth/token",
                "introspection_endpoint": f"{issuer}/oauth/introspect",
                "revocation_endpoint": f"{issuer}/oauth/revoke",
                "userinfo_endpoint": f"{issuer}/oauth/userinfo",
                "jwks_uri": f"{issuer}/oauth/jwks",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": list(SCOPES_SUPPORTED),
                "claims_supported": list(CLAIMS_SUPPORTED),
                "prompt_values_supported": ["none", "login", "consent"],
                "access_token_lifetime_seconds": int(engine.snapshot.auth.access_token.value.total_seconds()),
            }
        )

    @app.get("/oauth/jwks", tags=["OpenID Connect"], summary="The public keys tokens are signed with (JWKS)")
    async def jwks() -> Response:
        ring = engine.keyring
        body = ring.jwks if ring is not None else {"keys": []}
        response = _json(body)
        response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
        response.media_type = "application/jwk-set+json"
        response.headers["Content-Type"] = "application/jwk-set+json"
        return response

    limiter = lockout.SourceLimiter(*lockout.rate_from_env(TOKEN_RATE_ENVIRONMENT))
    app.state.token_limiter = limiter

    @app.post("/oauth/token", tags=["OpenID Connect"], summary="The token endpoint (RFC 6749)")
    async def token(request: Request) -> Response:
        incoming = await Incoming.read(request)
        grant = _grant_label(incoming)
        keys = _limit_keys(incoming)
        now = engine.clock.now()
        metrics.AUTH_ATTEMPTS.labels("token").inc()
        retry = max((limiter.retry_after(key, now) or 0 for key in keys), default=0)
        if retry:
            metrics.AUTH_RATE_LIMITED.labels("token").inc()
            return _too_many(retry)
        started = time.perf_counter()
        response = await run_in_thread(provider.token, incoming)
        issued = response.status_code == 200
        metrics.TOKEN_SECONDS.labels(grant, "issued" if issued else "refused").observe(time.perf_counter() - started)
        if issued:
            metrics.AUTH_SUCCESSES.labels("token").inc()
        elif 400 <= response.status_code < 500:
            for key in keys:
                limiter.failed(key, now)
        return response

    @app.post("/oauth/introspect", tags=["OpenID Connect"], summary="Token introspection (RFC 7662)")
    async def introspect(request: Request) -> Response:
        return await run_in_thread(provider.introspect, await Incoming.read(request))

    @app.post("/oauth/revoke", tags=["OpenID Connect"], summary="Token revocation (RFC 7009)")
    async def revoke(request: Request) -> Response:
        return await run_in_thread(provider.revoke_endpoint, await Incoming.read(request))

    async def userinfo(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _bearer_error(401, "invalid_request", "a bearer access token is required")
        now = engine.clock.now().astimezone(dt.UTC)
        try:
            verified = provider.verify(token.strip(), now)
        except InvalidToken as error:
            return _bearer_error(401, "invalid_token", str(error))
        if verified.subject_type != "user" or "openid" not in verified.scope:
            return _bearer_error(403, "insufficient_scope", "the token was not issued with the openid scope")
        return _json(provider.user_info(verified.subject, " ".join(verified.scope)))

    for method in ("GET", "POST"):  # OpenID Connect Core 5.3.1: both; one operation id each in the OpenAPI document
        app.add_api_route(
            "/oauth/userinfo",
            userinfo,
            methods=[method],
            tags=["OpenID Connect"],
            summary="UserInfo",
            operation_id=f"userinfo_{method.lower()}",
        )

    @app.get("/oauth/authorize", tags=["OpenID Connect"], summary="The authorization endpoint: sign in, consent")
    async def authorize(request: Request) -> Response:
        incoming = await Incoming.read(request)
        signed = await run_in_thread(signed_in, request)
        outcome = await run_in_thread(provider.run, "authorize", incoming, lambda r: _authorize(provider, r, signed))
        return _answer(request, outcome)

    @app.post("/oauth/authorize", tags=["OpenID Connect"], summary="The consent form: allow or deny")
    async def consent(request: Request) -> Response:
        form = await request.form()
        incoming = await Incoming.read(request)
        try:
            check_csrf(request, form)
        except ApiError:
            await run_in_thread(
                engine.audit.record_alone,
                engine.sessions,
                f"oauth-client:{form.get('client_id') or '?'}",
                "oidc.authorize",
                f"oauth-client:{form.get('client_id') or '?'}",
                "denied",
                None,
                {"error": "csrf", "reason": "consent form without a valid CSRF token"},
            )
            raise
        signed = await run_in_thread(signed_in, request)
        decision = str(form.get("decision", ""))
        outcome = await run_in_thread(
            provider.run, "authorize", incoming, lambda r: _decide(provider, r, signed, decision)
        )
        return _answer(request, outcome)


def _answer(request: Request, outcome) -> Response:
    if isinstance(outcome, Response):
        return outcome
    if isinstance(outcome, _Login):
        return login_redirect(request)
    if isinstance(outcome, _Consent):
        return render(
            request,
            "consent.html",
            client_name=outcome.client_name,
            client_id=outcome.client_id,
            user=outcome.user,
            scopes=[(s, SCOPE_WORDS.get(s, s)) for s in outcome.scopes],
            params=outcome.params,
            csrf_field=CSRF_FIELD,
        )
    return render(request, "oauth_error.html", status=outcome.status, error=outcome.message)


def _authorize(provider: Provider, request, signed):
    """GET /oauth/authorize, in the provider's transaction: a Response, _Login, _Consent or _Page."""
    grantee = _grantee(signed)
    try:
        grant = provider.get_consent_grant(request, end_user=grantee)
    except OAuth2Error as error:
        return _refuse(provider, request, error)
    data = request.payload.data
    prompts = set(data.get("prompt", "").split())
    now = context().now
    if "login" in prompts:  # once more without prompt=login, demanding a sign-in from now on
        again = {k: v for k, v in request.args.items() if k != "prompt"}
        again["auth_after"] = str(int(now.timestamp()))
        return RedirectResponse(f"/oauth/authorize?{urlencode(again)}", status_code=303)
    if signed is None:
        if "none" in prompts:
            return _refuse(
                provider, request, LoginRequiredError(redirect_uri=grant.redirect_uri, state=_state(request))
            )
        return _Login()
    if _too_old(signed.auth_time, data, now):
        return _Login()
    blocked = _blocked(provider, request, grant, signed.user)
    if blocked is not None:
        return blocked
    scope = request.scope or ""
    if "consent" not in prompts and provider.consented(signed.user, request.client.client_id, scope):
        return provider.create_authorization_response(request, grant_user=grantee, grant=grant)
    if "none" in prompts:
        return _refuse(provider, request, ConsentRequiredError(redirect_uri=grant.redirect_uri, state=_state(request)))
    params = {k: data[k] for k in AUTH_PARAMETERS if data.get(k)}
    return _Consent(request.client.name, request.client.client_id, signed.user, tuple(scope.split()), params)


def _decide(provider: Provider, request, signed, decision: str):
    """POST /oauth/authorize (the consent form), in the provider's transaction."""
    grantee = _grantee(signed)
    try:
        grant = provider.get_consent_grant(request, end_user=grantee)
    except OAuth2Error as error:
        return _refuse(provider, request, error)
    if signed is None:
        query = urlencode({k: v for k, v in request.payload.data.items() if k in AUTH_PARAMETERS})
        return RedirectResponse(f"/oauth/authorize?{query}", status_code=303)
    blocked = _blocked(provider, request, grant, signed.user)
    if blocked is not None:
        return blocked
    if decision != "allow":
        context().reason = "the user declined"
        context().extra["user"] = signed.user
        return provider.create_authorization_response(request, grant_user=None, grant=grant)
    provider.record_consent(signed.user, request.client.client_id, request.scope or "")
    return provider.create_authorization_response(request, grant_user=grantee, grant=grant)


def _refuse(provider: Provider, request, error: OAuth2Error):
    """Audit; then back to the client when its redirect URI was verified, an error page otherwise."""
    provider.refused(request, error)
    if error.redirect_uri:
        if not error.state:
            error.state = _state(request)
        return provider.handle_response(*error())
    return _Page(f"This sign-in request cannot be completed: {error.description or error.error}.")


def _blocked(provider: Provider, request, grant, user: str):
    principal = provider.engine.snapshot.principal("user", user)
    if principal is None or principal.blocked is not None:
        context().extra["user"] = user
        reason = f'user "{user}" is not active or is revoked by the charter'
        error = AccessDeniedError(redirect_uri=grant.redirect_uri, state=_state(request))
        provider.refused(request, error, reason)
        return provider.handle_response(*error())
    return None


def _grantee(signed) -> Grantee | None:
    if signed is None:
        return None
    return Grantee(signed.user, tuple(signed.amr), signed.auth_time, signed.id)


def _too_old(auth_time: dt.datetime, data, now: dt.datetime) -> bool:
    """Whether `max_age` or our own `auth_after` (from prompt=login) asks for a fresher sign-in."""
    max_age, after = data.get("max_age"), data.get("auth_after")
    if max_age and max_age.isdigit() and (now - auth_time).total_seconds() > int(max_age):
        return True
    return bool(after and after.isdigit() and auth_time.timestamp() < int(after))


def _state(request) -> str | None:
    return request.payload.data.get("state")


TOKEN_RATE_ENVIRONMENT = "CHARTER_TOKEN_RATE"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def _grant_label(incoming: Incoming) -> str:
    """The grant type as a metric label: one of the three served, or "other" (the label set stays bounded)."""
    grant = next((value for key, value in incoming.form if key == "grant_type"), "")
    return grant if grant in GRANT_TYPES else "other"


def _limit_keys(incoming: Incoming) -> list[str]:
    """What the token endpoint's failures are counted against: the address, and the client when one is named
    (in the form, or in HTTP Basic credentials), so neither many addresses nor many clients get past it."""
    keys = [f"address:{incoming.source or 'unknown'}"]
    client = next((value for key, value in incoming.form if key == "client_id"), None)
    scheme, _, encoded = incoming.headers.get("authorization", "").partition(" ")
    if client is None and scheme.lower() == "basic":
        try:
            client = unquote(base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0])
        except (ValueError, UnicodeDecodeError):
            client = None
    if client:
        keys.append(f"client:{client[:128]}")
    return keys


def _too_many(retry: int) -> Response:
    body = {"error": "too_many_requests", "error_description": f"too many failed requests; retry in {retry} s"}
    return Response(
        orjson.dumps(body),
        status_code=429,
        media_type="application/json",
        headers={"Retry-After": str(retry), "Cache-Control": "no-store"},
    )


def _bearer_error(status: int, error: str, description: str) -> Response:
    response = _json({"error": error, "error_description": description}, status)
    response.headers["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    return response


# --- registering clients ------------------------------------------------------------------------------


class OAuthClientIn(_Body):
    name: str = Field(min_length=1, max_length=255)
    type: str = Field("confidential", description="public (no secret; PKCE with S256) or confidential")
    redirect_uris: list[str] = Field(default_factory=list, description="Exact URIs: https, or http on loopback")
    grant_types: list[str] | None = Field(
        None, description="authorization_code and refresh_token (applications) or client_credentials (services)"
    )
    scopes: str | list[str] | None = Field(None, description="Space-separated scopes the client may ask for")
    audience: str | None = Field(None, description="The API its access tokens are for (default: the issuer)")
    service: str | None = Field(None, description="For client_credentials: the service of the directory it acts as")


def _client_routes(app: FastAPI) -> None:
    router = APIRouter(prefix="/admin/v1", dependencies=[Security(_authenticated)], responses=_ERRORS)

    def ops(request: Request) -> tuple[oauth_clients.OAuthClients, object]:
        return oauth_clients.OAuthClients(request.app.state.admin), request.state.caller

    @router.post(
        "/oauth-clients",
        tags=["oauth clients"],
        summary="Register an OAuth client; its secret is shown once",
        description="Authorised as `manage` on `clients:service/<service>` or `clients:apps/<client id>`.",
        status_code=201,
        openapi_extra=_body_schema(OAuthClientIn),
    )
    async def create(request: Request) -> Response:
        registry, caller = ops(request)
        body = await _fields(request, OAuthClientIn)
        if body.get("scopes") is None:
            body.pop("scopes", None)
        return _done(await run_in_thread(registry.create, caller, body), 201)

    @router.get("/oauth-clients", tags=["oauth clients"], summary="List OAuth clients (never their secrets)")
    async def list_clients(request: Request, limit: int = _LIMIT, offset: int = _OFFSET) -> Response:
        registry, caller = ops(request)
        return _json(await run_in_thread(registry.list, caller, Page(limit, offset)))

    @router.get("/oauth-clients/{client_id}", tags=["oauth clients"], summary="One OAuth client")
    async def get_client(client_id: str, request: Request) -> Response:
        registry, caller = ops(request)
        return _json(await run_in_thread(registry.get, caller, client_id))

    @router.post(
        "/oauth-clients/{client_id}/secret",
        tags=["oauth clients"],
        summary="Rotate the secret: the new one is shown once; the old one works 24 hours more",
    )
    async def rotate(client_id: str, request: Request) -> Response:
        registry, caller = ops(request)
        return _done(await run_in_thread(registry.rotate_secret, caller, client_id))

    @router.delete(
        "/oauth-clients/{client_id}", tags=["oauth clients"], summary="Revoke a client and its refresh tokens"
    )
    async def revoke(client_id: str, request: Request) -> Response:
        registry, caller = ops(request)
        return _done(await run_in_thread(registry.revoke, caller, client_id))

    app.include_router(router)
