"""A decision: allow or deny, the clause that decided it, the charter version, the reasons and obligations."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Basis(Enum):
    """What kind of thing decided."""

    PERMISSION = "permission"  # a standing permission clause allowed it
    GRANT = "grant"  # a just-in-time grant under an eligibility clause allowed it
    BREAK_GLASS = "break glass"  # a break-glass grant allowed it
    PROHIBITION = "prohibition"  # a prohibition denied it
    REQUIREMENT = "requirement"  # an obligation on the subject (must use MFA) denied it
    REVOCATION = "revocation"  # the subject is revoked by a clause
    CONDITION = "condition"  # a clause would allow it, but one of its conditions failed
    DEFAULT = "default"  # nothing allows it: deny by default
    SUBJECT = "subject"  # the subject is unknown or not active


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer, and why. `clause` is the deciding clause (None for a default deny or an unknown subject).

    `eligible` names an eligibility clause under which the subject could request access (on denies);
    `grant` is the id of the just-in-time or break-glass grant that allowed it.
    `until` (POSIX seconds) is when the passing of time alone may change this answer for the same request
    and revision: a grant's end, a clause's lapse; 0.0 when the answer turned on the time of the request
    (a time-window condition, a clause not yet or no longer in force), None when only a new revision can
    change it. Enforcement points cap a cached decision's life with it (charter.enforce.cache).
    """

    allowed: bool
    basis: Basis
    charter: str
    version: int
    clause: int | None = None
    reasons: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()
    eligible: int | None = None
    grant: str | None = None
    until: float | None = None

    @property
    def effect(self) -> str:
        return "allow" if self.allowed else "deny"

    def __str__(self) -> str:
        where = f"{self.charter} v{self.version}"
        if self.clause is not None:
            where += f", clause {self.clause}"
        text = f"{self.effect}: {where}"
        if self.reasons:
            text += " (" + "; ".join(self.reasons) + ")"
        return text
