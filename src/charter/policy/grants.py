"""Active just-in-time and break-glass grants, as the decision engine sees them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from charter.language import patterns


class GrantKind(Enum):
    REQUEST = "request"  # approved under an eligibility clause
    BREAK_GLASS = "break glass"


@dataclass(frozen=True, slots=True)
class Grant:
    """Access to `actions` on resources matching `resource` for one subject, from `starts` until `ends` (exclusive).

    An empty `actions` (break glass without `to ...`) means every action.
    """

    id: str
    kind: GrantKind
    subject_type: str
    subject: str
    actions: frozenset[str]
    resource: str
    starts: dt.datetime
    ends: dt.datetime
    clause: int

    def covers(self, action: str, resource: str, now: float) -> bool:
        return (
            self.starts.timestamp() <= now < self.ends.timestamp()
            and (not self.actions or action in self.actions)
            and patterns.matches(self.resource, resource)
        )
