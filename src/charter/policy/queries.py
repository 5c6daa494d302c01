"""Questions over a snapshot: what may a subject do, and who may do an action on a resource.

These are the basis of access reviews and the AuthZEN search APIs. They are
not on the hot path; `who_may` asks the engine itself for each identity, so
its answers cannot disagree with decisions.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from charter.policy.decision import Decision
from charter.policy.request import NO_CONTEXT, Context, Request
from charter.policy.snapshot import Snapshot

T = TypeVar("T")

KIND = {"Permission": "standing", "Prohibition": "forbidden", "Eligibility": "requestable", "BreakGlass": "break glass"}


@dataclass(frozen=True, slots=True)
class Entitlement:
    """One thing a subject may (or may not) do under one clause, with the conditions it comes with."""

    kind: str  # standing | requestable | break glass | forbidden | grant
    actions: tuple[str, ...]  # empty: every action
    resources: tuple[str, ...]
    clause: int
    conditions: tuple[str, ...] = ()
    text: str = ""


def entitlements(snapshot: Snapshot, subject_type: str, subject: str) -> list[Entitlement]:
    """Everything the charter says this subject may do, may request, may break glass for, or may not do."""
    principal = snapshot.principal(subject_type, subject)
    if principal is None or principal.blocked is not None:
        return []
    found = []
    for rule in snapshot.rules:
        if not rule.selector.names(principal) or rule.selector.unmet(principal) is not None:
            continue
        if rule.exempt_selectors and any(
            s.names(principal) and s.unmet(principal) is None for s in rule.exempt_selectors
        ):
            continue
        found.append(
            Entitlement(
                KIND[type(rule.sentence).__name__],
                tuple(sorted(rule.actions)),
                rule.resources,
                rule.clause,
                tuple(c.text for c in rule.conditions),
                rule.text,
            )
        )
    for active in snapshot.grants.get(principal.key, ()):
        grant = active.grant
        found.append(
            Entitlement("grant", tuple(sorted(grant.actions)), (grant.resource,), grant.clause, (), f"grant {grant.id}")
        )
    return found


def who_may(
    snapshot: Snapshot, action: str, resource: str, context: Context = NO_CONTEXT, subject_type: str | None = None
) -> list[tuple[str, str, Decision]]:
    """(subject type, subject id, decision) for every identity allowed `action` on `resource` in this context.

    Only identities of `subject_type` when it is given. In the snapshot's order of types (user, service,
    partner), then by id.
    """
    allowed = []
    for type_, principals in snapshot.principals.items():
        if subject_type is not None and type_ != subject_type:
            continue
        for subject in sorted(principals):
            decision = snapshot.evaluate(Request(subject, action, resource, context, type_))
            if decision.allowed:
                allowed.append((type_, subject, decision))
    return allowed


def named_actions(snapshot: Snapshot) -> list[str]:
    """Every action some clause of the charter version in force names, sorted."""
    actions: set[str] = set()
    for clause in snapshot.version.clauses:
        actions.update(getattr(clause.sentence, "actions", ()))
    return sorted(actions)


def actions_allowed(
    snapshot: Snapshot, subject_type: str, subject: str, resource: str, context: Context = NO_CONTEXT
) -> list[tuple[str, Decision]]:
    """(action, decision) for every action the subject may do on `resource` in this context, sorted by action.

    The actions asked about are those the charter names, and those the subject's active grants name (a grant
    may name an action no clause does). Each is asked of the engine, so the answer cannot disagree with it.
    """
    candidates = set(named_actions(snapshot))
    principal = snapshot.principal(subject_type, subject)
    if principal is not None:
        for active in snapshot.grants.get(principal.key, ()):
            candidates.update(active.grant.actions)
    allowed = []
    for action in sorted(candidates):
        decision = snapshot.evaluate(Request(subject, action, resource, context, subject_type))
        if decision.allowed:
            allowed.append((action, decision))
    return allowed


def resources_allowed(
    snapshot: Snapshot,
    subject_type: str,
    subject: str,
    action: str,
    context: Context = NO_CONTEXT,
    names: Iterable[str] | None = None,
) -> list[tuple[str, Decision]]:
    """(resource, decision) for every resource the subject may `action` in this context, sorted by name.

    The resources asked about are `names`, by default every resource the directory knows (its `resources`
    section): a pattern such as `db:prod/*` names no resource by itself, so only known resources are found.
    """
    candidates = sorted(snapshot.resources if names is None else set(names))
    allowed = []
    for name in candidates:
        decision = snapshot.evaluate(Request(subject, action, name, context, subject_type))
        if decision.allowed:
            allowed.append((name, decision))
    return allowed


# --- paging -----------------------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class PageError(ValueError):
    """A page request that cannot be honoured; `field` names the part of the request at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str  # "" on the last page
    total: int


def page(
    items: Sequence[T], key: Callable[[T], str], query: str, limit: int | None = None, token: str | None = None
) -> Page[T]:
    """One page of `items` (sorted by `key`, keys unique), after the position `token` says, at most `limit` long.

    Keyset paging: a token carries the key of the last item returned, so a change to the underlying data
    between pages neither repeats nor skips an item that stays. It also carries a digest of `query` (the
    canonical text of the question asked) and the page size, and is refused for any other question or
    size. A request with a token may leave the size out: the token's is used. `limit` 0 counts without
    listing: no items, the total, and no next page. Tokens are opaque to callers, not secret.
    """
    digest = hashlib.sha256(query.encode()).hexdigest()[:16]
    after = None
    if token:
        size, after = _read_token(token, digest)
        if limit is not None and limit != size:
            raise PageError("page.limit", f"page.limit must stay {size} while paging (the token was made with it)")
        limit = size
    if limit is None:
        limit = DEFAULT_PAGE_SIZE
    if limit < 0:
        raise PageError("page.limit", "page.limit must be a non-negative integer")
    limit = min(limit, MAX_PAGE_SIZE)
    keys = [key(item) for item in items]
    start = 0 if after is None else bisect.bisect_right(keys, after)
    chosen = list(items[start : start + limit])
    more = limit > 0 and start + limit < len(items)
    next_token = _make_token(digest, limit, keys[start + limit - 1]) if more else ""
    return Page(chosen, next_token, len(items))


def _make_token(digest: str, limit: int, after: str) -> str:
    raw = json.dumps(["p1", digest, limit, after], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, digest: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        tag, made_for, limit, after = json.loads(raw)
        valid = tag == "p1" and isinstance(limit, int) and limit > 0 and isinstance(after, str)
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise PageError("page.token", "page.token is not a token this server issued")
    if made_for != digest:
        raise PageError("page.token", "page.token was issued for a different question; ask the same one to page on")
    return limit, after
