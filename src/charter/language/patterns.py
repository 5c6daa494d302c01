"""Resource patterns: a literal name, or a prefix ending in `*` that matches any remaining suffix.

`"db:prod/*"` matches `db:prod/orders` and `db:prod/eu/orders` (and `db:prod/`),
not `db:prod` or `db:production`. `"*"` matches every resource. A `*` anywhere
but at the end is rejected by the parser.
"""

from __future__ import annotations


def is_prefix(pattern: str) -> bool:
    return pattern.endswith("*")


def matches(pattern: str, resource: str) -> bool:
    """Whether the resource name `resource` is one the pattern names."""
    if pattern.endswith("*"):
        return resource.startswith(pattern[:-1])
    return resource == pattern


def covers(outer: str, inner: str) -> bool:
    """Whether every resource `inner` can match is also matched by `outer`."""
    if outer.endswith("*"):
        return inner.startswith(outer[:-1])
    return not inner.endswith("*") and inner == outer


def overlaps(a: str, b: str) -> bool:
    """Whether some resource is matched by both patterns (one prefix contains the other)."""
    return covers(a, b) or covers(b, a)
