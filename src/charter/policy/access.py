"""Just-in-time access, pure: whether the charter lets a subject request (or break glass for) an action on a
resource for a duration, and under which clause; or why not, naming the clause that would apply.

No I/O: `charter.access` stores requests and grants around these answers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from charter.language import ast
from charter.policy.snapshot import Snapshot


class NotAllowed(Exception):
    """The charter does not allow this request; `clause` is the clause that would apply, if any."""

    def __init__(self, message: str, clause: int | None = None):
        super().__init__(message)
        self.message = message
        self.clause = clause


@dataclass(frozen=True, slots=True)
class Ask:
    subject_type: str
    subject: str
    action: str
    resource: str
    duration: dt.timedelta
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Allowed:
    """The clause a request or a break glass is made under, and what it asks of it."""

    clause: int
    max_duration: dt.timedelta
    approvers: tuple[ast.Quorum, ...] = ()
    reviewer_group: str | None = None  # break glass: who reviews each use
    review_within: dt.timedelta | None = None


def _hours(duration: dt.timedelta) -> str:
    seconds = int(duration.total_seconds())
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def _common(snapshot: Snapshot, ask: Ask):
    if ask.duration <= dt.timedelta(0):
        raise NotAllowed(f"the duration must be positive, found {ask.duration}")
    principal = snapshot.principal(ask.subject_type, ask.subject)
    if principal is None:
        raise NotAllowed(f'no active {ask.subject_type} "{ask.subject}" in the directory')
    return principal


def may_request(snapshot: Snapshot, ask: Ask) -> Allowed:
    """The eligibility clause this request falls under (the lowest-numbered one that allows the duration)."""
    principal = _common(snapshot, ask)
    rules = snapshot.eligibility_for(principal, ask.action, ask.resource)
    if not rules:
        raise NotAllowed(
            f"no clause lets {ask.subject_type} {ask.subject} request {ask.action} on {ask.resource}",
            _nearest_clause(snapshot, principal, ask),
        )
    for rule in rules:
        sentence: ast.Eligibility = rule.sentence  # type: ignore[assignment]
        longest = sentence.max_duration.timedelta
        if ask.duration > longest:
            continue
        if sentence.reason_required and not (ask.reason or "").strip():
            raise NotAllowed(f"clause {rule.clause} requires a reason", rule.clause)
        return Allowed(rule.clause, longest, sentence.approvers)
    first = rules[0]
    longest = first.sentence.max_duration.timedelta  # type: ignore[union-attr]
    raise NotAllowed(
        f"clause {first.clause} allows requests for up to {_hours(longest)}, {_hours(ask.duration)} asked",
        first.clause,
    )


def may_break_glass(snapshot: Snapshot, ask: Ask) -> Allowed:
    """The break-glass clause this use falls under (the lowest-numbered one that allows the duration)."""
    principal = _common(snapshot, ask)
    rules = snapshot.break_glass_for(principal, ask.action, ask.resource)
    if not rules:
        raise NotAllowed(f"no clause lets {ask.subject_type} {ask.subject} break glass on {ask.resource}")
    for rule in rules:
        sentence: ast.BreakGlass = rule.sentence  # type: ignore[assignment]
        if ask.duration <= sentence.max_duration.timedelta:
            return Allowed(
                rule.clause,
                sentence.max_duration.timedelta,
                reviewer_group=sentence.reviewer_group,
                review_within=sentence.review_within.timedelta,
            )
    first = rules[0]
    longest = first.sentence.max_duration.timedelta  # type: ignore[union-attr]
    raise NotAllowed(
        f"clause {first.clause} allows break glass for up to {_hours(longest)}, {_hours(ask.duration)} asked",
        first.clause,
    )


def _nearest_clause(snapshot: Snapshot, principal, ask: Ask) -> int | None:
    """An eligibility clause about this resource for another action or other subjects, to point at."""
    for action in sorted(snapshot.eligible):
        for rule in snapshot.eligible[action].candidates(principal, ask.resource):
            return rule.clause
    return None
