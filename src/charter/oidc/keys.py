"""Token signing keys (ES256): made, rotated and retired on the charter's schedule; the key ring servers sign with.

A key row has three moments. From `created_at` it signs (the newest such key does); at `retires_at` it
stops signing; until `publish_until` it stays in JWKS, which is `retires_at` plus the longest token
lifetime plus a margin, so every token it signed can be verified until it expires. The next key is made
`LEAD` before the current one retires and published at once, so servers and relying parties that cache
JWKS know it before the first token it signs. Private keys are sealed (charter.sealed); the public half
is kept as a JWK. JOSE is joserfc's, never hand-written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from functools import cached_property

from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.policy.obligations import AuthObligations
from charter.sealed import Sealer
from charter.store.models import SigningKeyRow

ALGORITHM = "ES256"
CURVE = "P-256"
MARGIN = dt.timedelta(minutes=5)  # clock skew between servers and relying parties


def lead(every: dt.timedelta) -> dt.timedelta:
    """How long before the current key retires its successor is published."""
    return min(dt.timedelta(days=1), every / 10)


def published_for(retires_at: dt.datetime, obligations: AuthObligations) -> dt.datetime:
    longest = max(obligations.access_token.value, obligations.id_token.value)
    return retires_at + longest + MARGIN


def new_key(sealer: Sealer, signs_from: dt.datetime, obligations: AuthObligations) -> SigningKeyRow:
    key = ECKey.generate_key(CURVE, parameters={"alg": ALGORITHM, "use": "sig"}, private=True)
    kid = key.thumbprint()
    retires = signs_from + obligations.signing_keys.value
    public = {**key.as_dict(private=False), "kid": kid, "alg": ALGORITHM, "use": "sig"}
    return SigningKeyRow(
        kid=kid,
        alg=ALGORITHM,
        public_jwk=public,
        sealed_private_jwk=sealer.seal(json.dumps(key.as_dict(private=True)).encode()),
        created_at=signs_from,
        retires_at=retires,
        publish_until=published_for(retires, obligations),
    )


def live_rows(session: Session, now: dt.datetime) -> list[SigningKeyRow]:
    """Every key still published, oldest first."""
    rows = session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at)).all()
    return [row for row in rows if _aware(row.publish_until) > now]


def due(rows: Iterable[SigningKeyRow], now: dt.datetime, obligations: AuthObligations) -> dt.datetime | None:
    """When the next key must sign from, if it must be made now; None when the ring is fine as it is."""
    rows = list(rows)
    latest = max(rows, key=lambda r: _aware(r.created_at), default=None)
    if latest is None or _aware(latest.retires_at) <= now:
        return now  # no key at all, or every key retired: sign with a new one at once
    if _aware(latest.retires_at) - lead(obligations.signing_keys.value) <= now:
        return _aware(latest.retires_at)
    return None


def rotate_now(session: Session, sealer: Sealer, now: dt.datetime, obligations: AuthObligations) -> SigningKeyRow:
    """A new key signing from now; every older key retires now and stays published until its tokens expire."""
    for row in live_rows(session, now):
        if _aware(row.retires_at) > now:
            row.retires_at = now if _aware(row.created_at) <= now else _aware(row.created_at)
            row.publish_until = published_for(_aware(row.retires_at), obligations)
    row = new_key(sealer, now, obligations)
    session.add(row)
    return row


class KeyRing:
    """The keys of one snapshot of the store: public keys by kid (verification), the one to sign with now."""

    def __init__(self, rows: Iterable[SigningKeyRow], sealer: Sealer, now: dt.datetime):
        rows = sorted(rows, key=lambda r: _aware(r.created_at))
        self._sealer = sealer
        self.public: dict[str, ECKey] = {row.kid: ECKey.import_key(dict(row.public_jwk)) for row in rows}
        self.jwks: dict = {"keys": [dict(row.public_jwk) for row in rows]}
        self.rows = tuple(rows)
        self._rows = {row.kid: row for row in rows}
        self.retires: dict[str, dt.datetime] = {row.kid: _aware(row.retires_at) for row in rows}
        self.signs_from: dict[str, dt.datetime] = {row.kid: _aware(row.created_at) for row in rows}
        # Verification honours this at the moment of checking, not only when the ring was loaded.
        self.publish_until: dict[str, int] = {row.kid: int(_aware(row.publish_until).timestamp()) for row in rows}
        self.built_at = now

    def signing_kid(self, now: dt.datetime) -> str | None:
        """The newest key that has begun signing and not retired."""
        usable = [kid for kid in self._rows if self.signs_from[kid] <= now < self.retires[kid]]
        return max(usable, key=lambda kid: self.signs_from[kid], default=None)

    def private(self, kid: str) -> ECKey:
        return self._private[kid]

    @cached_property
    def _private(self) -> dict[str, ECKey]:
        # Opened once per ring, on first signing: verification-only servers never unseal.
        return {
            kid: ECKey.import_key(json.loads(self._sealer.open(row.sealed_private_jwk)))
            for kid, row in self._rows.items()
        }

    def key_set(self) -> KeySet:
        return KeySet(list(self.public.values()))


class NoSigningKey(Exception):
    """No key is signing now (the ring has not been made yet: the server has not finished starting)."""


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
