"""Account lockout by the charter (`Accounts lock for 15 minutes after 5 failed logins.`) and a per-address limiter.

Lockout is counted per account *name* as typed (stripped, case-folded), in `LoginFailureRow`, whether or
not such an account exists, so the answer never tells who has an account. The row is created if missing
(an upsert that does nothing on conflict) and then locked (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite
serialises writers), so concurrent attempts on several servers are all counted and the count cannot be
raced past. While an account is locked every attempt fails, the right password included; the lock is not
extended by attempts made during it. A success deletes the row.

The per-address limiter (`SourceLimiter`) is in memory, per server process: with N servers an address
gets up to N times the limit. It counts failed attempts in a sliding window (CHARTER_LOGIN_RATE,
`20/5m` by default) and answers 429 with Retry-After past it.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import os
import re
import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from charter.policy.obligations import AuthObligations
from charter.store.models import LoginFailureRow

RATE_ENVIRONMENT = "CHARTER_LOGIN_RATE"
DEFAULT_RATE = (20, dt.timedelta(minutes=5))
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smh]?)\s*$")


def account_key(name: str) -> str:
    """The lockout key of a typed account name: stripped and case-folded."""
    return str(name).strip().casefold()[:255]


@dataclass(frozen=True, slots=True)
class Counted:
    """The state of an account's failures after this attempt."""

    failures: int
    locked_until: dt.datetime | None
    locked_now: bool  # this attempt locked it


def _row(session: Session, account: str, now: dt.datetime) -> LoginFailureRow:
    """The account's failure row, created if missing and locked for this transaction."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    session.execute(
        module.insert(LoginFailureRow)
        .values(account=account, failures=0, last_failure_at=now, locked_until=None)
        .on_conflict_do_nothing(index_elements=["account"])
    )
    row = session.scalar(
        select(LoginFailureRow)
        .where(LoginFailureRow.account == account)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def locked_until(session: Session, account: str, now: dt.datetime) -> dt.datetime | None:
    """Lock the account's row for this transaction; when it is locked, until when."""
    row = _row(session, account, now)
    until = _aware(row.locked_until) if row.locked_until is not None else None
    return until if until is not None and until > now else None


def fail(session: Session, account: str, now: dt.datetime, limits: AuthObligations) -> Counted:
    """Count a failed attempt (after `locked_until` locked the row); lock the account at the charter's number."""
    row = _row(session, account, now)
    until = _aware(row.locked_until) if row.locked_until is not None else None
    if until is not None and until > now:  # already locked: counted in the audit, not extending the lock
        return Counted(row.failures, until, False)
    if until is not None:  # a lock that has run out: start counting again
        row.failures, row.locked_until = 0, None
    row.failures += 1
    row.last_failure_at = now
    if row.failures >= limits.lockout_attempts:
        row.locked_until = now + limits.lockout_for.value
        return Counted(row.failures, row.locked_until, True)
    return Counted(row.failures, None, False)


def succeed(session: Session, account: str) -> None:
    """A successful sign-in: the account's failures are forgotten."""
    row = session.get(LoginFailureRow, account)
    if row is not None:
        session.delete(row)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def rate_from_env(variable: str = RATE_ENVIRONMENT) -> tuple[int, dt.timedelta]:
    """CHARTER_LOGIN_RATE (or `variable`, e.g. CHARTER_TOKEN_RATE) as `N/SECONDS`, or with a unit: `20/5m`,
    `100/1h` (failed attempts per address)."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return DEFAULT_RATE
    match = _RATE.match(text)
    if match is None or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise SystemExit(f"{variable} must read like 20/5m (failed attempts per window), found {text!r}")
    seconds = int(match.group(2)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(3)]
    return int(match.group(1)), dt.timedelta(seconds=seconds)


class SourceLimiter:
    """Failed sign-in attempts per source address in a sliding window, in this process's memory."""

    def __init__(self, limit: int, window: dt.timedelta, max_sources: int = 100_000):
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self._failures: dict[str, collections.deque[dt.datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, source: str, now: dt.datetime) -> collections.deque[dt.datetime] | None:
        times = self._failures.get(source)
        if times is not None:
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._failures[source]
                return None
        return times

    def retry_after(self, source: str, now: dt.datetime) -> int | None:
        """Seconds until `source` may try again, or None when it is under the limit."""
        with self._lock:
            times = self._recent(source, now)
            if times is None or len(times) < self.limit:
                return None
            return max(1, math.ceil((times[0] + self.window - now).total_seconds()))

    def failed(self, source: str, now: dt.datetime) -> None:
        with self._lock:
            if len(self._failures) >= self.max_sources:  # bounded memory: forget the idle sources first
                for key in list(self._failures):
                    self._recent(key, now)  # drops a source with nothing left in the window
                if len(self._failures) >= self.max_sources:
                    self._failures.pop(next(iter(self._failures)))
            self._failures.setdefault(source, collections.deque()).append(now)
