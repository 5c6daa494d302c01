"""Approval quorums: whether a set of approvers meets `2 members of group "a" and 1 member of group "b"`. Pure.

Each approver counts once, toward at most one requirement (a member of both groups fills one seat,
not two): meeting the quorum is a bipartite matching of approvers to seats, found by augmenting paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from charter.language.ast import Quorum


@dataclass(frozen=True, slots=True)
class Tally:
    """How far a quorum is met: which approver fills which seat, and the seats still open per group."""

    met: bool
    seats: tuple[tuple[str, str], ...]  # (group, approver) for each filled seat
    missing: tuple[tuple[str, int], ...]  # (group, how many more)

    def describe(self) -> str:
        if self.met:
            return "quorum met: " + ", ".join(f"{who} for {group}" for group, who in self.seats)
        return "waiting for " + " and ".join(f'{n} more of group "{g}"' for g, n in self.missing)


def tally(quorums: Sequence[Quorum], approvers: Mapping[str, Iterable[str]]) -> Tally:
    """Match `approvers` (approver -> the groups they belong to, nesting resolved) to the quorums' seats."""
    seats = [q.group for q in quorums for _ in range(q.count)]
    groups_of = {who: frozenset(groups) for who, groups in approvers.items()}
    holder: list[str | None] = [None] * len(seats)

    def place(who: str, visited: set[int]) -> bool:
        for index, group in enumerate(seats):
            if group in groups_of[who] and index not in visited:
                visited.add(index)
                if holder[index] is None or place(holder[index], visited):  # type: ignore[arg-type]
                    holder[index] = who
                    return True
        return False

    for who in sorted(groups_of):
        place(who, set())
    missing: dict[str, int] = {}
    for group, who in zip(seats, holder, strict=True):
        if who is None:
            missing[group] = missing.get(group, 0) + 1
    filled = tuple((group, who) for group, who in zip(seats, holder, strict=True) if who is not None)
    return Tally(not missing, filled, tuple(missing.items()))
