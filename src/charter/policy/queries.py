"""Questions over a snapshot: what may a subject do, and who may do an action on a resource.

These are the basis of access reviews and the AuthZEN search APIs. They are
not on the hot path; `who_may` asks the engine itself for each identity, so
its answers cannot disagree with decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from charter.policy.decision import Decision
from charter.policy.request import NO_CONTEXT, Context, Request
from charter.policy.snapshot import Snapshot

KIND = {"Permission": "standing", "Prohibition": "forbidden", "Eligibility": "requestable", "BreakGlass": "break glass"}


@dataclass(frozen=True, slots=True)
class Entitlement:
    """One thing a subject may (or may not) do under one clause, with the conditions it comes with."""

    kind: str  # standing | requestable | break glass | forbidden | grant
    actions: tuple[str, ...]  # empty: every action
    resources: tuple[str, ...]
    clause: int
    conditions: tuple[str, ...] = ()
    text: str = ""


def entitlements(snapshot: Snapshot, subject_type: str, subject: str) -> list[Entitlement]:
    """Everything the charter says this subject may do, may request, may break glass for, or may not do."""
    principal = snapshot.principal(subject_type, subject)
    if principal is None or principal.blocked is not None:
        return []
    found = []
    for rule in snapshot.rules:
        if not rule.selector.names(principal) or rule.selector.unmet(principal) is not None:
            continue
        if rule.exempt_selectors and any(
            s.names(principal) and s.unmet(principal) is None for s in rule.exempt_selectors
        ):
            continue
        found.append(
            Entitlement(
                KIND[type(rule.sentence).__name__],
                tuple(sorted(rule.actions)),
                rule.resources,
                rule.clause,
                tuple(c.text for c in rule.conditions),
                rule.text,
            )
        )
    for active in snapshot.grants.get(principal.key, ()):
        grant = active.grant
        found.append(
            Entitlement("grant", tuple(sorted(grant.actions)), (grant.resource,), grant.clause, (), f"grant {grant.id}")
        )
    return found


def who_may(
    snapshot: Snapshot, action: str, resource: str, context: Context = NO_CONTEXT
) -> list[tuple[str, str, Decision]]:
    """(subject type, subject id, decision) for every identity allowed `action` on `resource` in this context."""
    allowed = []
    for subject_type, principals in snapshot.principals.items():
        for subject in principals:
            decision = snapshot.evaluate(Request(subject, action, resource, context, subject_type))
            if decision.allowed:
                allowed.append((subject_type, subject, decision))
    return allowed
