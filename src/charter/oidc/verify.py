"""Verifying Charter's access tokens in process: signature by key id, issuer, audience, expiry, revocation.

A `TokenVerifier` is built with each snapshot from the key ring and the revoked token ids, so checking a
token reads memory only: no store round trip and no lock. Only ES256 is accepted, with a key looked up by
the header's `kid` among Charter's own published keys, so `alg: none`, HS256 "signed" with a public key
and tokens from keys no longer published are all refused before any claim is read. JOSE is joserfc's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from joserfc import jws, jwt
from joserfc.errors import JoseError

from charter.oidc.keys import ALGORITHM, KeyRing
from charter.oidc.tokens import ACCESS_TOKEN_TYPE

LEEWAY = 30  # seconds of clock skew tolerated on exp/iat


class InvalidToken(Exception):
    """A token that must not be honoured; `reason` is a short code for audit and error bodies."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject_type: str
    subject: str
    client_id: str
    scope: tuple[str, ...]
    amr: tuple[str, ...]
    groups: tuple[str, ...]
    jti: str
    expires_at: int
    claims: dict

    @property
    def mfa(self) -> bool:
        return "otp" in self.amr or "mfa" in self.amr or "hwk" in self.amr


class TokenVerifier:
    def __init__(self, keyring: KeyRing | None, issuer: str, revoked: Iterable[str] = (), audience: str | None = None):
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience or issuer
        self.revoked = frozenset(revoked)

    def verify(self, token: str, now: dt.datetime, audience: str | None = None) -> VerifiedToken:
        """The token's verified contents, or InvalidToken saying why not."""
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError, UnicodeError) as error:
            raise InvalidToken("malformed", f"not a signed JWT: {error}") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("algorithm", f"tokens are signed with {ALGORITHM}, this one says {header.get('alg')!r}")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("type", f"not an access token (typ {header.get('typ')!r}, expected at+jwt)")
        key = self.keyring.public.get(str(header.get("kid"))) if self.keyring is not None else None
        if key is None:
            raise InvalidToken("unknown key", f"signed with key {header.get('kid')!r}, which Charter does not publish")
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError) as error:
            raise InvalidToken("signature", f"the signature does not verify: {error}") from None
        return self._check(claims, int(now.timestamp()), audience or self.audience)

    def _check(self, claims: dict, now: int, audience: str) -> VerifiedToken:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("issuer", f"issued by {claims.get('iss')!r}, not {self.issuer!r}")
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        if audience not in audiences:
            raise InvalidToken("audience", f"meant for {audiences}, not {audience!r}")
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires + LEEWAY <= now:
            raise InvalidToken("expired", "the token has expired")
        issued = claims.get("iat")
        if not isinstance(issued, int) or issued - LEEWAY > now:
            raise InvalidToken("not yet valid", "the token was issued in the future")
        jti = str(claims.get("jti", ""))
        if jti in self.revoked:
            raise InvalidToken("revoked", "the token has been revoked")
        return VerifiedToken(
            subject_type=str(claims.get("subject_type", "user")),
            subject=str(claims.get("sub", "")),
            client_id=str(claims.get("client_id", "")),
            scope=tuple(str(claims.get("scope", "")).split()),
            amr=tuple(claims.get("amr") or ()),
            groups=tuple(claims.get("groups") or ()),
            jti=jti,
            expires_at=expires,
            claims=claims,
        )
