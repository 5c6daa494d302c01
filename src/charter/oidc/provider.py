"""The OAuth 2.0 / OpenID Connect provider: authlib's authorization server, grants and endpoints, on Charter's store.

authlib does the protocol (parameter checks, client authentication, PKCE, the OpenID `nonce`, error
responses); this module gives it Charter's state: clients (`charter.oidc.clients`), authorization codes,
refresh tokens and consents (tables of `charter.store.models`), tokens minted by `charter.oidc.tokens`
with the key ring (no hand-written JOSE), lifetimes from the charter, and the audit trail.

Each request to an endpoint runs, off the event loop, in one transaction (`Provider.run`): what it reads,
what it changes (a code used, a refresh token rotated, a family revoked) and its audit record (the
issuance, or the refusal and why) commit together, refusals included, so a replayed code revokes what the
first exchange got even though the replay itself is answered with an error.

- Authorization codes: 48 random characters, stored as SHA-256, one use, `CODE_LIFETIME` (60 s). A code is
  claimed by a conditional UPDATE (used_at IS NULL), so of two concurrent exchanges exactly one wins; any
  later use is refused (`invalid_grant`) and revokes the refresh family and the access tokens the first
  exchange began (RFC 6749 section 4.1.2, audited as `oidc.code.replay`).
- PKCE: S256 only (`plain` is refused); required of public clients, optional for confidential ones.
- Refresh tokens rotate at every use (a new one each time; the family keeps its first expiry, so a
  family lives no longer than the charter's refresh lifetime). Presenting a rotated one is reuse: the
  whole family and its live access tokens are revoked, audited as `oidc.refresh.reuse`.
- Access tokens: RFC 9068 JWTs (`typ: at+jwt`) with the charter's lifetime; revoking one stores its `jti`
  (RevokedTokenRow) and moves the revision, so every server's verifier refuses it from its next snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass, field

import orjson
from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749 import grants as oauth_grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.util import create_half_hash
from joserfc import jws
from sqlalchemy import select, update
from starlette.responses import Response

from charter.oidc import clients, rotation
from charter.oidc.keys import ALGORITHM
from charter.oidc.tokens import Minted, mint_access_token, mint_id_token
from charter.oidc.verify import InvalidToken, VerifiedToken
from charter.store.db import bump_revision
from charter.store.models import AuditRecordRow, AuthorizationCodeRow, ConsentRow, RefreshTokenRow, RevokedTokenRow

CODE_LIFETIME = dt.timedelta(seconds=60)
SCOPES_SUPPORTED = ("openid", "profile", "email", "groups")
CLAIMS_SUPPORTED = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "amr",
    "nonce",
    "name",
    "preferred_username",
    "email",
    "groups",
)
AUTH_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)
ISSUE = "oidc.token.issue"


# --- requests: what authlib reads, built from the Starlette request ---------------------------------


@dataclass(frozen=True)
class Incoming:
    """An HTTP request as read on the event loop, handed to the provider's thread."""

    method: str
    url: str
    headers: dict[str, str]
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    source: str | None = None

    @classmethod
    async def read(cls, request) -> Incoming:
        form: list[tuple[str, str]] = []
        if request.method == "POST":
            body = await request.form()
            form = [(k, v) for k, v in body.multi_items() if isinstance(v, str)]
        headers = {k.lower(): v for k, v in request.headers.items()}
        return cls(
            request.method,
            str(request.url),
            headers,
            list(request.query_params.multi_items()),
            form,
            request.client.host if request.client else None,
        )


class _Headers(dict):
    """Case-insensitive enough for authlib, which asks for "Authorization"."""

    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(str(key).lower())


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]):
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list] = defaultdict(list)
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):
    def __init__(self, incoming: Incoming):
        super().__init__(incoming.method, incoming.url, headers=_Headers(incoming.headers))
        self._args = dict(reversed(incoming.query))
        self._form = dict(reversed(incoming.form))
        self.payload = _Payload(incoming.query + incoming.form if incoming.method == "GET" else incoming.form)
        self.incoming = incoming

    @property
    def args(self):
        return self._args

    @property
    def form(self):
        return self._form


# --- what a request works with ---------------------------------------------------------------------


@dataclass
class _Context:
    """The state of one request to the provider: its transaction and clock, and what its audit record says."""

    db: object
    now: dt.datetime
    endpoint: str
    clients: dict = field(default_factory=dict)
    minted: Minted | None = None
    revision: int | None = None
    action: str | None = None  # the refusal's audit action when more precise than oidc.<endpoint>
    reason: str | None = None
    extra: dict = field(default_factory=dict)


_CURRENT: ContextVar[_Context] = ContextVar("charter_oidc_request")


@dataclass(frozen=True)
class Grantee:
    """The person tokens are issued to, and how they signed in."""

    name: str
    amr: tuple[str, ...]
    auth_time: dt.datetime
    session_id: str | None = None
    family: str | None = None
    refresh_expires_at: dt.datetime | None = None

    def get_user_id(self) -> str:
        return self.name


@dataclass(frozen=True)
class CodeRecord:
    """A claimed authorization code (authlib's AuthorizationCodeMixin)."""

    digest: str
    client_id: str
    user: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: dt.datetime
    amr: tuple[str, ...]
    session_id: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return list(self.amr)


@dataclass(frozen=True)
class AccessTokenInfo:
    """A valid access token, for introspection and revocation."""

    verified: VerifiedToken
    kind: str = "access_token"

    @property
    def client_id(self) -> str:
        return self.verified.client_id

    def check_client(self, client) -> bool:
        return self.verified.client_id == client.client_id

    def is_expired(self) -> bool:
        return False  # verification refused it otherwise

    def is_revoked(self) -> bool:
        return False

    def get_scope(self) -> str:
        return " ".join(self.verified.scope)


@dataclass(frozen=True)
class RefreshTokenInfo:
    row: RefreshTokenRow
    now: dt.datetime
    kind: str = "refresh_token"

    @property
    def client_id(self) -> str:
        return self.row.client_id

    def check_client(self, client) -> bool:
        return self.row.client_id == client.client_id

    def is_expired(self) -> bool:
        return _aware(self.row.expires_at) <= self.now

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None or self.row.rotated_at is not None

    def get_scope(self) -> str:
        return self.row.scope or ""


# --- grants ------------------------------------------------------------------------------------------


class AuthorizationCodeGrant(oauth_grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

    def save_authorization_code(self, code: str, request) -> None:
        ctx = _CURRENT.get()
        user: Grantee = request.user
        data = request.payload.data
        challenge = data.get("code_challenge")
        ctx.db.add(
            AuthorizationCodeRow(
                digest=clients.digest(code),
                client_id=request.client.client_id,
                user=user.name,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                nonce=data.get("nonce") or None,
                code_challenge=challenge or None,
                code_challenge_method="S256" if challenge else None,
                auth_time=user.auth_time,
                amr=list(user.amr),
                session_id=user.session_id,
                created_at=ctx.now,
                expires_at=ctx.now + CODE_LIFETIME,
                used_at=None,
                family=None,
            )
        )

    def query_authorization_code(self, code: str, client) -> CodeRecord | None:
        ctx = _CURRENT.get()
        digest = clients.digest(code)
        row = ctx.db.get(AuthorizationCodeRow, digest)
        if row is None or row.client_id != client.client_id:
            ctx.reason = "unknown authorization code"
            return None
        claimed = ctx.db.execute(
            update(AuthorizationCodeRow)
            .where(AuthorizationCodeRow.digest == digest, AuthorizationCodeRow.used_at.is_(None))
            .values(used_at=ctx.now)
        ).rowcount
        if claimed != 1:
            ctx.db.refresh(row)
            revoked = self.server.revoke_family(row.family, row.user, "authorization code replayed")
            ctx.action, ctx.reason = "oidc.code.replay", "replayed authorization code"
            ctx.extra.update({"family": row.family, "revoked": revoked, "user": row.user})
            raise InvalidGrantError("The authorization code was already used.")
        if _aware(row.expires_at) <= ctx.now:
            ctx.reason = "expired authorization code"
            return None
        ctx.extra["user"] = row.user
        return CodeRecord(
            digest,
            row.client_id,
            row.user,
            row.redirect_uri,
            row.scope or "",
            row.nonce,
            row.code_challenge,
            row.code_challenge_method,
            _aware(row.auth_time),
            tuple(row.amr or ()),
            row.session_id,
        )

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Kept (used) rather than deleted: a later use of it must be recognised as a replay."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Grantee:
        self.server.check_user(authorization_code.user)
        family = secrets.token_hex(16)
        ctx = _CURRENT.get()
        ctx.db.execute(
            update(AuthorizationCodeRow)
            .where(AuthorizationCodeRow.digest == authorization_code.digest)
            .values(family=family)
        )
        return Grantee(
            authorization_code.user,
            authorization_code.amr,
            authorization_code.auth_time,
            authorization_code.session_id,
            family,
        )


class RefreshTokenGrant(oauth_grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshTokenInfo | None:
        ctx = _CURRENT.get()
        digest = clients.digest(refresh_token)
        row = ctx.db.get(RefreshTokenRow, digest)
        if row is None:
            ctx.reason = "unknown refresh token"
            return None
        ctx.extra.update({"family": row.family, "user": row.user})
        if row.client_id != ctx.extra.get("client_id"):
            ctx.reason = "refresh token of another client"
            return None
        if row.revoked_at is not None:
            ctx.reason = f"revoked refresh token ({row.revoked_reason})"
            return None
        if row.rotated_at is None:
            claimed = ctx.db.execute(
                update(RefreshTokenRow)
                .where(
                    RefreshTokenRow.digest == digest,
                    RefreshTokenRow.rotated_at.is_(None),
                    RefreshTokenRow.revoked_at.is_(None),
                )
                .values(rotated_at=ctx.now)
            ).rowcount
        else:
            claimed = 0
        if claimed != 1:
            revoked = self.server.revoke_family(row.family, row.user, "refresh token reused")
            ctx.action, ctx.reason = "oidc.refresh.reuse", "reuse of a rotated refresh token"
            ctx.extra["revoked"] = revoked
            raise InvalidGrantError("The refresh token was already used; its family is revoked.")
        if _aware(row.expires_at) <= ctx.now:
            ctx.reason = "expired refresh token"
            return None
        return RefreshTokenInfo(row, ctx.now)

    def _validate_request_token(self, client):
        _CURRENT.get().extra["client_id"] = client.client_id
        return super()._validate_request_token(client)

    def authenticate_user(self, refresh_token: RefreshTokenInfo) -> Grantee:
        row = refresh_token.row
        self.server.check_user(row.user)
        return Grantee(
            row.user,
            tuple(row.amr or ()),
            _aware(row.auth_time),
            row.session_id,
            row.family,
            _aware(row.expires_at),
        )

    def revoke_old_credential(self, refresh_token: RefreshTokenInfo) -> None:
        """Nothing left to do: the old token was marked rotated when it was claimed."""


class ClientCredentialsGrant(oauth_grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE) or not client.service:
            raise UnauthorizedClientError("This client may not use 'grant_type=client_credentials'.")
        self.request.client = client
        allowed = client.get_allowed_scope(self.request.payload.scope)
        if allowed is None:
            _CURRENT.get().reason = "scope not registered for the client"
            raise InvalidScopeError()
        self.request.scope = allowed
        principal = self.server.engine.snapshot.principal("service", client.service)
        if principal is None or principal.blocked is not None:
            _CURRENT.get().reason = f'service "{client.service}" is not active or is revoked by the charter'
            raise UnauthorizedClientError("The client's service may not be issued tokens.")

    def create_token_response(self):
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class PKCE(CodeChallenge):
    """RFC 7636 with S256 only: required of public clients, `plain` refused from everyone."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.public and not challenge:
            raise InvalidRequestError("PKCE is required of public clients: code_challenge with S256.")
        if (challenge or method) and method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is not accepted).")
        return super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        try:
            return super().validate_code_verifier(grant, result)
        except OAuth2Error:
            _CURRENT.get().reason = "PKCE verification failed"
            raise


class OpenID(OpenIDCode):
    """ID tokens for the code flow, signed by the key ring through `mint_id_token`; the nonce carried in."""

    def __init__(self, provider: Provider):
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request) -> bool:
        ctx = _CURRENT.get()
        found = ctx.db.scalar(
            select(AuthorizationCodeRow.digest)
            .where(AuthorizationCodeRow.client_id == request.payload.client_id, AuthorizationCodeRow.nonce == nonce)
            .limit(1)
        )
        return found is not None

    def generate_user_info(self, user: Grantee, scope: str) -> dict:
        return self.provider.user_info(user.name, scope)

    def encode_id_token(self, token: dict, request) -> str:
        ctx = _CURRENT.get()
        code: CodeRecord = request.authorization_code
        extra = {k: v for k, v in self.provider.user_info(code.user, token.get("scope", "")).items() if k != "sub"}
        at_hash = create_half_hash(token["access_token"], ALGORITHM)
        if at_hash is not None:
            extra["at_hash"] = at_hash.decode()
        engine = self.provider.engine
        return mint_id_token(
            engine.keyring,
            issuer=engine.issuer,
            client_id=request.client.client_id,
            subject=code.user,
            lifetime=engine.snapshot.auth.id_token.value,
            now=ctx.now,
            auth_time=code.auth_time,
            amr=code.amr,
            nonce=code.nonce,
            extra=extra,
        ).token


class Introspection(IntrospectionEndpoint):
    """RFC 7662, for confidential clients: any may introspect access tokens (resource servers do); a refresh
    token only the client it was issued to."""

    CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

    def query_token(self, token_string, token_type_hint):
        return self.server.find_token(token_string, token_type_hint)

    def check_permission(self, token, client, request) -> bool:
        return token.kind == "access_token" or token.check_client(client)

    def introspect_token(self, token) -> dict:
        return self.server.introspection(token)


class Revocation(RevocationEndpoint):
    """RFC 7009: an access token by its jti until it expires; a refresh token with its whole family."""

    CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

    def query_token(self, token_string, token_type_hint):
        return self.server.find_token(token_string, token_type_hint)

    def revoke_token(self, token, request) -> None:
        self.server.revoke(token, request)


# --- the server ----------------------------------------------------------------------------------------


class Provider(AuthorizationServer):
    def __init__(self, engine):
        super().__init__(scopes_supported=None)
        self.engine = engine
        self.register_token_generator("default", self._generate)
        self.register_grant(AuthorizationCodeGrant, [PKCE(required=True), OpenID(self)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    # --- running one request ------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.engine.clock.now().astimezone(dt.UTC)

    def run(self, endpoint: str, incoming: Incoming, action):
        """`action(request)` in one transaction with this request's context; the response."""
        if endpoint == "token":
            self._ensure_signing_key(self.now())
        now = self.now()  # after a first key was made: it signs from the moment it was made
        with self.engine.sessions.begin() as db:
            ctx = _Context(db, now, endpoint)
            reset = _CURRENT.set(ctx)
            try:
                try:
                    request = StarletteOAuth2Request(incoming)
                except OAuth2Error as error:  # plain http to a host that is not the loopback
                    return self.handle_response(*error())
                response = action(request)
            finally:
                _CURRENT.reset(reset)
        if ctx.revision is not None:
            self.engine.catch_up(ctx.revision)
        return response

    def token(self, incoming: Incoming) -> Response:
        return self.run("token", incoming, self.create_token_response)

    def introspect(self, incoming: Incoming) -> Response:
        return self.run("introspect", incoming, lambda r: self.create_endpoint_response("introspection", r))

    def revoke_endpoint(self, incoming: Incoming) -> Response:
        return self.run("revoke", incoming, lambda r: self.create_endpoint_response("revocation", r))

    def _ensure_signing_key(self, now: dt.datetime) -> None:
        ring = self.engine.keyring
        if ring is not None and ring.signing_kid(now) is not None:
            return
        rotation.ensure_keys(self.engine)
        ring = self.engine.keyring
        if ring is None or ring.signing_kid(now) is None:
            self.engine.rebuild()  # the refresh thread is not running (a test's engine): read the new key now

    # --- authlib's framework methods ----------------------------------------------------------------

    def query_client(self, client_id):
        ctx = _CURRENT.get()
        if client_id not in ctx.clients:
            ctx.clients[client_id] = clients.find(ctx.db, client_id, ctx.now) if client_id else None
        return ctx.clients[client_id]

    def create_oauth2_request(self, request):
        return request if isinstance(request, OAuth2Request) else StarletteOAuth2Request(request)

    def create_json_request(self, request):
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status, body, headers):
        headers = dict(headers or [])
        if isinstance(body, dict):
            return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")
        return Response(body or b"", status_code=status, headers=headers)

    def send_signal(self, name, *args, **kwargs) -> None:
        pass

    def handle_error_response(self, request, error):
        self.refused(request, error)
        return super().handle_error_response(request, error)

    # --- tokens -----------------------------------------------------------------------------------------

    def check_user(self, name: str) -> None:
        principal = self.engine.snapshot.principal("user", name)
        if principal is None or principal.blocked is not None:
            _CURRENT.get().reason = f'user "{name}" is not active or is revoked by the charter'
            raise InvalidGrantError("The user may not be issued tokens.")

    def _generate(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        ctx = _CURRENT.get()
        engine = self.engine
        if user is None:
            subject_type, subject, amr, auth_time, groups = "service", client.service, None, None, None
        else:
            principal = engine.snapshot.principal("user", user.name)
            subject_type, subject = "user", user.name
            amr, auth_time, groups = user.amr, user.auth_time, principal.groups if principal else ()
        minted = mint_access_token(
            engine.keyring,
            issuer=engine.issuer,
            audience=client.audience or engine.issuer,
            subject_type=subject_type,
            subject=subject,
            client_id=client.client_id,
            scope=scope or "",
            lifetime=engine.snapshot.auth.access_token.value,
            now=ctx.now,
            amr=amr,
            auth_time=auth_time,
            groups=groups,
        )
        ctx.minted = minted
        token = {"token_type": "Bearer", "access_token": minted.token, "expires_in": minted.expires_in}
        if scope:
            token["scope"] = scope
        if include_refresh_token and user is not None:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def save_token(self, token: dict, request) -> None:
        """Store the refresh token (its digest) and audit the issuance (never the tokens themselves)."""
        ctx = _CURRENT.get()
        minted = ctx.minted
        assert minted is not None
        client, user = request.client, request.user
        claims = minted.claims
        details = {
            "client_id": client.client_id,
            "subject_type": claims["subject_type"],
            "subject": claims["sub"],
            "grant_type": request.payload.grant_type,
            "jti": claims["jti"],
            "scope": claims.get("scope", ""),
            "lifetime_seconds": minted.expires_in,
            "exp": dt.datetime.fromtimestamp(claims["exp"], dt.UTC).isoformat(),
            "clause": self.engine.snapshot.auth.access_token.clause,
        }
        if isinstance(user, Grantee):
            details["family"] = user.family
            details["amr"] = list(user.amr)
            if "refresh_token" in token:
                refresh = self.engine.snapshot.auth.refresh_token
                expires = user.refresh_expires_at or ctx.now + refresh.value
                ctx.db.add(
                    RefreshTokenRow(
                        digest=clients.digest(token["refresh_token"]),
                        family=user.family,
                        client_id=client.client_id,
                        user=user.name,
                        scope=claims.get("scope", ""),
                        auth_time=user.auth_time,
                        amr=list(user.amr),
                        session_id=user.session_id,
                        created_at=ctx.now,
                        expires_at=expires,
                        rotated_at=None,
                        revoked_at=None,
                        revoked_reason=None,
                    )
                )
                details["refresh_expires_at"] = expires.isoformat()
        target = f"{claims['subject_type']}:{claims['sub']}"
        self.engine.audit.record(ctx.db, f"oauth-client:{client.client_id}", ISSUE, target, details=details)

    def revoke_family(self, family: str | None, user: str, reason: str) -> dict:
        """Revoke every refresh token of `family` and the live access tokens issued in it; counts."""
        ctx = _CURRENT.get()
        if not family:
            return {"refresh_tokens": 0, "access_tokens": 0}
        refresh = ctx.db.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.family == family, RefreshTokenRow.revoked_at.is_(None))
            .values(revoked_at=ctx.now, revoked_reason=reason[:64])
        ).rowcount
        access = 0
        for jti, expires in self._family_access_tokens(family, user):
            access += self._revoke_jti(jti, expires, reason)
        return {"refresh_tokens": refresh, "access_tokens": access}

    def _family_access_tokens(self, family: str, user: str) -> list[tuple[str, dt.datetime]]:
        """(jti, exp) of the family's access tokens not expired yet, from their issuance records."""
        ctx = _CURRENT.get()
        since = ctx.now - self.engine.snapshot.auth.access_token.value - dt.timedelta(minutes=5)
        rows = ctx.db.scalars(
            select(AuditRecordRow.details).where(
                AuditRecordRow.action == ISSUE, AuditRecordRow.target == f"user:{user}", AuditRecordRow.time >= since
            )
        )
        found = []
        for text in rows:
            details = json.loads(text)
            if details.get("family") == family:
                expires = dt.datetime.fromisoformat(details["exp"])
                if expires > ctx.now:
                    found.append((details["jti"], expires))
        return found

    def _revoke_jti(self, jti: str, expires: dt.datetime, reason: str) -> int:
        ctx = _CURRENT.get()
        if ctx.db.get(RevokedTokenRow, jti) is not None:
            return 0
        ctx.db.add(RevokedTokenRow(jti=jti, expires_at=expires, revoked_at=ctx.now, reason=reason[:64]))
        if ctx.revision is None:
            ctx.revision = bump_revision(ctx.db)
        return 1

    # --- introspection and revocation ---------------------------------------------------------------

    def find_token(self, token: str, hint: str | None):
        """The token as introspection and revocation see it, or None when it is unknown or not valid."""
        ctx = _CURRENT.get()
        if hint != "refresh_token" and token.count(".") == 2:
            try:
                return AccessTokenInfo(self.verify(token, ctx.now))
            except InvalidToken:
                return None
        row = ctx.db.get(RefreshTokenRow, clients.digest(token))
        return RefreshTokenInfo(row, ctx.now) if row is not None else None

    def verify(self, token: str, now: dt.datetime) -> VerifiedToken:
        """Verify an access token whatever audience it is for (introspection and userinfo serve every API)."""
        try:
            claims = json.loads(jws.extract_compact(token.encode()).payload)
            audience = claims.get("aud")
            audience = audience[0] if isinstance(audience, list) and audience else audience
        except Exception:  # not a JWS at all: verification says why
            audience = None
        return self.engine.tokens.verify(token, now, audience=audience if isinstance(audience, str) else None)

    def introspection(self, token) -> dict:
        if isinstance(token, AccessTokenInfo):
            claims = token.verified.claims
            view = {
                k: claims[k] for k in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope") if k in claims
            }
            for extra in ("subject_type", "auth_time", "amr", "groups"):
                if extra in claims:
                    view[extra] = claims[extra]
            return {"active": True, "token_type": "Bearer", **view}
        row = token.row
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": row.client_id,
            "sub": row.user,
            "scope": row.scope or "",
            "exp": int(_aware(row.expires_at).timestamp()),
            "iat": int(_aware(row.created_at).timestamp()),
            "iss": self.engine.issuer,
        }

    def revoke(self, token, request) -> None:
        ctx = _CURRENT.get()
        client_id = request.client.client_id
        if isinstance(token, AccessTokenInfo):
            verified = token.verified
            expires = dt.datetime.fromtimestamp(verified.expires_at, dt.UTC)
            done = {"access_tokens": self._revoke_jti(verified.jti, expires, "revoked by the client")}
            target, kind, extra = f"{verified.subject_type}:{verified.subject}", "access_token", {"jti": verified.jti}
        else:
            row = token.row
            done = self.revoke_family(row.family, row.user, "revoked by the client")
            target, kind, extra = f"user:{row.user}", "refresh_token", {"family": row.family}
        self.engine.audit.record(
            ctx.db,
            f"oauth-client:{client_id}",
            "oidc.token.revoke",
            target,
            details={"client_id": client_id, "token_type": kind, "revoked": done, **extra},
        )

    # --- people ---------------------------------------------------------------------------------------------

    def user_info(self, name: str, scope: str) -> dict:
        """The claims of `name` that `scope` allows, from the directory (the snapshot's principal)."""
        scopes = set((scope or "").split())
        principal = self.engine.snapshot.principal("user", name)
        attributes = dict(principal.attributes) if principal is not None else {}
        info: dict = {"sub": name}
        if "profile" in scopes:
            info["preferred_username"] = name
            display = attributes.get("name") or attributes.get("display_name")
            if isinstance(display, str):
                info["name"] = display
        if "email" in scopes and isinstance(attributes.get("email"), str):
            info["email"] = attributes["email"]
        if "groups" in scopes and principal is not None:
            info["groups"] = sorted(principal.groups)
        return info

    # --- consents ----------------------------------------------------------------------------------------

    def consented(self, user: str, client_id: str, scope: str) -> bool:
        ctx = _CURRENT.get()
        row = ctx.db.get(ConsentRow, (user, client_id))
        return row is not None and set(scope.split()) <= set(row.scopes.split())

    def record_consent(self, user: str, client_id: str, scope: str) -> None:
        ctx = _CURRENT.get()
        row = ctx.db.get(ConsentRow, (user, client_id))
        if row is None:
            row = ConsentRow(user=user, client_id=client_id, scopes="", granted_at=ctx.now)
            ctx.db.add(row)
        row.scopes = " ".join(dict.fromkeys(row.scopes.split() + scope.split()))
        row.granted_at = ctx.now
        self.engine.audit.record(
            ctx.db, f"user:{user}", "oidc.consent", f"oauth-client:{client_id}", details={"scope": scope}
        )

    # --- refusals --------------------------------------------------------------------------------------------

    def refused(self, request, error: OAuth2Error, reason: str | None = None) -> None:
        """Audit a refusal in the request's transaction: the OAuth error, and why."""
        ctx = _CURRENT.get()
        client_id = _claimed_client(request)
        if reason is None:
            reason = ctx.reason
        if reason is None and isinstance(error, InvalidClientError):
            known = client_id is not None and self.query_client(client_id) is not None
            reason = "bad client credentials" if known else "unknown client"
        details = {
            "error": error.error,
            "reason": reason or error.description or error.error,
            "client_id": client_id,
            **({"grant_type": request.payload.grant_type} if ctx.endpoint == "token" else {}),
            **{k: v for k, v in ctx.extra.items() if k != "client_id"},
        }
        if ctx.endpoint == "authorize":
            details["redirect_uri"] = request.payload.redirect_uri
        user = ctx.extra.get("user")
        target = f"user:{user}" if user else f"oauth-client:{client_id or '?'}"
        self.engine.audit.record(
            ctx.db,
            f"oauth-client:{client_id or '?'}",
            ctx.action or f"oidc.{ctx.endpoint}",
            target,
            "denied",
            details=details,
        )


def context() -> _Context:
    """The current request's context (for the authorize flow in charter.web.oidc)."""
    return _CURRENT.get()


def _claimed_client(request) -> str | None:
    try:
        client_id, _ = extract_basic_authorization(request.headers)
    except Exception:
        client_id = None
    return client_id or request.payload.data.get("client_id") or None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
