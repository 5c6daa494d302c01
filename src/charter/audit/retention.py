"""Retention: prune each chain as the charter's `... records are kept for D` clauses say, audited.

A chain without such a clause is kept forever. Pruning cuts at a signed checkpoint (see
`store.prune`), so what remains still verifies; the cut itself is recorded in the audit chain.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from charter.audit import store
from charter.audit.trail import AuditTrail
from charter.language import ast
from charter.language.consolidate import Consolidated

CHAIN_OF = {ast.RecordKind.AUDIT: store.AUDIT, ast.RecordKind.DECISION: store.DECISIONS}


def retention_periods(version: Consolidated) -> dict[str, tuple[dt.timedelta, int]]:
    """chain -> (how long records are kept, the clause that says so)."""
    periods = {}
    for clause in version.clauses:
        sentence = clause.sentence
        if isinstance(sentence, ast.Retention):
            periods[CHAIN_OF[sentence.records]] = (sentence.keep.timedelta, clause.number)
    return periods


def prune_expired(
    sessions: sessionmaker[Session], trail: AuditTrail, version: Consolidated, actor: str
) -> dict[str, int | None]:
    """Prune every chain with a retention clause; chain -> the seq pruned through (None: nothing to prune)."""
    now = trail.now()
    pruned: dict[str, int | None] = {}
    for chain, (keep, clause) in retention_periods(version).items():
        before = now - keep
        with sessions.begin() as session:
            through = store.prune(session, chain, before)
            pruned[chain] = through
            if through is not None:
                details = {"chain": chain, "through": through, "before": before.isoformat(), "clause": clause}
                trail.write(
                    session,
                    store.AUDIT,
                    [trail.entry(actor, "audit.prune", f"audit:{chain}", details=details)],
                )
    return pruned
