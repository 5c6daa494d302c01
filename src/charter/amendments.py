"""Amendments in the store: draft, propose (after the checker), approve or reject by quorum, withdraw,
apply when due (at once, or first for a canary cohort), and the versions they make.

The lifecycle: draft -> proposed -> approved (quorum met, effective date reached) or scheduled (quorum
met, date ahead) -> in force (applied), or -> canary -> in force (promoted) | withdrawn (the cohort's deny
rate rose); or rejected (one eligible person said no) or withdrawn. Who must approve is the amendment's
`Approved by ...` line, which the checker has already held to at least what the charter requires; each
person counts once (`policy.quorum`), and the proposer never counts. An approval counts only while the
charter's expectation files, as the amendment would leave them, pass against the version it would make.
These functions work in the caller's transaction; authorisation and the audit record are the caller's
(`admin.Admin`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from charter import charters, expectation_files
from charter.audit.store import aware
from charter.clock import FixedClock
from charter.directory.model import Directory
from charter.language import ast
from charter.language.checker import check
from charter.language.consolidate import Consolidated, consolidate
from charter.language.errors import CharterError, Diagnostic
from charter.language.parser import parse_amendment, parse_charter
from charter.language.rollback import NothingToRollBack, Rollback, approvers_for, write_rollback
from charter.policy.canary import CanaryPlan, InvalidPlan
from charter.policy.plan import Plan
from charter.policy.plan import plan as access_plan
from charter.policy.quorum import Tally, tally
from charter.policy.simulate import Logged, Simulation
from charter.policy.simulate import simulate as replay
from charter.policy.snapshot import compile_snapshot
from charter.store.models import AmendmentRow, AmendmentVerdictRow, CharterVersionRow

PENDING = ("draft", "proposed", "approved", "scheduled", "canary")
LIVE = (*PENDING, "in_force")  # amendments that count when numbering and checking a new one


class Refused(Exception):
    """The step is not allowed now: wrong state, not eligible, already voted. `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 409, clause: int | None = None):
        super().__init__(message)
        self.status = status
        self.clause = clause  # the clause of the charter the refusal rests on, when there is one


@dataclass(frozen=True, slots=True)
class Proposed:
    row: AmendmentRow
    warnings: tuple[Diagnostic, ...]


def charter_row(session: Session) -> CharterVersionRow:
    row = charters.latest(session)
    if row is None:
        raise Refused("no charter has been uploaded: there is nothing to amend", 404)
    return row


def parsed(row: AmendmentRow) -> ast.Amendment:
    return parse_amendment(row.text, f"amendment {row.number}")


def live(session: Session, charter_name: str) -> list[AmendmentRow]:
    query = (
        select(AmendmentRow)
        .where(AmendmentRow.charter_name == charter_name, AmendmentRow.status.in_(LIVE))
        .order_by(AmendmentRow.number)
    )
    return list(session.scalars(query))


def find(session: Session, charter_name: str, number: int) -> AmendmentRow:
    row = session.scalar(
        select(AmendmentRow).where(AmendmentRow.charter_name == charter_name, AmendmentRow.number == number)
    )
    if row is None:
        raise Refused(f'"{charter_name}" has no amendment {number}', 404)
    return row


def propose(
    session: Session,
    text: str,
    directory: Directory,
    proposer: str,
    now: dt.datetime,
    *,
    draft: bool = False,
    expectations: object = None,
    canary: object = None,
) -> Proposed:
    """Check the amendment with every live one before it and store it (as proposed, or as a draft to edit
    further); charters.Rejected or Refused, storing nothing, if it does not pass.

    `expectations` ({file name: text, or None to delete}) are the expectation files it updates; `canary`
    a canary plan (`policy.canary.CanaryPlan.from_json`)."""
    charter, amendment, warnings = _checked(session, text, directory, now)
    updates, plan = _extras(charter.name, expectations, canary, directory)
    row = AmendmentRow(
        charter_name=charter.name,
        number=amendment.number,
        text=text,
        status="draft" if draft else "proposed",
        effective=amendment.effective,
        proposed_by=proposer,
        expectations=updates or None,
        canary=plan.to_json() if plan is not None else None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return Proposed(row, warnings)


def edit_draft(
    session: Session,
    row: AmendmentRow,
    text: str,
    directory: Directory,
    now: dt.datetime,
    *,
    expectations: object = None,
    canary: object = None,
) -> Proposed:
    """Replace a draft's text (same number) and extras, after the same checks as a proposal."""
    if row.status != "draft":
        raise Refused(f"amendment {row.number} is {row.status.replace('_', ' ')}: only a draft can be edited")
    charter, amendment, warnings = _checked(session, text, directory, now, editing=row)
    if amendment.number != row.number:
        raise Refused(f"the draft is amendment {row.number}; the text is amendment {amendment.number}", 422)
    updates, plan = _extras(charter.name, expectations, canary, directory)
    row.text, row.effective = text, amendment.effective
    row.expectations = updates or None
    row.canary = plan.to_json() if plan is not None else None
    row.updated_at = now
    return Proposed(row, warnings)


def submit(session: Session, row: AmendmentRow, directory: Directory, now: dt.datetime) -> Proposed:
    """A draft becomes proposed, checked again (the charter or the directory may have moved on)."""
    if row.status != "draft":
        raise Refused(f"amendment {row.number} is {row.status.replace('_', ' ')}: only a draft can be proposed")
    _, _, warnings = _checked(session, row.text, directory, now, editing=row)
    _move(row, "proposed", now)
    return Proposed(row, warnings)


def _checked(
    session: Session, text: str, directory: Directory, now: dt.datetime, editing: AmendmentRow | None = None
) -> tuple[ast.Charter, ast.Amendment, tuple[Diagnostic, ...]]:
    """Parse `text` and check it after every live amendment (but `editing`); raise what is wrong."""
    base = charter_row(session)
    charter = parse_charter(base.text, "charter")
    try:
        amendment = parse_amendment(text, "amendment")
    except CharterError as error:
        raise charters.Rejected(error.diagnostics) from None
    if amendment.charter_name != charter.name:
        raise Refused(
            f'the amendment is to "{amendment.charter_name}", but the charter in the store is "{charter.name}"'
        )
    others = [parsed(row) for row in live(session, charter.name) if editing is None or row.id != editing.id]
    used = session.scalar(
        select(AmendmentRow).where(
            AmendmentRow.charter_name == charter.name,
            AmendmentRow.number == amendment.number,
            AmendmentRow.status.not_in(LIVE),
        )
    )
    if used is not None:  # a number is never reused: the withdrawn or rejected amendment keeps it in the record
        raise Refused(f"amendment {amendment.number} was {used.status}; numbers are not reused")
    taken = {a.number for a in others}
    if amendment.number in taken or (taken and amendment.number < max(taken)):
        raise Refused(f"amendment {amendment.number} is taken or out of order (the last is {max(taken)})")
    result = check(charter, [*others, amendment], directory.names(), now.date(), "charter")
    if result.errors:
        raise charters.Rejected(result.errors)
    return charter, amendment, result.warnings


def _extras(
    charter_name: str, expectations: object, canary: object, directory: Directory
) -> tuple[dict[str, str | None], CanaryPlan | None]:
    try:
        updates = expectation_files.parse_updates(expectations, charter_name)
        plan = CanaryPlan.from_json(canary) if canary is not None else None
    except expectation_files.BadFile as error:
        if error.diagnostics:
            raise charters.Rejected(error.diagnostics) from None
        raise Refused(str(error), 422) from None
    except InvalidPlan as error:
        raise Refused(str(error), 422) from None
    if plan is not None and plan.group is not None and plan.group not in directory.groups:
        raise Refused(f'canary.group: the directory has no group "{plan.group}"', 422)
    return updates, plan


def verdicts(session: Session, row: AmendmentRow) -> list[AmendmentVerdictRow]:
    query = select(AmendmentVerdictRow).where(AmendmentVerdictRow.amendment_id == row.id)
    return list(session.scalars(query.order_by(AmendmentVerdictRow.at, AmendmentVerdictRow.id)))


def current_tally(session: Session, row: AmendmentRow) -> Tally:
    approvals = {v.person: v.groups for v in verdicts(session, row) if v.verdict == "approve"}
    return tally(parsed(row).approvers, approvals)


def decide(
    session: Session,
    row: AmendmentRow,
    person: str,
    groups: frozenset[str],
    verdict: str,
    now: dt.datetime,
    directory: Directory,
    comment: str | None = None,
) -> Tally:
    """Record one person's approval or rejection; move the amendment on when the quorum is met (or refused).

    An approval is refused while the expectation files fail against the version the amendment would make."""
    if row.status != "proposed":
        raise Refused(f"amendment {row.number} is {row.status.replace('_', ' ')}, not proposed")
    if row.proposed_by == f"user:{person}":
        raise Refused(f"{person} proposed amendment {row.number} and cannot approve or reject it", 403)
    wanted = {q.group for q in parsed(row).approvers}
    counted = sorted(wanted & groups)
    if not counted:
        names = ", ".join(f'"{g}"' for g in sorted(wanted))
        raise Refused(f"{person} is not a member of a group that approves amendment {row.number} ({names})", 403)
    if any(v.person == person for v in verdicts(session, row)):
        raise Refused(f"{person} has already given a verdict on amendment {row.number}")
    if verdict == "approve":
        results = gate(session, row, directory, now)
        if not results.passed:
            failures = "; ".join(f.describe() for f in results.failures[:3])
            more = f" (and {len(results.failures) - 3} more)" if len(results.failures) > 3 else ""
            raise Refused(
                f"amendment {row.number} cannot be approved: {len(results.failures)} of {results.total} expectations "
                f"fail against the version it would make, and it does not update them: {failures}{more}"
            )
    session.add(
        AmendmentVerdictRow(
            amendment_id=row.id, person=person, verdict=verdict, groups=counted, comment=comment, at=now
        )
    )
    session.flush()
    if verdict == "reject":
        _move(row, "rejected", now)
        return current_tally(session, row)
    result = current_tally(session, row)
    if result.met:
        _move(row, "scheduled" if row.effective > now.date() else "approved", now)
    return result


def withdraw(row: AmendmentRow, now: dt.datetime) -> None:
    if row.status not in PENDING:
        raise Refused(f"amendment {row.number} is {row.status.replace('_', ' ')}: only a pending one can be withdrawn")
    _move(row, "withdrawn", now)


def due(session: Session, today: dt.date) -> list[AmendmentRow]:
    """Approved or scheduled amendments whose date has come, in number order."""
    query = select(AmendmentRow).where(
        AmendmentRow.status.in_(("approved", "scheduled")), AmendmentRow.effective <= today
    )
    return list(session.scalars(query.order_by(AmendmentRow.charter_name, AmendmentRow.number)))


def apply(
    session: Session, row: AmendmentRow, directory: Directory, now: dt.datetime, revision: int, actor: str
) -> Consolidated:
    """Put an approved amendment in force, or in canary when it has a canary plan, after proving the text
    in force with it still checks. Returns the version it makes.

    Raises charters.Rejected (with the diagnostics) when it does not check; the caller keeps the transaction
    from committing and records why, so the previous version stays in force.
    """
    if row.status not in ("approved", "scheduled"):
        raise Refused(f"amendment {row.number} is {row.status.replace('_', ' ')}: only an approved one can be applied")
    if row.effective > now.date():
        raise Refused(f"amendment {row.number} takes effect on {row.effective.isoformat()}, not before")
    running = [r.number for r in live(session, row.charter_name) if r.status == "canary" and r.number < row.number]
    if running:
        raise Refused(f"amendment {running[0]} is in canary: {row.number} waits until it is promoted or withdrawn")
    version = _in_force_with(session, row, directory, now)
    row.last_error = None
    if row.canary is not None:
        _move(row, "canary", now)
        row.canary_started_at = now
        return version
    _put_in_force(session, row, version, now, revision, actor)
    return version


def promote(
    session: Session, row: AmendmentRow, directory: Directory, now: dt.datetime, revision: int, actor: str
) -> Consolidated:
    """A canary that ran its time without trouble takes effect for everyone."""
    if row.status != "canary":
        raise Refused(f"amendment {row.number} is {row.status.replace('_', ' ')}, not in canary")
    version = _in_force_with(session, row, directory, now)
    _put_in_force(session, row, version, now, revision, actor)
    return version


def _in_force_with(session: Session, row: AmendmentRow, directory: Directory, now: dt.datetime) -> Consolidated:
    charter = parse_charter(charter_row(session).text, "charter")
    in_force = [parsed(r) for r in live(session, row.charter_name) if r.status == "in_force"]
    result = check(charter, [*in_force, parsed(row)], directory.names(), now.date(), "charter")
    if result.errors:
        raise charters.Rejected(result.errors)
    return consolidate(charter, [*in_force, parsed(row)], now.date())


def _put_in_force(
    session: Session, row: AmendmentRow, version: Consolidated, now: dt.datetime, revision: int, actor: str
) -> None:
    _move(row, "in_force", now)
    row.applied_at = now
    charters.record_version(session, charter_row(session), version, row.number, now, revision)
    for name, text in (row.expectations or {}).items():
        expectation_files.save(session, row.charter_name, name, text, actor, now)


def canary_in_effect(session: Session, today: dt.date) -> tuple[AmendmentRow, Consolidated, CanaryPlan] | None:
    """The amendment in canary for the charter in the store, the version with it, and its plan (or None)."""
    base = charters.latest(session)
    if base is None:
        return None
    rows = [r for r in live(session, base.name) if r.status == "canary"]
    if not rows:
        return None
    row = rows[0]
    charter = parse_charter(base.text, "charter")
    in_force = [parsed(r) for r in live(session, base.name) if r.status == "in_force"]
    return row, consolidate(charter, [*in_force, parsed(row)], today), CanaryPlan.from_json(row.canary)


def gate(session: Session, row: AmendmentRow, directory: Directory, now: dt.datetime) -> expectation_files.Results:
    """The charter's expectation files, as `row` would leave them, run against the version it would make."""
    files = expectation_files.with_updates(expectation_files.stored(session, row.charter_name), row.expectations)
    _, proposed = _versions(session, row, now)
    noon = dt.datetime.combine(max(now.date(), row.effective), dt.time(12), dt.UTC)
    return expectation_files.run(files, proposed, directory, noon)


def plan(session: Session, row: AmendmentRow, directory: Directory, now: dt.datetime) -> Plan:
    """Who gains and loses what if `row` joined the amendments in force, on its effective date (or today)."""
    current, proposed = _versions(session, row, now)
    day = max(now.date(), row.effective)
    at = FixedClock.on(day)
    before = compile_snapshot(current, directory, clock=at)
    after = compile_snapshot(proposed, directory, clock=at)
    charter = parse_charter(charter_row(session).text, "charter")
    in_force = [parsed(r) for r in live(session, row.charter_name) if r.status == "in_force"]
    names = directory.names()
    old = {d.message for d in check(charter, in_force, names, day, "charter").warnings}
    new = {d.message for d in check(charter, [*in_force, parsed(row)], names, day, "charter").warnings}
    return access_plan(before, after, sorted(new - old), sorted(old - new))


DEFAULT_SIMULATION_DAYS = 30


def simulate(
    session: Session,
    row: AmendmentRow,
    directory: Directory,
    now: dt.datetime,
    days: int = DEFAULT_SIMULATION_DAYS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Simulation, dt.datetime, dt.datetime]:
    """Replay the decision log of the last `days` against the version in force and the one `row` would
    make, as if it had taken effect at the start of the window; the result and the window.
    `progress(done, total)` as it goes. (The version in force today stands for the whole window, even
    if another amendment took effect within it.)"""
    import orjson

    from charter.audit import store as audit_store
    from charter.audit.decisions import logged_context

    if days < 1:
        raise Refused(f"the window must be at least 1 day, found {days}", 400)
    since = now - dt.timedelta(days=days)
    current, proposed = _versions(session, row, now, backdate=since.date())
    total = audit_store.time_span(session, audit_store.DECISIONS, since, now)[2]

    def questions():
        for time, actor, action, target, details in audit_store.decision_questions(session, since, now):
            subject_type, _, subject = actor.partition(":")
            context = logged_context(orjson.loads(details), time)
            yield Logged(time, subject_type, subject, action, target, context)

    before = compile_snapshot(current, directory, clock=FixedClock(now))
    after = compile_snapshot(proposed, directory, clock=FixedClock(now))
    report = replay(before, after, questions(), (lambda done: progress(done, total)) if progress else None)
    return report, since, now


def _versions(
    session: Session, row: AmendmentRow, now: dt.datetime, backdate: dt.date | None = None
) -> tuple[Consolidated, Consolidated]:
    """The version in force and the one with `row` added, both as of its effective date (or today).

    `backdate` (for a replay of past decisions) makes the amendment take effect that day instead (or as
    soon after as the charter and the amendments in force allow), so that what it inserts for a time
    ("for 90 days") counts as in force over the past it is replayed against."""
    charter = parse_charter(charter_row(session).text, "charter")
    in_force = [parsed(r) for r in live(session, row.charter_name) if r.status == "in_force"]
    amendment = parsed(row)
    if backdate is not None:
        earliest = max([backdate, charter.effective, *(a.effective for a in in_force)])
        amendment = dataclasses.replace(amendment, effective=min(amendment.effective, earliest))
    day = max(now.date(), amendment.effective)
    return consolidate(charter, in_force, day), consolidate(charter, [*in_force, amendment], day)


def versions_as_of(session: Session, day: dt.date) -> Consolidated | None:
    """The charter in force on `day`: what `charter show --as-of` prints."""
    return charters.version_in_force(session, day)


def _move(row: AmendmentRow, status: str, now: dt.datetime) -> None:
    row.status = status
    row.updated_at = now


def view(session: Session, row: AmendmentRow) -> dict:
    amendment = parsed(row)
    result = current_tally(session, row)
    canary = None
    if row.canary is not None:
        plan = CanaryPlan.from_json(row.canary)
        started = row.canary_started_at
        canary = {
            **plan.to_json(),
            "summary": plan.describe(),
            "started_at": aware(started).isoformat() if started is not None else None,
            "outcome": row.canary_outcome,
        }
    return {
        "charter": row.charter_name,
        "number": row.number,
        "status": row.status,
        "effective": row.effective.isoformat(),
        "reason": amendment.reason,
        "proposed_by": row.proposed_by,
        "approvers": [{"count": q.count, "group": q.group} for q in amendment.approvers],
        "tally": {"met": result.met, "summary": result.describe()},
        "verdicts": [
            {"person": v.person, "verdict": v.verdict, "groups": v.groups, "comment": v.comment}
            for v in verdicts(session, row)
        ],
        "last_error": row.last_error,
        "expectation_updates": sorted(row.expectations or {}),
        "canary": canary,
        "text": row.text,
    }


# --- roll back ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolledBack:
    """A roll back proposed: the stored amendment, and what `language.rollback` wrote."""

    proposed: Proposed
    rollback: Rollback


def rollback(
    session: Session,
    to_version: int,
    effective: dt.date,
    reason: str,
    proposer: str,
    directory: Directory,
    now: dt.datetime,
) -> RolledBack:
    """Propose the next amendment, restoring the clauses of version `to_version` (through `propose`: checked,
    numbered and stored like any other, to be planned and approved on its own).

    Version N is the charter with the amendments in force numbered N or lower (0: none). The roll back
    is written against the version in force, so it is refused while another amendment is pending: it
    would take effect after that one (amendments apply in number order) and undo it unseen.
    """
    charter = parse_charter(charter_row(session).text, "charter")
    rows = live(session, charter.name)
    pending = [row for row in rows if row.status in PENDING]
    if pending:
        listed = ", ".join(f"{row.number} ({row.status})" for row in pending)
        raise Refused(
            f"amendments pending: {listed}; a roll back undoes the version in force, so decide, apply or "
            "withdraw them first"
        )
    in_force = [parsed(row) for row in rows]
    current = consolidate(charter, in_force)
    _check_version(session, charter.name, to_version, current)
    target = consolidate(charter, [a for a in in_force if a.number <= to_version])
    try:
        written = write_rollback(
            current, target, _next_number(session, charter.name), effective, reason, approvers_for(current, target)
        )
    except NothingToRollBack as nothing:
        raise Refused(str(nothing)) from None
    except ValueError as error:  # the charter names no one who could approve it
        raise Refused(str(error), 422) from None
    return RolledBack(propose(session, written.text, directory, proposer, now), written)


def _check_version(session: Session, charter_name: str, to_version: int, current: Consolidated) -> None:
    """Refuse a version that is not an earlier one: the one in force, a later one, or one never in force."""
    if to_version == current.version:
        raise Refused(f"version {to_version} is the version in force: nothing to roll back")
    if to_version < 0 or to_version > current.version:
        raise Refused(
            f"there is no version {to_version} to roll back to: the version in force is {current.version}", 422
        )
    if to_version > 0 and to_version not in {a.number for a in current.applied}:
        row = session.scalar(
            select(AmendmentRow).where(AmendmentRow.charter_name == charter_name, AmendmentRow.number == to_version)
        )
        why = (
            f"amendment {to_version} is {row.status.replace('_', ' ')}, never in force"
            if row
            else f"no amendment {to_version} was ever proposed"
        )
        raise Refused(f"there is no version {to_version} to roll back to: {why}", 422)


def _next_number(session: Session, charter_name: str) -> int:
    """After every amendment ever stored, withdrawn and rejected ones too (their numbers stay taken)."""
    highest = session.scalar(select(func.max(AmendmentRow.number)).where(AmendmentRow.charter_name == charter_name))
    return (highest or 0) + 1
