"""The incremental refresh: the next snapshot from the previous one, for changes that touch only the directory.

The change feed is the audit trail. Every change the store takes goes through `Admin._transaction`, which
bumps the revision and writes, in the same transaction, one audit record naming the target
(`directory:users/alice`, `directory:groups/sre`, ...) with the revision in its details. The chain's seq
is taken under the chain head's row lock, so records commit in seq order: reading the records after the
last seq seen, in the same consistent transaction as the revision, gives every change since.

`step` reads those records and, when every revision since the snapshot's is accounted for by a record on a
directory user, service, partner, group or resource, re-reads only the named rows (state, not operations:
whatever the write was, the row as it is now) and recompiles only the principals concerned
(`policy.snapshot.with_directory_changes`). Anything else returns None and the engine rebuilds from
scratch: a charter, grant, client or key change, a group deleted or re-nested (its closure may reach
many users), a revision with no record (a writer that bumps the revision directly), a canary in effect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from charter.directory.model import Directory, Group, Identity, IdentityKind, LifecycleState, Resource
from charter.directory.repository import _frozen
from charter.policy.snapshot import Snapshot, group_closure, with_directory_changes
from charter.store.models import AuditRecordRow, GroupNestingRow, GroupRow, IdentityRow, MembershipRow, ResourceRow

SECTIONS = {"users": "user", "services": "service", "partners": "partner"}
CHUNK = 500  # names per IN (...) query


@dataclass
class Basis:
    """What the refresh thread keeps between steps, beside the snapshot: private to it, changed in place.

    `members` is each group's direct members as (kind, name), the inverse of `Identity.groups`, so a change
    recorded on a group finds the identities whose membership it changed."""

    directory: Directory
    closure: dict[str, frozenset[str]]
    members: dict[str, set[tuple[str, str]]]
    audit_seq: int
    full: bool  # False when the last full build had something the incremental step cannot carry (a canary)

    @classmethod
    def of(cls, directory: Directory, audit_seq: int, full: bool = True) -> Basis:
        members: dict[str, set[tuple[str, str]]] = {}
        for section in (directory.users, directory.services, directory.partners):
            for identity in section.values():
                for group in identity.groups:
                    members.setdefault(group, set()).add((identity.kind.value, identity.id))
        # Writable copies of the sections: the basis is changed in place by `step`.
        writable = Directory(
            dict(directory.users),
            dict(directory.groups),
            dict(directory.services),
            dict(directory.partners),
            dict(directory.resources),
        )
        return cls(writable, group_closure(writable), members, audit_seq, full)


def audit_head(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(AuditRecordRow.seq), 0))) or 0)


def step(session: Session, basis: Basis, base: Snapshot, revision: int) -> Snapshot | None:
    """The snapshot at `revision` (or later) built from `base`, or None when only a full rebuild will do.

    On None the basis may be half-updated: the caller must rebuild from scratch (which replaces it)."""
    if not basis.full:
        return None
    identities: set[tuple[str, str]] = set()
    groups: set[str] = set()
    resources: set[str] = set()
    covered: set[int] = set()
    last = basis.audit_seq
    for seq, target, details in session.execute(
        select(AuditRecordRow.seq, AuditRecordRow.target, AuditRecordRow.details)
        .where(AuditRecordRow.seq > basis.audit_seq)
        .order_by(AuditRecordRow.seq)
    ):
        last = seq
        fields = json.loads(details)
        changed = fields.get("revision")
        if not isinstance(changed, int):
            continue  # no change of state came with it (a refusal, a sign-in)
        if changed <= base.revision:
            continue
        if (fields.get("offboarded") or {}).get("grants"):
            return None  # offboarding revoked grants too: they are in the snapshot, so rebuild
        section, _, name = target.removeprefix("directory:").partition("/")
        if not target.startswith("directory:") or not name:
            return None
        if section in SECTIONS:
            identities.add((SECTIONS[section], name))
        elif section == "groups":
            groups.add(name)
        elif section == "resources":
            resources.add(name)
        else:
            return None
        covered.add(changed)
    # On SQLite (pysqlite opens no read transaction) the records may run past `revision`, read just before:
    # the step then goes up to the last revision the records reach. Rows are read after the records, so they
    # are at least that new; a later change glimpsed in them is applied again by the next step.
    top = max(covered, default=base.revision)
    if top < revision or covered != set(range(base.revision + 1, top + 1)):
        return None  # a revision no directory record accounts for
    revision = top
    if groups and not _apply_groups(session, basis, groups, identities):
        return None
    _apply_identities(session, basis, identities)
    _apply_resources(session, basis, resources)
    if groups:
        group_closure(basis.directory, basis.closure)  # new groups only: the known ones are unchanged
    changed_ids: dict[str, list[str]] = {}
    for kind, name in identities:
        changed_ids.setdefault(kind, []).append(name)
    snapshot = with_directory_changes(
        base, _published(basis.directory), basis.closure, changed_ids, revision, resources
    )
    basis.audit_seq = last
    return snapshot


def _published(directory: Directory) -> Directory:
    return Directory(
        MappingProxyType(directory.users),  # type: ignore[arg-type]
        MappingProxyType(directory.groups),  # type: ignore[arg-type]
        MappingProxyType(directory.services),  # type: ignore[arg-type]
        MappingProxyType(directory.partners),  # type: ignore[arg-type]
        MappingProxyType(directory.resources),  # type: ignore[arg-type]
    )


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _apply_groups(session: Session, basis: Basis, names: set[str], identities: set[tuple[str, str]]) -> bool:
    """Take the named groups again; add the identities whose direct membership changed to `identities`.

    False when a known group was deleted or its nesting changed (closures would move: rebuild)."""
    groups: dict[str, Group] = basis.directory.groups  # type: ignore[assignment]
    rows: dict[int, GroupRow] = {}
    for chunk in _chunks(sorted(names)):
        rows.update({row.id: row for row in session.scalars(select(GroupRow).where(GroupRow.name.in_(chunk)))})
    found = {row.name for row in rows.values()}
    if any(name in groups for name in names - found):
        return False  # deleted
    parents: dict[int, list[str]] = {}
    members: dict[str, set[tuple[str, str]]] = {row.name: set() for row in rows.values()}
    for chunk in _chunks(list(rows)):
        parent = GroupRow.__table__.alias("parent")
        for child, name in session.execute(
            select(GroupNestingRow.child_id, parent.c.name)
            .join(parent, parent.c.id == GroupNestingRow.parent_id)
            .where(GroupNestingRow.child_id.in_(chunk))
        ):
            parents.setdefault(child, []).append(name)
        for group_id, kind, name in session.execute(
            select(MembershipRow.group_id, IdentityRow.kind, IdentityRow.name)
            .join(IdentityRow, IdentityRow.id == MembershipRow.identity_id)
            .where(MembershipRow.group_id.in_(chunk))
        ):
            members[rows[group_id].name].add((kind, name))
    for group_id, row in rows.items():
        model = Group(row.name, tuple(sorted(parents.get(group_id, ()))), _frozen(row.attributes), row.owner)
        known = groups.get(row.name)
        if known is not None and known.groups != model.groups:
            return False  # re-nested
        groups[row.name] = model
        before = basis.members.get(row.name, set())
        identities.update(before ^ members[row.name])
    return True


def _apply_identities(session: Session, basis: Basis, wanted: set[tuple[str, str]]) -> None:
    directory = basis.directory
    sections = {"user": directory.users, "service": directory.services, "partner": directory.partners}
    found: dict[tuple[str, str], IdentityRow] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, name in sorted(wanted):
        by_kind.setdefault(kind, []).append(name)
    for kind, names in by_kind.items():  # kind = ? AND name IN (...): the unique index (a row-value IN scans on SQLite)
        for chunk in _chunks(names):
            query = select(IdentityRow).where(IdentityRow.kind == kind, IdentityRow.name.in_(chunk))
            for row in session.scalars(query):
                found[(row.kind, row.name)] = row
    direct: dict[int, list[str]] = {row.id: [] for row in found.values()}
    for chunk in _chunks(list(direct)):
        for identity_id, name in session.execute(
            select(MembershipRow.identity_id, GroupRow.name)
            .join(GroupRow, GroupRow.id == MembershipRow.group_id)
            .where(MembershipRow.identity_id.in_(chunk))
        ):
            direct[identity_id].append(name)
    for key in wanted:
        kind, name = key
        section: dict[str, Identity] = sections[kind]  # type: ignore[assignment]
        old = section.pop(name, None)
        if old is not None:
            for group in old.groups:
                basis.members.get(group, set()).discard(key)
        row = found.get(key)
        if row is None:
            continue  # deleted
        identity = Identity(
            name,
            IdentityKind(kind),
            tuple(sorted(direct[row.id])),
            _frozen(row.attributes),
            row.owner,
            LifecycleState(row.state),
        )
        section[name] = identity
        for group in identity.groups:
            basis.members.setdefault(group, set()).add(key)


def _apply_resources(session: Session, basis: Basis, names: set[str]) -> None:
    resources: dict[str, Resource] = basis.directory.resources  # type: ignore[assignment]
    for name in names:
        resources.pop(name, None)
    for chunk in _chunks(sorted(names)):
        for row in session.scalars(select(ResourceRow).where(ResourceRow.name.in_(chunk))):
            resources[row.name] = Resource(row.name, _frozen(row.attributes), row.owner)
