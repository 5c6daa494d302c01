"""Administrative actions: each one authorised by the charter, and written with its revision in one transaction.

An action is asked of the engine as a decision like any other: the caller's
identity, an action (`read` to look, `manage` to change) and a resource:

| what | resource |
|---|---|
| users, groups, services, partners, resources of the directory | `directory:users/alice`, `directory:groups/sre`, ... |
| the charter | `charter:<charter name>` |
| grants | `grants:<subject type>/<subject>` |
| API clients | `clients:<subject type>/<subject>` (whom the credential acts as) |

So the charter says who administers what, e.g.
`Members of group "iam-admins" may read and manage "directory:*" and "charter:*".`
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charter import charters
from charter import clients as client_store
from charter.clients import Caller
from charter.directory import repository
from charter.directory.repository import Conflict, NotFound
from charter.engine import Engine
from charter.policy.decision import Decision
from charter.policy.request import Request
from charter.store.db import bump_revision
from charter.store.models import ApiClientRow, GrantRow, GroupNestingRow, GroupRow, IdentityRow, ResourceRow

IDENTITY_SECTIONS = {"users": "user", "services": "service", "partners": "partner"}
STATES = ("active", "disabled", "left")

__all__ = ["Admin", "Conflict", "Forbidden", "Invalid", "NotFound"]


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
class Done:
    """A committed change: the revision it created, and what it returns."""

    revision: int
    result: object = None


class Admin:
    def __init__(self, engine: Engine):
        self.engine = engine

    # --- the shared path --------------------------------------------------------------------

    def authorize(self, caller: Caller, action: str, resource: str) -> Decision:
        decision = self.engine.snapshot.evaluate(
            Request(caller.subject, action, resource, subject_type=caller.subject_type)
        )
        if not decision.allowed:
            raise Forbidden(decision, action, resource)
        return decision

    @contextmanager
    def change(self, caller: Caller, resource: str) -> Iterator[tuple[Session, list[int]]]:
        """Authorise `manage` on `resource`, then yield a session and the change's revision; commit on success.

        The revision is taken first: its row lock serialises writers, so revisions commit in order.
        """
        self.authorize(caller, "manage", resource)
        revision: list[int] = []
        session = self.engine.sessions()
        try:
            with session.begin():
                revision.append(bump_revision(session))
                yield session, revision
        except IntegrityError as error:
            raise Conflict(_integrity_message(error)) from None
        finally:
            session.close()
        self.engine.refresh_now()

    def read(self, caller: Caller, resource: str) -> Session:
        self.authorize(caller, "read", resource)
        return self.engine.sessions()

    def now(self) -> dt.datetime:
        return self.engine.clock.now().astimezone(dt.UTC)

    # --- identities -------------------------------------------------------------------------

    def list_identities(self, caller: Caller, section: str) -> list[dict]:
        kind = _kind(section)
        with self.read(caller, f"directory:{section}/*") as session:
            rows = session.scalars(select(IdentityRow).where(IdentityRow.kind == kind).order_by(IdentityRow.name))
            return [self._identity_view(session, row) for row in rows]

    def get_identity(self, caller: Caller, section: str, name: str) -> dict:
        kind = _kind(section)
        with self.read(caller, f"directory:{section}/{name}") as session:
            return self._identity_view(session, repository.identity(session, kind, name))

    def put_identity(self, caller: Caller, section: str, name: str, fields: Mapping[str, object]) -> Done:
        """Create or replace an identity: state, owner, display name, attributes and direct groups."""
        kind = _kind(section)
        _check_name("name", name)
        state = fields.get("state", "active")
        if state not in STATES:
            raise Invalid("state", f"expected one of {', '.join(STATES)}, found {state!r}")
        with self.change(caller, f"directory:{section}/{name}") as (session, revision):
            now = self.now()
            row = session.scalar(select(IdentityRow).where(IdentityRow.kind == kind, IdentityRow.name == name))
            if row is None:
                row = IdentityRow(kind=kind, name=name, created_at=now)
                session.add(row)
            row.state = state  # type: ignore[assignment]
            row.owner = fields.get("owner")  # type: ignore[assignment]
            row.display_name = fields.get("display_name")  # type: ignore[assignment]
            row.attributes = dict(fields.get("attributes") or {})  # type: ignore[arg-type]
            row.updated_at = now
            session.flush()
            if "groups" in fields:
                self._set_groups(session, row, list(fields["groups"]))  # type: ignore[arg-type]
        return Done(revision[0], {"name": name, "kind": kind})

    def delete_identity(self, caller: Caller, section: str, name: str) -> Done:
        kind = _kind(section)
        with self.change(caller, f"directory:{section}/{name}") as (session, revision):
            session.delete(repository.identity(session, kind, name))
        return Done(revision[0])

    def _set_groups(self, session: Session, row: IdentityRow, groups: list[str]) -> None:
        from charter.store.models import MembershipRow

        wanted = {}
        for name in groups:
            wanted[name] = repository.group(session, name).id
        current = {
            m.group_id: m for m in session.scalars(select(MembershipRow).where(MembershipRow.identity_id == row.id))
        }
        for group_id, membership in current.items():
            if group_id not in wanted.values():
                session.delete(membership)
        for group_id in wanted.values():
            if group_id not in current:
                session.add(MembershipRow(identity_id=row.id, group_id=group_id))

    def _identity_view(self, session: Session, row: IdentityRow) -> dict:
        from charter.store.models import MembershipRow

        groups = session.scalars(
            select(GroupRow.name)
            .join(MembershipRow, MembershipRow.group_id == GroupRow.id)
            .where(MembershipRow.identity_id == row.id)
        )
        return {
            "name": row.name,
            "kind": row.kind,
            "state": row.state,
            "owner": row.owner,
            "display_name": row.display_name,
            "attributes": row.attributes or {},
            "groups": sorted(groups),
        }

    # --- groups -----------------------------------------------------------------------------

    def list_groups(self, caller: Caller) -> list[dict]:
        with self.read(caller, "directory:groups/*") as session:
            return [self._group_view(session, row) for row in session.scalars(select(GroupRow).order_by(GroupRow.name))]

    def get_group(self, caller: Caller, name: str) -> dict:
        with self.read(caller, f"directory:groups/{name}") as session:
            return self._group_view(session, repository.group(session, name))

    def put_group(self, caller: Caller, name: str, fields: Mapping[str, object]) -> Done:
        """Create or replace a group: owner, attributes and the groups it is nested in."""
        _check_name("name", name)
        with self.change(caller, f"directory:groups/{name}") as (session, revision):
            now = self.now()
            row = session.scalar(select(GroupRow).where(GroupRow.name == name))
            if row is None:
                row = GroupRow(name=name, created_at=now)
                session.add(row)
            row.owner = fields.get("owner")  # type: ignore[assignment]
            row.attributes = dict(fields.get("attributes") or {})  # type: ignore[arg-type]
            row.updated_at = now
            session.flush()
            if "parents" in fields:
                self._set_parents(session, row, list(fields["parents"]))  # type: ignore[arg-type]
        return Done(revision[0], {"name": name})

    def delete_group(self, caller: Caller, name: str) -> Done:
        with self.change(caller, f"directory:groups/{name}") as (session, revision):
            session.delete(repository.group(session, name))
        return Done(revision[0])

    def add_member(self, caller: Caller, group: str, section: str, name: str) -> Done:
        kind = _kind(section)
        with self.change(caller, f"directory:groups/{group}") as (session, revision):
            added = repository.add_member(session, group, kind, name)
        return Done(revision[0], {"changed": added})

    def remove_member(self, caller: Caller, group: str, section: str, name: str) -> Done:
        kind = _kind(section)
        with self.change(caller, f"directory:groups/{group}") as (session, revision):
            removed = repository.remove_member(session, group, kind, name)
        return Done(revision[0], {"changed": removed})

    def _set_parents(self, session: Session, row: GroupRow, parents: list[str]) -> None:
        wanted = {repository.group(session, name).id for name in parents}
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

    def _group_view(self, session: Session, row: GroupRow) -> dict:
        from charter.store.models import MembershipRow

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

    # --- resources --------------------------------------------------------------------------

    def put_resource(self, caller: Caller, name: str, fields: Mapping[str, object]) -> Done:
        _check_name("name", name)
        with self.change(caller, f"directory:resources/{name}") as (session, revision):
            row = session.get(ResourceRow, name)
            if row is None:
                row = ResourceRow(name=name)
                session.add(row)
            row.owner = fields.get("owner")  # type: ignore[assignment]
            row.attributes = dict(fields.get("attributes") or {})  # type: ignore[arg-type]
            row.updated_at = self.now()
        return Done(revision[0], {"name": name})

    def delete_resource(self, caller: Caller, name: str) -> Done:
        with self.change(caller, f"directory:resources/{name}") as (session, revision):
            row = session.get(ResourceRow, name)
            if row is None:
                raise NotFound(f'no resource "{name}"')
            session.delete(row)
        return Done(revision[0])

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
            "uploaded_at": row.uploaded_at.isoformat(),
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
        self.authorize(caller, "manage", f"charter:{self.engine.snapshot.charter}")
        with self.change(caller, f"charter:{name}") as (session, revision):
            directory = repository.load(session)
            uploaded = charters.upload(session, text, directory, caller.describe(), self.now(), revision[0])
            warnings = [d.headline() for d in uploaded.warnings]
        return Done(revision[0], {"name": name, "warnings": warnings})

    # --- grants -------------------------------------------------------------------------------

    def create_grant(self, caller: Caller, fields: Mapping[str, object]) -> Done:
        """An administrative grant (issue-time checks of eligibility come with just-in-time access)."""
        subject_type, subject = str(fields["subject_type"]), str(fields["subject"])
        starts = _when(fields.get("starts")) or self.now()
        ends = _when(fields.get("ends"))
        if ends is None or ends <= starts:
            raise Invalid("ends", "expected a time after the start")
        kind = str(fields.get("kind", "request"))
        if kind not in ("request", "break glass"):
            raise Invalid("kind", f'expected "request" or "break glass", found {kind!r}')
        with self.change(caller, f"grants:{subject_type}/{subject}") as (session, revision):
            repository.identity(session, subject_type, subject)
            row = GrantRow(
                id=secrets.token_hex(8),
                kind=kind,
                subject_type=subject_type,
                subject=subject,
                actions=list(fields.get("actions") or []),
                resource=str(fields["resource"]),
                starts=starts,
                ends=ends,
                clause=int(fields["clause"]),  # type: ignore[call-overload]
                created_by=caller.describe(),
                created_at=self.now(),
                revoked_at=None,
            )
            session.add(row)
        return Done(revision[0], {"id": row.id})

    def revoke_grant(self, caller: Caller, grant_id: str) -> Done:
        with self.engine.sessions() as session:
            row = session.get(GrantRow, grant_id)
            if row is None:
                raise NotFound(f'no grant "{grant_id}"')
            target = f"grants:{row.subject_type}/{row.subject}"
        with self.change(caller, target) as (session, revision):
            row = session.get(GrantRow, grant_id)
            row.revoked_at = self.now()  # type: ignore[union-attr]
            row.revoked_by = caller.describe()  # type: ignore[union-attr]
        return Done(revision[0])

    def list_grants(self, caller: Caller, subject_type: str, subject: str) -> list[dict]:
        with self.read(caller, f"grants:{subject_type}/{subject}") as session:
            rows = session.scalars(
                select(GrantRow)
                .where(GrantRow.subject_type == subject_type, GrantRow.subject == subject)
                .order_by(GrantRow.starts)
            )
            return [_grant_view(row) for row in rows]

    # --- API clients ----------------------------------------------------------------------------

    def create_client(self, caller: Caller, name: str, subject_type: str, subject: str) -> Done:
        """A new credential acting as an identity; the credential is in the result, once."""
        with self.change(caller, f"clients:{subject_type}/{subject}") as (session, revision):
            repository.identity(session, subject_type, subject)
            row, credential = client_store.create(session, name, subject_type, subject, caller.describe(), self.now())
        return Done(revision[0], {"id": row.id, "name": name, "credential": credential})

    def revoke_client(self, caller: Caller, client_id: str) -> Done:
        with self.engine.sessions() as session:
            row = session.get(ApiClientRow, client_id)
            if row is None:
                raise NotFound(f'no API client "{client_id}"')
            target = f"clients:{row.subject_type}/{row.subject}"
        with self.change(caller, target) as (session, revision):
            session.get(ApiClientRow, client_id).revoked_at = self.now()  # type: ignore[union-attr]
        return Done(revision[0])


def _kind(section: str) -> str:
    kind = IDENTITY_SECTIONS.get(section)
    if kind is None:
        raise NotFound(f"no such directory section {section!r}: expected users, services or partners")
    return kind


def _check_name(field: str, name: str) -> None:
    if not name or len(name) > 255 or any(c.isspace() or ord(c) < 32 for c in name):
        raise Invalid(field, "expected 1 to 255 characters without spaces or control characters")


def _when(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise Invalid("time", f"expected an ISO 8601 time, found {value!r}") from None
    if moment.tzinfo is None:
        raise Invalid("time", f"expected a time with a zone (such as 2026-12-02T10:00:00Z), found {value!r}")
    return moment.astimezone(dt.UTC)


def _grant_view(row: GrantRow) -> dict:
    return {
        "id": row.id,
        "kind": row.kind,
        "subject_type": row.subject_type,
        "subject": row.subject,
        "actions": row.actions,
        "resource": row.resource,
        "starts": row.starts.isoformat(),
        "ends": row.ends.isoformat(),
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
