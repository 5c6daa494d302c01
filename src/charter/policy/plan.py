"""The plan of an amendment: who gains and who loses what, computed from the directory, not a text diff. Pure.

Both versions are compiled against the same directory; for every identity, what the charter says it may
do (`queries.entitlements`: standing, requestable, break glass, forbidden) is compared entry by entry,
keyed by (kind, action, resource pattern). An entry only one side has is gained or lost; an entry both
sides have under different conditions is loosened (conditions dropped: access in more situations) or
tightened. Identities with the same change are grouped, so the plan reads as
"12 members ... gain read on tickets/* (clause 2)".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from charter.policy.queries import Entitlement, entitlements
from charter.policy.snapshot import Snapshot

EVERY_ACTION = "*"
CHANGES = ("gains", "loses", "loosened", "tightened")


@dataclass(frozen=True, slots=True)
class AccessChange:
    """One change of access, for the subjects it applies to.

    `kind` is what the charter grants (standing, requestable, break glass) or forbids (forbidden: a
    subject that *gains* a forbidden entry loses that access). `conditions_dropped` / `conditions_added`
    say how a loosened or tightened entry changed.
    """

    change: str  # gains | loses | loosened | tightened
    kind: str
    action: str  # EVERY_ACTION for every action
    resource: str
    clauses_before: tuple[int, ...]
    clauses_after: tuple[int, ...]
    conditions_before: tuple[str, ...]
    conditions_after: tuple[str, ...]
    subjects: tuple[tuple[str, str], ...]  # (type, id), sorted

    @property
    def count(self) -> int:
        return len(self.subjects)

    @property
    def conditions_dropped(self) -> tuple[str, ...]:
        return tuple(c for c in self.conditions_before if c not in self.conditions_after)

    @property
    def conditions_added(self) -> tuple[str, ...]:
        return tuple(c for c in self.conditions_after if c not in self.conditions_before)

    @property
    def clauses(self) -> tuple[int, ...]:
        """The clauses responsible: those of the side that has the entry (both, when conditions changed)."""
        return tuple(sorted(set(self.clauses_before) | set(self.clauses_after)))

    def describe(self) -> str:
        action = "every action" if self.action == EVERY_ACTION else self.action
        what = {
            "standing": f"{action} on {self.resource}",
            "requestable": f"the right to request {action} on {self.resource}",
            "break glass": f"break glass for {action} on {self.resource}",
            "forbidden": f"a prohibition of {action} on {self.resource}",
        }.get(self.kind, f"{self.kind} {action} on {self.resource}")
        if self.change in ("gains", "loses"):
            conditions = self.conditions_after if self.change == "gains" else self.conditions_before
            suffix = f" ({', '.join(conditions)})" if conditions else ""
            return f"{self.change} {what}{suffix}"
        parts = []
        if self.conditions_dropped:
            parts.append("no longer " + ", ".join(self.conditions_dropped))
        if self.conditions_added:
            parts.append("now " + ", ".join(self.conditions_added))
        return f"{self.change}: {what}: " + "; ".join(parts)

    def to_json(self) -> dict:
        return {
            "change": self.change,
            "kind": self.kind,
            "action": self.action,
            "resource": self.resource,
            "clauses": list(self.clauses),
            "clauses_before": list(self.clauses_before),
            "clauses_after": list(self.clauses_after),
            "conditions_before": list(self.conditions_before),
            "conditions_after": list(self.conditions_after),
            "conditions_dropped": list(self.conditions_dropped),
            "conditions_added": list(self.conditions_added),
            "count": self.count,
            "subjects": [{"type": t, "id": i} for t, i in self.subjects],
            "summary": self.describe(),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[AccessChange, ...]
    new_warnings: tuple[str, ...] = ()
    resolved_warnings: tuple[str, ...] = ()

    @property
    def changes_nothing(self) -> bool:
        return not self.changes

    def to_json(self) -> dict:
        return {
            "changes": [c.to_json() for c in self.changes],
            "subjects_affected": len({s for c in self.changes for s in c.subjects}),
            "new_warnings": list(self.new_warnings),
            "resolved_warnings": list(self.resolved_warnings),
        }


# (kind, action, resource) -> the (clause, conditions) entries a subject has for it
_Entries = dict[tuple[str, str, str], list[tuple[int, tuple[str, ...]]]]


def plan(
    before: Snapshot, after: Snapshot, new_warnings: Iterable[str] = (), resolved_warnings: Iterable[str] = ()
) -> Plan:
    """What changes for each identity between two compiled versions (over the same directory)."""
    grouped: dict[tuple, list[tuple[str, str]]] = defaultdict(list)
    for subject_type, subject in _identities(before, after):
        old = _entries(entitlements(before, subject_type, subject))
        new = _entries(entitlements(after, subject_type, subject))
        for key in old.keys() | new.keys():
            change = _compare(old.get(key), new.get(key))
            if change is not None:
                grouped[(change, *key, *_sides(old.get(key), new.get(key)))].append((subject_type, subject))
    changes = [
        AccessChange(change, kind, action, resource, cb, ca, condb, conda, tuple(sorted(subjects)))
        for (change, kind, action, resource, cb, ca, condb, conda), subjects in grouped.items()
    ]
    changes.sort(key=lambda c: (CHANGES.index(c.change), c.resource, c.action, c.kind, c.clauses))
    return Plan(tuple(changes), tuple(new_warnings), tuple(resolved_warnings))


def _identities(*snapshots: Snapshot) -> list[tuple[str, str]]:
    found = set()
    for snapshot in snapshots:
        for subject_type, principals in snapshot.principals.items():
            found.update((subject_type, name) for name in principals)
    return sorted(found)


def _entries(found: list[Entitlement]) -> _Entries:
    entries: _Entries = defaultdict(list)
    for entitlement in found:
        if entitlement.kind == "grant":  # grants are live state, not the charter: the same on both sides
            continue
        for action in entitlement.actions or (EVERY_ACTION,):
            for resource in entitlement.resources:
                entries[(entitlement.kind, action, resource)].append((entitlement.clause, entitlement.conditions))
    return entries


def _compare(old: list | None, new: list | None) -> str | None:
    if old is None:
        return "gains"
    if new is None:
        return "loses"
    old_conditions, new_conditions = _conditions(old), _conditions(new)
    if old_conditions == new_conditions:
        return None
    # Fewer conditions on the easiest path means access in more situations.
    return (
        "loosened"
        if min(map(len, new_conditions)) < min(map(len, old_conditions)) or (new_conditions < old_conditions)
        else "tightened"
    )


def _conditions(entries: list[tuple[int, tuple[str, ...]]]) -> frozenset[tuple[str, ...]]:
    return frozenset(conditions for _, conditions in entries)


def _sides(old: list | None, new: list | None) -> tuple:
    def clauses(entries):
        return tuple(sorted({clause for clause, _ in entries or ()}))

    def conditions(entries):
        seen: list[str] = []
        for _, found in entries or ():
            seen.extend(c for c in found if c not in seen)
        return tuple(seen)

    return clauses(old), clauses(new), conditions(old), conditions(new)
