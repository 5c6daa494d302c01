"""Verifying Charter's access tokens in process: signature by key id, issuer, audience, expiry, revocation.

A `TokenVerifier` is built with each snapshot from the key ring and the revoked token ids, so checking a
token reads memory only: no store round trip and no lock. Only ES256 is accepted, with a key looked up by
the header's `kid` among Charter's own published keys, so `alg: none`, HS256 "signed" with a public key
and tokens from keys no longer published are all refused before any claim is read. JOSE is joserfc's.

A token whose signature and issuer have been checked is remembered (by the token itself, until the
verifier is replaced or `cache_size` tokens have been seen, when the cache is emptied): a client presents
the same token on every call for its lifetime, and the signature check (ECDSA P-256, ~40 µs) is nearly all
the cost. What depends on the moment or the question, which are the key still being published, the
audience, expiry, issue time and revocation, is checked on every call, cached or not. A revocation makes
a new revision, hence a new snapshot and a new verifier with an empty cache, so it is honoured at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from charter.oidc.keys import ALGORITHM, KeyRing
from charter.oidc.tokens import ACCESS_TOKEN_TYPE
from charter.policy.request import MFA_METHODS
from charter.policy.snapshot import Snapshot

LEEWAY = 30  # seconds of clock skew tolerated on exp/iat
CACHE_SIZE = 20_000  # verified tokens remembered per verifier (about 3 KB each with the token: ~60 MiB full)
_REGISTRY = jws.construct_registry([ALGORITHM])  # ES256 alone: every other "alg" is refused by joserfc too


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
        return not MFA_METHODS.isdisjoint(self.amr)


@dataclass(frozen=True, slots=True)
class _Signed:
    """A token whose signature and issuer verified: what the cache keeps."""

    token: VerifiedToken
    kid: str
    audiences: frozenset[str]
    expires: int | None
    issued: int | None


class PublishedKeys:
    """Public keys by kid from a JWKS document, as a relying party knows them (charter.client): the same shape
    as a KeyRing's for verification. A key counts as published for as long as the document lists it."""

    FOREVER = 2**62

    def __init__(self, jwks: dict):
        self.public: dict[str, ECKey] = {}
        for jwk in jwks.get("keys", ()):
            if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256" and jwk.get("alg", ALGORITHM) == ALGORITHM:
                self.public[str(jwk["kid"])] = ECKey.import_key(dict(jwk))
        self.publish_until: dict[str, int] = dict.fromkeys(self.public, self.FOREVER)


class TokenVerifier:
    def __init__(
        self,
        keyring: KeyRing | PublishedKeys | None,
        issuer: str,
        revoked: Iterable[str] = (),
        audience: str | None = None,
        cache_size: int = CACHE_SIZE,
        subjects: Snapshot | None = None,
    ):
        """`subjects`: the snapshot whose principals a token's subject must be (active, not blocked) for the token
        to count; None (a relying party's verifier) checks the token alone."""
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience or issuer
        self.revoked = frozenset(revoked)
        self.subjects = subjects
        self.cache_size = cache_size
        self._cache: dict[str, _Signed] = {}
        self._published = keyring.publish_until if keyring is not None else {}

    def verify(self, token: str, now: dt.datetime, audience: str | None = None) -> VerifiedToken:
        """The token's verified contents, or InvalidToken saying why not."""
        moment = int(now.timestamp())
        signed = self._cache.get(token)
        if signed is None:
            signed = self._signed(token, moment)
            cache = self._cache
            if len(cache) >= self.cache_size:
                cache.clear()  # cheap, and safe from any thread: the next calls just verify again
            cache[token] = signed
        elif self._published.get(signed.kid, 0) <= moment:
            raise InvalidToken("unknown key", f"signed with key {signed.kid!r}, which Charter no longer publishes")
        return self._check(signed, moment, audience or self.audience)

    def _signed(self, token: str, moment: int) -> _Signed:
        try:
            compact = jws.extract_compact(token.encode())
            header = compact.protected
        except (JoseError, ValueError, UnicodeError) as error:
            raise InvalidToken("malformed", f"not a signed JWT: {error}") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("algorithm", f"tokens are signed with {ALGORITHM}, this one says {header.get('alg')!r}")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("type", f"not an access token (typ {header.get('typ')!r}, expected at+jwt)")
        kid = str(header.get("kid"))
        key = self.keyring.public.get(kid) if self.keyring is not None else None
        if key is None or self._published.get(kid, 0) <= moment:
            raise InvalidToken("unknown key", f"signed with key {header.get('kid')!r}, which Charter does not publish")
        try:
            valid = jws.validate_compact(compact, key, registry=_REGISTRY)
            claims = orjson.loads(compact.payload) if valid else None
        except (JoseError, ValueError) as error:
            raise InvalidToken("signature", f"the signature does not verify: {error}") from None
        if not valid:
            raise InvalidToken("signature", "the signature does not verify")
        if not isinstance(claims, dict):
            raise InvalidToken("malformed", "the token's payload is not a JSON object")
        if claims.get("iss") != self.issuer:
            raise InvalidToken("issuer", f"issued by {claims.get('iss')!r}, not {self.issuer!r}")
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        expires, issued = claims.get("exp"), claims.get("iat")
        expires = expires if type(expires) is int else None
        verified = VerifiedToken(
            subject_type=str(claims.get("subject_type", "user")),
            subject=str(claims.get("sub", "")),
            client_id=str(claims.get("client_id", "")),
            scope=tuple(str(claims.get("scope", "")).split()),
            amr=tuple(str(method) for method in claims.get("amr") or ()),
            groups=tuple(str(group) for group in claims.get("groups") or ()),
            jti=str(claims.get("jti", "")),
            expires_at=expires or 0,
            claims=claims,
        )
        return _Signed(
            verified,
            kid,
            frozenset(str(a) for a in audiences),
            expires,
            issued if type(issued) is int else None,
        )

    def _check(self, signed: _Signed, now: int, audience: str) -> VerifiedToken:
        if audience not in signed.audiences:
            raise InvalidToken("audience", f"meant for {sorted(signed.audiences)}, not {audience!r}")
        if signed.expires is None or signed.expires + LEEWAY <= now:
            raise InvalidToken("expired", "the token has expired")
        if signed.issued is None or signed.issued - LEEWAY > now:
            raise InvalidToken("not yet valid", "the token was issued in the future")
        token = signed.token
        if token.jti in self.revoked:
            raise InvalidToken("revoked", "the token has been revoked")
        if self.subjects is not None:
            principal = self.subjects.principal(token.subject_type, token.subject)
            if principal is None or principal.blocked is not None:
                raise InvalidToken("subject", f"{token.subject_type} {token.subject!r} is disabled, gone or revoked")
        return token


def claimed(token: str) -> dict:
    """What an unverified token says about itself (`sub`, `jti`, `client_id`, `kid`), for the audit record of a
    refusal: never trusted, never the token itself, and only short strings."""
    said: dict = {}
    try:
        compact = jws.extract_compact(token.encode())
        said["kid"] = compact.protected.get("kid")
        payload = orjson.loads(compact.payload)
    except Exception:  # whatever it is, it is not a token we can read
        return {key: value for key, value in said.items() if isinstance(value, str)}
    if isinstance(payload, dict):
        for key in ("sub", "jti", "client_id", "subject_type"):
            said[key] = payload.get(key)
    return {key: value[:200] for key, value in said.items() if isinstance(value, str)}
