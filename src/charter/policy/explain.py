"""Explain a decision: every clause considered, and why it applied or not.

The trace walks every compiled rule in clause order without the indexes, so it
is an independent second derivation of the answer; `Explanation.agrees` says
whether that derivation reached the same effect as the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass

from charter.language import patterns
from charter.policy.decision import Decision
from charter.policy.request import Request
from charter.policy.rules import Rule
from charter.policy.snapshot import Snapshot, _lapsed

KINDS = {
    "Permission": "permission",
    "Prohibition": "prohibition",
    "Eligibility": "request clause",
    "BreakGlass": "break glass",
}


@dataclass(frozen=True, slots=True)
class Step:
    clause: int | None
    kind: str
    outcome: str  # "applies", "exempt", "skipped"
    detail: str


@dataclass(frozen=True, slots=True)
class Explanation:
    request: Request
    decision: Decision
    steps: tuple[Step, ...]
    derived_allow: bool

    @property
    def agrees(self) -> bool:
        return self.derived_allow == self.decision.allowed

    def render(self) -> str:
        lines = [f"request: {self.request.describe()}", f"charter: {self.decision.charter} v{self.decision.version}"]
        for step in self.steps:
            label = f"clause {step.clause}" if step.clause is not None else "subject"
            lines.append(f"  {label:>10} {step.kind:<14} {step.outcome:<8} {step.detail}")
        lines.append(f"decision: {self.decision}")
        for obligation in self.decision.obligations:
            lines.append(f"  obligation: {obligation}")
        return "\n".join(lines)


def explain(snapshot: Snapshot, request: Request) -> Explanation:
    decision = snapshot.evaluate(request)
    steps: list[Step] = []
    principal = snapshot.principal(request.subject_type, request.subject)
    if principal is None:
        steps.append(Step(None, "subject", "denied", "unknown subject"))
        return Explanation(request, decision, tuple(steps), False)
    steps.append(Step(None, "subject", "found", f"groups: {', '.join(sorted(principal.groups)) or 'none'}"))
    if principal.blocked is not None:
        steps.append(Step(principal.blocked.clause, "subject", "denied", "; ".join(principal.blocked.reasons)))
        return Explanation(request, decision, tuple(steps), False)
    if principal.mfa_decision is not None and not request.context.mfa:
        steps.append(
            Step(principal.mfa_decision.clause, "requirement", "denied", "; ".join(principal.mfa_decision.reasons))
        )
        return Explanation(request, decision, tuple(steps), False)

    now = snapshot._now(request.context)
    attributes = snapshot._resource_attributes(request)
    forbidden = allowed = False
    for rule in snapshot.rules:
        kind = KINDS[type(rule.sentence).__name__]
        miss = _miss(rule, principal, request, now, attributes)
        if miss is not None:
            steps.append(Step(rule.clause, kind, "skipped", miss))
            continue
        if kind == "prohibition":
            if snapshot._exempt(rule, principal, request, now):
                steps.append(Step(rule.clause, kind, "exempt", "an exemption of this prohibition holds"))
                continue
            forbidden = True
            steps.append(Step(rule.clause, kind, "applies", rule.text))
        elif kind == "permission":
            allowed = True
            steps.append(Step(rule.clause, kind, "applies", rule.text))
        else:
            steps.append(Step(rule.clause, kind, "eligible", "the subject may ask for this under this clause"))
    for clause, why in sorted(snapshot.dropped.items()):
        steps.append(Step(clause, "revoked", "skipped", why))
    for active in snapshot.grants.get(principal.key, ()):
        covers = active.covers(request.action, request.resource, now)
        if covers:
            allowed = True
        steps.append(
            Step(
                active.grant.clause,
                "grant",
                "applies" if covers else "skipped",
                f"{active.grant.kind.value} grant {active.grant.id}",
            )
        )
    return Explanation(request, decision, tuple(steps), allowed and not forbidden)


def _miss(rule: Rule, principal, request: Request, now: float, attributes) -> str | None:
    """Why this rule does not apply to the request, or None when it does."""
    if not rule.selector.names(principal):
        return f'does not name {principal.type} "{principal.id}" ({rule.selector.text})'
    if rule.actions and request.action not in rule.actions:
        return f"action {request.action} is not {', '.join(sorted(rule.actions))}"
    if not any(patterns.matches(p, request.resource) for p in rule.resources):
        return f'"{request.resource}" does not match {", ".join(repr(p) for p in rule.resources)}'
    if not rule.starts <= now < rule.ends:
        return _lapsed(rule, now)
    return rule.unmet(principal, request, now, attributes)
