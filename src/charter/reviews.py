"""Access reviews: the tasks the charter's review clauses call for, their verdicts, and the sweeper opening them.

Two kinds of task (`review_tasks` rows):

- **membership**: `Membership of group "G" is reviewed every P by group "R".` The sweeper opens a campaign
  for each such clause at once, then a period after the last (never while one is still open), due within
  the period but at most 14 days (`policy.reviews.LONGEST_WINDOW`). It lists G's members then, directly or
  through nested groups. Members of R give each member a verdict: keep, or revoke (the direct memberships
  that give it are removed at once, recorded as `directory.group.member.remove` like any removal, so
  `charter audit who-had-access` rebuilds the past). The task is done when every member has a verdict.
- **break glass**: opened when break glass is used (elsewhere), reviewed by the clause's group within its
  window; a member of that group completes it with an outcome, ok or misuse.

Who may act is the review clause, not a permission: a user in the reviewer group (nesting resolved, as the
engine's snapshot has it), never about themselves. Every change is audited (`review.keep`, `review.revoke`,
`review.complete`, `review.open`, `review.overdue`) citing the clause, with its revision, in one transaction;
refusals are audited as denied. The sweeper also flags each open task past its due date once, publishing
"review.overdue"; opening publishes "review.opened". docs/reviews.md says more.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from charter import charters, notify
from charter.admin import Admin, Change, Conflict, Done, Forbidden, Invalid, NotFound, Page
from charter.clients import Caller
from charter.directory import repository
from charter.periodic import Periodic
from charter.policy import reviews as rules
from charter.policy.decision import Basis, Decision
from charter.policy.request import Request
from charter.store.models import GrantRow, GroupNestingRow, GroupRow, ReviewTaskRow

log = logging.getLogger("charter.reviews")
SWEEPER = "charter review sweeper"
STATUSES = ("open", "done", "overdue")  # what a list may ask for; "overdue" is open and past due
SUBJECT_TYPES = ("user", "service", "partner")
MAX_COMMENT = 4000
OVERDUE_FLAG = "overdue_flagged_at"  # in a task's details: "review.overdue" was published, once


class _Unchanged(Exception):
    """Raised inside a sweeper transaction when another server got there first: roll back, write nothing."""


class Reviews:
    """The review service; writes go through `Admin`'s transaction (revision, audit record, catch up)."""

    def __init__(self, admin: Admin):
        self.admin = admin
        self.engine = admin.engine

    # --- reading ------------------------------------------------------------------------------------

    def list_tasks(
        self, caller: Caller, status: str | None = None, mine: bool = False, page: Page | None = None
    ) -> dict:
        """Tasks by due date: all of them for whoever may read the charter, else (or with `mine`) only those
        whose reviewer group the caller is in."""
        page = page or Page()
        if status is not None and status not in STATUSES:
            raise Invalid("status", f"expected one of {', '.join(STATUSES)}, found {status!r}")
        now = self.admin.now()
        query = select(ReviewTaskRow).order_by(ReviewTaskRow.due, ReviewTaskRow.id)
        if status == "overdue":
            query = query.where(ReviewTaskRow.status == "open", ReviewTaskRow.due < now)
        elif status is not None:
            query = query.where(ReviewTaskRow.status == status)
        everything = self._may_read_charter(caller) and not mine
        if not everything:
            query = query.where(ReviewTaskRow.reviewer_group.in_(sorted(self._groups_of(caller))))
        with self.engine.sessions() as session:
            total, rows = page.of(session, query)
            return {**page.view(total, [_view(row, now) for row in rows]), "scope": "all" if everything else "mine"}

    def get_task(self, caller: Caller, task_id: str) -> dict:
        """One task: for its reviewers, and for whoever may read the charter."""
        row = self._task(task_id)
        if row.reviewer_group not in self._groups_of(caller):
            self.admin.authorize(caller, "read", f"charter:{self.engine.snapshot.charter}", "review.read")
        return _view(row, self.admin.now())

    # --- verdicts -------------------------------------------------------------------------------------

    def decide_member(
        self, caller: Caller, task_id: str, member_type: str, member_id: str, verdict: str, comment: str | None = None
    ) -> Done:
        """Keep or revoke one member of a membership review; a revoke removes the membership at once."""
        if verdict not in rules.VERDICTS:
            raise Invalid("verdict", f'expected "keep" or "revoke", found {verdict!r}')
        if member_type not in SUBJECT_TYPES:
            raise Invalid("type", f"expected one of {', '.join(SUBJECT_TYPES)}, found {member_type!r}")
        _check_comment(comment)
        operation, member = f"review.{verdict}", f"{member_type}:{member_id}"
        task = self._task(task_id)
        self._must_review(caller, task, operation)
        if task.kind != rules.MEMBERSHIP:
            self._conflict(caller, operation, task, f'task "{task_id}" is a {task.kind} review: complete it instead')
        if member not in {f"{m['type']}:{m['id']}" for m in (task.details or {}).get("members", ())}:
            raise NotFound(f'{member} is not under review in task "{task_id}"')
        if member == _person(caller):
            self._refuse(caller, operation, task, f"{member} may not review their own membership")
        with self._reviewer_change(caller, operation, task) as change:
            row = self._open_row(change.session, task_id)
            details = copy.deepcopy(row.details)
            verdicts = details.setdefault("verdicts", {})
            if member in verdicts:
                raise Conflict(f'{member} already has a verdict in task "{task_id}" ({verdicts[member]["verdict"]})')
            removed = []
            if verdict == "revoke":
                removed = self._remove_membership(change, caller, row, member_type, member_id)
            verdicts[member] = {
                "verdict": verdict,
                "by": _person(caller),
                "at": self.admin.now().isoformat(),
                "comment": comment,
                **({"removed_from": removed} if verdict == "revoke" else {}),
            }
            row.details = details
            self._close_if_decided(row, _person(caller))
            change.details.update(
                task=task_id, subject=task.subject, member=member, verdict=verdict, comment=comment, status=row.status
            )
            if verdict == "revoke":
                change.details["removed_from"] = removed
            view = _view(row, self.admin.now())
        return Done(change.revision, view)

    def complete(self, caller: Caller, task_id: str, outcome: str, comment: str | None = None) -> Done:
        """Close a break-glass review: the use was justified ("ok") or not ("misuse")."""
        if outcome not in rules.OUTCOMES:
            raise Invalid("outcome", f'expected "ok" or "misuse", found {outcome!r}')
        _check_comment(comment)
        operation = "review.complete"
        task = self._task(task_id)
        self._must_review(caller, task, operation)
        if task.kind != rules.BREAK_GLASS:
            why = f'task "{task_id}" is a {task.kind} review: it is done when every member has a verdict'
            self._conflict(caller, operation, task, why)
        if _person(caller) in self._break_glass_users(task):
            self._refuse(caller, operation, task, f"{_person(caller)} used this break glass and may not review it")
        with self._reviewer_change(caller, operation, task) as change:
            row = self._open_row(change.session, task_id)
            now = self.admin.now()
            row.status, row.closed_at, row.closed_by = "done", now, _person(caller)
            row.outcome = {"outcome": outcome, "comment": comment, "by": _person(caller), "at": now.isoformat()}
            change.details.update(task=task_id, subject=task.subject, outcome=outcome, comment=comment)
            view = _view(row, now)
        return Done(change.revision, view)

    # --- the sweeper ------------------------------------------------------------------------------------

    def sweep(self, actor: str = SWEEPER) -> list[dict]:
        """Flag the tasks newly past due, then open the campaigns whose time has come (each in its own
        transaction, re-checked there: two servers sweeping at once do each thing once)."""
        return self.flag_overdue(actor) + self.open_due_campaigns(actor)

    def flag_overdue(self, actor: str = SWEEPER) -> list[dict]:
        now = self.admin.now()
        late = select(ReviewTaskRow).where(ReviewTaskRow.status == "open", ReviewTaskRow.due < now)
        with self.engine.sessions() as session:
            unflagged = [
                (row.id, row.clause) for row in session.scalars(late) if OVERDUE_FLAG not in (row.details or {})
            ]
        flagged = []
        for task_id, clause in sorted(unflagged):
            try:
                flagged.append(self._flag_one(actor, task_id, clause, now))
            except _Unchanged:
                continue
        return flagged

    def _flag_one(self, actor: str, task_id: str, clause: int, now: dt.datetime) -> dict:
        authority = _clause_decision(self.engine, clause)
        with self.admin._transaction(actor, _target(task_id), "review.overdue", authority) as change:
            row = change.session.get(ReviewTaskRow, task_id)
            if row is None or row.status != "open" or OVERDUE_FLAG in (row.details or {}):
                raise _Unchanged
            row.details = {**(row.details or {}), OVERDUE_FLAG: now.isoformat()}
            notify.publish(change.session, "review.overdue", _event(row), now)
            change.details.update(task=task_id, kind=row.kind, subject=row.subject, due=_aware(row.due).isoformat())
        return {"task": task_id, "action": "overdue", "revision": change.revision}

    def open_due_campaigns(self, actor: str = SWEEPER) -> list[dict]:
        now = self.admin.now()
        with self.engine.sessions() as session:
            version = charters.version_in_force(session, now.date())
            if version is None:
                return []
            due = [campaign for campaign in rules.campaigns(version) if _campaign_due(session, campaign, now)]
        opened = []
        for campaign in due:
            try:
                opened.append(self._open_campaign(actor, campaign, now))
            except _Unchanged:
                continue
        return opened

    def _open_campaign(self, actor: str, campaign: rules.Campaign, now: dt.datetime) -> dict:
        task_id = secrets.token_hex(8)
        authority = _clause_decision(self.engine, campaign.clause)
        with self.admin._transaction(actor, _target(task_id), "review.open", authority) as change:
            session = change.session
            if not _campaign_due(session, campaign, now):
                raise _Unchanged
            listed = rules.members(repository.load(session), campaign.group)
            row = ReviewTaskRow(
                id=task_id,
                kind=rules.MEMBERSHIP,
                clause=campaign.clause,
                reviewer_group=campaign.reviewer_group,
                subject=campaign.subject,
                details={
                    "group": campaign.group,
                    "every": campaign.every_text,
                    "members": [m.to_json() for m in listed],
                    "verdicts": {},
                },
                status="open",
                opened_at=now,
                due=now + campaign.window,
            )
            session.add(row)
            # A group with no members has nothing to review: the campaign is recorded, and done at once.
            self._close_if_decided(row, actor)
            if row.status == "open":
                notify.publish(session, "review.opened", _event(row), now)
            change.details.update(task=task_id, group=campaign.group, members=len(listed), status=row.status)
        return {"task": task_id, "action": "opened", "group": campaign.group, "revision": change.revision}

    # --- the shared steps --------------------------------------------------------------------------------

    def _task(self, task_id: str, session: Session | None = None) -> ReviewTaskRow:
        if session is None:
            with self.engine.sessions() as own:
                return self._task(task_id, own)
        row = session.get(ReviewTaskRow, task_id)
        if row is None:
            raise NotFound(f'no review task "{task_id}"')
        return row

    def _open_row(self, session: Session, task_id: str) -> ReviewTaskRow:
        """The task read again inside the writing transaction (after the revision lock: the latest state)."""
        row = self._task(task_id, session)
        if row.status != "open":
            raise Conflict(f'review task "{task_id}" is already done (closed by {row.closed_by})')
        return row

    def _groups_of(self, caller: Caller) -> frozenset[str]:
        """The caller's groups, nesting resolved, if the caller is a person who may act (reviews are people's)."""
        principal = self.engine.snapshot.principal(caller.subject_type, caller.subject)
        if caller.subject_type != "user" or principal is None or principal.blocked is not None:
            return frozenset()
        return principal.groups

    def _may_read_charter(self, caller: Caller) -> bool:
        """Asked without auditing a refusal: a caller who may not is simply shown their own tasks."""
        resource = f"charter:{self.engine.snapshot.charter}"
        return self.engine.snapshot.evaluate(
            Request(caller.subject, "read", resource, caller.context, caller.subject_type)
        ).allowed

    def _must_review(self, caller: Caller, task: ReviewTaskRow, operation: str) -> None:
        if task.reviewer_group not in self._groups_of(caller):
            why = f'{_person(caller)} is not a member of group "{task.reviewer_group}", which reviews this task'
            self._refuse(caller, operation, task, why)

    def _refuse(self, caller: Caller, operation: str, task: ReviewTaskRow, reason: str) -> NoReturn:
        """Audit a refusal as denied, citing the task's clause, and raise it as a 403."""
        snapshot = self.engine.snapshot
        decision = Decision(False, Basis.DEFAULT, snapshot.charter, snapshot.version.version, task.clause, (reason,))
        self.engine.audit.record_alone(
            self.engine.sessions,
            caller.describe(),
            operation,
            _target(task.id),
            "denied",
            decision,
            {"reasons": [reason]},
        )
        raise Forbidden(decision, "review", _target(task.id))

    def _conflict(self, caller: Caller, operation: str, task: ReviewTaskRow, reason: str) -> NoReturn:
        self._record_refusal(caller, operation, task, reason)
        raise Conflict(reason)

    def _record_refusal(self, caller: Caller, operation: str, task: ReviewTaskRow, reason: str) -> None:
        self.engine.audit.record_alone(
            self.engine.sessions,
            caller.describe(),
            operation,
            _target(task.id),
            "denied",
            _under(task, self.engine),
            {"reasons": [reason]},
        )

    @contextmanager
    def _reviewer_change(self, caller: Caller, operation: str, task: ReviewTaskRow) -> Iterator[Change]:
        """A reviewer's change in one transaction, audited under the task's clause. A conflict found inside it
        (done meanwhile, decided twice) rolls it back, and is then audited as denied."""
        try:
            with self.admin._transaction(caller, _target(task.id), operation, _under(task, self.engine)) as change:
                yield change
        except Conflict as conflict:
            self._record_refusal(caller, operation, task, str(conflict))
            raise

    def _break_glass_users(self, task: ReviewTaskRow) -> set[str]:
        """Who used the break glass under review: as the task says, and as its grant says (either suffices)."""
        used_by = (task.details or {}).get("subject")
        users = {str(used_by)} if used_by else set()
        with self.engine.sessions() as session:
            grant = session.get(GrantRow, task.subject)
            if grant is not None:
                users.add(f"{grant.subject_type}:{grant.subject}")
        return users

    def _remove_membership(self, change, caller: Caller, row: ReviewTaskRow, member_type: str, member_id: str) -> list:
        """Remove the direct memberships that make the member one of the reviewed group; the groups removed from.

        Each removal is recorded exactly as `Admin.remove_member` records it (the action, the target, `member`
        and `changed`), so the directory's history can be rebuilt; `review` names the task that decided it.
        """
        session = change.session
        identity = repository.find_identity(session, member_type, member_id)
        if identity is None:
            return []  # gone from the directory since the campaign opened: nothing left to remove
        group = row.details["group"]
        direct = repository.group_names_of(session, [identity.id])[identity.id]
        removed = list(rules.through(direct, group, _nesting(session)))
        decision = _under(row, self.engine)
        for name in removed:
            changed = repository.remove_member(session, name, member_type, member_id)
            details = {
                "member": {"kind": member_type, "name": member_id},
                "changed": changed,
                "review": row.id,
                "revision": change.revision,
            }
            self.engine.audit.record(
                session,
                caller.describe(),
                "directory.group.member.remove",
                f"directory:groups/{name}",
                "ok",
                decision,
                details,
            )
        return removed

    def _close_if_decided(self, row: ReviewTaskRow, by: str) -> None:
        """A membership task is done once every member listed has a verdict; its outcome sums them up."""
        details = row.details or {}
        verdicts = details.get("verdicts", {})
        if rules.pending(details.get("members", ()), verdicts):
            return
        now = self.admin.now()
        row.status, row.closed_at, row.closed_by = "done", now, by
        row.outcome = {
            "kept": sorted(k for k, v in verdicts.items() if v["verdict"] == "keep"),
            "revoked": sorted(k for k, v in verdicts.items() if v["verdict"] == "revoke"),
        }


class ReviewSweeper:
    """The server's thread running `Reviews.sweep` once a minute.

    The first sweep waits a full interval: a server just started (or a test's) makes no writes of its own
    at once, and a campaign opening a minute late changes nothing.
    """

    def __init__(self, reviews: Reviews, interval: float = 60.0):
        self.reviews = reviews
        self._thread = Periodic("charter-review-sweeper", interval, self.run_once, log, first=interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def run_once(self) -> list[dict]:
        results = self.reviews.sweep(SWEEPER)
        for result in results:
            if result["action"] == "overdue":
                log.warning("review task %s is overdue", result["task"])
            else:
                log.info("review task %s opened (membership of group %s)", result["task"], result["group"])
        return results


# --- helpers -------------------------------------------------------------------------------------------


def _campaign_due(session: Session, campaign: rules.Campaign, now: dt.datetime) -> bool:
    same = (
        ReviewTaskRow.kind == rules.MEMBERSHIP,
        ReviewTaskRow.clause == campaign.clause,
        ReviewTaskRow.subject == campaign.subject,
    )
    last = session.scalar(select(func.max(ReviewTaskRow.opened_at)).where(*same))
    still_open = session.scalar(select(ReviewTaskRow.id).where(*same, ReviewTaskRow.status == "open").limit(1))
    return rules.campaign_due(campaign, None if last is None else _aware(last), still_open is not None, now)


def _nesting(session: Session) -> dict[str, list[str]]:
    """Each group's parents by name (the nesting table is small: read whole)."""
    names = dict(session.execute(select(GroupRow.id, GroupRow.name)).all())
    parents: dict[str, list[str]] = {}
    for child, parent in session.execute(select(GroupNestingRow.child_id, GroupNestingRow.parent_id)):
        parents.setdefault(names[child], []).append(names[parent])
    return parents


def _clause_decision(engine, clause: int) -> Decision:
    """What an action taken under a review clause is recorded as: the clause of the version in force."""
    snapshot = engine.snapshot
    return Decision(True, Basis.PERMISSION, snapshot.charter, snapshot.version.version, clause)


def _under(task: ReviewTaskRow, engine) -> Decision:
    return _clause_decision(engine, task.clause)


def _person(caller: Caller) -> str:
    return f"{caller.subject_type}:{caller.subject}"


def _target(task_id: str) -> str:
    return f"reviews:{task_id}"


def _check_comment(comment: str | None) -> None:
    if comment is not None and len(comment) > MAX_COMMENT:
        raise Invalid("comment", f"expected at most {MAX_COMMENT} characters")


def _event(row: ReviewTaskRow) -> dict:
    return {
        "task": row.id,
        "kind": row.kind,
        "clause": row.clause,
        "reviewer_group": row.reviewer_group,
        "subject": row.subject,
        "opened_at": _aware(row.opened_at).isoformat(),
        "due": _aware(row.due).isoformat(),
    }


def _view(row: ReviewTaskRow, now: dt.datetime) -> dict:
    details = row.details or {}
    view = {
        "id": row.id,
        "kind": row.kind,
        "clause": row.clause,
        "reviewer_group": row.reviewer_group,
        "subject": row.subject,
        "status": row.status,
        "overdue": rules.is_overdue(row.status, _aware(row.due), now),
        "opened_at": _aware(row.opened_at).isoformat(),
        "due": _aware(row.due).isoformat(),
        "closed_at": None if row.closed_at is None else _aware(row.closed_at).isoformat(),
        "closed_by": row.closed_by,
        "outcome": row.outcome,
        "details": details,
    }
    if row.kind == rules.MEMBERSHIP:
        view["pending"] = rules.pending(details.get("members", ()), details.get("verdicts", {}))
    return view


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
