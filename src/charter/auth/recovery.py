"""Resetting a lost factor, only as the charter allows (`Lost MFA devices are reset only by 2 members of group
"helpdesk".`; without such a clause, 2 members of the charter's owning group).

A member of one of the clause's groups asks, with a reason, for user X's factor to be reset; the asker
counts as the first approval. Other members approve, each once, until `policy.quorum.tally` says the
clause's quorum is met. X can neither ask for nor approve their own reset. Once met, in the same
transaction: X's factor and recovery codes are deleted and every session and refresh token of X ends
(`end_everything`); X enrols again at the next sign-in. Each step is audited (`mfa.reset.request`,
`mfa.reset.approve`, `mfa.reset.done`); refusals are audited `denied` with the clause.

Concurrency: each step runs in `Admin._transaction`, which takes the revision row's lock first, and the
reset row is read `FOR UPDATE`, so two approvals at once cannot both complete (or double-count) a reset.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from charter.admin import Admin, Done, Invalid
from charter.amendments import Refused
from charter.auth import sessions, totp
from charter.clients import Caller
from charter.directory import repository
from charter.language import ast
from charter.policy.quorum import tally
from charter.store.models import MfaResetRow

MAX_REASON = 1000
STATUSES = ("pending", "done", "cancelled")


class MfaResets:
    def __init__(self, admin: Admin):
        self.admin = admin
        self.engine = admin.engine

    def _person(self, caller: Caller) -> tuple[str, frozenset[str]]:
        if caller.subject_type != "user":
            raise Refused("only a person (a user's API credential) may ask for or approve a factor reset", 403)
        principal = self.engine.snapshot.principal("user", caller.subject)
        return caller.subject, principal.groups if principal is not None else frozenset()

    def _refuse(self, caller: Caller, operation: str, target: str, message: str, clause: int | None, status: int = 403):
        self.engine.audit.record_alone(
            self.engine.sessions, caller.describe(), operation, target, "denied", None,
            {"reasons": [message], "clause": clause},
        )  # fmt: skip
        raise Refused(message, status, clause)

    def request(self, caller: Caller, user: str, reason: object) -> Done:
        recovery = self.engine.snapshot.auth.recovery
        target, operation = f"mfa:users/{user}", "mfa.reset.request"
        if not isinstance(reason, str) or not reason.strip():
            raise Invalid("reason", "expected a non-empty reason (why the factor is lost)")
        if len(reason) > MAX_REASON:
            raise Invalid("reason", f"expected at most {MAX_REASON} characters, found {len(reason)}")
        person, groups = self._person(caller)
        quorums = recovery.quorums
        names = " or ".join(f'"{q.group}"' for q in quorums) or "(none: the charter names no one)"
        if person == user:
            self._refuse(
                caller, operation, target, f"{person} cannot ask for a reset of their own factor", recovery.clause
            )
        counted = sorted({q.group for q in quorums} & groups)
        if not counted:
            message = f"only members of group {names} may ask for a factor reset, and {person} is not one"
            self._refuse(caller, operation, target, message, recovery.clause)
        with self.admin._transaction(caller, target, operation, None) as change:
            session, now = change.session, self.admin.now()
            repository.identity(session, "user", user)
            pending = session.scalar(
                select(MfaResetRow).where(MfaResetRow.user == user, MfaResetRow.status == "pending")
            )
            if pending is not None:
                raise Refused(f"a reset of {user}'s factor is already pending: {pending.id}", 409)
            row = MfaResetRow(
                id=secrets.token_hex(8),
                user=user,
                reason=reason.strip(),
                requested_by=person,
                clause=recovery.clause,
                approvers=[[q.count, q.group] for q in quorums],
                approvals=[{"person": person, "groups": counted, "at": now.isoformat()}],
                status="pending",
                created_at=now,
                done_at=None,
            )
            session.add(row)
            session.flush()
            self._complete_if_met(change, row, caller)
            result = view(row)
            change.details.update(reset=row.id, user=user, reason=row.reason, clause=row.clause, status=row.status)
        return Done(change.revision, result)

    def approve(self, caller: Caller, reset_id: str) -> Done:
        target, operation = f"mfa:resets/{reset_id}", "mfa.reset.approve"
        person, groups = self._person(caller)
        with self.engine.sessions() as session:
            row = session.get(MfaResetRow, reset_id)
            if row is None:
                raise Refused(f'no factor reset "{reset_id}"', 404)
            seats = {group for _, group in row.approvers}
            clause, user, status = row.clause, row.user, row.status
            already = any(a["person"] == person for a in row.approvals)
        if person == user:
            self._refuse(caller, operation, target, f"{person} cannot approve a reset of their own factor", clause)
        if not seats & groups:
            names = " or ".join(f'"{g}"' for g in sorted(seats))
            self._refuse(caller, operation, target, f"{person} is not a member of group {names}", clause)
        if status != "pending":
            raise Refused(f"factor reset {reset_id} is {status}, not pending", 409)
        if already:
            self._refuse(caller, operation, target, f"{person} has already approved reset {reset_id}", clause, 409)
        with self.admin._transaction(caller, target, operation, None) as change:
            session, now = change.session, self.admin.now()
            row = session.scalar(select(MfaResetRow).where(MfaResetRow.id == reset_id).with_for_update())
            if row is None or row.status != "pending":
                raise Refused(f"factor reset {reset_id} is no longer pending", 409)
            if any(a["person"] == person for a in row.approvals):
                raise Refused(f"{person} has already approved reset {reset_id}", 409)
            approval = {"person": person, "groups": sorted(seats & groups), "at": now.isoformat()}
            row.approvals = [*row.approvals, approval]
            session.flush()
            self._complete_if_met(change, row, caller)
            result = view(row)
            change.details.update(reset=row.id, user=row.user, clause=row.clause, status=row.status)
        return Done(change.revision, result)

    def _complete_if_met(self, change, row: MfaResetRow, caller: Caller) -> None:
        if not quorum(row).met:
            return
        session, now = change.session, self.admin.now()
        removed = totp.remove(session, row.user)
        ended = sessions.end_everything(session, row.user, now, "mfa reset")
        row.status, row.done_at = "done", now
        self.engine.audit.record(
            session, caller.describe(), "mfa.reset.done", f"mfa:users/{row.user}", "ok", None,
            {"reset": row.id, "clause": row.clause, "approvals": [a["person"] for a in row.approvals],
             "factors_removed": removed, **ended},
        )  # fmt: skip

    def list(self, caller: Caller, status: str | None = None) -> dict:
        """Resets the caller asked for, approved, is the subject of, or may approve."""
        if status is not None and status not in STATUSES:
            raise Invalid("status", f"expected one of {', '.join(STATUSES)}, found {status!r}")
        person, groups = self._person(caller)
        with self.engine.sessions() as session:
            query = select(MfaResetRow).order_by(MfaResetRow.created_at.desc())
            if status is not None:
                query = query.where(MfaResetRow.status == status)
            rows = [
                row
                for row in session.scalars(query.limit(1000))
                if row.user == person
                or any(a["person"] == person for a in row.approvals)
                or {group for _, group in row.approvers} & groups
            ]
            items = [view(row) for row in rows]
        return {"items": items, "total": len(items)}


def quorum(row: MfaResetRow):
    approvals = {a["person"]: a["groups"] for a in row.approvals if a["person"] != row.user}
    return tally(tuple(ast.Quorum(count, group) for count, group in row.approvers), approvals)


def view(row: MfaResetRow) -> dict:
    return {
        "id": row.id,
        "user": row.user,
        "reason": row.reason,
        "requested_by": row.requested_by,
        "clause": row.clause,
        "approvers": [{"count": count, "group": group} for count, group in row.approvers],
        "approvals": list(row.approvals),
        "tally": quorum(row).describe(),
        "status": row.status,
        "created_at": _iso(row.created_at),
        "done_at": _iso(row.done_at) if row.done_at is not None else None,
    }


def _iso(moment) -> str:
    import datetime as dt

    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)).isoformat()
