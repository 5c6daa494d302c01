"""Runs expectation files (policy tests) against a snapshot: each expected effect and deciding clause."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from charter.language.expectations import Expectation
from charter.policy.decision import Decision
from charter.policy.request import Context, Request
from charter.policy.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Outcome:
    expectation: Expectation
    decision: Decision

    @property
    def passed(self) -> bool:
        e = self.expectation
        return self.decision.allowed == e.allow and (e.clause is None or self.decision.clause == e.clause)

    def describe(self) -> str:
        """`expected: deny by clause 4` / `got: allow by clause 1 (...)` lines for a failure."""
        e = self.expectation
        wanted = e.effect + (f" by clause {e.clause}" if e.clause is not None else "")
        got = self.decision.effect + (f" by clause {self.decision.clause}" if self.decision.clause is not None else "")
        reasons = "; ".join(self.decision.reasons)
        return f"  expected: {wanted}\n  got:      {got}" + (f" ({reasons})" if reasons else "")


def to_request(expectation: Expectation) -> Request:
    context = Context(
        mfa=expectation.mfa,
        ip=expectation.ip,
        time=expectation.at,
        scopes=frozenset(expectation.scopes),
        resource_attributes=MappingProxyType(dict(expectation.resource_attributes)),
    )
    return Request(expectation.subject, expectation.action, expectation.resource, context, expectation.subject_type)


def run(snapshot: Snapshot, expectations: Iterable[Expectation]) -> list[Outcome]:
    return [Outcome(e, snapshot.evaluate(to_request(e))) for e in expectations]
