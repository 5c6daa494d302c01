"""Watching an amendment in canary: count its cohort's decisions in the decision log, before and since it
started, and raise the alarm when it is withdrawn. The rules (cohort, verdict) are `policy.canary`'s."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from charter.audit.store import aware, during
from charter.engine import Engine
from charter.policy.canary import CanaryPlan, Counts, Verdict, cohort, judge, salt
from charter.store.models import AmendmentRow, DecisionRecordRow

log = logging.getLogger("charter.canary")


@dataclass(frozen=True, slots=True)
class Measurement:
    cohort_size: int
    baseline: Counts
    during: Counts
    verdict: Verdict
    at: dt.datetime

    def to_json(self) -> dict:
        return {
            "cohort_size": self.cohort_size,
            "baseline": self.baseline.to_json(),
            "during": self.during.to_json(),
            "verdict": self.verdict.action,
            "reason": self.verdict.reason,
            "measured_at": self.at.isoformat(),
        }


def cohort_of(row: AmendmentRow, engine: Engine) -> frozenset[str]:
    """The subjects the canary applies to: the engine's own when its snapshot runs this canary."""
    snapshot = engine.snapshot
    if snapshot.canary is not None and snapshot.canary.amendment == row.number:
        return snapshot.canary.cohort
    principals = [p for kind in snapshot.principals.values() for p in kind.values()]
    return cohort(CanaryPlan.from_json(row.canary), principals, salt(row.charter_name, row.number))


def measure(session: Session, row: AmendmentRow, engine: Engine, now: dt.datetime) -> Measurement:
    plan = CanaryPlan.from_json(row.canary)
    started = aware(row.canary_started_at or now)
    members = cohort_of(row, engine)
    baseline = _counts(session, members, started - dt.timedelta(days=plan.baseline_days), started)
    since = _counts(session, members, started, now)
    return Measurement(len(members), baseline, since, judge(plan, baseline, since, now - started), now)


def _counts(session: Session, members: frozenset[str], since: dt.datetime, until: dt.datetime) -> Counts:
    """Decisions and denies of `members` logged in [since, until): one grouped query, filtered here."""
    table = DecisionRecordRow.__table__
    query = (
        select(table.c.actor, table.c.outcome, func.count())
        .where(*during(table.c, since, until))
        .group_by(table.c.actor, table.c.outcome)
    )
    decisions = denies = 0
    for actor, outcome, count in session.execute(query):
        if actor in members:
            decisions += count
            if outcome == "deny":
                denies += count
    return Counts(decisions, denies)


def alert(charter_name: str, number: int, measured: Measurement) -> None:
    log.error("ALERT: amendment %s to %s withdrawn from canary: %s", number, charter_name, measured.verdict.reason)
