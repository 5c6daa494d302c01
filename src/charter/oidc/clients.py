"""OAuth 2.0 clients: applications people sign in to, and services using client credentials (docs/oidc.md).

Two kinds, never mixed in one registration:

- an **application** (`grant_types` among authorization_code and refresh_token) is public (no secret; PKCE
  with S256 required) or confidential (a secret), with exact redirect URIs; its admin resource is
  `clients:apps/<client id>`;
- a **service client** (`grant_types: ["client_credentials"]`) acts as one service of the directory; its
  tokens say `subject_type: service`, `sub: <service>`; its admin resource is `clients:service/<service>`,
  as the service's API clients are.

A secret is 256 random bits, shown once when made; the store keeps only its SHA-256 (a slow hash adds
nothing to a random value) and compares digests in constant time. Rotating a secret makes a new one; the
previous one keeps working for `SECRET_OVERLAP` (24 hours) so a deployment can roll the new one out
without an outage, then stops. `charter drift` reports service client secrets older than the charter's
`Service credentials rotate every N days`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from charter.admin import Admin, Done, Invalid, NotFound, Page
from charter.clients import Caller
from charter.directory import repository
from charter.store.models import OAuthClientRow, RefreshTokenRow

SECRET_OVERLAP = dt.timedelta(hours=24)  # a rotated-out secret keeps working this long
APP_GRANTS = ("authorization_code", "refresh_token")
SERVICE_GRANTS = ("client_credentials",)
USER_SCOPES = ("openid", "profile", "email", "groups")
DEFAULT_APP_SCOPES = "openid profile email groups"
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored: str | None) -> bool:
    """Constant time in the secret."""
    if not stored:
        return False
    return hmac.compare_digest(bytes.fromhex(digest(secret)), bytes.fromhex(stored))


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """A registered, unrevoked client as authlib's server sees it (authlib.oauth2.rfc6749.ClientMixin), as of `now`."""

    client_id: str
    name: str
    public: bool
    service: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    audience: str | None
    secret_sha256: str | None
    previous_secret_sha256: str | None
    previous_secret_expires_at: dt.datetime | None
    now: dt.datetime

    @classmethod
    def of(cls, row: OAuthClientRow, now: dt.datetime) -> OAuthClient:
        return cls(
            row.client_id,
            row.name,
            row.public,
            row.service,
            tuple(row.redirect_uris or ()),
            tuple(row.grant_types or ()),
            tuple((row.scopes or "").split()),
            row.audience,
            row.secret_sha256,
            row.previous_secret_sha256,
            _aware(row.previous_secret_expires_at) if row.previous_secret_expires_at else None,
            now,
        )

    # --- ClientMixin ---------------------------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # a redirect_uri is always required, and matched exactly

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The scope asked for when every part of it is registered (None, refused, otherwise); the registered
        scopes when none is asked for."""
        if not scope:
            return " ".join(self.scopes)
        asked = scope.split()
        if not set(asked) <= set(self.scopes):
            return None
        return " ".join(dict.fromkeys(asked))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # string equality: no prefix, no normalisation

    def check_client_secret(self, client_secret: str) -> bool:
        if self.public:
            return False
        if matches(client_secret, self.secret_sha256):
            return True
        live = self.previous_secret_expires_at is not None and self.now < self.previous_secret_expires_at
        return live and matches(client_secret, self.previous_secret_sha256)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none" and endpoint in ("token", "revocation")
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def token_endpoint_auth_method(self) -> str:
        return "none" if self.public else "client_secret_basic"


def find(session: Session, client_id: str, now: dt.datetime) -> OAuthClient | None:
    row = session.get(OAuthClientRow, client_id)
    if row is None or row.revoked_at is not None:
        return None
    return OAuthClient.of(row, now)


def resource_of(row: OAuthClientRow) -> str:
    """The admin resource a client is managed as."""
    return f"clients:service/{row.service}" if row.service else f"clients:apps/{row.client_id}"


def view(row: OAuthClientRow) -> dict:
    """What the API shows (never a secret or its digest)."""
    return {
        "client_id": row.client_id,
        "name": row.name,
        "type": "public" if row.public else "confidential",
        "service": row.service,
        "redirect_uris": list(row.redirect_uris or []),
        "grant_types": list(row.grant_types or []),
        "scopes": row.scopes or "",
        "audience": row.audience,
        "secret_created_at": _aware(row.secret_created_at).isoformat() if row.secret_created_at else None,
        "previous_secret_expires_at": (
            _aware(row.previous_secret_expires_at).isoformat() if row.previous_secret_expires_at else None
        ),
        "created_by": row.created_by,
        "created_at": _aware(row.created_at).isoformat(),
        "revoked": row.revoked_at is not None,
    }


class OAuthClients:
    """The admin operations on OAuth clients, each authorised by the charter and audited (through `Admin.change`)."""

    def __init__(self, admin: Admin):
        self.admin = admin

    def create(self, caller: Caller, fields: Mapping[str, object]) -> Done:
        spec = _validated(fields)
        client_id = "oc-" + secrets.token_hex(8)
        secret = None if spec["public"] else secrets.token_urlsafe(32)
        resource = f"clients:service/{spec['service']}" if spec["service"] else f"clients:apps/{client_id}"
        now = self.admin.now()
        with self.admin.change(caller, resource, "oauth_client.create") as change:
            if spec["service"] and repository.find_identity(change.session, "service", spec["service"]) is None:
                raise Invalid("service", f'no service "{spec["service"]}" in the directory')
            row = OAuthClientRow(
                client_id=client_id,
                name=spec["name"],
                public=spec["public"],
                service=spec["service"],
                redirect_uris=spec["redirect_uris"],
                grant_types=spec["grant_types"],
                scopes=spec["scopes"],
                audience=spec["audience"],
                secret_sha256=digest(secret) if secret else None,
                secret_created_at=now if secret else None,
                previous_secret_sha256=None,
                previous_secret_expires_at=None,
                created_by=caller.describe(),
                created_at=now,
                revoked_at=None,
            )
            change.session.add(row)
            change.details["after"] = view(row)  # never the secret
        result = view(row)
        if secret:
            result["client_secret"] = secret
        return Done(change.revision, result)

    def list(self, caller: Caller, page: Page | None = None) -> dict:
        page = page or Page()
        with self.admin.read(caller, "clients:*") as session:
            query = select(OAuthClientRow).order_by(OAuthClientRow.name, OAuthClientRow.client_id)
            total, rows = page.of(session, query)
            return page.view(total, [view(row) for row in rows])

    def get(self, caller: Caller, client_id: str) -> dict:
        row = self._row(client_id)
        with self.admin.read(caller, resource_of(row)) as session:
            return view(session.get(OAuthClientRow, client_id) or row)

    def rotate_secret(self, caller: Caller, client_id: str) -> Done:
        """A new secret (shown once); the previous one keeps working for SECRET_OVERLAP."""
        row = self._row(client_id)
        now = self.admin.now()
        with self.admin.change(caller, resource_of(row), "oauth_client.rotate_secret") as change:
            row = self._live(change.session, client_id)
            if row.public:
                raise Invalid("client_id", "a public client has no secret to rotate")
            secret = secrets.token_urlsafe(32)
            row.previous_secret_sha256 = row.secret_sha256
            row.previous_secret_expires_at = now + SECRET_OVERLAP
            row.secret_sha256 = digest(secret)
            row.secret_created_at = now
            change.details.update(
                {"client_id": client_id, "previous_secret_expires_at": row.previous_secret_expires_at.isoformat()}
            )
        return Done(change.revision, {**view(row), "client_secret": secret})

    def revoke(self, caller: Caller, client_id: str) -> Done:
        """Revoke the client at once, and every refresh token it holds."""
        row = self._row(client_id)
        now = self.admin.now()
        with self.admin.change(caller, resource_of(row), "oauth_client.revoke") as change:
            row = self._live(change.session, client_id)
            row.revoked_at = now
            revoked = change.session.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.client_id == client_id, RefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="client revoked")
            ).rowcount
            change.details.update({"client_id": client_id, "refresh_tokens_revoked": revoked})
        return Done(change.revision, view(row))

    def _row(self, client_id: str) -> OAuthClientRow:
        with self.admin.engine.sessions() as session:
            row = session.get(OAuthClientRow, client_id)
            if row is None:
                raise NotFound(f'no OAuth client "{client_id}"')
            return row

    @staticmethod
    def _live(session: Session, client_id: str) -> OAuthClientRow:
        row = session.get(OAuthClientRow, client_id)
        if row is None:
            raise NotFound(f'no OAuth client "{client_id}"')
        if row.revoked_at is not None:
            from charter.admin import Conflict

            raise Conflict(f'OAuth client "{client_id}" was already revoked')
        return row


def _validated(fields: Mapping[str, object]) -> dict:
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise Invalid("name", "a name of 1 to 255 characters is required")
    kind = fields.get("type", "confidential")
    if kind not in ("public", "confidential"):
        raise Invalid("type", f"expected public or confidential, found {kind!r}")
    service = fields.get("service")
    grants = fields.get("grant_types") or (list(SERVICE_GRANTS) if service else ["authorization_code", "refresh_token"])
    if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
        raise Invalid("grant_types", "a list of grant types")
    grants = list(dict.fromkeys(grants))
    unknown = [g for g in grants if g not in APP_GRANTS + SERVICE_GRANTS]
    if unknown:
        raise Invalid(
            "grant_types", f"unsupported: {', '.join(unknown)} (expected {', '.join(APP_GRANTS + SERVICE_GRANTS)})"
        )
    is_service = "client_credentials" in grants
    if is_service and len(grants) > 1:
        raise Invalid("grant_types", "client_credentials is for service clients only: register applications apart")
    if is_service and kind == "public":
        raise Invalid("type", "a service client authenticates with a secret: it cannot be public")
    if is_service != bool(service):
        raise Invalid("service", "service clients (client_credentials) name their service; applications do not")
    if service is not None and not isinstance(service, str):
        raise Invalid("service", "a service name")
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise Invalid("grant_types", "refresh_token goes with authorization_code")
    uris = fields.get("redirect_uris") or []
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise Invalid("redirect_uris", "a list of absolute URIs")
    for index, uri in enumerate(uris):
        problem = _redirect_problem(uri)
        if problem:
            raise Invalid(f"redirect_uris[{index}]", problem)
    if "authorization_code" in grants and not uris:
        raise Invalid("redirect_uris", "an application needs at least one redirect URI")
    if is_service and uris:
        raise Invalid("redirect_uris", "a service client has no redirect URIs")
    scopes = fields.get("scopes", "" if is_service else DEFAULT_APP_SCOPES)
    if isinstance(scopes, list):
        scopes = " ".join(str(s) for s in scopes)
    if not isinstance(scopes, str) or len(scopes) > 1024 or any(not s.isprintable() for s in scopes.split()):
        raise Invalid("scopes", "space-separated scope names")
    audience = fields.get("audience")
    if audience is not None and (not isinstance(audience, str) or not audience or len(audience) > 1024):
        raise Invalid("audience", "a string naming the API its tokens are for")
    return {
        "name": name.strip(),
        "public": kind == "public",
        "service": service,
        "redirect_uris": list(dict.fromkeys(uris)),
        "grant_types": grants,
        "scopes": " ".join(dict.fromkeys(scopes.split())),
        "audience": audience,
    }


def _redirect_problem(uri: str) -> str | None:
    """Why `uri` cannot be a redirect URI: absolute https, or http only to the loopback; no fragment."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "not a URI"
    if not parts.scheme or not parts.hostname:
        return "an absolute URI is required"
    if parts.fragment or "#" in uri:
        return "a redirect URI has no fragment"
    if parts.username or parts.password:
        return "a redirect URI carries no credentials"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(parts.hostname):
        return None
    return "https is required (http only for localhost or 127.0.0.1)"


def _loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
