"""Browser sessions: started after sign-in, ended by the charter's absolute and idle limits, by sign-out, or everywhere.

The cookie holds a random token; the store keeps only its SHA-256 (`SessionRow.id`). Limits are read from
the charter in force when the session is checked (`Sessions end after 12 hours, or after 30 minutes
idle.`), so an amendment that shortens them applies to sessions already open. Use refreshes `last_seen_at`
at most once a `TOUCH_EVERY`, so a busy page does not write on every request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from charter.clock import Clock
from charter.policy.obligations import AuthObligations
from charter.store.models import RefreshTokenRow, SessionRow

COOKIE = "charter_session"
TOUCH_EVERY = dt.timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session: who, how they authenticated (`amr`: "pwd", "otp", ...) and when."""

    id: str
    user: str
    amr: tuple[str, ...]
    auth_time: dt.datetime
    created_at: dt.datetime
    expires_at: dt.datetime  # the earlier of the absolute and the idle limit, as of this check

    @property
    def mfa(self) -> bool:
        return "otp" in self.amr or "mfa" in self.amr


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    session: Session, user: str, amr: list[str], now: dt.datetime, source: str | None, user_agent: str | None
) -> tuple[SessionRow, str]:
    """A new session row in the caller's transaction; returns it and the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    row = SessionRow(
        id=digest(token),
        user=user,
        amr=list(amr),
        auth_time=now,
        created_at=now,
        last_seen_at=now,
        source=source,
        user_agent=(user_agent or "")[:255] or None,
        ended_at=None,
        ended_reason=None,
    )
    session.add(row)
    return row, token


def ends_at(row: SessionRow, limits: AuthObligations) -> tuple[dt.datetime, str]:
    """When this session ends under `limits` unless used again, and why ("absolute" or "idle")."""
    absolute = _aware(row.created_at) + limits.session_absolute.value
    idle = _aware(row.last_seen_at) + limits.session_idle.value
    return (absolute, "absolute") if absolute <= idle else (idle, "idle")


class Sessions:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock):
        self.sessions = sessions
        self.clock = clock

    def now(self) -> dt.datetime:
        return self.clock.now().astimezone(dt.UTC)

    def current(self, token: str | None, limits: AuthObligations) -> SignedIn | None:
        """The live session a cookie token names, touched; None when unknown, ended or past a limit (then ended)."""
        if not token:
            return None
        now = self.now()
        with self.sessions.begin() as session:
            row = session.get(SessionRow, digest(token))
            if row is None or row.ended_at is not None:
                return None
            limit, why = ends_at(row, limits)
            if now >= limit:
                row.ended_at, row.ended_reason = now, f"{why} limit"
                return None
            if now - _aware(row.last_seen_at) >= TOUCH_EVERY:
                row.last_seen_at = now
                limit, _ = ends_at(row, limits)
            return SignedIn(row.id, row.user, tuple(row.amr), _aware(row.auth_time), _aware(row.created_at), limit)

    def end(self, session_id: str, reason: str = "signed out") -> bool:
        with self.sessions.begin() as session:
            return _end(session, [SessionRow.id == session_id], self.now(), reason) > 0

    def list_for(self, user: str, limits: AuthObligations) -> list[dict]:
        now = self.now()
        with self.sessions() as session:
            rows = session.scalars(
                select(SessionRow).where(SessionRow.user == user, SessionRow.ended_at.is_(None))
            ).all()
            live = [(row, ends_at(row, limits)[0]) for row in rows]
            return [
                {
                    "created_at": _aware(row.created_at).isoformat(),
                    "last_seen_at": _aware(row.last_seen_at).isoformat(),
                    "ends_at": limit.isoformat(),
                    "amr": list(row.amr),
                    "source": row.source,
                    "user_agent": row.user_agent,
                }
                for row, limit in live
                if limit > now
            ]


def end_everything(session: Session, user: str, now: dt.datetime, reason: str) -> dict[str, int]:
    """End every session of `user` and revoke every refresh token they hold, in the caller's transaction.

    Sign-out everywhere, a reset factor, a disabled account: afterwards nothing the user was issued can be
    renewed. Access tokens already issued run to their (short) expiry unless revoked one by one.
    """
    ended = _end(session, [SessionRow.user == user], now, reason)
    revoked = session.execute(
        update(RefreshTokenRow)
        .where(RefreshTokenRow.user == user, RefreshTokenRow.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason[:64])
    ).rowcount
    return {"sessions": ended, "refresh_tokens": revoked}


def _end(session: Session, where: list, now: dt.datetime, reason: str) -> int:
    return session.execute(
        update(SessionRow).where(*where, SessionRow.ended_at.is_(None)).values(ended_at=now, ended_reason=reason[:64])
    ).rowcount


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
