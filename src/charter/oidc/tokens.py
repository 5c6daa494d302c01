"""Minting tokens: RFC 9068 JWT access tokens and OpenID Connect ID tokens, signed with the key ring's current key.

Access tokens carry who (`sub` and `subject_type`: user, service or partner), for which client, the
scope, and for people `auth_time`, `amr` (how they signed in: decisions read MFA from it) and `groups`.
Their lifetime is the charter's (`Access tokens expire after 1 hour.`), passed in by the caller.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from joserfc import jwt

from charter.oidc.keys import ALGORITHM, KeyRing, NoSigningKey

ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068 section 2.1


@dataclass(frozen=True, slots=True)
class Minted:
    token: str
    claims: dict

    @property
    def expires_in(self) -> int:
        return self.claims["exp"] - self.claims["iat"]


def mint_access_token(
    keyring: KeyRing,
    *,
    issuer: str,
    audience: str,
    subject_type: str,
    subject: str,
    client_id: str,
    scope: str,
    lifetime: dt.timedelta,
    now: dt.datetime,
    amr: Iterable[str] | None = None,
    auth_time: dt.datetime | None = None,
    groups: Iterable[str] | None = None,
) -> Minted:
    issued = int(now.timestamp())
    claims: dict = {
        "iss": issuer,
        "sub": subject,
        "subject_type": subject_type,
        "aud": audience,
        "client_id": client_id,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": secrets.token_urlsafe(16),
    }
    if scope:
        claims["scope"] = scope
    if auth_time is not None:
        claims["auth_time"] = int(auth_time.timestamp())
    if amr is not None:
        claims["amr"] = list(amr)
    if groups is not None:
        claims["groups"] = sorted(groups)
    return Minted(_sign(keyring, now, claims, ACCESS_TOKEN_TYPE), claims)


def mint_id_token(
    keyring: KeyRing,
    *,
    issuer: str,
    client_id: str,
    subject: str,
    lifetime: dt.timedelta,
    now: dt.datetime,
    auth_time: dt.datetime,
    amr: Iterable[str],
    nonce: str | None = None,
    extra: dict | None = None,
) -> Minted:
    issued = int(now.timestamp())
    claims: dict = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "auth_time": int(auth_time.timestamp()),
        "amr": list(amr),
        **(extra or {}),
    }
    if nonce:
        claims["nonce"] = nonce
    return Minted(_sign(keyring, now, claims, "JWT"), claims)


def _sign(keyring: KeyRing, now: dt.datetime, claims: dict, token_type: str) -> str:
    kid = keyring.signing_kid(now)
    if kid is None:
        raise NoSigningKey("no signing key is in use yet")
    header = {"alg": ALGORITHM, "kid": kid, "typ": token_type}
    return jwt.encode(header, claims, keyring.private(kid), algorithms=[ALGORITHM])
