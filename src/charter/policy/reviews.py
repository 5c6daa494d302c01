"""Access reviews as plain data: which membership campaigns are due, who is under review, when a task is late.

Pure: a charter version and a directory in, campaigns, members and dates out. `charter.reviews` reads the
store, calls these and writes the tasks; docs/reviews.md explains the rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from charter.directory.model import Directory
from charter.language import ast
from charter.language.consolidate import Consolidated
from charter.language.formatter import format_duration

MEMBERSHIP = "membership"
BREAK_GLASS = "break glass"
VERDICTS = ("keep", "revoke")
OUTCOMES = ("ok", "misuse")  # a break-glass use was justified, or it was not
# A campaign is due within its period, but never more than two weeks: a long period (a quarter, a year)
# must not leave revocations waiting that long, and two weeks is the usual time given to reviewers.
LONGEST_WINDOW = dt.timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Campaign:
    """A review clause of the version in force: `group`'s membership reviewed `every` by `reviewer_group`."""

    clause: int
    group: str
    reviewer_group: str
    every: dt.timedelta
    every_text: str  # as the clause says it: "30 days"

    @property
    def subject(self) -> str:
        """The task's subject: what is reviewed."""
        return f"group:{self.group}"

    @property
    def window(self) -> dt.timedelta:
        """How long reviewers have once a campaign opens."""
        return min(self.every, LONGEST_WINDOW)


def campaigns(version: Consolidated) -> list[Campaign]:
    """Every membership review clause of `version`, in clause order."""
    found = []
    for clause in version.clauses:
        sentence = clause.sentence
        if isinstance(sentence, ast.MembershipReview):
            every = sentence.every
            found.append(
                Campaign(
                    clause.number, sentence.group, sentence.reviewer_group, every.timedelta, format_duration(every)
                )
            )
    return found


def campaign_due(campaign: Campaign, last_opened: dt.datetime | None, still_open: bool, now: dt.datetime) -> bool:
    """Whether a new campaign opens now: at once when there was none, then once a period after the last.

    Never while the last one is still open: an unfinished (overdue) campaign is what reviewers must finish,
    and drift reports it; a second one would ask them the same questions twice.
    """
    if still_open:
        return False
    return last_opened is None or now >= last_opened + campaign.every


@dataclass(frozen=True, slots=True)
class Member:
    """Someone under review: a user, service or partner, and the groups they are directly in that make them
    a member of the reviewed group (the group itself, or groups nested in it)."""

    type: str
    id: str
    through: tuple[str, ...]
    state: str = "active"

    @property
    def key(self) -> str:
        return f"{self.type}:{self.id}"

    def to_json(self) -> dict:
        return {"type": self.type, "id": self.id, "through": list(self.through), "state": self.state}


def members(directory: Directory, group: str) -> list[Member]:
    """Everyone who is a member of `group`, directly or through nested groups, sorted by type and id."""
    parents = {name: g.groups for name, g in directory.groups.items()}
    found = []
    for type_, identities in (
        ("user", directory.users),
        ("service", directory.services),
        ("partner", directory.partners),
    ):
        for identity in sorted(identities.values(), key=lambda i: i.id):
            direct = through(identity.groups, group, parents)
            if direct:
                found.append(Member(type_, identity.id, direct, identity.state.value))
    return found


def through(direct_groups: Iterable[str], group: str, parents: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Which of an identity's direct groups make it a member of `group` (each is `group` or nested in it)."""
    return tuple(sorted(g for g in set(direct_groups) if group in _ancestors(g, parents)))


def _ancestors(group: str, parents: Mapping[str, Iterable[str]]) -> set[str]:
    """`group` and every group it is nested in (the store refuses cycles; `seen` guards anyway)."""
    seen: set[str] = set()
    frontier = [group]
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(parents.get(current, ()))
    return seen


def is_overdue(status: str, due: dt.datetime, now: dt.datetime) -> bool:
    """An open task past its due instant (exactly at it is still on time)."""
    return status == "open" and now > due


def pending(listed: Iterable[Mapping], verdicts: Mapping[str, object]) -> list[str]:
    """The members of a membership task (as its details list them) still without a verdict."""
    return [key for key in (f"{m['type']}:{m['id']}" for m in listed) if key not in verdicts]
