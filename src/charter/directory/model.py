"""The directory as plain data: users, groups (nested), services, partners, their attributes and owners.

`load_directory` builds one from a mapping (a YAML or JSON file's content) and
rejects bad shapes with the path of the bad entry. The file format:

    users:
      alice: {groups: [sre], attributes: {department: engineering}}
    groups:
      sre: {groups: [engineering]}      # sre is nested inside engineering
      engineering: {}
    services:
      billing-api: {owner: alice}
    partners:
      acme-logistics: {owner: bob}
    resources:
      "db:prod/orders": {owner: alice, attributes: {env: prod}}

A list of names is accepted wherever a mapping of entries is (`groups: [sre, ops]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from charter.language.checker import KnownNames
from charter.language.errors import CharterError, Diagnostic, Severity, did_you_mean


class IdentityKind(Enum):
    USER = "user"
    SERVICE = "service"
    PARTNER = "partner"


class LifecycleState(Enum):
    ACTIVE = "active"
    DISABLED = "disabled"
    LEFT = "left"


AttributeValue = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Identity:
    """A user, service or partner: who can be a request's subject."""

    id: str
    kind: IdentityKind
    groups: tuple[str, ...] = ()
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: MappingProxyType({}))
    owner: str | None = None
    state: LifecycleState = LifecycleState.ACTIVE


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    groups: tuple[str, ...] = ()  # the groups this group is nested in
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: MappingProxyType({}))
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """What the directory knows about a resource: its owner and attributes (tags) conditions can test."""

    id: str
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: MappingProxyType({}))
    owner: str | None = None

    def condition_attributes(self) -> Mapping[str, AttributeValue]:
        """The attributes as conditions see them: `owner` included."""
        if self.owner is None:
            return self.attributes
        return MappingProxyType({**self.attributes, "owner": self.owner})


@dataclass(frozen=True, slots=True)
class Directory:
    users: Mapping[str, Identity]
    groups: Mapping[str, Group]
    services: Mapping[str, Identity]
    partners: Mapping[str, Identity]
    resources: Mapping[str, Resource] = field(default_factory=lambda: MappingProxyType({}))

    def names(self) -> KnownNames:
        return KnownNames(
            users=frozenset(self.users),
            groups=frozenset(self.groups),
            services=frozenset(self.services),
            partners=frozenset(self.partners),
        )


EMPTY_DIRECTORY = Directory({}, {}, {}, {}, {})
_SECTIONS = ("users", "groups", "services", "partners", "resources")
_ENTRY_KEYS = {"groups", "attributes", "owner", "state"}


def directory_document(directory: Directory) -> dict:
    """The directory as the plain data `load_directory` reads back into an equal Directory (JSON or YAML)."""

    def entry(item: Identity | Group | Resource) -> dict:
        out: dict = {}
        if not isinstance(item, Resource) and item.groups:
            out["groups"] = list(item.groups)
        if item.attributes:
            out["attributes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in item.attributes.items()}
        if item.owner is not None:
            out["owner"] = item.owner
        if isinstance(item, Identity) and item.state is not LifecycleState.ACTIVE:
            out["state"] = item.state.value
        return out

    return {name: {k: entry(v) for k, v in getattr(directory, name).items()} for name in _SECTIONS}


class _Bad(Exception):
    def __init__(self, path: str, message: str, hint: str | None = None):
        self.path, self.message, self.hint = path, message, hint


def load_directory(data: object, source_name: str = "<directory>") -> Directory:
    """A Directory from parsed YAML/JSON; raises CharterError naming the bad entry's path."""
    try:
        return _load(data)
    except _Bad as bad:
        raise CharterError(
            [
                Diagnostic(
                    Severity.ERROR,
                    f"{bad.path}: {bad.message}",
                    source_name=source_name,
                    hint=bad.hint,
                    code="directory",
                )
            ]
        ) from None


def _load(data: object) -> Directory:
    if data is None:
        return EMPTY_DIRECTORY
    if not isinstance(data, Mapping):
        raise _Bad("(top)", f"expected a mapping with {', '.join(_SECTIONS)}, found {_type(data)}")
    for key in data:
        if key not in _SECTIONS:
            raise _Bad(str(key), "unknown section", did_you_mean(str(key), _SECTIONS))
    sections = {name: _entries(data.get(name), name) for name in _SECTIONS}
    groups = {gid: _group(gid, entry) for gid, entry in sections["groups"].items()}
    kinds = {"users": IdentityKind.USER, "services": IdentityKind.SERVICE, "partners": IdentityKind.PARTNER}
    identities = {
        section: {iid: _identity(iid, kind, entry, section) for iid, entry in sections[section].items()}
        for section, kind in kinds.items()
    }
    for section, entries in [("groups", groups), *identities.items()]:
        for entry_id, entry in entries.items():
            for parent in entry.groups:
                if parent not in groups:
                    raise _Bad(
                        f"{section}.{entry_id}.groups", f'unknown group "{parent}"', did_you_mean(parent, groups)
                    )
    _reject_cycles(groups)
    resources = {rid: _resource(rid, entry) for rid, entry in sections["resources"].items()}
    return Directory(
        users=MappingProxyType(identities["users"]),
        groups=MappingProxyType(groups),
        services=MappingProxyType(identities["services"]),
        partners=MappingProxyType(identities["partners"]),
        resources=MappingProxyType(resources),
    )


def _entries(value: object, path: str) -> dict[str, Mapping]:
    if value is None:
        return {}
    if isinstance(value, list):
        if not all(isinstance(v, str) and v for v in value):
            raise _Bad(path, "expected a list of names or a mapping of name to entry")
        return {v: {} for v in value}
    if not isinstance(value, Mapping):
        raise _Bad(path, f"expected a mapping of name to entry, found {_type(value)}")
    entries = {}
    for name, entry in value.items():
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise _Bad(f"{path}.{name}", f"expected a mapping (groups, attributes, owner, state), found {_type(entry)}")
        for key in entry:
            if key not in _ENTRY_KEYS:
                raise _Bad(f"{path}.{name}.{key}", "unknown field", did_you_mean(str(key), _ENTRY_KEYS))
        entries[str(name)] = entry
    return entries


def _names(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(path, f"expected a list of group names, found {_type(value)}")
    return tuple(value)


def _attributes(value: object, path: str) -> Mapping[str, AttributeValue]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise _Bad(path, f"expected a mapping of attribute name to value, found {_type(value)}")
    result: dict[str, AttributeValue] = {}
    for key, item in value.items():
        if isinstance(item, list):
            if not all(isinstance(v, str | int | bool) for v in item):
                raise _Bad(f"{path}.{key}", "expected a list of text values")
            result[str(key)] = tuple(_text(v) for v in item)
        elif isinstance(item, str | int | bool):
            result[str(key)] = _text(item)
        else:
            raise _Bad(f"{path}.{key}", f"expected a text value or a list of them, found {_type(item)}")
    return MappingProxyType(result)


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _owner(value: object, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _Bad(path, f"expected the owner's user name, found {_type(value)}")


def _group(gid: str, entry: Mapping) -> Group:
    path = f"groups.{gid}"
    if "state" in entry:
        raise _Bad(f"{path}.state", "groups have no lifecycle state")
    return Group(
        gid,
        _names(entry.get("groups"), f"{path}.groups"),
        _attributes(entry.get("attributes"), f"{path}.attributes"),
        _owner(entry.get("owner"), f"{path}.owner"),
    )


def _resource(rid: str, entry: Mapping) -> Resource:
    path = f"resources.{rid}"
    for key in ("groups", "state"):
        if key in entry:
            raise _Bad(f"{path}.{key}", "resources have only attributes and an owner")
    return Resource(
        rid, _attributes(entry.get("attributes"), f"{path}.attributes"), _owner(entry.get("owner"), f"{path}.owner")
    )


def _identity(iid: str, kind: IdentityKind, entry: Mapping, section: str) -> Identity:
    path = f"{section}.{iid}"
    state_text = entry.get("state", "active")
    try:
        state = LifecycleState(state_text)
    except ValueError:
        raise _Bad(f"{path}.state", f'expected active, disabled or left, found "{state_text}"') from None
    return Identity(
        iid,
        kind,
        _names(entry.get("groups"), f"{path}.groups"),
        _attributes(entry.get("attributes"), f"{path}.attributes"),
        _owner(entry.get("owner"), f"{path}.owner"),
        state,
    )


def _reject_cycles(groups: Mapping[str, Group]) -> None:
    done: set[str] = set()

    def visit(gid: str, trail: tuple[str, ...]) -> None:
        if gid in trail:
            cycle = " -> ".join((*trail[trail.index(gid) :], gid))
            raise _Bad(f"groups.{gid}.groups", f"groups are nested in a cycle: {cycle}")
        if gid in done:
            return
        for parent in groups[gid].groups:
            visit(parent, (*trail, gid))
        done.add(gid)

    for gid in groups:
        visit(gid, ())


def _type(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )
