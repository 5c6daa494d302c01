"""Clauses compiled for evaluation: who a rule applies to (a selector) and what it needs (conditions, validity)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from charter.language import ast
from charter.policy.conditions import Check, CompiledCondition, subject_test
from charter.policy.decision import Decision
from charter.policy.principal import Principal
from charter.policy.request import Request

NEVER = math.inf
ALWAYS = -math.inf


class Selector:
    """Which principals a clause's subject names: a group's members, one identity, every user, or anyone."""

    __slots__ = ("group", "key", "kind", "text", "where")

    def __init__(self, kind: str, group: str | None, key: str | None, where: tuple[Check, ...], text: str):
        self.kind = kind  # "group" | "identity" | "users" | "anyone"
        self.group = group
        self.key = key
        self.where = where
        self.text = text

    def names(self, principal: Principal) -> bool:
        """Whether the subject part (ignoring `whose` tests) names this principal."""
        kind = self.kind
        if kind == "group":
            return self.group in principal.groups
        if kind == "identity":
            return self.key == principal.key
        if kind == "users":
            return principal.type == "user"
        return True

    def unmet(self, principal: Principal) -> str | None:
        """The first `whose` test the principal fails, or None."""
        for check in self.where:
            reason = check(principal, _NO_REQUEST, 0.0, _NO_ATTRIBUTES)
            if reason is not None:
                return reason
        return None


_NO_REQUEST = Request("", "", "")
_NO_ATTRIBUTES: Mapping[str, object] = {}
_SUBJECT_KEYS = {ast.SubjectKind.USER: "user", ast.SubjectKind.SERVICE: "service", ast.SubjectKind.PARTNER: "partner"}


def compile_selector(subject: ast.Subject, text: str) -> Selector:
    where = tuple(subject_test(t) for t in subject.where)
    kind = subject.kind
    if kind is ast.SubjectKind.GROUP:
        return Selector("group", subject.name, None, where, text)
    if kind in _SUBJECT_KEYS:
        return Selector("identity", None, f"{_SUBJECT_KEYS[kind]}:{subject.name}", where, text)
    if kind is ast.SubjectKind.USERS:
        return Selector("users", None, None, where, text)
    return Selector("anyone", None, None, where, text)


class Rule:
    """One permission, prohibition, eligibility or break-glass clause, ready to evaluate.

    `starts`/`ends` bound when the clause applies (POSIX seconds; ALWAYS/NEVER when unbounded).
    `decision` is the ready answer when the rule decides: an allow for permissions, a deny for prohibitions.
    """

    __slots__ = (
        "actions",
        "clause",
        "conditions",
        "decision",
        "ends",
        "exempt_break_glass",
        "exempt_request",
        "exempt_selectors",
        "resources",
        "selector",
        "sentence",
        "starts",
        "text",
        "timed",
    )

    def __init__(
        self,
        clause: int,
        sentence: ast.Rule,
        text: str,
        selector: Selector,
        conditions: tuple[CompiledCondition, ...],
        starts: float,
        ends: float,
    ):
        self.clause = clause
        self.sentence = sentence
        self.text = text
        self.selector = selector
        self.actions = frozenset(sentence.actions)
        self.resources = sentence.resources
        self.conditions = conditions
        self.starts = starts
        self.ends = ends
        self.timed = ends != NEVER or any(c.uses_time for c in conditions)
        self.decision: Decision | None = None
        self.exempt_break_glass = False
        self.exempt_request = False
        self.exempt_selectors: tuple[Selector, ...] = ()

    def __repr__(self) -> str:
        return f"Rule(clause {self.clause}: {self.text})"

    def in_force(self, now: float) -> bool:
        return self.starts <= now < self.ends

    def unmet(self, principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
        """The first reason this rule does not apply to a principal it names, or None when it applies."""
        reason = self.selector.unmet(principal) if self.selector.where else None
        if reason is not None:
            return reason
        for condition in self.conditions:
            reason = condition.check(principal, request, now, resource)
            if reason is not None:
                return reason
        return None
