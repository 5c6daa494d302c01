"""Tokens for the token tests: genuine ones minted with the engine's key ring, and forged ones built by hand.

The forgeries are written out here, in the tests only, because no JOSE library will make them: an
`alg: none` token, HS256 keyed with Charter's public key, a signature over other claims, a key Charter
never had.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

from joserfc import jwt
from joserfc.jwk import ECKey

from charter.oidc.rotation import ensure_keys
from charter.oidc.tokens import mint_access_token

HOUR = dt.timedelta(hours=1)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def mint(engine, subject: str = "alice", *, amr=("pwd",), lifetime=HOUR, audience=None, now=None, **extra) -> str:
    """A genuine access token for `subject`, signed with the ring's current key (made first if need be)."""
    if engine.keyring is None or engine.keyring.signing_kid(engine.clock.now()) is None:
        ensure_keys(engine)
    return mint_access_token(
        engine.keyring,
        issuer=engine.issuer,
        audience=audience or engine.issuer,
        subject_type=extra.pop("subject_type", "user"),
        subject=subject,
        client_id=extra.pop("client_id", "test-client"),
        scope=extra.pop("scope", "openid"),
        lifetime=lifetime,
        now=now or engine.clock.now(),
        amr=list(amr),
        **extra,
    ).token


def unsigned(token: str) -> str:
    """The token's header and claims with `alg: none` and no signature."""
    header, payload, _ = segments(token)
    header["alg"] = "none"
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


def hs256_with_public_key(token: str, engine) -> str:
    """The same claims "signed" HS256 with Charter's public key (its PEM) as the HMAC secret."""
    header, payload, _ = segments(token)
    secret = engine.keyring.public[header["kid"]].as_pem(private=False)
    header["alg"] = "HS256"
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(token: str, **claims) -> str:
    """The token with some claims changed and the original signature kept."""
    header, _, signature = token.split(".")
    _, body, _ = segments(token)
    body.update(claims)
    return f"{header}.{b64(json.dumps(body).encode())}.{signature}"


def foreign(engine, subject: str = "alice") -> str:
    """A well-formed ES256 access token signed by a key Charter never had."""
    key = ECKey.generate_key("P-256", private=True)
    now = int(engine.clock.now().timestamp())
    claims = {
        "iss": engine.issuer,
        "sub": subject,
        "subject_type": "user",
        "aud": engine.issuer,
        "client_id": "test-client",
        "iat": now,
        "exp": now + 3600,
        "jti": "foreign-1",
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.thumbprint()}, claims, key, algorithms=["ES256"])
