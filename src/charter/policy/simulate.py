"""Replay logged decisions against two versions of the charter and report each one that would flip. Pure.

Each logged decision is asked again, with the context it was logged with and at the moment it was made
(its own `context.time` when it had one, else the time of the record), of the version in force and of
the proposed one, compiled over the same directory. Where the two answers differ, the decision flips:
allow -> deny or deny -> allow. Flips are grouped by direction and by the clauses that decided each side
("allowed by clause 2, now denied by clause 4"), with a count and the first few as examples.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from charter.policy.request import Context, Request
from charter.policy.snapshot import Snapshot

EXAMPLES = 3
ALLOW_TO_DENY, DENY_TO_ALLOW = "allow -> deny", "deny -> allow"


@dataclass(frozen=True, slots=True)
class Logged:
    """One decision as the decision log holds it."""

    time: dt.datetime
    subject_type: str
    subject: str
    action: str
    resource: str
    context: Context


@dataclass(frozen=True, slots=True)
class Example:
    logged: Logged
    reasons: tuple[str, ...]  # why the side that denies denies

    def to_json(self) -> dict:
        logged = self.logged
        return {
            "time": logged.time.isoformat(),
            "subject": f"{logged.subject_type}:{logged.subject}",
            "action": logged.action,
            "resource": logged.resource,
            "reasons": list(self.reasons),
        }


@dataclass(slots=True)
class FlipGroup:
    direction: str
    clause_before: int | None
    clause_after: int | None
    count: int = 0
    examples: list[Example] = field(default_factory=list)

    def describe(self) -> str:
        before, after = ("allowed", "denied") if self.direction == ALLOW_TO_DENY else ("denied", "allowed")
        return f"{before} by {_clause(self.clause_before)}, {after} by {_clause(self.clause_after)}"

    def to_json(self) -> dict:
        return {
            "direction": self.direction,
            "clause_before": self.clause_before,
            "clause_after": self.clause_after,
            "count": self.count,
            "summary": self.describe(),
            "examples": [e.to_json() for e in self.examples],
        }


@dataclass(slots=True)
class Simulation:
    replayed: int = 0
    groups: dict[tuple, FlipGroup] = field(default_factory=dict)

    @property
    def flips(self) -> int:
        return sum(g.count for g in self.groups.values())

    def flipped(self, direction: str) -> int:
        return sum(g.count for g in self.groups.values() if g.direction == direction)

    def ordered(self) -> list[FlipGroup]:
        """Largest groups first; ties in a stable order."""
        return sorted(
            self.groups.values(),
            key=lambda g: (-g.count, g.direction, _order(g.clause_before), _order(g.clause_after)),
        )

    def to_json(self) -> dict:
        return {
            "replayed": self.replayed,
            "flips": self.flips,
            "allow_to_deny": self.flipped(ALLOW_TO_DENY),
            "deny_to_allow": self.flipped(DENY_TO_ALLOW),
            "groups": [g.to_json() for g in self.ordered()],
        }


def simulate(
    current: Snapshot,
    proposed: Snapshot,
    logged: Iterable[Logged],
    progress: Callable[[int], None] | None = None,
    every: int = 10_000,
) -> Simulation:
    """Ask every logged decision of both versions; `progress(replayed so far)` every `every` decisions."""
    result = Simulation()
    groups = result.groups
    replayed = 0
    for entry in logged:
        request = Request(entry.subject, entry.action, entry.resource, entry.context, entry.subject_type)
        before = current.evaluate(request)
        after = proposed.evaluate(request)
        replayed += 1
        if progress is not None and replayed % every == 0:
            progress(replayed)
        if before.allowed == after.allowed:
            continue
        direction = ALLOW_TO_DENY if before.allowed else DENY_TO_ALLOW
        key = (direction, before.clause, after.clause)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FlipGroup(direction, before.clause, after.clause)
        group.count += 1
        if len(group.examples) < EXAMPLES:
            group.examples.append(Example(entry, after.reasons if before.allowed else before.reasons))
    result.replayed = replayed
    if progress is not None:
        progress(replayed)
    return result


def _clause(number: int | None) -> str:
    return f"clause {number}" if number is not None else "default (no clause)"


def _order(number: int | None) -> int:
    return -1 if number is None else number
