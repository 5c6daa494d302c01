"""Administrative actions: each one authorised by the charter, and written with its revision in one transaction.

An action is asked of the engine as a decision like any other: the caller's
identity, an action (`read` to look, `manage` to change) and a resource:

| what | resource |
|---|---|
| users, groups, services, partners, resources of the directory | `directory:users/alice`, `directory:groups/sre`, ... |
| the charter | `charter:<charter name>` |
| grants | `grants:<subject type>/<subject>` |
| API clients | `clients:<subject type>/<subject>` (whom the credential acts as) |
| the audit chains | `audit:audit`, `audit:decisions` |
| webhooks, the event stream | `charter:<charter name>/webhooks`, `charter:<charter name>/events` |
| another subject's access requests and grants | `grants:<subject type>/<subject>` (*) |

(*) Asking for, deciding and revoking one's own are the charter's eligibility and approver clauses, not
an admin right.

So the charter says who administers what, e.g.
`Members of group "iam-admins" may read and manage "directory:*" and "charter:*".`
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charter import access, amendments, charters, expectation_files, notify
from charter import clients as client_store
from charter.audit import export as audit_export
from charter.audit import store as audit_store
from charter.clients import Caller
from charter.directory import repository
from charter.directory.repository import Conflict, NotFound
from charter.drift import drift_in_store
from charter.engine import Engine
from charter.offboarding import offboard
from charter.policy import access as policy_access
from charter.policy.decision import Basis, Decision
from charter.policy.request import Request
from charter.store.db import bump_revision, current_revision
from charter.store.models import (
    AccessRequestRow,
    AmendmentRow,
    ApiClientRow,
    GrantRow,
    GroupNestingRow,
    GroupRow,
    IdentityRow,
    MembershipRow,
    ResourceRow,
)

IDENTITY_SECTIONS = {"users": "user", "services": "service", "partners": "partner"}
SUBJECT_TYPES = tuple(IDENTITY_SECTIONS.values())
STATES = ("active", "disabled", "left")
GRANT_KINDS = ("request", "break glass")
DEFAULT_LIMIT = 100  # items in a page of a list when the caller does not say
MAX_LIMIT = 1000
CATCH_UP_TIMEOUT = 2.0  # how long a write waits for this server's snapshot to include it

log = logging.getLogger("charter.admin")
__all__ = ["Admin", "Conflict", "Forbidden", "Invalid", "NotFound", "Page"]


class Forbidden(Exception):
    """The charter does not allow the caller this action. Carries the decision that said no."""

    def __init__(self, decision: Decision, action: str, resource: str):
        super().__init__(f"{action} on {resource}: {decision}")
        self.decision = decision
        self.action = action
        self.resource = resource


class Invalid(ValueError):
    """The request is well-formed but asks for something the store cannot hold (with the field at fault)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Page:
    """A slice of a list: at most `limit` items after skipping `offset`, in a stable order (names, mostly)."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise Invalid("limit", f"expected 1 to {MAX_LIMIT}, found {self.limit}")
        if self.offset < 0:
            raise Invalid("offset", f"expected 0 or more, found {self.offset}")

    def of(self, session: Session, query: Select) -> tuple[int, list]:
        """The total number of rows the query selects, and this page of them."""
        total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        return int(total or 0), list(session.scalars(query.limit(self.limit).offset(self.offset)))

    def view(self, total: int, items: list[dict]) -> dict:
        return {"items": items, "total": total, "limit": self.limit, "offset": self.offset}


@dataclass(slots=True)
class Change:
    """A change in progress: its session, its revision, and what its audit record will say.

    The operation fills `details` (typically `before` and `after`: the object's state on each side, from
    which `charter audit who-had-access` rebuilds the directory of any past day).
    """

    session: Session
    revision: int
    details: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Done:
    """A committed change: the revision it created, and what it returns."""

    revision: int
    result: object = None


class Admin:
    def __init__(self, engine: Engine):
        self.engine = engine

    # --- the shared path --------------------------------------------------------------------

    def authorize(self, caller: Caller, action: str, resource: str, operation: str | None = None) -> Decision:
        """The charter's decision on `action` over `resource`; a refusal is audited, then raised as Forbidden."""
        decision = self.engine.snapshot.evaluate(
            Request(caller.subject, action, resource, caller.context, caller.subject_type)
        )
        if not decision.allowed:
            self.engine.audit.record_alone(
                self.engine.sessions,
                caller.describe(),
                operation or action,
                resource,
                "denied",
                decision,
                {"asked": action, "reasons": list(decision.reasons)},
            )
            raise Forbidden(decision, action, resource)
        return decision

    @contextmanager
    def change(self, caller: Caller, resource: str, operation: str) -> Iterator[Change]:
        """Authorise `manage` on `resource`, then yield the change; on success, audit it and commit.

        The revision is taken first: its row lock serialises writers, so revisions commit in order. The
        audit record (`operation` on `resource`, with the deciding clause) is written in the same transaction.
        """
        decision = self.authorize(caller, "manage", resource, operation)
        with self._transaction(caller, resource, operation, decision) as change:
            yield change

    @contextmanager
    def _transaction(
        self, caller: Caller | str, resource: str, operation: str, decision: Decision | None
    ) -> Iterator[Change]:
        """The write half of `change`, for operations authorised otherwise (amendment verdicts, the scheduler)."""
        actor = caller if isinstance(caller, str) else caller.describe()
        session = self.engine.sessions()
        try:
            with self.engine.write_lock, session.begin():
                change = Change(session, bump_revision(session))
                yield change
                details = {**change.details, "revision": change.revision}
                self.engine.audit.record(session, actor, operation, resource, "ok", decision, details)
        except IntegrityError as error:
            raise Conflict(_integrity_message(error)) from None
        finally:
            session.close()
        self.engine.catch_up(change.revision, CATCH_UP_TIMEOUT)

    def read(self, caller: Caller, resource: str) -> Session:
        self.authorize(caller, "read", resource)
        return self.engine.sessions()

    def now(self) -> dt.datetime:
        return self.engine.clock.now().astimezone(dt.UTC)

    def revision(self, caller: Caller) -> dict:
        """This server's snapshot (revision, charter, version) and the last revision committed to the store.

        Any authenticated caller may ask: it reveals counters and the charter's name, as decisions do.
        """
        snapshot = self.engine.snapshot
        with self.engine.sessions() as session:
            stored = current_revision(session)
        return {
            "revision": snapshot.revision,
            "stored": stored,
            "charter": snapshot.charter,
            "version": snapshot.version.version,
        }

    # --- identities -------------------------------------------------------------------------

    def list_identities(self, caller: Caller, section: str, page: Page | None = None) -> dict:
        kind, page = _kind(section), page or Page()
        with self.read(caller, f"directory:{section}/*") as session:
            query = select(IdentityRow).where(IdentityRow.kind == kind).order_by(IdentityRow.name)
            total, rows = page.of(session, query)
            groups = repository.group_names_of(session, [row.id for row in rows])
            return page.view(total, [_identity_view(row, groups[row.id]) for row in rows])

    def get_identity(self, caller: Caller, section: str, name: str) -> dict:
        kind = _kind(section)
        with self.read(caller, f"directory:{section}/{name}") as session:
            row = repository.identity(session, kind, name)
            return _identity_view(row, repository.group_names_of(session, [row.id])[row.id])

    def put_identity(self, caller: Caller, section: str, name: str, fields: Mapping[str, object]) -> Done:
        """Create or replace an identity: state, owner, display name, attributes and direct groups."""
        kind = _kind(section)
        with self.change(caller, f"directory:{section}/{name}", f"directory.{kind}.put") as change:
            self.write_identity(change, kind, name, fields)
        return Done(change.revision, {"name": name, "kind": kind})

    def write_identity(self, change: Change, kind: str, name: str, fields: Mapping[str, object]) -> None:
        """put_identity's write, inside a change already authorised (SCIM reads, checks and writes in one)."""
        _check_name("name", name)
        state = fields.get("state", "active")
        if state not in STATES:
            raise Invalid("state", f"expected one of {', '.join(STATES)}, found {state!r}")
        session, now = change.session, self.now()
        row = session.scalar(select(IdentityRow).where(IdentityRow.kind == kind, IdentityRow.name == name))
        change.details["before"] = _identity_audit_view(session, row)
        if row is None:
            row = IdentityRow(kind=kind, name=name, created_at=now)
            session.add(row)
        elif row.state == "active" and state != "active":
            change.details["offboarded"] = offboard(session, kind, name, now, f"identity {state}")
        row.state = state  # type: ignore[assignment]
        row.owner = fields.get("owner")  # type: ignore[assignment]
        row.display_name = fields.get("display_name")  # type: ignore[assignment]
        row.attributes = dict(fields.get("attributes") or {})  # type: ignore[arg-type]
        row.updated_at = now
        session.flush()
        if fields.get("groups") is not None:  # absent or null: the current groups stay
            self._set_groups(session, row, list(fields["groups"]))  # type: ignore[arg-type]
            session.flush()
        change.details["after"] = _identity_audit_view(session, row)

    def delete_identity(self, caller: Caller, section: str, name: str) -> Done:
        kind = _kind(section)
        with self.change(caller, f"directory:{section}/{name}", f"directory.{kind}.delete") as change:
            self.remove_identity(change, kind, name)
        return Done(change.revision)

    def remove_identity(self, change: Change, kind: str, name: str) -> None:
        """delete_identity's write, inside a change already authorised; offboards first."""
        row = repository.identity(change.session, kind, name)
        change.details.update(before=_identity_audit_view(change.session, row), after=None)
        change.details["offboarded"] = offboard(change.session, kind, name, self.now(), "identity deleted")
        change.session.delete(row)

    def _set_groups(self, session: Session, row: IdentityRow, groups: list[str]) -> None:
        wanted = {name: _referenced_group(session, name, f"groups[{i}]").id for i, name in enumerate(groups)}
        current = {
            m.group_id: m for m in session.scalars(select(MembershipRow).where(MembershipRow.identity_id == row.id))
        }
        for group_id, membership in current.items():
            if group_id not in wanted.values():
                session.delete(membership)
        for group_id in wanted.values():
            if group_id not in current:
                session.add(MembershipRow(identity_id=row.id, group_id=group_id))

    # --- groups -----------------------------------------------------------------------------

    def list_groups(self, caller: Caller, page: Page | None = None) -> dict:
        page = page or Page()
        with self.read(caller, "directory:groups/*") as session:
            total, rows = page.of(session, select(GroupRow).order_by(GroupRow.name))
            return page.view(total, [_group_view(session, row) for row in rows])

    def get_group(self, caller: Caller, name: str) -> dict:
        with self.read(caller, f"directory:groups/{name}") as session:
            return _group_view(session, repository.group(session, name))

    def put_group(self, caller: Caller, name: str, fields: Mapping[str, object]) -> Done:
        """Create or replace a group: owner, attributes and the groups it is nested in."""
        _check_name("name", name)
        with self.change(caller, f"directory:groups/{name}", "directory.group.put") as change:
            session, now = change.session, self.now()
            row = session.scalar(select(GroupRow).where(GroupRow.name == name))
            change.details["before"] = None if row is None else _group_audit_view(session, row)
            if row is None:
                row = GroupRow(name=name, created_at=now)
                session.add(row)
            row.owner = fields.get("owner")  # type: ignore[assignment]
            row.attributes = dict(fields.get("attributes") or {})  # type: ignore[arg-type]
            row.updated_at = now
            session.flush()
            if fields.get("parents") is not None:  # absent or null: the current parents stay
                self._set_parents(session, row, list(fields["parents"]))  # type: ignore[arg-type]
            change.details["after"] = _group_audit_view(session, row)
        return Done(change.revision, {"name": name})

    def delete_group(self, caller: Caller, name: str) -> Done:
        with self.change(caller, f"directory:groups/{name}", "directory.group.delete") as change:
            self.remove_group(change, name)
        return Done(change.revision)

    def remove_group(self, change: Change, name: str) -> None:
        """delete_group's write, inside a change already authorised."""
        row = repository.group(change.session, name)
        change.details.update(before=_group_audit_view(change.session, row, with_members=True), after=None)
        change.session.delete(row)

    def add_member(self, caller: Caller, group: str, section: str, name: str) -> Done:
        kind = _kind(section)
        with self.change(caller, f"directory:groups/{group}", "directory.group.member.add") as change:
            added = repository.add_member(change.session, group, kind, name)
            change.details.update(member={"kind": kind, "name": name}, changed=added)
        return Done(change.revision, {"changed": added})

    def remove_member(self, caller: Caller, group: str, section: str, name: str) -> Done:
        kind = _kind(section)
        with self.change(caller, f"directory:groups/{group}", "directory.group.member.remove") as change:
            removed = repository.remove_member(change.session, group, kind, name)
            change.details.update(member={"kind": kind, "name": name}, changed=removed)
        return Done(change.revision, {"changed": removed})

    def _set_parents(self, session: Session, row: GroupRow, parents: list[str]) -> None:
        wanted = {_referenced_group(session, name, f"parents[{i}]").id for i, name in enumerate(parents)}
        if row.id in wanted:
            raise Conflict(f'group "{row.name}" cannot be nested in itself')
        for nesting in session.scalars(select(GroupNestingRow).where(GroupNestingRow.child_id == row.id)):
            if nesting.parent_id not in wanted:
                session.delete(nesting)
            else:
                wanted.discard(nesting.parent_id)
        for parent_id in wanted:
            session.add(GroupNestingRow(child_id=row.id, parent_id=parent_id))
        session.flush()
        _reject_cycle(session, row)

    # --- resources --------------------------------------------------------------------------

    def list_resources(self, caller: Caller, page: Page | None = None) -> dict:
        page = page or Page()
        with self.read(caller, "directory:resources/*") as session:
            total, rows = page.of(session, select(ResourceRow).order_by(ResourceRow.name))
            return page.view(total, [_resource_view(row) for row in rows])

    def get_resource(self, caller: Caller, name: str) -> dict:
        with self.read(caller, f"directory:resources/{name}") as session:
            row = session.get(ResourceRow, name)
            if row is None:
                raise NotFound(f'no resource "{name}"')
            return _resource_view(row)

    def put_resource(self, caller: Caller, name: str, fields: Mapping[str, object]) -> Done:
        _check_name("name", name, longest=1024)
        with self.change(caller, f"directory:resources/{name}", "directory.resource.put") as change:
            row = change.session.get(ResourceRow, name)
            change.details["before"] = None if row is None else _resource_view(row)
            if row is None:
                row = ResourceRow(name=name)
                change.session.add(row)
            row.owner = fields.get("owner")  # type: ignore[assignment]
            row.attributes = dict(fields.get("attributes") or {})  # type: ignore[arg-type]
            row.updated_at = self.now()
            change.details["after"] = _resource_view(row)
        return Done(change.revision, {"name": name})

    def delete_resource(self, caller: Caller, name: str) -> Done:
        with self.change(caller, f"directory:resources/{name}", "directory.resource.delete") as change:
            row = change.session.get(ResourceRow, name)
            if row is None:
                raise NotFound(f'no resource "{name}"')
            change.details.update(before=_resource_view(row), after=None)
            change.session.delete(row)
        return Done(change.revision)

    # --- the charter --------------------------------------------------------------------------

    def get_charter(self, caller: Caller) -> dict:
        snapshot = self.engine.snapshot
        with self.read(caller, f"charter:{snapshot.charter}") as session:
            row = charters.latest(session)
        if row is None:
            raise NotFound("no charter has been uploaded")
        return {
            "name": row.name,
            "text": row.text,
            "sha256": row.sha256,
            "uploaded_by": row.uploaded_by,
            "uploaded_at": _aware(row.uploaded_at).isoformat(),
            "in_force": {"name": snapshot.charter, "version": snapshot.version.version, "revision": snapshot.revision},
        }

    def upload_charter(self, caller: Caller, text: str) -> Done:
        """Store a new charter text once it passes the checker; raises charters.Rejected otherwise."""
        from charter.language.parser import parse_charter

        try:
            name = parse_charter(text, "charter").name
        except Exception:
            name = self.engine.snapshot.charter
        # Authorise against both the charter in force and the one being replaced by name.
        self.authorize(caller, "manage", f"charter:{self.engine.snapshot.charter}", "charter.upload")
        with self.change(caller, f"charter:{name}", "charter.upload") as change:
            directory = repository.load(change.session)
            uploaded = charters.upload(change.session, text, directory, caller.describe(), self.now(), change.revision)
            warnings = [d.headline() for d in uploaded.warnings]
            change.details.update(
                charter_version_id=uploaded.row.id, sha256=uploaded.row.sha256, name=name, warnings=warnings
            )
        return Done(change.revision, {"name": name, "warnings": warnings})

    # --- amendments ---------------------------------------------------------------------------
    # Who may propose: the charter's owners, or whoever the charter lets manage it. Who may approve or
    # reject: a member of a group the amendment's `Approved by` line names, never its proposer.

    def propose_amendment(
        self,
        caller: Caller,
        text: str,
        *,
        draft: bool = False,
        expectations: object = None,
        canary: object = None,
    ) -> Done:
        """Check and store an amendment as proposed (or as a draft); its plan and quorum are then readable.

        `expectations` are the expectation files it updates ({name: text or None}), `canary` its canary plan."""
        name = self.engine.snapshot.charter
        resource = f"charter:{name}/amendments"
        decision = self._may_propose(caller, resource)
        operation = "amendment.draft" if draft else "amendment.propose"
        with self._transaction(caller, resource, operation, decision) as change:
            directory = repository.load(change.session)
            proposed = amendments.propose(
                change.session,
                text,
                directory,
                _subject_key(caller),
                self.now(),
                draft=draft,
                expectations=expectations,
                canary=canary,
            )
            warnings = [d.headline() for d in proposed.warnings]
            change.details.update(
                number=proposed.row.number,
                effective=proposed.row.effective.isoformat(),
                expectation_updates=sorted(proposed.row.expectations or {}),
                canary=proposed.row.canary,
            )
            view = amendments.view(change.session, proposed.row)
        return Done(change.revision, {**view, "warnings": warnings})

    def edit_amendment(
        self, caller: Caller, number: int, text: str, *, expectations: object = None, canary: object = None
    ) -> Done:
        """Replace a draft's text, expectation updates and canary plan: its author, or a charter manager."""
        resource, decision = self._as_author(caller, number, "amendment.edit")
        with self._transaction(caller, resource, "amendment.edit", decision) as change:
            row = amendments.find(change.session, self.engine.snapshot.charter, number)
            directory = repository.load(change.session)
            edited = amendments.edit_draft(
                change.session, row, text, directory, self.now(), expectations=expectations, canary=canary
            )
            change.details.update(number=number, expectation_updates=sorted(row.expectations or {}), canary=row.canary)
            view = amendments.view(change.session, row)
        return Done(change.revision, {**view, "warnings": [d.headline() for d in edited.warnings]})

    def submit_amendment(self, caller: Caller, number: int) -> Done:
        """A draft becomes proposed (checked again): its author, or a charter manager."""
        resource, decision = self._as_author(caller, number, "amendment.propose")
        with self._transaction(caller, resource, "amendment.propose", decision) as change:
            row = amendments.find(change.session, self.engine.snapshot.charter, number)
            submitted = amendments.submit(change.session, row, repository.load(change.session), self.now())
            change.details.update(number=number, from_draft=True)
            view = amendments.view(change.session, row)
        return Done(change.revision, {**view, "warnings": [d.headline() for d in submitted.warnings]})

    def _read_amendment(self, caller: Caller, number: int) -> Session:
        """A session to read amendment `number` with: for whoever may read the charter, and for the people
        the amendment involves (its proposer, and the members of the groups that must approve it)."""
        name = self.engine.snapshot.charter
        with self.engine.sessions() as session:
            row = amendments.find(session, name, number)
            groups = {q.group for q in amendments.parsed(row).approvers}
        principal = self.engine.snapshot.principal(caller.subject_type, caller.subject)
        involved = row.proposed_by == _subject_key(caller) or (
            caller.subject_type == "user" and principal is not None and bool(groups & principal.groups)
        )
        return self.engine.sessions() if involved else self.read(caller, f"charter:{name}")

    def _as_author(self, caller: Caller, number: int, operation: str) -> tuple[str, Decision | None]:
        """The amendment's resource, and the decision letting a caller who is not its proposer act on it."""
        name = self.engine.snapshot.charter
        with self.engine.sessions() as session:
            proposer = amendments.find(session, name, number).proposed_by
        if proposer == _subject_key(caller):
            return f"charter:{name}/amendments/{number}", None
        return f"charter:{name}/amendments/{number}", self.authorize(caller, "manage", f"charter:{name}", operation)

    def decide_amendment(self, caller: Caller, number: int, verdict: str, comment: str | None = None) -> Done:
        """Approve or reject (verdict "approve" | "reject") as one person counted for their groups.

        A refused verdict (not eligible, the proposer, twice, failing expectations) is audited as denied."""
        if verdict not in ("approve", "reject"):
            raise Invalid("verdict", f'expected "approve" or "reject", found {verdict!r}')
        name = self.engine.snapshot.charter
        resource = f"charter:{name}/amendments/{number}"
        operation = f"amendment.{verdict}"
        principal = self.engine.snapshot.principal(caller.subject_type, caller.subject)
        groups = principal.groups if principal is not None and caller.subject_type == "user" else frozenset()
        try:
            with self._transaction(caller, resource, operation, None) as change:
                row = amendments.find(change.session, name, number)
                directory = repository.load(change.session)
                result = amendments.decide(
                    change.session, row, caller.subject, groups, verdict, self.now(), directory, comment
                )
                change.details.update(number=number, status=row.status, tally=result.describe(), comment=comment)
                view = amendments.view(change.session, row)
        except amendments.Refused as refused:
            if refused.status != 404:
                self._refused(caller, operation, resource, str(refused))
            raise
        return Done(change.revision, view)

    def withdraw_amendment(self, caller: Caller, number: int) -> Done:
        """Withdraw a pending amendment: its proposer, or whoever may manage the charter."""
        name = self.engine.snapshot.charter
        resource = f"charter:{name}/amendments/{number}"
        with self.engine.sessions() as session:
            proposer = amendments.find(session, name, number).proposed_by
        decision = (
            None
            if proposer == _subject_key(caller)
            else self.authorize(caller, "manage", f"charter:{name}", "amendment.withdraw")
        )
        with self._transaction(caller, resource, "amendment.withdraw", decision) as change:
            row = amendments.find(change.session, name, number)
            amendments.withdraw(row, self.now())
            change.details.update(number=number)
        return Done(change.revision, {"number": number, "status": "withdrawn"})

    def list_amendments(self, caller: Caller) -> dict:
        name = self.engine.snapshot.charter
        with self.read(caller, f"charter:{name}") as session:
            rows = session.scalars(
                select(AmendmentRow).where(AmendmentRow.charter_name == name).order_by(AmendmentRow.number)
            )
            items = [amendments.view(session, row) for row in rows]
        return {"items": items, "total": len(items)}

    def get_amendment(self, caller: Caller, number: int) -> dict:
        name = self.engine.snapshot.charter
        with self._read_amendment(caller, number) as session:
            return amendments.view(session, amendments.find(session, name, number))

    def plan_amendment(self, caller: Caller, number: int) -> dict:
        """Who gains and loses what if the amendment were in force now (over today's directory), and how
        the expectation files fare against the version it would make."""
        name = self.engine.snapshot.charter
        with self._read_amendment(caller, number) as session:
            row = amendments.find(session, name, number)
            directory = repository.load(session)
            result = amendments.plan(session, row, directory, self.now())
            expectations = amendments.gate(session, row, directory, self.now())
        return {"number": number, "status": row.status, **result.to_json(), "expectations": expectations.to_json()}

    def simulate_amendment(
        self, caller: Caller, number: int, days: int = amendments.DEFAULT_SIMULATION_DAYS, progress=None
    ) -> dict:
        """Every logged decision of the last `days` that the amendment would flip, grouped by clause."""
        name = self.engine.snapshot.charter
        with self._read_amendment(caller, number) as session:
            row = amendments.find(session, name, number)
            report, since, until = amendments.simulate(
                session, row, repository.load(session), self.now(), days, progress
            )
        window = {"from": since.isoformat(), "to": until.isoformat(), "days": days}
        return {"number": number, "status": row.status, "window": window, **report.to_json()}

    def apply_due_amendments(self, actor: str) -> list[dict]:
        """Apply every approved amendment whose date has come (the scheduler, `charter amend apply`): in
        force, or in canary when it has a canary plan.

        Each in its own transaction: one that fails stays as it was, with the reason kept and audited.
        """
        with self.engine.sessions() as session:
            due = [(row.charter_name, row.number) for row in amendments.due(session, self.now().date())]
        results = []
        for name, number in due:
            resource = f"charter:{name}/amendments/{number}"
            try:
                with self._transaction(actor, resource, "amendment.apply", None) as change:
                    row = amendments.find(change.session, name, number)
                    directory = repository.load(change.session)
                    version = amendments.apply(change.session, row, directory, self.now(), change.revision, actor)
                    change.details.update(number=number, version=version.version, status=row.status)
                    status = row.status
                results.append({"number": number, "status": status, "revision": change.revision})
            except (charters.Rejected, amendments.Refused) as error:
                self._failed(actor, name, number, "amendment.apply", str(error))
                results.append({"number": number, "status": "failed", "error": str(error)})
        return results

    def watch_canaries(self, actor: str) -> list[dict]:
        """Judge each amendment in canary by its cohort's deny rate: withdraw it (audited, and an ALERT in
        the log) when the rate rose past the margin, promote it when its time has passed without that."""
        from charter import canary

        results = []
        with self.engine.sessions() as session:
            rows = [(r.charter_name, r.number) for r in amendments.live(session, self.engine.snapshot.charter)]
            rows = [(n, k) for n, k in rows if amendments.find(session, n, k).status == "canary"]
        for name, number in rows:
            with self.engine.sessions() as session:
                measured = canary.measure(session, amendments.find(session, name, number), self.engine, self.now())
            if measured.verdict.action == "wait":
                results.append({"number": number, "status": "canary", **measured.to_json()})
                continue
            resource = f"charter:{name}/amendments/{number}"
            operation = f"amendment.canary.{measured.verdict.action}"
            try:
                with self._transaction(actor, resource, operation, None) as change:
                    row = amendments.find(change.session, name, number)
                    row.canary_outcome = measured.to_json()
                    if measured.verdict.action == "withdraw":
                        amendments.withdraw(row, self.now())
                        notify.publish(
                            change.session,
                            "amendment.canary.withdrawn",
                            {"charter": name, "number": number, **measured.to_json()},
                            self.now(),
                        )
                    else:
                        directory = repository.load(change.session)
                        amendments.promote(change.session, row, directory, self.now(), change.revision, actor)
                    change.details.update(number=number, status=row.status, **measured.to_json())
                    status = row.status
            except (charters.Rejected, amendments.Refused) as error:
                self._failed(actor, name, number, operation, str(error))
                results.append({"number": number, "status": "failed", "error": str(error)})
                continue
            if status == "withdrawn":
                canary.alert(name, number, measured)
            results.append({"number": number, "status": status, **measured.to_json()})
        return results

    def _failed(self, actor: str, name: str, number: int, operation: str, reason: str) -> None:
        """Keep why an amendment could not move on, and audit it (the previous version stays in force)."""
        with self.engine.sessions.begin() as session:
            row = amendments.find(session, name, number)
            row.last_error = reason
            self.engine.audit.record(
                session,
                actor,
                operation,
                f"charter:{name}/amendments/{number}",
                "failed",
                None,
                {"number": number, "error": reason},
            )

    # --- just-in-time access (charter.access) ----------------------------------------------------------
    # Asking needs no administrative right: the charter's eligibility and break-glass clauses decide.
    # Approving needs membership of a group the clause names (or of the escalation group once escalated).

    def request_access(self, caller: Caller, fields: Mapping[str, object]) -> Done:
        """Ask for `action` on `resource` for `duration` (with `reason`, from `starts`) under the charter."""
        ask = self._ask(caller, fields)
        starts = _when(fields.get("starts"), "starts")
        target = f"access:requests/{caller.subject_type}/{caller.subject}"
        allowed = self._allowed(caller, ask, policy_access.may_request, "request.create", target)
        with self._transaction(caller, target, "request.create", None) as change:
            row = access.create_request(change.session, ask, allowed, starts, self.now())
            result = access.view(change.session, row)
            change.details.update(request=row.id, clause=allowed.clause, after=result)
        return Done(change.revision, result)

    def decide_request(self, caller: Caller, request_id: str, verdict: str, comment: str | None = None) -> Done:
        if verdict not in ("approve", "deny"):
            raise Invalid("verdict", f'expected "approve" or "deny", found {verdict!r}')
        principal = self.engine.snapshot.principal(caller.subject_type, caller.subject)
        groups = principal.groups if principal is not None and caller.subject_type == "user" else frozenset()
        target, operation = f"access:requests/{request_id}", f"request.{verdict}"
        try:
            with self._transaction(caller, target, operation, None) as change:
                row = access.find(change.session, request_id, lock=True)
                access.decide(change.session, row, caller.subject, groups, verdict, comment, self.now())
                result = access.view(change.session, row)
                change.details.update(request=request_id, status=row.status, grant=row.grant_id, comment=comment)
        except amendments.Refused as refused:
            if refused.status != 404:
                self._refused(caller, operation, target, str(refused))
            raise
        return Done(change.revision, result)

    def cancel_request(self, caller: Caller, request_id: str) -> Done:
        target = f"access:requests/{request_id}"
        with self._transaction(caller, target, "request.cancel", None) as change:
            row = access.find(change.session, request_id, lock=True)
            if (row.subject_type, row.subject) != (caller.subject_type, caller.subject):
                raise amendments.Refused(f"only its requester may cancel request {request_id}", 403)
            access.cancel(change.session, row, self.now())
            result = access.view(change.session, row)
        return Done(change.revision, result)

    def get_request(self, caller: Caller, request_id: str) -> dict:
        """A request, for its requester, those who may decide it, and whoever may read the subject's grants."""
        with self.engine.sessions() as session:
            row = access.find(session, request_id)
            involved = self._involved(caller, row)
            subject = f"grants:{row.subject_type}/{row.subject}"
            result = access.view(session, row)
        if not involved:
            self.authorize(caller, "read", subject)
        return result

    def list_requests(self, caller: Caller, status: str | None = None) -> dict:
        """The caller's own requests and those they may decide (pending, in a group that approves them)."""
        with self.engine.sessions() as session:
            query = select(AccessRequestRow).order_by(AccessRequestRow.created_at.desc())
            if status is not None:
                query = query.where(AccessRequestRow.status == status)
            rows = [row for row in session.scalars(query.limit(MAX_LIMIT)) if self._involved(caller, row)]
            items = [access.view(session, row) for row in rows]
        return {"items": items, "total": len(items)}

    def _involved(self, caller: Caller, row: AccessRequestRow) -> bool:
        if (row.subject_type, row.subject) == (caller.subject_type, caller.subject):
            return True
        principal = self.engine.snapshot.principal(caller.subject_type, caller.subject)
        return (
            caller.subject_type == "user"
            and principal is not None
            and bool(access.approving_groups(row) & principal.groups)
        )

    def revoke_access(self, caller: Caller, grant_id: str) -> Done:
        """End a grant at once: its holder, an approver of its request, or whoever may manage its grants."""
        target = f"access:grants/{grant_id}"
        with self.engine.sessions() as session:
            grant = session.get(GrantRow, grant_id)
            if grant is None:
                raise NotFound(f'no grant "{grant_id}"')
            request = access.request_of_grant(session, grant_id)
            approvers = {v.person for v in access.verdicts(session, request)} if request is not None else set()
            holder = (grant.subject_type, grant.subject) == (caller.subject_type, caller.subject)
            approver = caller.subject_type == "user" and caller.subject in approvers
            subject = f"grants:{grant.subject_type}/{grant.subject}"
        decision = None if holder or approver else self.authorize(caller, "manage", subject, "grant.revoke")
        with self._transaction(caller, target, "grant.revoke", decision) as change:
            row = change.session.get(GrantRow, grant_id, with_for_update=True)
            access.revoke(change.session, row, caller.describe(), self.now())
            result = access.grant_view(row)
            change.details.update(before=None, after=result)
        return Done(change.revision, result)

    def break_glass(self, caller: Caller, fields: Mapping[str, object]) -> Done:
        """Immediate access under a break-glass clause: loudly audited and alerted, with a review task due."""
        from charter import metrics

        ask = self._ask(caller, fields)
        target = f"access:break-glass/{caller.subject_type}/{caller.subject}"
        allowed = self._allowed(caller, ask, policy_access.may_break_glass, "break_glass.use", target)
        with self._transaction(caller, target, "break_glass.use", None) as change:
            grant, task = access.break_glass(change.session, ask, allowed, self.now())
            result = {"grant": access.grant_view(grant), "review": {"id": task.id, "due": task.due.isoformat()}}
            change.details.update(loud=True, clause=allowed.clause, reason=ask.reason, **result)
        metrics.BREAK_GLASS.labels(str(allowed.clause)).inc()
        log.warning(
            "BREAK GLASS: %s used clause %s for %s on %s until %s (reason: %s); review %s due %s",
            caller.describe(), allowed.clause, ask.action, ask.resource, grant.ends.isoformat(), ask.reason,
            task.id, task.due.isoformat(),
        )  # fmt: skip
        return Done(change.revision, result)

    def sweep_requests(self, actor: str) -> list[dict]:
        """Escalate and expire pending requests by the charter's windows (each server, every minute)."""
        with self.engine.sessions() as session:
            pending = session.scalar(select(func.count()).where(AccessRequestRow.status == "pending"))
        if not pending:
            return []
        with self._transaction(actor, "access:requests", "request.sweep", None) as change:
            done = access.sweep(change.session, self.engine.snapshot.version, self.now())
            results = [{"request": row.id, "did": what} for what, row in done]
            change.details.update(results=results)
        return results

    def _ask(self, caller: Caller, fields: Mapping[str, object]) -> policy_access.Ask:
        for name in ("action", "resource"):
            if not isinstance(fields.get(name), str) or not str(fields.get(name)).strip():
                raise Invalid(name, "expected a non-empty string")
        try:
            duration = access.parse_duration(fields.get("duration"))
        except ValueError as error:
            raise Invalid("duration", str(error)) from None
        reason = fields.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise Invalid("reason", "expected a string")
        action, resource = str(fields["action"]), str(fields["resource"])
        return policy_access.Ask(caller.subject_type, caller.subject, action, resource, duration, reason)

    def _allowed(self, caller: Caller, ask, check, operation: str, target: str) -> policy_access.Allowed:
        try:
            return check(self.engine.snapshot, ask)
        except policy_access.NotAllowed as refusal:
            self._refused(caller, operation, target, refusal.message)
            raise amendments.Refused(refusal.message, 403, refusal.clause) from None

    # --- expectation files and versions ------------------------------------------------------------

    def list_expectation_files(self, caller: Caller) -> dict:
        name = self.engine.snapshot.charter
        with self.read(caller, f"charter:{name}") as session:
            files = expectation_files.stored(session, name)
        return {"items": [{"name": n, "text": files[n]} for n in sorted(files)], "total": len(files)}

    def put_expectation_file(self, caller: Caller, file_name: str, text: str | None) -> Done:
        """Store (or, with `text` None, delete) an expectation file; it must parse and pass against the
        version in force, since it is the approval gate of every amendment after it."""
        name = self.engine.snapshot.charter
        operation = "expectations.delete" if text is None else "expectations.put"
        with self.change(caller, f"charter:{name}/expectations/{file_name}", operation) as change:
            if text is not None:
                try:
                    expectation_files.parse_file(file_name, text, name)
                except expectation_files.BadFile as error:
                    if error.diagnostics:
                        raise charters.Rejected(error.diagnostics) from None
                    raise Invalid("name", str(error)) from None
                results = expectation_files.run(
                    {file_name: text}, self.engine.snapshot.version, repository.load(change.session), self.now()
                )
                if not results.passed:
                    failures = "; ".join(f.describe() for f in results.failures[:3])
                    count = len(results.failures)
                    raise Conflict(f"{count} expectations fail against the version in force: {failures}")
            existed = expectation_files.save(change.session, name, file_name, text, caller.describe(), self.now())
            if text is None and not existed:
                raise NotFound(f'no expectation file "{file_name}"')
            change.details.update(file=file_name, replaced=existed)
        return Done(change.revision, {"name": file_name, "deleted": text is None})

    def list_versions(self, caller: Caller) -> dict:
        name = self.engine.snapshot.charter
        with self.read(caller, f"charter:{name}") as session:
            rows = charters.versions(session, name)
        return {"items": [_version_view(r, with_text=False) for r in rows], "total": len(rows)}

    def get_version(self, caller: Caller, number: int) -> dict:
        name = self.engine.snapshot.charter
        with self.read(caller, f"charter:{name}") as session:
            rows = [r for r in charters.versions(session, name) if r.version == number]
        if not rows:
            raise NotFound(f'"{name}" has no version {number}')
        return _version_view(rows[-1], with_text=True)

    def propose_rollback(
        self, caller: Caller, to_version: int, effective: dt.date | str | None = None, reason: str = ""
    ) -> Done:
        """Propose the amendment restoring version `to_version`'s clauses (docs/rollback.md): authorised and
        audited as any proposal (`amendment.propose`, with `rollback_to`); `effective` defaults to tomorrow."""
        to_version = _version_number(to_version)
        day = _rollback_day(effective, self.now().date())
        reason = _rollback_reason(reason)
        name = self.engine.snapshot.charter
        resource = f"charter:{name}/amendments"
        decision = self._may_propose(caller, resource)
        with self._transaction(caller, resource, "amendment.propose", decision) as change:
            directory = repository.load(change.session)
            rolled = amendments.rollback(
                change.session, to_version, day, reason, _subject_key(caller), directory, self.now()
            )
            row = rolled.proposed.row
            warnings = [d.headline() for d in rolled.proposed.warnings]
            change.details.update(number=row.number, effective=row.effective.isoformat(), rollback_to=to_version)
            view = amendments.view(change.session, row)
        rollback = {
            "to_version": to_version,
            "undoes": list(rolled.rollback.undone),
            "renumbered": {str(old): new for old, new in rolled.rollback.renumbered.items()},
        }
        return Done(change.revision, {**view, "warnings": warnings, "rollback": rollback})

    def _may_propose(self, caller: Caller, resource: str) -> Decision:
        snapshot = self.engine.snapshot
        principal = snapshot.principal(caller.subject_type, caller.subject)
        for owner in snapshot.version.charter.owners:
            if principal is None:
                break
            if (owner.kind.value == "group" and owner.name in principal.groups) or (
                owner.kind.value == caller.subject_type and owner.name == caller.subject
            ):
                return Decision(True, Basis.PERMISSION, snapshot.charter, snapshot.version.version)
        return self.authorize(caller, "manage", f"charter:{snapshot.charter}", "amendment.propose")

    def _refused(self, caller: Caller, operation: str, resource: str, reason: str) -> None:
        self.engine.audit.record_alone(
            self.engine.sessions, caller.describe(), operation, resource, "denied", None, {"reasons": [reason]}
        )

    # --- grants -------------------------------------------------------------------------------

    def create_grant(self, caller: Caller, fields: Mapping[str, object]) -> Done:
        """An administrative grant under a clause of the charter in force, for an identity in the directory.

        (Issue-time checks of eligibility come with just-in-time access.)
        """
        subject_type, subject = str(fields["subject_type"]), str(fields["subject"])
        if subject_type not in SUBJECT_TYPES:
            raise Invalid("subject_type", f"expected one of {', '.join(SUBJECT_TYPES)}, found {subject_type!r}")
        starts = _when(fields.get("starts"), "starts") or self.now()
        ends = _when(fields.get("ends"), "ends")
        if ends is None or ends <= starts:
            raise Invalid("ends", f"expected a time after the start ({starts.isoformat()})")
        kind = str(fields.get("kind", "request"))
        if kind not in GRANT_KINDS:
            raise Invalid("kind", f'expected "request" or "break glass", found {kind!r}')
        clause = int(fields["clause"])  # type: ignore[call-overload]
        with self.change(caller, f"grants:{subject_type}/{subject}", "grant.create") as change:
            session = change.session
            if repository.find_identity(session, subject_type, subject) is None:
                raise Invalid("subject", f'no {subject_type} "{subject}" in the directory')
            version = self.engine.snapshot.version
            if clause not in {c.number for c in version.clauses}:
                raise Invalid("clause", f'"{version.charter.name}" in force has no clause {clause}')
            row = GrantRow(
                id=secrets.token_hex(8),
                kind=kind,
                subject_type=subject_type,
                subject=subject,
                actions=list(fields.get("actions") or []),  # type: ignore[call-overload]
                resource=str(fields["resource"]),
                starts=starts,
                ends=ends,
                clause=clause,
                created_by=caller.describe(),
                created_at=self.now(),
                revoked_at=None,
            )
            session.add(row)
            change.details["after"] = _grant_view(row)
        return Done(change.revision, _grant_view(row))

    def revoke_grant(self, caller: Caller, grant_id: str) -> Done:
        """End a grant at once; a grant is revoked only once (a second revocation is a conflict)."""
        return self._revoke(caller, GrantRow, grant_id, "grant", "grants", "grant.revoke")

    def list_grants(
        self, caller: Caller, subject_type: str | None = None, subject: str | None = None, page: Page | None = None
    ) -> dict:
        """Grants (revoked and lapsed ones too), newest start first: all of them, or one subject's."""
        query = select(GrantRow).order_by(GrantRow.starts.desc(), GrantRow.id)
        return self._list_by_subject(caller, GrantRow, query, "grants", subject_type, subject, page, _grant_view)

    # --- API clients ----------------------------------------------------------------------------

    def create_client(self, caller: Caller, name: str, subject_type: str, subject: str) -> Done:
        """A new credential acting as an identity; the credential is in the result, once."""
        if subject_type not in SUBJECT_TYPES:
            raise Invalid("subject_type", f"expected one of {', '.join(SUBJECT_TYPES)}, found {subject_type!r}")
        with self.change(caller, f"clients:{subject_type}/{subject}", "client.create") as change:
            if repository.find_identity(change.session, subject_type, subject) is None:
                raise Invalid("subject", f'no {subject_type} "{subject}" in the directory')
            row, credential = client_store.create(
                change.session, name, subject_type, subject, caller.describe(), self.now()
            )
            change.details["after"] = _client_view(row)  # never the credential
        return Done(change.revision, {**_client_view(row), "credential": credential})

    def revoke_client(self, caller: Caller, client_id: str) -> Done:
        """Revoke a credential: once this returns, this server refuses it (others within their refresh)."""
        return self._revoke(caller, ApiClientRow, client_id, "API client", "clients", "client.revoke")

    def list_clients(
        self, caller: Caller, subject_type: str | None = None, subject: str | None = None, page: Page | None = None
    ) -> dict:
        """API clients (never their secrets), by name: all of them, or those acting as one identity."""
        query = select(ApiClientRow).order_by(ApiClientRow.name, ApiClientRow.id)
        return self._list_by_subject(caller, ApiClientRow, query, "clients", subject_type, subject, page, _client_view)

    # --- the audit chains -------------------------------------------------------------------------

    def search_audit(
        self, caller: Caller, chain: str, filters: Mapping[str, str | None], page: Page | None = None
    ) -> dict:
        """Records of one chain ("audit" or "decisions"), newest first, as `charter audit export` writes them.

        `filters` (query strings): since, until (a date or an ISO 8601 time with a zone), actor, action,
        target (exact, or a prefix ending in `*`), outcome, request_id. Authorised as `read` on `audit:<chain>`.
        """
        page = page or Page()
        if chain not in audit_store.CHAINS:
            raise NotFound(f"no audit chain {chain!r}: expected {' or '.join(audit_store.CHAINS)}")
        try:
            wanted = audit_export.Filters.parse(filters)
        except audit_export.BadFilter as error:
            raise Invalid(error.field, error.message) from None
        with self.read(caller, f"audit:{chain}") as session:
            total, rows = page.of(session, audit_export.search_query(chain, wanted))
            return page.view(total, [audit_export.record_json(chain, audit_store.to_record(row)) for row in rows])

    # --- drift ----------------------------------------------------------------------------------

    def drift(self, caller: Caller) -> dict:
        """Where live state disagrees with the obligations of the charter in force (docs/drift.md).

        Authorised as `read` on `charter:<name>`: it reports on the charter's obligations.
        """
        with self.read(caller, f"charter:{self.engine.snapshot.charter}") as session:
            return drift_in_store(session, self.now()).to_json()

    # --- things that belong to one subject: grants and API clients -------------------------------

    def _revoke(self, caller: Caller, model, key: str, noun: str, scope: str, operation: str) -> Done:
        """Revoke once, authorised as `manage` on `<scope>:<subject type>/<subject>` of whom it belongs to."""
        with self.engine.sessions() as session:
            row = session.get(model, key)
            if row is None:
                raise NotFound(f'no {noun} "{key}"')
            target = f"{scope}:{row.subject_type}/{row.subject}"
        with self.change(caller, target, operation) as change:
            row = change.session.get(model, key)
            if row is None:
                raise NotFound(f'no {noun} "{key}"')
            if row.revoked_at is not None:
                by = f" by {row.revoked_by}" if getattr(row, "revoked_by", None) else ""
                raise Conflict(f'{noun} "{key}" was already revoked{by}')
            row.revoked_at = self.now()
            if hasattr(row, "revoked_by"):
                row.revoked_by = caller.describe()
            change.details["id"] = key
        return Done(change.revision)

    def _list_by_subject(self, caller: Caller, model, query, scope, subject_type, subject, page, view) -> dict:
        """One page of `query`: all (read on `<scope>:*`) or one subject's (read on `<scope>:<type>/<id>`)."""
        page = page or Page()
        if (subject_type is None) != (subject is None):
            raise Invalid("subject" if subject is None else "subject_type", "give subject_type and subject together")
        if subject_type is not None:
            query = query.where(model.subject_type == subject_type, model.subject == subject)
        target = f"{scope}:*" if subject_type is None else f"{scope}:{subject_type}/{subject}"
        with self.read(caller, target) as session:
            total, rows = page.of(session, query)
            return page.view(total, [view(row) for row in rows])


def _version_view(row, with_text: bool) -> dict:
    view = {
        "version": row.version,
        "amendment": row.amendment_number,
        "made_at": _aware(row.made_at).isoformat(),
        "revision": row.revision,
        "sha256": row.sha256,
    }
    return {**view, "text": row.text} if with_text else view


def _kind(section: str) -> str:
    kind = IDENTITY_SECTIONS.get(section)
    if kind is None:
        raise NotFound(f"no such directory section {section!r}: expected users, services or partners")
    return kind


def _check_name(field: str, name: str, longest: int = 255) -> None:
    if not name or len(name) > longest or any(c.isspace() or ord(c) < 32 for c in name):
        raise Invalid(field, f"expected 1 to {longest} characters without spaces or control characters")


def _when(value: object, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise Invalid(field, f"expected an ISO 8601 time, found {value!r}") from None
    if moment.tzinfo is None:
        raise Invalid(field, f"expected a time with a zone (such as 2026-12-02T10:00:00Z), found {value!r}")
    return moment.astimezone(dt.UTC)


def _referenced_group(session: Session, name: str, field: str) -> GroupRow:
    """A group a request body names: its absence is the body's fault (400 for that field), not a missing URL."""
    row = repository.find_group(session, name)
    if row is None:
        raise Invalid(field, f'no group "{name}"')
    return row


def _identity_view(row: IdentityRow, groups: list[str]) -> dict:
    return {
        "name": row.name,
        "kind": row.kind,
        "state": row.state,
        "owner": row.owner,
        "display_name": row.display_name,
        "attributes": row.attributes or {},
        "groups": groups,
    }


def _group_view(session: Session, row: GroupRow) -> dict:
    parents = session.scalars(
        select(GroupRow.name)
        .join(GroupNestingRow, GroupNestingRow.parent_id == GroupRow.id)
        .where(GroupNestingRow.child_id == row.id)
    )
    members = session.execute(
        select(IdentityRow.kind, IdentityRow.name)
        .join(MembershipRow, MembershipRow.identity_id == IdentityRow.id)
        .where(MembershipRow.group_id == row.id)
        .order_by(IdentityRow.kind, IdentityRow.name)
    )
    return {
        "name": row.name,
        "owner": row.owner,
        "attributes": row.attributes or {},
        "parents": sorted(parents),
        "members": [{"kind": kind, "name": name} for kind, name in members],
    }


def _subject_key(caller: Caller) -> str:
    return f"{caller.subject_type}:{caller.subject}"


def _identity_audit_view(session: Session, row: IdentityRow | None) -> dict | None:
    if row is None:
        return None
    return _identity_view(row, repository.group_names_of(session, [row.id])[row.id])


def _group_audit_view(session: Session, row: GroupRow, with_members: bool = False) -> dict:
    """A group as its audit record keeps it; on deletion also its members and child groups (which go with it)."""
    view = _group_view(session, row)
    if not with_members:
        del view["members"]
    else:
        view["children"] = sorted(
            session.scalars(
                select(GroupRow.name)
                .join(GroupNestingRow, GroupNestingRow.child_id == GroupRow.id)
                .where(GroupNestingRow.parent_id == row.id)
            )
        )
    return view


def _resource_view(row: ResourceRow) -> dict:
    return {"name": row.name, "owner": row.owner, "attributes": row.attributes or {}}


def _client_view(row: ApiClientRow) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "subject_type": row.subject_type,
        "subject": row.subject,
        "created_by": row.created_by,
        "created_at": _aware(row.created_at).isoformat(),
        "revoked": row.revoked_at is not None,
    }


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _grant_view(row: GrantRow) -> dict:
    return {
        "id": row.id,
        "kind": row.kind,
        "subject_type": row.subject_type,
        "subject": row.subject,
        "actions": row.actions,
        "resource": row.resource,
        "starts": _aware(row.starts).isoformat(),
        "ends": _aware(row.ends).isoformat(),
        "clause": row.clause,
        "revoked": row.revoked_at is not None,
    }


def _reject_cycle(session: Session, start: GroupRow) -> None:
    parents: dict[int, list[int]] = {}
    for child, parent in session.execute(select(GroupNestingRow.child_id, GroupNestingRow.parent_id)):
        parents.setdefault(child, []).append(parent)
    seen: set[int] = set()
    frontier = list(parents.get(start.id, ()))
    while frontier:
        current = frontier.pop()
        if current == start.id:
            raise Conflict(f'nesting group "{start.name}" there would make a cycle')
        if current not in seen:
            seen.add(current)
            frontier.extend(parents.get(current, ()))


def _integrity_message(error: IntegrityError) -> str:
    return "the change conflicts with what is stored (a duplicate or a missing reference)"


# --- roll back: the request's fields -------------------------------------------------------------

MAX_REASON = 1000  # characters of a roll back's `Reason "..."` line


def _version_number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid("to_version", f"expected a version number (0 for the original text), found {value!r}")
    return value


def _rollback_day(value: dt.date | str | None, today: dt.date) -> dt.date:
    """The roll back's effective date: tomorrow by default (a date already past would apply at once)."""
    if value is None:
        return today + dt.timedelta(days=1)
    if isinstance(value, dt.date):
        return value
    try:
        day = dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise Invalid("effective", f"expected a date (YYYY-MM-DD), found {value!r}")
    return day


def _rollback_reason(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("reason", "say why the charter is rolled back")
    if "\n" in value or "\r" in value or len(value) > MAX_REASON:
        raise Invalid("reason", f"expected one line of at most {MAX_REASON} characters")
    return value
