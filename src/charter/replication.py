"""What a replica needs to compile the same snapshot as this server: `GET /access/v1/snapshot`.

An enforcement point (charter.sdk.replica, `charter proxy`) keeps a copy of the decision data in its own
process and decides without a network hop. It receives the inputs of `Engine._rebuild`, read in one
consistent transaction: the charter text in force and its amendments in force (texts, so the replica
parses and consolidates them with the same code), the directory, the active grants, the revoked token
ids, the issuer and the revision. The replica compiles them with `charter.policy.compile_snapshot`.

Reading it is `read` on `charter:<name>/snapshot`: it is the whole directory, so it is granted like one.
An amendment in canary is named (`canary`) but not shipped: a replica decides by the version in force.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from charter import amendments, charters
from charter.directory import repository
from charter.directory.model import directory_document
from charter.store.db import current_revision, is_postgres
from charter.store.models import GrantRow, RevokedTokenRow

FORMAT = 1  # the document's shape; a replica refuses one it does not know


def snapshot_document(engine) -> dict:
    """The replica's inputs, as JSON-ready data (engine: charter.engine.Engine)."""
    now = engine.clock.now().astimezone(dt.UTC)
    today = now.date()
    with engine.sessions() as session:
        if is_postgres(engine.db):
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        revision = current_revision(session)
        directory = repository.load(session)
        texts = charters.texts_in_force(session, today)
        grants = session.scalars(select(GrantRow).where(GrantRow.revoked_at.is_(None), GrantRow.ends > now)).all()
        revoked = session.scalars(select(RevokedTokenRow.jti).where(RevokedTokenRow.expires_at > now)).all()
        canary = amendments.canary_in_effect(session, today)
        grant_data = [grant_document(row) for row in grants]
    return {
        "format": FORMAT,
        "revision": revision,
        "as_of": now.isoformat(),
        "issuer": engine.issuer,
        "charter": texts[0] if texts else None,
        "amendments": texts[1] if texts else [],
        "directory": directory_document(directory),
        "grants": grant_data,
        "revoked_tokens": sorted(revoked),
        "canary": canary[0].number if canary is not None else None,
    }


def grant_document(row: GrantRow) -> dict:
    from charter.engine import grant_of

    grant = grant_of(row)
    return {
        "id": grant.id,
        "kind": grant.kind.value,
        "subject_type": grant.subject_type,
        "subject": grant.subject,
        "actions": sorted(grant.actions),
        "resource": grant.resource,
        "starts": grant.starts.isoformat(),
        "ends": grant.ends.isoformat(),
        "clause": grant.clause,
    }
