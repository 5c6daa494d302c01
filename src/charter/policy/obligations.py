"""What the charter in force asks of authentication: token lifetimes, sessions, lockout, MFA recovery, rotation. Pure.

Each setting carries the clause that states it (None where the charter is silent and Charter's default
applies), so a refusal or a drift finding can cite it. The defaults are the safe side of common practice
and are listed in docs/authentication.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from charter.language import ast


@dataclass(frozen=True, slots=True)
class Setting:
    """A value and the clause that set it (None: Charter's default)."""

    value: dt.timedelta
    clause: int | None


@dataclass(frozen=True, slots=True)
class Recovery:
    """Who must approve resetting a lost factor."""

    quorums: tuple[ast.Quorum, ...]
    clause: int | None


@dataclass(frozen=True, slots=True)
class AuthObligations:
    access_token: Setting
    refresh_token: Setting
    id_token: Setting
    session_absolute: Setting
    session_idle: Setting
    lockout_attempts: int
    lockout_for: Setting
    lockout_clause: int | None
    recovery: Recovery
    service_credentials: Setting | None  # None: the charter sets no rotation for service credentials
    signing_keys: Setting


DEFAULT_ACCESS_TOKEN = dt.timedelta(hours=1)
DEFAULT_REFRESH_TOKEN = dt.timedelta(days=30)
DEFAULT_ID_TOKEN = dt.timedelta(hours=1)
DEFAULT_SESSION_ABSOLUTE = dt.timedelta(hours=12)
DEFAULT_SESSION_IDLE = dt.timedelta(minutes=30)
DEFAULT_LOCKOUT_ATTEMPTS = 5
DEFAULT_LOCKOUT_FOR = dt.timedelta(minutes=15)
DEFAULT_SIGNING_KEY_ROTATION = dt.timedelta(days=30)
# Without a recovery clause a lost factor is reset by two members of the charter's owners, never one person.
DEFAULT_RECOVERY_GROUP_COUNT = 2


def obligations_of(clauses: Iterable[ast.Clause], owner_group: str | None = None) -> AuthObligations:
    """Read the obligation clauses of a charter version (the first clause of each kind wins)."""
    first: dict[object, ast.Clause] = {}
    for clause in clauses:
        sentence = clause.sentence
        key: object
        if isinstance(sentence, ast.TokenLifetime):
            key = (ast.TokenLifetime, sentence.token)
        elif isinstance(sentence, ast.Rotation):
            key = (ast.Rotation, sentence.credential)
        elif isinstance(sentence, ast.SessionLimits | ast.Lockout | ast.Recovery):
            key = type(sentence)
        else:
            continue
        first.setdefault(key, clause)

    def lifetime(token: ast.TokenKind, default: dt.timedelta) -> Setting:
        clause = first.get((ast.TokenLifetime, token))
        return _setting(clause, lambda s: s.lifetime, default)

    sessions = first.get(ast.SessionLimits)
    lockout = first.get(ast.Lockout)
    recovery = first.get(ast.Recovery)
    services = first.get((ast.Rotation, ast.CredentialKind.SERVICE_CREDENTIALS))
    default_recovery = (ast.Quorum(DEFAULT_RECOVERY_GROUP_COUNT, owner_group),) if owner_group else ()
    return AuthObligations(
        access_token=lifetime(ast.TokenKind.ACCESS, DEFAULT_ACCESS_TOKEN),
        refresh_token=lifetime(ast.TokenKind.REFRESH, DEFAULT_REFRESH_TOKEN),
        id_token=lifetime(ast.TokenKind.ID, DEFAULT_ID_TOKEN),
        session_absolute=_setting(sessions, lambda s: s.absolute, DEFAULT_SESSION_ABSOLUTE),
        session_idle=_setting(sessions, lambda s: s.idle, DEFAULT_SESSION_IDLE),
        lockout_attempts=lockout.sentence.attempts if lockout else DEFAULT_LOCKOUT_ATTEMPTS,  # type: ignore[union-attr]
        lockout_for=_setting(lockout, lambda s: s.duration, DEFAULT_LOCKOUT_FOR),
        lockout_clause=lockout.number if lockout else None,
        recovery=Recovery(
            recovery.sentence.approvers if recovery else default_recovery,  # type: ignore[union-attr]
            recovery.number if recovery else None,
        ),
        service_credentials=_setting(services, lambda s: s.every, dt.timedelta(0)) if services else None,
        signing_keys=_setting(
            first.get((ast.Rotation, ast.CredentialKind.SIGNING_KEYS)), lambda s: s.every, DEFAULT_SIGNING_KEY_ROTATION
        ),
    )


def _setting(clause: ast.Clause | None, duration_of, default: dt.timedelta) -> Setting:
    if clause is None:
        return Setting(default, None)
    duration = duration_of(clause.sentence)
    if duration is None:  # `Sessions end after 12 hours.` says nothing of idling
        return Setting(default, None)
    return Setting(duration.timedelta, clause.number)
