"""The directory in the store: read it whole into a `Directory`, and the writes that change it.

Writes take a session inside the caller's transaction; the caller bumps the
revision and commits, so a change and its revision land together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from charter.directory.model import (
    Directory,
    Group,
    Identity,
    IdentityKind,
    LifecycleState,
    Resource,
    load_directory,
)
from charter.store.models import GroupNestingRow, GroupRow, IdentityRow, MembershipRow, ResourceRow


class NotFound(LookupError):
    """The named identity, group or resource does not exist."""


class Conflict(ValueError):
    """The change contradicts what is stored (a duplicate name, a nesting cycle)."""


def load(session: Session) -> Directory:
    """The whole directory as plain data, read in the caller's (consistent) transaction."""
    groups = {row.id: row for row in session.scalars(select(GroupRow))}
    parents: dict[int, list[str]] = {}
    for child, parent in session.execute(select(GroupNestingRow.child_id, GroupNestingRow.parent_id)):
        parents.setdefault(child, []).append(groups[parent].name)
    member_of: dict[int, list[str]] = {}
    for identity, group in session.execute(select(MembershipRow.identity_id, MembershipRow.group_id)):
        member_of.setdefault(identity, []).append(groups[group].name)
    sections: dict[IdentityKind, dict[str, Identity]] = {kind: {} for kind in IdentityKind}
    for row in session.scalars(select(IdentityRow)):
        kind = IdentityKind(row.kind)
        sections[kind][row.name] = Identity(
            row.name,
            kind,
            tuple(sorted(member_of.get(row.id, ()))),
            _frozen(row.attributes),
            row.owner,
            LifecycleState(row.state),
        )
    group_models = {
        row.name: Group(row.name, tuple(sorted(parents.get(row.id, ()))), _frozen(row.attributes), row.owner)
        for row in groups.values()
    }
    resources = {
        row.name: Resource(row.name, _frozen(row.attributes), row.owner) for row in session.scalars(select(ResourceRow))
    }
    return Directory(
        users=MappingProxyType(sections[IdentityKind.USER]),
        groups=MappingProxyType(group_models),
        services=MappingProxyType(sections[IdentityKind.SERVICE]),
        partners=MappingProxyType(sections[IdentityKind.PARTNER]),
        resources=MappingProxyType(resources),
    )


def _frozen(attributes: Mapping | None) -> Mapping:
    if not attributes:
        return MappingProxyType({})
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in attributes.items()})


def import_directory(session: Session, data: object, now: dt.datetime, source_name: str = "<directory>") -> None:
    """Load a YAML/JSON-shaped directory (validated by `load_directory`) into an empty store."""
    directory = load_directory(data, source_name)
    group_ids = {}
    for group in directory.groups.values():
        row = GroupRow(
            name=group.id, owner=group.owner, attributes=dict(group.attributes), created_at=now, updated_at=now
        )
        session.add(row)
        session.flush()
        group_ids[group.id] = row.id
    for group in directory.groups.values():
        for parent in group.groups:
            session.add(GroupNestingRow(child_id=group_ids[group.id], parent_id=group_ids[parent]))
    for identities in (directory.users, directory.services, directory.partners):
        for identity in identities.values():
            row = IdentityRow(
                kind=identity.kind.value,
                name=identity.id,
                state=identity.state.value,
                owner=identity.owner,
                attributes=_plain(identity.attributes),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            for group in identity.groups:
                session.add(MembershipRow(identity_id=row.id, group_id=group_ids[group]))
    for resource in directory.resources.values():
        session.add(
            ResourceRow(name=resource.id, owner=resource.owner, attributes=_plain(resource.attributes), updated_at=now)
        )
    session.flush()


def _plain(attributes: Mapping) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}


# --- lookups used by writes -----------------------------------------------------------


def find_identity(session: Session, kind: str, name: str) -> IdentityRow | None:
    return session.scalar(select(IdentityRow).where(IdentityRow.kind == kind, IdentityRow.name == name))


def find_group(session: Session, name: str) -> GroupRow | None:
    return session.scalar(select(GroupRow).where(GroupRow.name == name))


def identity(session: Session, kind: str, name: str) -> IdentityRow:
    row = find_identity(session, kind, name)
    if row is None:
        raise NotFound(f'no {kind} "{name}"')
    return row


def group(session: Session, name: str) -> GroupRow:
    row = find_group(session, name)
    if row is None:
        raise NotFound(f'no group "{name}"')
    return row


def group_names_of(session: Session, identity_ids: list[int]) -> dict[int, list[str]]:
    """The direct groups of each of these identities (sorted), in one query."""
    names: dict[int, list[str]] = {identity_id: [] for identity_id in identity_ids}
    if identity_ids:
        rows = session.execute(
            select(MembershipRow.identity_id, GroupRow.name)
            .join(GroupRow, GroupRow.id == MembershipRow.group_id)
            .where(MembershipRow.identity_id.in_(identity_ids))
            .order_by(GroupRow.name)
        )
        for identity_id, name in rows:
            names[identity_id].append(name)
    return names


def add_member(session: Session, group_name: str, kind: str, name: str) -> bool:
    """Make an identity a direct member of a group; False if it already was."""
    member, target = identity(session, kind, name), group(session, group_name)
    if session.get(MembershipRow, (member.id, target.id)) is not None:
        return False
    session.add(MembershipRow(identity_id=member.id, group_id=target.id))
    return True


def remove_member(session: Session, group_name: str, kind: str, name: str) -> bool:
    member, target = identity(session, kind, name), group(session, group_name)
    result = session.execute(
        delete(MembershipRow).where(MembershipRow.identity_id == member.id, MembershipRow.group_id == target.id)
    )
    return result.rowcount > 0
