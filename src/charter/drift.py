"""Drift in the store: read the live state in one consistent transaction and run `policy.drift`'s checks on it.

Used by `Admin.drift` (GET /admin/v1/drift) and `charter drift`; what each check means is in docs/drift.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from charter import charters
from charter.directory import repository
from charter.engine import empty_version, grant_of
from charter.policy.drift import AmendmentState, Drift, IssuedToken, LiveClient, OpenReview, find_drift
from charter.policy.obligations import obligations_of
from charter.store.db import is_postgres
from charter.store.models import (
    AmendmentRow,
    ApiClientRow,
    AuditRecordRow,
    GrantRow,
    IdentityRow,
    MfaFactorRow,
    OAuthClientRow,
    RefreshTokenRow,
    ReviewTaskRow,
    SessionRow,
)

# How far back issuance records are read for the token-lifetime check: tokens issued longer ago than this
# are taken to have expired (the charter's access-token lifetime, when longer, is used instead).
ISSUED_WINDOW = dt.timedelta(days=1)
DEFAULT_INACTIVE_DAYS = 90


def drift_in_store(session: Session, now: dt.datetime) -> Drift:
    """The drift of the store as of `now`, against the charter version in force that day.

    `session` must be fresh: on PostgreSQL its transaction is made REPEATABLE READ first, so the directory,
    grants, clients, amendments, review tasks and MFA factors are all read from one moment, as the engine reads them.
    """
    now = now.astimezone(dt.UTC)
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    version = charters.version_in_force(session, now.date()) or empty_version(now.date())
    directory = repository.load(session)
    live_grants = select(GrantRow).where(GrantRow.revoked_at.is_(None), GrantRow.ends > now)
    grants = [grant_of(row) for row in session.scalars(live_grants)]
    live_clients = select(ApiClientRow).where(ApiClientRow.revoked_at.is_(None)).order_by(ApiClientRow.id)
    clients = [
        LiveClient(row.id, row.name, row.subject_type, row.subject, _aware(row.created_at))
        for row in session.scalars(live_clients)
    ]
    clients += _oauth_service_clients(session)
    of_this_charter = select(AmendmentRow).where(AmendmentRow.charter_name == version.name)
    amendments = [
        AmendmentState(row.number, row.status, row.effective, row.last_error)
        for row in session.scalars(of_this_charter.order_by(AmendmentRow.number))
    ]
    enrolled = session.scalars(select(MfaFactorRow.user).where(MfaFactorRow.confirmed_at.is_not(None)))
    lifetime = obligations_of(version.clauses).access_token.value
    issued = _issued_tokens(session, now, max(lifetime, ISSUED_WINDOW))
    return find_drift(
        version,
        directory,
        grants,
        clients,
        amendments,
        now,
        _open_reviews(session),
        set(enrolled),
        issued,
        _last_active(session),
        inactive_after(),
    )


def inactive_after() -> dt.timedelta:
    """How long a person may go without signing in before `charter drift` reports the account
    (CHARTER_INACTIVE_DAYS, default 90: the charter has no clause for it yet)."""
    text = os.environ.get("CHARTER_INACTIVE_DAYS", "").strip()
    if text and (not text.isdigit() or int(text) < 1):
        raise SystemExit(f"CHARTER_INACTIVE_DAYS must be a whole number of days above 0, found {text!r}")
    return dt.timedelta(days=int(text) if text else DEFAULT_INACTIVE_DAYS)


def _last_active(session: Session) -> dict[str, dt.datetime]:
    """Each user's latest sign-in (a session begun) or token refresh family begun, else when the account was made."""
    last = {
        name: _aware(created)
        for name, created in session.execute(
            select(IdentityRow.name, IdentityRow.created_at).where(IdentityRow.kind == "user")
        )
    }
    for model in (SessionRow, RefreshTokenRow):
        query = select(model.user, func.max(model.created_at)).group_by(model.user)
        for user, moment in session.execute(query):
            if user in last and moment is not None:
                last[user] = max(last[user], _aware(moment))
    return last


def _oauth_service_clients(session: Session) -> list[LiveClient]:
    """OAuth clients acting for a service, dated by their current secret (what rotation renews)."""
    query = select(OAuthClientRow).where(OAuthClientRow.revoked_at.is_(None), OAuthClientRow.service.is_not(None))
    return [
        LiveClient(
            row.client_id,
            row.name,
            "service",
            row.service or "",
            _aware(row.secret_created_at or row.created_at),
            "OAuth client",
        )
        for row in session.scalars(query.order_by(OAuthClientRow.client_id))
    ]


def _issued_tokens(session: Session, now: dt.datetime, window: dt.timedelta) -> list[IssuedToken]:
    """The access tokens issued within `window` of `now` and not expired, from their audit records."""
    query = select(AuditRecordRow.details).where(
        AuditRecordRow.action == "oidc.token.issue", AuditRecordRow.time >= now - window
    )
    found = []
    for text in session.scalars(query.order_by(AuditRecordRow.seq)):
        details = json.loads(text)
        try:
            expires = dt.datetime.fromisoformat(details["exp"])
            lifetime = dt.timedelta(seconds=int(details["lifetime_seconds"]))
            token = IssuedToken(
                details["jti"], details["client_id"], details["subject_type"], details["subject"], lifetime, expires
            )
        except (KeyError, TypeError, ValueError):
            continue
        if expires > now:
            found.append(token)
    return found


def _open_reviews(session: Session) -> list[OpenReview]:
    rows = session.scalars(select(ReviewTaskRow).where(ReviewTaskRow.status == "open").order_by(ReviewTaskRow.id))
    return [
        OpenReview(r.id, r.kind, r.clause, r.reviewer_group, r.subject, _aware(r.opened_at), _aware(r.due))
        for r in rows
    ]


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
