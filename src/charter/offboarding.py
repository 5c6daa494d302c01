"""Offboarding: when an identity is disabled, leaves or is deleted, what it was given ends at once.

Called in the same transaction as the state change (`Admin.put_identity`, `Admin.delete_identity`, SCIM),
so the change and its consequences commit together and are audited together. For a person: every browser
session ends and every refresh token is revoked (`auth.sessions.end_everything`). For any identity: its
live just-in-time and break-glass grants are revoked and its pending access requests cancelled. Access
tokens already issued are refused from the next snapshot on, because verification checks that the token's
subject is still an active principal (`oidc.verify`); decisions deny a blocked principal anyway. API and
OAuth clients acting as the identity are kept (an identity enabled again gets them back) but authenticate
as a principal the snapshot blocks, so they can do nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.orm import Session

from charter.auth.sessions import end_everything
from charter.store.models import AccessRequestRow, GrantRow


def offboard(session: Session, kind: str, name: str, now: dt.datetime, reason: str) -> dict[str, int]:
    """End what `kind:name` holds, in the caller's transaction; counts of what ended, for the audit record."""
    ended = {"sessions": 0, "refresh_tokens": 0}
    if kind == "user":
        ended = end_everything(session, name, now, reason)
    ended["grants"] = session.execute(
        update(GrantRow)
        .where(
            GrantRow.subject_type == kind,
            GrantRow.subject == name,
            GrantRow.revoked_at.is_(None),
            GrantRow.ends > now,
        )
        .values(revoked_at=now, revoked_by=f"offboarding ({reason})"[:255])
    ).rowcount
    ended["requests"] = session.execute(
        update(AccessRequestRow)
        .where(
            AccessRequestRow.subject_type == kind,
            AccessRequestRow.subject == name,
            AccessRequestRow.status == "pending",
        )
        .values(status="cancelled", decided_at=now)
    ).rowcount
    return ended
