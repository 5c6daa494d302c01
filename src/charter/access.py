"""Just-in-time access in the store: requests under eligibility clauses, verdicts by quorum, the grants they
become, revocation, break glass (with its review task), and the sweep that escalates and expires requests.

A grant's window is checked by the snapshot at decision time (`policy.snapshot.ActiveGrant.covers`), so
access ends exactly on time whether or not any sweeper runs. These functions work in the caller's
transaction (`admin.Admin` authorises, audits, and takes the revision row's lock first, which serialises
concurrent verdicts: two approvals at once create one grant).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.amendments import Refused
from charter.language import ast
from charter.language.consolidate import Consolidated
from charter.notify import publish
from charter.policy.access import Allowed, Ask
from charter.policy.quorum import tally
from charter.store.models import AccessRequestRow, AccessRequestVerdictRow, GrantRow, ReviewTaskRow

MAX_REQUEST_AHEAD = dt.timedelta(days=30)  # how far in the future a requested start may be
_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: object) -> dt.timedelta:
    """`8h`, `90 minutes`, `1 day`, or a number of seconds; ValueError saying what is expected."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return dt.timedelta(seconds=text)
    match = _DURATION.match(str(text)) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected a duration such as 8h, 90m, 1d or 8 hours, found {text!r}")
    amount, unit = int(match.group(1)), match.group(2).lower()
    return dt.timedelta(seconds=amount * _UNIT_SECONDS["m" if unit.startswith("mi") else unit[0]])


def create_request(
    session: Session, ask: Ask, allowed: Allowed, starts: dt.datetime | None, now: dt.datetime
) -> AccessRequestRow:
    if starts is not None and not now - dt.timedelta(minutes=5) <= starts <= now + MAX_REQUEST_AHEAD:
        raise Refused(f"starts: expected a time from now to {MAX_REQUEST_AHEAD.days} days ahead", 400)
    row = AccessRequestRow(
        id=secrets.token_hex(8),
        subject_type=ask.subject_type,
        subject=ask.subject,
        action=ask.action,
        resource=ask.resource,
        clause=allowed.clause,
        seconds=int(ask.duration.total_seconds()),
        reason=(ask.reason or "").strip() or None,
        starts=starts,
        status="pending",
        approvers=[[q.count, q.group] for q in allowed.approvers],
        created_at=now,
    )
    session.add(row)
    session.flush()
    publish(session, "request.created", view(session, row), now)
    return row


def find(session: Session, request_id: str, lock: bool = False) -> AccessRequestRow:
    query = select(AccessRequestRow).where(AccessRequestRow.id == request_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise Refused(f'no access request "{request_id}"', 404)
    return row


def verdicts(session: Session, row: AccessRequestRow) -> list[AccessRequestVerdictRow]:
    query = select(AccessRequestVerdictRow).where(AccessRequestVerdictRow.request_id == row.id)
    return list(session.scalars(query.order_by(AccessRequestVerdictRow.at, AccessRequestVerdictRow.id)))


def approving_groups(row: AccessRequestRow) -> set[str]:
    groups = {group for _, group in row.approvers}
    return groups | ({row.escalated_to} if row.escalated_to else set())


def decide(
    session: Session,
    row: AccessRequestRow,
    person: str,
    groups: frozenset[str],
    verdict: str,
    comment: str | None,
    now: dt.datetime,
) -> AccessRequestRow:
    """One person's approve or deny. The requester never counts; each person once; the clause's quorum
    (or, once escalated, one member of the escalation group) makes the grant."""
    if row.status != "pending":
        raise Refused(f"request {row.id} is {row.status}, not pending")
    if row.subject_type == "user" and row.subject == person:
        raise Refused(f"{person} made request {row.id} and cannot approve or deny it", 403)
    counted = sorted(approving_groups(row) & groups)
    if not counted:
        names = ", ".join(f'"{g}"' for g in sorted(approving_groups(row)))
        raise Refused(f"{person} is not a member of a group that approves request {row.id} ({names})", 403)
    if any(v.person == person for v in verdicts(session, row)):
        raise Refused(f"{person} has already given a verdict on request {row.id}")
    session.add(
        AccessRequestVerdictRow(
            request_id=row.id, person=person, verdict=verdict, groups=counted, comment=comment, at=now
        )
    )
    session.flush()
    if verdict == "deny":
        row.status, row.decided_at = "denied", now
        publish(session, "request.denied", view(session, row), now)
        return row
    escalated = row.escalated_to is not None and row.escalated_to in groups
    if escalated or quorum(session, row).met:
        grant = _grant_for(row, now)
        session.add(grant)
        row.status, row.decided_at, row.grant_id = "approved", now, grant.id
        session.flush()
        publish(session, "request.approved", view(session, row), now)
    return row


def quorum(session: Session, row: AccessRequestRow):
    approvals = {v.person: v.groups for v in verdicts(session, row) if v.verdict == "approve"}
    return tally(tuple(ast.Quorum(count, group) for count, group in row.approvers), approvals)


def _grant_for(row: AccessRequestRow, now: dt.datetime) -> GrantRow:
    starts = max(now, _aware(row.starts)) if row.starts is not None else now
    return GrantRow(
        id=secrets.token_hex(8),
        kind="request",
        subject_type=row.subject_type,
        subject=row.subject,
        actions=[row.action],
        resource=row.resource,
        starts=starts,
        ends=starts + dt.timedelta(seconds=row.seconds),
        clause=row.clause,
        created_by=f"request {row.id}",
        created_at=now,
        revoked_at=None,
    )


def cancel(session: Session, row: AccessRequestRow, now: dt.datetime) -> None:
    if row.status != "pending":
        raise Refused(f"request {row.id} is {row.status}: only a pending request can be cancelled")
    row.status, row.decided_at = "cancelled", now


def break_glass(session: Session, ask: Ask, allowed: Allowed, now: dt.datetime) -> tuple[GrantRow, ReviewTaskRow]:
    """The grant at once, and the review task due within the clause's window."""
    grant = GrantRow(
        id=secrets.token_hex(8),
        kind="break glass",
        subject_type=ask.subject_type,
        subject=ask.subject,
        actions=[ask.action],
        resource=ask.resource,
        starts=now,
        ends=now + ask.duration,
        clause=allowed.clause,
        created_by=f"{ask.subject_type}:{ask.subject} (break glass)",
        created_at=now,
        revoked_at=None,
    )
    session.add(grant)
    task = ReviewTaskRow(
        id=secrets.token_hex(8),
        kind="break glass",
        clause=allowed.clause,
        reviewer_group=allowed.reviewer_group or "",
        subject=grant.id,
        details={
            "subject": f"{ask.subject_type}:{ask.subject}",
            "action": ask.action,
            "resource": ask.resource,
            "reason": ask.reason,
            "grant": grant.id,
            "ends": grant.ends.isoformat(),
        },
        status="open",
        opened_at=now,
        due=now + (allowed.review_within or dt.timedelta(hours=24)),
    )
    session.add(task)
    session.flush()
    review = {"id": task.id, "group": task.reviewer_group, "due": task.due.isoformat()}
    publish(session, "break_glass.used", {"grant": grant_view(grant), "review": review, "reason": ask.reason}, now)
    publish(session, "review.opened", {"id": task.id, "kind": task.kind, "due": task.due.isoformat()}, now)
    return grant, task


def revoke(session: Session, grant: GrantRow, by: str, now: dt.datetime) -> None:
    if grant.revoked_at is not None:
        raise Refused(f"grant {grant.id} was already revoked")
    grant.revoked_at, grant.revoked_by = now, by
    publish(session, "grant.revoked", {**grant_view(grant), "revoked_by": by}, now)


def request_of_grant(session: Session, grant_id: str) -> AccessRequestRow | None:
    return session.scalar(select(AccessRequestRow).where(AccessRequestRow.grant_id == grant_id))


def sweep(session: Session, version: Consolidated, now: dt.datetime) -> list[tuple[str, AccessRequestRow]]:
    """Escalate pending requests past the charter's escalation window, expire those past its expiry window.
    Returns what it did: ("escalated" | "expired", request)."""
    escalation = next((c.sentence for c in version.clauses if isinstance(c.sentence, ast.Escalation)), None)
    expiry = next((c.sentence for c in version.clauses if isinstance(c.sentence, ast.RequestExpiry)), None)
    done = []
    for row in session.scalars(select(AccessRequestRow).where(AccessRequestRow.status == "pending")):
        age = now - _aware(row.created_at)
        if expiry is not None and age >= expiry.within.timedelta:
            row.status, row.decided_at = "expired", now
            publish(session, "request.expired", view(session, row), now)
            done.append(("expired", row))
        elif escalation is not None and row.escalated_to is None and age >= escalation.within.timedelta:
            row.escalated_to = escalation.group
            publish(session, "request.escalated", view(session, row), now)
            done.append(("escalated", row))
    return done


def view(session: Session, row: AccessRequestRow) -> dict:
    return {
        "id": row.id,
        "subject": {"type": row.subject_type, "id": row.subject},
        "action": row.action,
        "resource": row.resource,
        "clause": row.clause,
        "duration_seconds": row.seconds,
        "reason": row.reason,
        "starts": _aware(row.starts).isoformat() if row.starts is not None else None,
        "status": row.status,
        "approvers": [{"count": count, "group": group} for count, group in row.approvers],
        "escalated_to": row.escalated_to,
        "tally": quorum(session, row).describe(),
        "verdicts": [
            {"person": v.person, "verdict": v.verdict, "groups": v.groups, "comment": v.comment}
            for v in verdicts(session, row)
        ],
        "grant": row.grant_id,
        "created_at": _aware(row.created_at).isoformat(),
        "decided_at": _aware(row.decided_at).isoformat() if row.decided_at is not None else None,
    }


def grant_view(row: GrantRow) -> dict:
    return {
        "id": row.id,
        "kind": row.kind,
        "subject": {"type": row.subject_type, "id": row.subject},
        "actions": list(row.actions),
        "resource": row.resource,
        "starts": _aware(row.starts).isoformat(),
        "ends": _aware(row.ends).isoformat(),
        "clause": row.clause,
        "revoked_at": _aware(row.revoked_at).isoformat() if row.revoked_at is not None else None,
    }


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
