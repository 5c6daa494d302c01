"""A subject as the engine sees it: its effective groups (nested groups resolved) and attributes."""

from __future__ import annotations

from collections.abc import Mapping


class Principal:
    """Compiled once per snapshot. `blocked` is a ready deny decision when the subject may do nothing at all;
    `mfa_decision` the deny to give when the charter requires MFA of it and the request has none."""

    __slots__ = ("attributes", "blocked", "groups", "id", "key", "mfa_decision", "type")

    def __init__(self, type_: str, id_: str, groups: frozenset[str], attributes: Mapping[str, object]):
        self.type = type_
        self.id = id_
        self.key = f"{type_}:{id_}"
        self.groups = groups
        self.attributes = attributes
        self.blocked = None
        self.mfa_decision = None

    def __repr__(self) -> str:
        return f"Principal({self.key}, groups={sorted(self.groups)})"
