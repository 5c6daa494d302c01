"""API clients: bearer credentials that act as one identity.

A credential reads `chr_<client id>_<secret>`. Only the SHA-256 of the secret
is stored (it is 256 random bits, so a slow password hash adds nothing), and
the check compares digests in constant time against an in-memory table, so
authenticating a request needs no database round trip.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.policy.request import NO_CONTEXT, Context
from charter.store.models import ApiClientRow

MFA = Context(mfa=True)

PREFIX = "chr_"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the API client and the identity it acts as."""

    client_id: str
    subject_type: str
    subject: str
    mfa: bool = False  # the person proved a second factor (a console session signed in with one)

    @property
    def context(self) -> Context:
        """The context the charter's decisions about this caller's own actions are asked in."""
        return MFA if self.mfa else NO_CONTEXT

    def describe(self) -> str:
        return f"{self.subject_type}:{self.subject} (client {self.client_id})"


@dataclass(frozen=True, slots=True)
class ClientKey:
    caller: Caller
    secret_sha256: bytes


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create(
    session: Session, name: str, subject_type: str, subject: str, created_by: str, now: dt.datetime
) -> tuple[ApiClientRow, str]:
    """A new client and its credential. The credential is returned once and never stored."""
    client_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = ApiClientRow(
        id=client_id,
        name=name,
        subject_type=subject_type,
        subject=subject,
        secret_sha256=_digest(secret).hex(),
        created_by=created_by,
        created_at=now,
        revoked_at=None,
    )
    session.add(row)
    return row, f"{PREFIX}{client_id}_{secret}"


def active_keys(session: Session) -> dict[str, ClientKey]:
    rows = session.scalars(select(ApiClientRow).where(ApiClientRow.revoked_at.is_(None)))
    return keys(rows)


def keys(rows: Iterable[ApiClientRow]) -> dict[str, ClientKey]:
    return {
        row.id: ClientKey(Caller(row.id, row.subject_type, row.subject), bytes.fromhex(row.secret_sha256))
        for row in rows
    }


def verify(table: Mapping[str, ClientKey], credential: str) -> Caller | None:
    """The caller a bearer credential belongs to, or None. Constant time in the secret."""
    if not credential.startswith(PREFIX):
        return None
    client_id, _, secret = credential[len(PREFIX) :].partition("_")
    key = table.get(client_id)
    if key is None or not secret:
        return None
    if hmac.compare_digest(_digest(secret), key.secret_sha256):
        return key.caller
    return None
