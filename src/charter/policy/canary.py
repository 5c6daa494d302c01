"""Canary amendments, pure: the plan (cohort, margin, promotion time), who is in the cohort, and the verdict.

An approved amendment with a canary plan first takes effect for a cohort only: the members of a group,
or a stated percentage of subjects chosen by a stable hash (the same subjects on every server and every
rebuild, different ones for each amendment). While it runs, the cohort's deny rate is compared with
its own rate before the canary started; more than `margin` percentage points above it, over at least
`min_decisions` decisions, withdraws the amendment; `promote_after` without that, it takes effect for
everyone. No I/O here: counting decisions is `charter.canary`'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from charter.policy.principal import Principal

DEFAULT_MARGIN = 5.0  # percentage points
DEFAULT_PROMOTE_AFTER_HOURS = 7 * 24
DEFAULT_BASELINE_DAYS = 7
DEFAULT_MIN_DECISIONS = 100
_PLAN_KEYS = {"group", "percent", "margin", "promote_after_hours", "baseline_days", "min_decisions"}


class InvalidPlan(ValueError):
    """A canary plan that cannot be used, with the field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"canary.{field}: {message}")
        self.field = f"canary.{field}"
        self.message = message


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    """Who goes first, how much worse their deny rate may get, and when everyone follows."""

    group: str | None = None
    percent: float | None = None
    margin: float = DEFAULT_MARGIN
    promote_after: dt.timedelta = dt.timedelta(hours=DEFAULT_PROMOTE_AFTER_HOURS)
    baseline_days: int = DEFAULT_BASELINE_DAYS
    min_decisions: int = DEFAULT_MIN_DECISIONS

    @classmethod
    def from_json(cls, value: object) -> CanaryPlan:
        """Validate a plan as the API takes it; InvalidPlan names the first field at fault."""
        if not isinstance(value, Mapping):
            raise InvalidPlan("", 'expected an object such as {"group": "support"} or {"percent": 10}')
        unknown = sorted(set(value) - _PLAN_KEYS)
        if unknown:
            raise InvalidPlan(unknown[0], f"unknown field (expected one of {', '.join(sorted(_PLAN_KEYS))})")
        group, percent = value.get("group"), value.get("percent")
        if (group is None) == (percent is None):
            raise InvalidPlan("group", 'expected exactly one of "group" (a group name) or "percent" (1-100)')
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise InvalidPlan("group", f"expected a group name, found {group!r}")
        if percent is not None and (not _number(percent) or not 0 < percent <= 100):
            raise InvalidPlan("percent", f"expected a number above 0 and at most 100, found {percent!r}")
        margin = value.get("margin", DEFAULT_MARGIN)
        if not _number(margin) or not 0 < margin <= 100:
            raise InvalidPlan("margin", f"expected percentage points above 0 and at most 100, found {margin!r}")
        hours = _whole(value, "promote_after_hours", DEFAULT_PROMOTE_AFTER_HOURS, 1, 24 * 366)
        baseline = _whole(value, "baseline_days", DEFAULT_BASELINE_DAYS, 1, 366)
        least = _whole(value, "min_decisions", DEFAULT_MIN_DECISIONS, 1, 10**9)
        share = float(percent) if percent is not None else None
        return cls(group, share, float(margin), dt.timedelta(hours=hours), baseline, least)

    def to_json(self) -> dict:
        cohort = {"group": self.group} if self.group is not None else {"percent": self.percent}
        return {
            **cohort,
            "margin": self.margin,
            "promote_after_hours": int(self.promote_after.total_seconds() // 3600),
            "baseline_days": self.baseline_days,
            "min_decisions": self.min_decisions,
        }

    def describe(self) -> str:
        who = f'members of group "{self.group}"' if self.group is not None else f"{self.percent:g}% of subjects"
        hours = int(self.promote_after.total_seconds() // 3600)
        return (
            f"{who} first; withdrawn if their deny rate rises more than {self.margin:g} points above the "
            f"{self.baseline_days} days before; everyone after {hours} hours without that"
        )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Mapping, key: str, default: int, least: int, most: int) -> int:
    found = value.get(key, default)
    if not isinstance(found, int) or isinstance(found, bool) or not least <= found <= most:
        raise InvalidPlan(key, f"expected a whole number from {least} to {most}, found {found!r}")
    return found


def salt(charter_name: str, amendment: int) -> str:
    """What a percentage cohort's hash is salted with: each amendment picks its own subjects."""
    return f"{charter_name}/amendment {amendment}"


def in_percent(salt: str, key: str, percent: float) -> bool:
    """Whether subject `key` falls in the first `percent` of a hash space salted per amendment (stable)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < percent / 100 * 2**64


def cohort(plan: CanaryPlan, principals: Iterable[Principal], salt: str) -> frozenset[str]:
    """The principal keys (`user:carol`) the canary applies to. Group membership includes nesting."""
    if plan.group is not None:
        return frozenset(p.key for p in principals if plan.group in p.groups)
    return frozenset(p.key for p in principals if in_percent(salt, p.key, plan.percent or 0.0))


@dataclass(frozen=True, slots=True)
class Counts:
    decisions: int = 0
    denies: int = 0

    @property
    def rate(self) -> float:
        """Denies per decision, in percent (0 with no decisions)."""
        return 100.0 * self.denies / self.decisions if self.decisions else 0.0

    def to_json(self) -> dict:
        return {"decisions": self.decisions, "denies": self.denies, "deny_rate": round(self.rate, 3)}


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # "withdraw" | "promote" | "wait"
    reason: str


def judge(plan: CanaryPlan, baseline: Counts, during: Counts, elapsed: dt.timedelta) -> Verdict:
    """What to do with a running canary, given the cohort's decisions before it and since it started."""
    rise = during.rate - baseline.rate
    measured = (
        f"cohort deny rate {during.rate:.2f}% over {during.decisions:,} decisions, "
        f"baseline {baseline.rate:.2f}% over {baseline.decisions:,}"
    )
    if during.decisions >= plan.min_decisions and rise > plan.margin:
        return Verdict("withdraw", f"{measured}: up {rise:.2f} points, more than the margin of {plan.margin:g}")
    if elapsed >= plan.promote_after:
        return Verdict("promote", f"{measured}: within the margin of {plan.margin:g} points for {elapsed}")
    return Verdict("wait", measured)
