"""Who had access to a resource at a past instant, and under which clause.

The store keeps only the present directory, so the directory of instant T is rebuilt from it: every
directory change writes an audit record with `before`/`after` images of what it changed (the first
run's `directory.import` holds the whole sample), and undoing, newest first, each successful change
recorded after T gives the directory as it stood at T. The charter of T is the newest version uploaded
by T and in effect on T's date, with the amendments in force then; the grants of T are those that had
started, had not ended and had not been revoked. These compile into a snapshot whose clock stands at T,
and the engine itself is asked, action by action, who was allowed: the answer cannot disagree with the
decisions it would have made with the same facts.

No I/O beyond the caller's session; the command line is in `charter.cli.audit`.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from charter import charters
from charter.audit import store
from charter.audit.chain import Entry
from charter.directory import repository
from charter.directory.model import Directory, load_directory
from charter.language.errors import CharterError
from charter.policy import queries
from charter.policy.decision import Decision
from charter.policy.grants import Grant, GrantKind
from charter.policy.request import Context
from charter.policy.snapshot import Snapshot, compile_snapshot
from charter.store.models import AuditRecordRow, CheckpointRow, GrantRow

SECTIONS = ("users", "groups", "services", "partners", "resources")
SECTION_OF_KIND = {"user": "users", "service": "services", "partner": "partners"}
WITH_MFA = Context(mfa=True)


class Unanswerable(Exception):
    """The records cannot say what the state was at that instant (pruned, not yet recorded, or inconsistent)."""


@dataclass(frozen=True, slots=True)
class Access:
    """What one subject could do on the resource at T: the actions, the deciding clauses and their bases.

    `mfa_only`: these actions were allowed only to a request made with MFA (a subject may have one row
    without MFA and another for what MFA would have added).
    """

    subject_type: str
    subject: str
    actions: tuple[str, ...]
    clauses: tuple[int, ...]
    basis: tuple[str, ...]  # permission | grant | break glass
    grants: tuple[str, ...] = ()
    mfa_only: bool = False

    def to_json(self) -> dict:
        return {
            "subject_type": self.subject_type,
            "subject": self.subject,
            "actions": list(self.actions),
            "clauses": list(self.clauses),
            "basis": list(self.basis),
            "grants": list(self.grants),
            "mfa_only": self.mfa_only,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    resource: str
    at: dt.datetime
    charter: str  # "(no charter in effect)" when none was
    version: int  # the charter's amendment number (0: the original text)
    undone: int  # directory changes recorded after T, undone to rebuild the directory
    grants: int  # grants active at T (for anyone)
    access: tuple[Access, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {
            "resource": self.resource,
            "at": instant(self.at),
            "charter": {"name": self.charter, "version": self.version},
            "directory_changes_undone": self.undone,
            "grants_active": self.grants,
            "access": [a.to_json() for a in self.access],
        }


def instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the question ------------------------------------------------------------------------------------


def who_had_access(session: Session, resource: str, at: dt.datetime) -> Answer:
    """Everyone allowed some action on `resource` at `at`, with the clause, as the records rebuild it.

    Give a fresh session: on PostgreSQL the reads are made in one REPEATABLE READ transaction, so the
    present state and the records undone from it agree.
    """
    at = _utc(at)
    _consistent(session)
    snapshot, undone, grants = snapshot_at(session, at)
    actions = set(queries.named_actions(snapshot))
    for held in snapshot.grants.values():
        for active in held:
            actions.update(active.grant.actions)
    found: dict[tuple[str, str, bool], _Found] = {}
    for action in sorted(actions):
        plain = queries.who_may(snapshot, action, resource)
        allowed = {(type_, subject) for type_, subject, _ in plain}
        extra = [row for row in queries.who_may(snapshot, action, resource, WITH_MFA) if row[:2] not in allowed]
        for rows, mfa_only in ((plain, False), (extra, True)):
            for type_, subject, decision in rows:
                found.setdefault((type_, subject, mfa_only), _Found()).add(action, decision)
    order = {type_: i for i, type_ in enumerate(snapshot.principals)}
    keys = sorted(found, key=lambda key: (order.get(key[0], len(order)), key[1], key[2]))
    access = tuple(found[key].access(*key) for key in keys)
    return Answer(resource, at, snapshot.charter, snapshot.version.version, undone, grants, access)


class _Found:
    """What one row of the answer collects, action by action."""

    def __init__(self) -> None:
        self.actions: set[str] = set()
        self.clauses: set[int] = set()
        self.basis: set[str] = set()
        self.grants: set[str] = set()

    def add(self, action: str, decision: Decision) -> None:
        self.actions.add(action)
        if decision.clause is not None:
            self.clauses.add(decision.clause)
        self.basis.add(decision.basis.value)
        if decision.grant is not None:
            self.grants.add(decision.grant)

    def access(self, subject_type: str, subject: str, mfa_only: bool) -> Access:
        return Access(
            subject_type,
            subject,
            tuple(sorted(self.actions)),
            tuple(sorted(self.clauses)),
            tuple(sorted(self.basis)),
            tuple(sorted(self.grants)),
            mfa_only,
        )


def snapshot_at(session: Session, at: dt.datetime) -> tuple[Snapshot, int, int]:
    """The snapshot of instant `at`; with the number of directory changes undone and of grants active."""
    from charter.clock import FixedClock
    from charter.engine import empty_version

    at = _utc(at)
    directory, undone = directory_at(session, at)
    version = charters.version_in_force(session, at.date(), at=at) or empty_version(at.date())
    grants = grants_at(session, at)
    return compile_snapshot(version, directory, grants, FixedClock(at), revision=-1), undone, len(grants)


# --- the directory of then ---------------------------------------------------------------------------


def directory_at(session: Session, at: dt.datetime) -> tuple[Directory, int]:
    """The directory as it stood at `at`, and how many recorded changes were undone to get it.

    Raises Unanswerable when `at` is before the oldest record kept (nothing recorded yet, or pruned).
    """
    at = _utc(at)
    head = store.read_head(session, store.AUDIT)
    oldest = session.scalar(select(AuditRecordRow.time).order_by(AuditRecordRow.seq).limit(1))
    if head.pruned_through > 0:
        # Every pruned record was written by the time of the signed checkpoint the cut was made at.
        cut = session.scalar(
            select(func.min(CheckpointRow.time)).where(
                CheckpointRow.chain == store.AUDIT, CheckpointRow.seq == head.pruned_through
            )
        )
        known_from = cut if cut is not None else oldest
        if known_from is None:
            raise Unanswerable(f"every audit record (through record {head.pruned_through}) was pruned")
        if at < store.aware(known_from):
            raise Unanswerable(
                f"records before {instant(store.aware(known_from))} were pruned (through record "
                f"{head.pruned_through}): the directory of {instant(at)} cannot be rebuilt"
            )
    elif oldest is None:
        raise Unanswerable("nothing was recorded yet: the audit chain is empty (is the store initialised?)")
    elif at < store.aware(oldest):
        raise Unanswerable(
            f"nothing was recorded before {instant(store.aware(oldest))}: the store held nothing yet at {instant(at)}"
        )
    document = directory_document(repository.load(session))
    later = _changes_after(session, at)
    for entry in reversed(later):
        undo(document, entry)
    try:
        directory = load_directory(document, f"the directory of {instant(at)}")
    except CharterError as error:
        raise Unanswerable(
            f"undoing the records after {instant(at)} does not give a consistent directory ({error}); "
            "check the chain with `charter audit verify`"
        ) from None
    return directory, len(later)


def _changes_after(session: Session, at: dt.datetime) -> list[Entry]:
    """The successful directory changes recorded after `at`, oldest first."""
    start = session.scalar(select(func.min(AuditRecordRow.seq)).where(AuditRecordRow.time > at))
    if start is None:
        return []
    return [
        record.entry
        for record in store.records(session, store.AUDIT, after=start - 1)
        if record.entry.outcome == "ok"
        and record.entry.action.startswith("directory.")
        and store.aware(record.entry.time) > at
    ]


def directory_document(directory: Directory) -> dict:
    """A directory in the directory.yaml format (the shape `load_directory` reads and the import keeps)."""
    document: dict[str, dict] = {section: {} for section in SECTIONS}
    for section in ("users", "services", "partners"):
        for identity in getattr(directory, section).values():
            document[section][identity.id] = {
                "groups": list(identity.groups),
                "attributes": _plain(identity.attributes),
                "owner": identity.owner,
                "state": identity.state.value,
            }
    for group in directory.groups.values():
        document["groups"][group.id] = {
            "groups": list(group.groups),
            "attributes": _plain(group.attributes),
            "owner": group.owner,
        }
    for resource in directory.resources.values():
        document["resources"][resource.id] = {"attributes": _plain(resource.attributes), "owner": resource.owner}
    return document


def undo(document: dict, entry: Entry) -> None:
    """Change `document` (directory.yaml format) back to what it was before the change `entry` records."""
    action, details = entry.action, entry.details
    before = details.get("before")
    if action == "directory.import":
        for section in SECTIONS:
            document[section] = {}
        return
    if action in ("directory.group.member.add", "directory.group.member.remove"):
        if details.get("changed"):
            member = details["member"]  # type: ignore[index]
            identity = document[SECTION_OF_KIND[member["kind"]]].get(member["name"])
            if identity is None:
                raise Unanswerable(
                    f"{action} of {entry.target} names {member['kind']} {member['name']!r}, unknown then"
                )
            groups = [g for g in identity.get("groups") or () if g != _name(entry)]
            if action.endswith(".remove"):
                groups.append(_name(entry))
            identity["groups"] = sorted(groups)
        return
    kind = action.split(".")[1] if action.count(".") == 2 else None
    if kind in SECTION_OF_KIND and action.rsplit(".", 1)[1] in ("put", "delete"):
        _restore(document[SECTION_OF_KIND[kind]], _name(entry), before, _identity_entry)
    elif action in ("directory.resource.put", "directory.resource.delete"):
        _restore(document["resources"], _name(entry), before, _resource_entry)
    elif action == "directory.group.put":
        _restore(document["groups"], _name(entry), before, _group_entry)
    elif action == "directory.group.delete":
        name = _name(entry)
        _restore(document["groups"], name, before, _group_entry)
        assert isinstance(before, Mapping)
        for member in before.get("members") or ():
            identity = document[SECTION_OF_KIND[member["kind"]]].get(member["name"])
            if identity is not None and name not in (identity.get("groups") or ()):
                identity["groups"] = sorted([*(identity.get("groups") or ()), name])
        for child in before.get("children") or ():
            group = document["groups"].get(child)
            if group is not None and name not in (group.get("groups") or ()):
                group["groups"] = sorted([*(group.get("groups") or ()), name])
    else:
        raise Unanswerable(f"cannot undo {action} on {entry.target} ({instant(entry.time)}): an unknown change")


def _restore(section: dict, name: str, before: object, shape) -> None:
    if before is None:
        section.pop(name, None)
    else:
        section[name] = shape(before)


def _identity_entry(view: Mapping) -> dict:
    return {
        "groups": list(view.get("groups") or ()),
        "attributes": copy.deepcopy(dict(view.get("attributes") or {})),
        "owner": view.get("owner"),
        "state": view.get("state") or "active",
    }


def _group_entry(view: Mapping) -> dict:
    return {
        "groups": list(view.get("parents") or ()),
        "attributes": copy.deepcopy(dict(view.get("attributes") or {})),
        "owner": view.get("owner"),
    }


def _resource_entry(view: Mapping) -> dict:
    return {"attributes": copy.deepcopy(dict(view.get("attributes") or {})), "owner": view.get("owner")}


def _name(entry: Entry) -> str:
    """The changed object's name: from its image, else from the target (`directory:<section>/<name>`)."""
    for side in ("before", "after"):
        image = entry.details.get(side)
        if isinstance(image, Mapping) and image.get("name"):
            return str(image["name"])
    return entry.target.split("/", 1)[1]


def _plain(attributes: Mapping) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}


# --- grants of then ----------------------------------------------------------------------------------


def grants_at(session: Session, at: dt.datetime) -> list[Grant]:
    """The grants active at `at`: started, not ended, not revoked by then."""
    at = _utc(at)
    rows = session.scalars(
        select(GrantRow)
        .where(GrantRow.starts <= at, GrantRow.ends > at, or_(GrantRow.revoked_at.is_(None), GrantRow.revoked_at > at))
        .order_by(GrantRow.id)
    )
    return [
        Grant(
            row.id,
            GrantKind(row.kind),
            row.subject_type,
            row.subject,
            frozenset(row.actions),
            row.resource,
            store.aware(row.starts),
            store.aware(row.ends),
            row.clause,
        )
        for row in rows
    ]


# --- helpers -----------------------------------------------------------------------------------------


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("the instant must be timezone-aware")
    return moment.astimezone(dt.UTC)


def _consistent(session: Session) -> None:
    """On PostgreSQL, read everything in one snapshot (the session must not have begun yet)."""
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
