"""Finds the rules that can apply to (principal, resource) without looking at the others.

Rules are filed under the exact strings their resource patterns name: a
literal under itself, a `prefix*` pattern under its prefix. A resource is then
looked up once as a literal and once per distinct prefix length in use, so the
cost depends on how many different prefix lengths the charter uses, not on how
many rules or identities there are. Within each entry, rules are filed by the
group or identity they name, so a principal only meets its own.
"""

from __future__ import annotations

from charter.policy.principal import Principal
from charter.policy.rules import Rule


class Bucket:
    __slots__ = ("by_group", "by_key", "broad")

    def __init__(self) -> None:
        self.by_group: dict[str, list[Rule]] = {}
        self.by_key: dict[str, list[Rule]] = {}
        self.broad: list[Rule] = []

    def add(self, rule: Rule) -> None:
        selector = rule.selector
        if selector.kind == "group":
            self.by_group.setdefault(selector.group, []).append(rule)  # type: ignore[arg-type]
        elif selector.kind == "identity":
            self.by_key.setdefault(selector.key, []).append(rule)  # type: ignore[arg-type]
        else:
            self.broad.append(rule)

    def collect(self, principal: Principal, out: list[Rule]) -> None:
        by_group = self.by_group
        if by_group:
            groups = principal.groups
            if len(groups) <= len(by_group):
                for group in groups:
                    rules = by_group.get(group)
                    if rules is not None:
                        out.extend(rules)
            else:
                for group, rules in by_group.items():
                    if group in groups:
                        out.extend(rules)
        if self.by_key:
            rules = self.by_key.get(principal.key)
            if rules is not None:
                out.extend(rules)
        if self.broad:
            out.extend(self.broad)


class PatternIndex:
    """Rules for one action, by resource pattern and subject."""

    __slots__ = ("exact", "prefix", "lengths")

    def __init__(self) -> None:
        self.exact: dict[str, Bucket] = {}
        self.prefix: dict[str, Bucket] = {}
        self.lengths: tuple[int, ...] = ()

    def add(self, pattern: str, rule: Rule) -> None:
        if pattern.endswith("*"):
            key = pattern[:-1]
            bucket = self.prefix.get(key)
            if bucket is None:
                bucket = self.prefix[key] = Bucket()
                self.lengths = tuple(sorted({*self.lengths, len(key)}))
        else:
            bucket = self.exact.get(pattern)
            if bucket is None:
                bucket = self.exact[pattern] = Bucket()
        bucket.add(rule)

    def candidates(self, principal: Principal, resource: str) -> list[Rule]:
        """Rules whose pattern matches `resource` and whose subject may name `principal` (`whose` unchecked)."""
        found: list[Rule] = []
        bucket = self.exact.get(resource)
        if bucket is not None:
            bucket.collect(principal, found)
        prefix = self.prefix
        size = len(resource)
        for length in self.lengths:
            if length > size:
                break
            bucket = prefix.get(resource[:length])
            if bucket is not None:
                bucket.collect(principal, found)
        return found
