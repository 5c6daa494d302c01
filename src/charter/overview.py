"""What the web console shows that no single admin action returns: the service figures of the last day,
the charter as of a date, an amendment's text side by side, and the access explorer's questions.

Every function takes the person asking (`Caller`) and is authorised by the charter through `Admin`
(a refusal is audited and raised as `admin.Forbidden`), like every other action:

| function | needs |
|---|---|
| `service_figures` | `read` on `audit:audit` (sign-ins, tokens, break glass) and on `audit:decisions` (decisions) |
| `charter_as_of` | `read` on `charter:<name>` |
| `amendment_diff`, `amendments_for` | as `Admin.get_amendment`: its proposer, its approvers, or `read` on the charter |
| `who_may`, `what_may`, `why` | nothing about oneself; `read` on `charter:<name>` about anyone else |

The figures are counted from the store (the audit trail and the decision log), not from this process's
Prometheus counters, so every server shows the same numbers. Latencies are not in the store: they are
reported as not measured here (the process's `/metrics` has them).
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

from sqlalchemy import func, select

from charter import amendments, charters
from charter.admin import Admin, Invalid
from charter.clients import Caller
from charter.language.consolidate import render, to_json
from charter.policy import explain as policy_explain
from charter.policy import queries
from charter.policy.decision import Decision
from charter.policy.request import Context, Request
from charter.store.models import AmendmentRow, AuditRecordRow, DecisionRecordRow

WINDOW_HOURS = 24
AUDITED = ("auth.login", "oidc.token.issue", "break_glass.use")
SUBJECT_TYPES = ("user", "service", "partner")
SIMILAR = 0.6  # how alike two lines of a replaced block must be to be shown as one changed line


@dataclass(frozen=True, slots=True)
class Series:
    """One figure over the window: its total and its count in each hour, oldest first."""

    name: str
    total: int
    hourly: tuple[int, ...]


def service_figures(admin: Admin, caller: Caller, hours: int = WINDOW_HOURS) -> dict:
    """Sign-ins, tokens issued, decisions, denies and break-glass uses over the last `hours`, per hour."""
    admin.authorize(caller, "read", "audit:audit", "console.figures")
    admin.authorize(caller, "read", "audit:decisions", "console.figures")
    now = admin.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    starts = [now - dt.timedelta(hours=hours - i) for i in range(hours)]
    audited = {(a, o): [0] * hours for a in AUDITED for o in ("ok", "denied")}
    decided = {o: [0] * hours for o in ("allow", "deny")}
    with admin.engine.sessions() as session:
        for i, start in enumerate(starts):
            end = start + dt.timedelta(hours=1)
            rows = session.execute(
                select(AuditRecordRow.action, AuditRecordRow.outcome, func.count())
                .where(AuditRecordRow.time >= start, AuditRecordRow.time < end, AuditRecordRow.action.in_(AUDITED))
                .group_by(AuditRecordRow.action, AuditRecordRow.outcome)
            )
            for action, outcome, count in rows:
                audited.setdefault((action, outcome), [0] * hours)[i] += count
            rows = session.execute(
                select(DecisionRecordRow.outcome, func.count())
                .where(DecisionRecordRow.time >= start, DecisionRecordRow.time < end)
                .group_by(DecisionRecordRow.outcome)
            )
            for outcome, count in rows:
                decided.setdefault(outcome, [0] * hours)[i] += count
    sign_ins_ok, sign_ins_denied = audited[("auth.login", "ok")], audited[("auth.login", "denied")]
    attempts = sum(sign_ins_ok) + sum(sign_ins_denied)
    decisions = [a + d for a, d in zip(decided["allow"], decided["deny"], strict=True)]
    series = [
        _series("sign-in steps that succeeded", sign_ins_ok),
        _series("sign-in steps refused", sign_ins_denied),
        _series("access tokens issued", audited[("oidc.token.issue", "ok")]),
        _series("decisions", decisions),
        _series("denies", decided["deny"]),
        _series("break-glass uses", audited[("break_glass.use", "ok")]),
    ]
    return {
        "from": starts[0].isoformat(),
        "to": now.isoformat(),
        "hours": hours,
        "auth_success_rate": (sum(sign_ins_ok) / attempts) if attempts else None,
        "deny_rate": (sum(decided["deny"]) / sum(decisions)) if sum(decisions) else None,
        "token_latency": None,  # not in the store: see /metrics
        "decision_latency": None,
        "series": series,
    }


def _series(name: str, hourly: list[int]) -> Series:
    return Series(name, sum(hourly), tuple(hourly))


def charter_as_of(admin: Admin, caller: Caller, day: dt.date) -> dict | None:
    """The text in force on `day`, each clause with its origin (None when no charter was in force)."""
    admin.authorize(caller, "read", f"charter:{admin.engine.snapshot.charter}", "console.charter")
    with admin.engine.sessions() as session:
        version = charters.version_in_force(session, day)
    return None if version is None else to_json(version)


def amendment_diff(admin: Admin, caller: Caller, number: int) -> list[tuple[str, str, str]]:
    """The consolidated text before and after amendment `number`, line by line: (change, before, after).

    `change` is "same", "changed", "removed" or "added". Both sides are as of its effective date (or today)."""
    admin.get_amendment(caller, number)  # authorises (its proposer, its approvers, or read on the charter)
    with admin.engine.sessions() as session:
        row = amendments.find(session, admin.engine.snapshot.charter, number)
        before, after = amendments._versions(session, row, admin.now())
    old, new = render(before).splitlines(), render(after).splitlines()
    rows: list[tuple[str, str, str]] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [("same", a, b) for a, b in zip(old[i1:i2], new[j1:j2], strict=True)]
            continue
        rows += _pair(old[i1:i2], new[j1:j2])
    return rows


def _pair(left: list[str], right: list[str]) -> list[tuple[str, str, str]]:
    """Lines of a replaced block side by side: each old line beside the next new line much like it (a
    changed line), new lines before it added, an old line with none removed."""
    rows: list[tuple[str, str, str]] = []
    j = 0
    for line in left:
        like = next(
            (k for k in range(j, len(right)) if difflib.SequenceMatcher(a=line, b=right[k]).ratio() >= SIMILAR),
            None,
        )
        if like is None:
            rows.append(("removed", line, ""))
            continue
        rows += [("added", "", added) for added in right[j:like]]
        rows.append(("changed", line, right[like]))
        j = like + 1
    return rows + [("added", "", added) for added in right[j:]]


def allowed(admin: Admin, caller: Caller, action: str, resource: str) -> Decision:
    """The charter's decision on the caller's `action` over `resource`, asked quietly (no audit record): to
    choose what a page offers. It lets nothing through: the action itself is authorised (and a refusal
    audited) by `Admin` when it is taken."""
    request = Request(caller.subject, action, resource, caller.context, caller.subject_type)
    return admin.engine.snapshot.evaluate(request)


def amendments_for(admin: Admin, caller: Caller) -> list[dict]:
    """The amendments this person may read: all of them when the charter lets them read it, else those they
    proposed or whose approver groups they are in (as `Admin.get_amendment` allows), newest first."""
    snapshot = admin.engine.snapshot
    if allowed(admin, caller, "read", f"charter:{snapshot.charter}").allowed:
        return list(reversed(admin.list_amendments(caller)["items"]))
    principal = snapshot.principal(caller.subject_type, caller.subject)
    groups = principal.groups if principal is not None and caller.subject_type == "user" else frozenset()
    me = f"{caller.subject_type}:{caller.subject}"
    with admin.engine.sessions() as session:
        rows = session.scalars(
            select(AmendmentRow)
            .where(AmendmentRow.charter_name == snapshot.charter)
            .order_by(AmendmentRow.number.desc())
        )
        return [
            amendments.view(session, row)
            for row in rows
            if row.proposed_by in (me, caller.subject)
            or bool({q.group for q in amendments.parsed(row).approvers} & groups)
        ]


def awaiting(items: list[dict], person: str, groups: frozenset[str]) -> list[dict]:
    """Of amendment or request views, those pending a verdict this person could give and has not given."""
    waiting = []
    for item in items:
        if item.get("status") not in ("proposed", "pending"):
            continue
        if any(v["person"] == person for v in item.get("verdicts", ())):
            continue
        seats = {a["group"] for a in item.get("approvers", ())}
        if item.get("escalated_to"):
            seats.add(item["escalated_to"])
        if seats & groups and item.get("proposed_by") not in (person, f"user:{person}"):
            subject = item.get("subject") or {}
            if (subject.get("type"), subject.get("id")) != ("user", person):
                waiting.append(item)
    return waiting


# --- the access explorer ---------------------------------------------------------------------------


def who_may(admin: Admin, caller: Caller, action: str, resource: str, mfa: bool = False) -> list[dict]:
    """Every identity allowed `action` on `resource` now (with MFA when `mfa`), with the deciding clause."""
    _may_explore(admin, caller, None, None)
    action, resource = _required("action", action), _required("resource", resource)
    found = queries.who_may(admin.engine.snapshot, action, resource, Context(mfa=mfa))
    return [{"type": t, "id": s, "clause": d.clause, "basis": d.basis.value} for t, s, d in found]


def what_may(admin: Admin, caller: Caller, subject_type: str, subject: str) -> list[dict]:
    """What the charter lets a subject do, ask for, break glass for, or forbids it, with its clauses and grants."""
    subject_type, subject = _subject(subject_type, subject)
    _may_explore(admin, caller, subject_type, subject)
    found = queries.entitlements(admin.engine.snapshot, subject_type, subject)
    return [
        {
            "kind": e.kind,
            "actions": list(e.actions) or ["any action"],
            "resources": list(e.resources),
            "clause": e.clause,
            "conditions": list(e.conditions),
            "text": e.text,
        }
        for e in found
    ]


def why(
    admin: Admin, caller: Caller, subject_type: str, subject: str, action: str, resource: str, mfa: bool = False
) -> dict:
    """The decision on one request now, with the trace of every clause considered (`policy.explain`)."""
    subject_type, subject = _subject(subject_type, subject)
    _may_explore(admin, caller, subject_type, subject)
    action, resource = _required("action", action), _required("resource", resource)
    request = Request(subject, action, resource, Context(mfa=mfa), subject_type)
    found = policy_explain.explain(admin.engine.snapshot, request)
    return {
        "request": request.describe(),
        "allowed": found.decision.allowed,
        "decision": str(found.decision),
        "clause": found.decision.clause,
        "steps": [{"clause": s.clause, "kind": s.kind, "outcome": s.outcome, "detail": s.detail} for s in found.steps],
        "obligations": [str(o) for o in found.decision.obligations],
        "agrees": found.agrees,
    }


def _may_explore(admin: Admin, caller: Caller, subject_type: str | None, subject: str | None) -> None:
    if (subject_type, subject) == (caller.subject_type, caller.subject):
        return
    admin.authorize(caller, "read", f"charter:{admin.engine.snapshot.charter}", "console.explore")


def _subject(subject_type: str, subject: str) -> tuple[str, str]:
    if subject_type not in SUBJECT_TYPES:
        raise Invalid("subject_type", f"expected one of {', '.join(SUBJECT_TYPES)}, found {subject_type!r}")
    return subject_type, _required("subject", subject)


def _required(field: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise Invalid(field, "expected a non-empty value")
    return value
