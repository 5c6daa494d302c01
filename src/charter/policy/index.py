"""Finds the rules that can apply to (principal, resource) without looking at the others.

Rules are filed under the exact strings their resource patterns name: a
literal under itself, a `prefix*` pattern under its prefix. A resource is then
looked up once as a literal and once per distinct prefix length in use, so the
cost depends on how many different prefix lengths the charter uses, not on how
many rules or identities there are. Prefixes are kept in one table per length,
with the set of characters they end with: a length is looked up only when the
resource's character at that position is one of them (for prefixes ending in
"/", that is where the resource has a "/"). Within each entry, rules are filed
by the group or identity they name, so a principal only meets its own.
"""

from __future__ import annotations

from charter.policy.principal import Principal
from charter.policy.rules import Rule


class Bucket:
    """The rules filed under one pattern, by the subject they name.

    A bucket whose group rules all name one group (the usual case) keeps them in `group` and
    `group_rules`; `by_group` is made only for a second group. Each part is None until a rule
    needs it: testing None touches no memory, where testing an empty dict or list reads it, and
    with tens of thousands of buckets those reads miss the cache.
    """

    __slots__ = ("broad", "by_group", "by_key", "group", "group_rules")

    def __init__(self) -> None:
        self.group: str | None = None
        self.group_rules: list[Rule] | None = None
        self.by_group: dict[str, list[Rule]] | None = None
        self.by_key: dict[str, list[Rule]] | None = None
        self.broad: list[Rule] | None = None

    def add(self, rule: Rule) -> None:
        selector = rule.selector
        if selector.kind == "group":
            group: str = selector.group  # type: ignore[assignment]
            if self.by_group is None:
                if self.group is None:
                    self.group, self.group_rules = group, [rule]
                    return
                if self.group == group:
                    self.group_rules.append(rule)  # type: ignore[union-attr]
                    return
                self.by_group = {self.group: self.group_rules}  # type: ignore[dict-item]
                self.group = self.group_rules = None
            self.by_group.setdefault(group, []).append(rule)
        elif selector.kind == "identity":
            if self.by_key is None:
                self.by_key = {}
            self.by_key.setdefault(selector.key, []).append(rule)  # type: ignore[arg-type]
        else:
            if self.broad is None:
                self.broad = []
            self.broad.append(rule)

    def collect(self, principal: Principal, out: list[Rule]) -> None:
        group = self.group
        if group is not None and group in principal.groups:
            out.extend(self.group_rules)  # type: ignore[arg-type]
        by_group = self.by_group
        if by_group is not None:
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
        by_key = self.by_key
        if by_key is not None:
            rules = by_key.get(principal.key)
            if rules is not None:
                out.extend(rules)
        broad = self.broad
        if broad is not None:
            out.extend(broad)


class PatternIndex:
    """Rules for one action, by resource pattern and subject."""

    __slots__ = ("exact", "levels", "prefix")

    def __init__(self) -> None:
        self.exact: dict[str, Bucket] = {}
        self.prefix: dict[str, Bucket] = {}  # every prefix, for adding
        # (length, the prefixes of that length, the characters they end with or None for ""), by length
        self.levels: tuple[tuple[int, dict[str, Bucket], set[str] | None], ...] = ()

    def add(self, pattern: str, rule: Rule) -> None:
        if pattern.endswith("*"):
            key = pattern[:-1]
            bucket = self.prefix.get(key)
            if bucket is None:
                bucket = self.prefix[key] = Bucket()
                size = len(key)
                level = next((level for level in self.levels if level[0] == size), None)
                if level is None:
                    level = (size, {}, set() if size else None)
                    self.levels = tuple(sorted((*self.levels, level), key=lambda entry: entry[0]))
                level[1][key] = bucket
                if level[2] is not None:
                    level[2].add(key[-1])
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
        size = len(resource)
        for length, table, ends in self.levels:
            if length > size:
                break
            if ends is not None and resource[length - 1] not in ends:
                continue
            bucket = table.get(resource[:length])
            if bucket is not None:
                bucket.collect(principal, found)
        return found
