"""Drift in the store: read the live state in one consistent transaction and run `policy.drift`'s checks on it.

Used by `Admin.drift` (GET /admin/v1/drift) and `charter drift`; what each check means is in docs/drift.md.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter import charters
from charter.directory import repository
from charter.engine import empty_version, grant_of
from charter.policy.drift import AmendmentState, Drift, LiveClient, OpenReview, find_drift
from charter.store.db import is_postgres
from charter.store.models import AmendmentRow, ApiClientRow, GrantRow, MfaFactorRow, ReviewTaskRow


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
    of_this_charter = select(AmendmentRow).where(AmendmentRow.charter_name == version.name)
    amendments = [
        AmendmentState(row.number, row.status, row.effective, row.last_error)
        for row in session.scalars(of_this_charter.order_by(AmendmentRow.number))
    ]
    enrolled = session.scalars(select(MfaFactorRow.user).where(MfaFactorRow.confirmed_at.is_not(None)))
    return find_drift(version, directory, grants, clients, amendments, now, _open_reviews(session), set(enrolled))


def _open_reviews(session: Session) -> list[OpenReview]:
    rows = session.scalars(select(ReviewTaskRow).where(ReviewTaskRow.status == "open").order_by(ReviewTaskRow.id))
    return [
        OpenReview(r.id, r.kind, r.clause, r.reviewer_group, r.subject, _aware(r.opened_at), _aware(r.due))
        for r in rows
    ]


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
