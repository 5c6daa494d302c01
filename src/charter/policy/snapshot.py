"""The immutable snapshot the decision point reads: a charter version, the directory and the active grants, compiled.

`compile_snapshot` runs once per change; `Snapshot.evaluate` runs per request
and does no I/O, takes no lock and logs nothing. Order of evaluation:

1. the subject: unknown, disabled, departed or revoked subjects are denied;
2. requirements on the subject (`must use MFA`);
3. prohibitions, unless one of their exemptions holds (a subject, or an active
   break-glass or just-in-time grant);
4. permissions in force whose conditions hold: the lowest clause number decides;
5. active grants;
6. otherwise deny, saying which clause would have allowed it but for which
   condition, and which clause would let the subject request it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from charter.clock import Clock, SystemClock
from charter.directory.model import Directory, Identity, LifecycleState
from charter.language import ast
from charter.language.consolidate import Consolidated
from charter.language.formatter import format_duration, format_sentence, format_subject
from charter.policy.conditions import compile_condition
from charter.policy.decision import Basis, Decision
from charter.policy.grants import Grant, GrantKind
from charter.policy.index import PatternIndex
from charter.policy.obligations import obligations_of
from charter.policy.principal import Principal
from charter.policy.request import Request
from charter.policy.rules import ALWAYS, NEVER, Rule, Selector, compile_selector

_NO_ATTRIBUTES: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ActiveGrant:
    grant: Grant
    starts: float
    ends: float
    break_glass: bool
    obligations: tuple[str, ...]

    def covers(self, action: str, resource: str, now: float) -> bool:
        grant = self.grant
        return (
            self.starts <= now < self.ends
            and (not grant.actions or action in grant.actions)
            and (
                resource.startswith(grant.resource[:-1]) if grant.resource.endswith("*") else resource == grant.resource
            )
        )


@dataclass(frozen=True, slots=True)
class Canary:
    """An amendment in canary: the snapshot with it, and the subjects (principal keys) it already applies to."""

    amendment: int
    snapshot: Snapshot
    cohort: frozenset[str]


class Snapshot:
    """Everything a decision needs, compiled; never changed after construction (publication)."""

    def __init__(
        self,
        version: Consolidated,
        revision: int,
        clock: Clock,
        principals: dict[str, dict[str, Principal]],
        permits: dict[str, PatternIndex],
        forbids: dict[str, PatternIndex],
        eligible: dict[str, PatternIndex],
        break_glass: PatternIndex,
        grants: dict[str, tuple[ActiveGrant, ...]],
        rules: tuple[Rule, ...],
        dropped: dict[int, str],
        resources: Mapping[str, Mapping[str, object]],
        obligations: tuple[ast.Clause, ...],
    ):
        self.version = version
        self.charter = version.name
        self.revision = revision
        self.clock = clock
        self.principals = principals
        self.permits = permits
        self.forbids = forbids
        self.eligible = eligible
        self.break_glass = break_glass
        self.grants = grants
        self.rules = rules
        self.dropped = dropped
        self.resources = resources
        self.obligations = obligations
        owners = [o.name for o in version.charter.owners if o.kind is ast.SubjectKind.GROUP]
        # What the charter asks of sign-in, sessions and tokens (charter.auth and charter.oidc read it).
        self.auth = obligations_of(obligations, owners[0] if owners else None)
        self.canary: Canary | None = None  # set by `with_canary` before the snapshot is published
        number = version.version
        self._unknown = Decision(False, Basis.SUBJECT, version.name, number, reasons=("unknown subject",))
        self._nothing = Decision(False, Basis.DEFAULT, version.name, number, reasons=("no clause allows it",))

    # --- the hot path ----------------------------------------------------------------

    def evaluate(self, request: Request) -> Decision:
        kinds = self.principals.get(request.subject_type)
        principal = kinds.get(request.subject) if kinds is not None else None
        if principal is None:
            return self._unknown
        canary = self.canary
        if canary is not None and principal.key in canary.cohort:
            return canary.snapshot.evaluate(request)
        if principal.blocked is not None:
            return principal.blocked
        context = request.context
        if principal.mfa_decision is not None and not context.mfa:
            return principal.mfa_decision
        action = request.action
        resource = request.resource
        now = -1.0
        attributes = None

        index = self.forbids.get(action)
        if index is not None:
            for rule in index.candidates(principal, resource):
                if rule.selector.kind == "users" and principal.type != "user":
                    continue
                if rule.timed or rule.conditions:
                    if now < 0:
                        now = self._now(context)
                    if not rule.starts <= now < rule.ends:
                        continue
                if rule.conditions or rule.selector.where:
                    if attributes is None:
                        attributes = self._resource_attributes(request)
                    if rule.unmet(principal, request, now, attributes) is not None:
                        continue
                if self._exempt(rule, principal, request, now):
                    continue
                return rule.decision  # type: ignore[return-value]

        best: Rule | None = None
        failed: list[tuple[Rule, str]] | None = None
        index = self.permits.get(action)
        if index is not None:
            for rule in index.candidates(principal, resource):
                if best is not None and rule.clause > best.clause:
                    continue
                if rule.selector.kind == "users" and principal.type != "user":
                    continue
                if rule.timed:
                    if now < 0:
                        now = self._now(context)
                    if not rule.starts <= now < rule.ends:
                        if failed is None:
                            failed = []
                        failed.append((rule, _lapsed(rule, now)))
                        continue
                if rule.conditions or rule.selector.where:
                    if attributes is None:
                        attributes = self._resource_attributes(request)
                    if now < 0 and rule.conditions:
                        now = self._now(context)
                    reason = rule.unmet(principal, request, now, attributes)
                    if reason is not None:
                        if failed is None:
                            failed = []
                        failed.append((rule, reason))
                        continue
                best = rule
        if best is not None:
            return best.decision  # type: ignore[return-value]

        # With no grants at all, do not read principal.key (a cache miss with many identities).
        held = self.grants.get(principal.key) if self.grants else None
        if held is not None:
            if now < 0:
                now = self._now(context)
            for active in held:
                if active.covers(action, resource, now):
                    return self._grant_decision(active)
        return self._deny(principal, request, failed)

    def evaluate_many(self, requests: Iterable[Request]) -> list[Decision]:
        evaluate = self.evaluate
        return [evaluate(request) for request in requests]

    # --- helpers -------------------------------------------------------------------------

    def _now(self, context) -> float:
        time = context.time
        return (time if time is not None else self.clock.now()).timestamp()

    def _resource_attributes(self, request: Request) -> Mapping[str, object]:
        stored = self.resources.get(request.resource)
        given = request.context.resource_attributes
        if not given:
            return stored if stored is not None else _NO_ATTRIBUTES
        if stored is None:
            return given
        return {**stored, **given}

    def _exempt(self, rule: Rule, principal: Principal, request: Request, now: float) -> bool:
        for selector in rule.exempt_selectors:
            if selector.names(principal) and selector.unmet(principal) is None:
                return True
        if rule.exempt_break_glass or rule.exempt_request:
            held = self.grants.get(principal.key)
            if held:
                if now < 0:
                    now = self._now(request.context)
                for active in held:
                    wanted = rule.exempt_break_glass if active.break_glass else rule.exempt_request
                    if wanted and active.covers(request.action, request.resource, now):
                        return True
        return False

    def _grant_decision(self, active: ActiveGrant) -> Decision:
        grant = active.grant
        return Decision(
            True,
            Basis.BREAK_GLASS if active.break_glass else Basis.GRANT,
            self.charter,
            self.version.version,
            grant.clause,
            (f"{grant.kind.value} grant {grant.id} under clause {grant.clause}",),
            active.obligations,
            grant=grant.id,
            until=active.ends,
        )

    def _deny(self, principal: Principal, request: Request, failed: list[tuple[Rule, str]] | None) -> Decision:
        eligible = self._eligible_clause(principal, request)
        if not failed and eligible is None:
            return self._nothing  # the common default deny: build no reasons only to drop them
        reasons: list[str] = []
        if failed:
            failed.sort(key=lambda pair: pair[0].clause)
            for rule, reason in failed:
                reasons.append(f"clause {rule.clause} would allow it, but {reason}")
        else:
            reasons.append(
                f'no clause allows {request.action} on "{request.resource}" for {principal.type} "{principal.id}"'
            )
        if eligible is not None:
            reasons.append(f"clause {eligible} lets the subject request it")
        return Decision(
            False,
            Basis.CONDITION if failed else Basis.DEFAULT,
            self.charter,
            self.version.version,
            failed[0][0].clause if failed else None,
            tuple(reasons),
            eligible=eligible,
            until=0.0 if failed else None,
        )

    def _eligible_clause(self, principal: Principal, request: Request) -> int | None:
        index = self.eligible.get(request.action)
        if index is None:
            return None
        clauses = [
            rule.clause
            for rule in index.candidates(principal, request.resource)
            if rule.selector.names(principal) and rule.selector.unmet(principal) is None
        ]
        return min(clauses) if clauses else None

    # --- lookups for services -----------------------------------------------------------

    def principal(self, subject_type: str, subject: str) -> Principal | None:
        kinds = self.principals.get(subject_type)
        return kinds.get(subject) if kinds is not None else None

    def eligibility_for(self, principal: Principal, action: str, resource: str) -> list[Rule]:
        """Eligibility clauses under which this principal may request `action` on `resource`."""
        index = self.eligible.get(action)
        if index is None:
            return []
        return sorted(
            {
                r
                for r in index.candidates(principal, resource)
                if r.selector.names(principal) and r.selector.unmet(principal) is None
            },
            key=lambda r: r.clause,
        )

    def break_glass_for(self, principal: Principal, action: str, resource: str) -> list[Rule]:
        rules = self.break_glass.candidates(principal, resource)
        return sorted(
            {
                r
                for r in rules
                if (not r.actions or action in r.actions)
                and r.selector.names(principal)
                and r.selector.unmet(principal) is None
            },
            key=lambda r: r.clause,
        )


# --- compilation ---------------------------------------------------------------------------


def with_canary(base: Snapshot, amendment: int, canary: Snapshot, cohort: frozenset[str]) -> Snapshot:
    """`base`, answering for the subjects of `cohort` with `canary` (the version with the amendment).

    Call before the snapshot is published: readers never see it change."""
    base.canary = Canary(amendment, canary, cohort)
    return base


def _midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()


def compile_snapshot(
    version: Consolidated,
    directory: Directory,
    grants: Sequence[Grant] = (),
    clock: Clock | None = None,
    revision: int = 0,
    resources: Mapping[str, Mapping[str, object]] | None = None,
) -> Snapshot:
    """Compile a charter version, a directory and the active grants into a Snapshot."""
    clock = clock or SystemClock()
    name, number = version.name, version.version
    revoked_groups, revoked_keys, mfa_rules = _subject_rules(version)
    principals = _principals(directory, name, number, revoked_keys, mfa_rules)

    permits: dict[str, PatternIndex] = {}
    forbids: dict[str, PatternIndex] = {}
    eligible: dict[str, PatternIndex] = {}
    break_glass = PatternIndex()
    rules: list[Rule] = []
    dropped: dict[int, str] = {}
    for clause in version.clauses:
        sentence = clause.sentence
        if not isinstance(sentence, ast.Permission | ast.Prohibition | ast.Eligibility | ast.BreakGlass):
            continue
        subject = sentence.subject
        if subject.kind is ast.SubjectKind.GROUP and subject.name in revoked_groups:
            dropped[clause.number] = f'group "{subject.name}" is revoked by clause {revoked_groups[subject.name]}'
            continue
        rule = _rule(clause.number, sentence, clause.origin.effective)
        rules.append(rule)
        if isinstance(sentence, ast.Permission):
            rule.decision = Decision(
                True, Basis.PERMISSION, name, number, clause.number, (), _lapse_note(rule), until=_until(rule)
            )
            targets = [permits]
        elif isinstance(sentence, ast.Prohibition):
            rule.decision = Decision(
                False,
                Basis.PROHIBITION,
                name,
                number,
                clause.number,
                (f"forbidden by clause {clause.number}: {rule.text}",),
                until=_until(rule),
            )
            _exemptions(rule, sentence)
            targets = [forbids]
        elif isinstance(sentence, ast.Eligibility):
            targets = [eligible]
        else:
            for pattern in sentence.resources:
                break_glass.add(pattern, rule)
            continue
        for target in targets:
            for action in sentence.actions:
                index = target.setdefault(action, PatternIndex())
                for pattern in sentence.resources:
                    index.add(pattern, rule)

    by_clause = {c.number: c.sentence for c in version.clauses}
    active: dict[str, list[ActiveGrant]] = {}
    for grant in grants:
        key = f"{grant.subject_type}:{grant.subject}"
        breaking = grant.kind is GrantKind.BREAK_GLASS
        obligations = [f"grant {grant.id} ends at {grant.ends.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"]
        source = by_clause.get(grant.clause)
        if breaking and isinstance(source, ast.BreakGlass):
            obligations.append(
                f'each use is reviewed by group "{source.reviewer_group}" '
                f"within {format_duration(source.review_within)}"
            )
        active.setdefault(key, []).append(
            ActiveGrant(grant, grant.starts.timestamp(), grant.ends.timestamp(), breaking, tuple(obligations))
        )

    return Snapshot(
        version=version,
        revision=revision,
        clock=clock,
        principals=principals,
        permits=permits,
        forbids=forbids,
        eligible=eligible,
        break_glass=break_glass,
        grants={k: tuple(v) for k, v in active.items()},
        rules=tuple(rules),
        dropped=dropped,
        resources=resources
        if resources is not None
        else {r.id: r.condition_attributes() for r in directory.resources.values()},
        obligations=tuple(
            ast.Clause(c.number, c.sentence)
            for c in version.clauses
            if not isinstance(c.sentence, ast.Permission | ast.Prohibition | ast.Eligibility | ast.BreakGlass)
        ),
    )


def _subject_rules(
    version: Consolidated,
) -> tuple[dict[str, int], dict[str, int], list[tuple[Selector, int]]]:
    """The clauses that bear on subjects themselves: revoked groups, revoked subjects, MFA requirements."""
    revoked_groups: dict[str, int] = {}
    revoked_keys: dict[str, int] = {}
    mfa_rules: list[tuple[Selector, int]] = []
    for clause in version.clauses:
        sentence = clause.sentence
        if isinstance(sentence, ast.Revocation):
            subject = sentence.subject
            if subject.kind is ast.SubjectKind.GROUP:
                revoked_groups.setdefault(subject.name or "", clause.number)
            else:
                revoked_keys.setdefault(compile_selector(subject, "").key or "", clause.number)
        elif isinstance(sentence, ast.MfaRequirement):
            mfa_rules.append((compile_selector(sentence.subject, format_subject(sentence.subject)), clause.number))
    return revoked_groups, revoked_keys, mfa_rules


IDENTITY_SECTIONS = (("user", "users"), ("service", "services"), ("partner", "partners"))


def with_directory_changes(
    base: Snapshot,
    directory: Directory,
    closure: Mapping[str, frozenset[str]],
    changed: Mapping[str, Iterable[str]],
    revision: int,
    resources: Iterable[str] = (),
) -> Snapshot:
    """A new snapshot: `base` with the principals named in `changed` (type -> ids) recompiled from `directory`.

    The incremental step of `charter.engine`: every other principal, the rule indexes, the grants and the
    charter are shared with `base`, which is left untouched (readers may hold it). `closure` must be the
    nesting closure of `directory.groups`, and the closure of every group `base` knew must be unchanged (a
    nesting change or a group deletion needs a full `compile_snapshot`). An id missing from the directory
    is removed; `resources` names resources to take again from `directory.resources`.
    """
    _, revoked_keys, mfa_rules = _subject_rules(base.version)
    charter, number = base.version.name, base.version.version
    principals = dict(base.principals)
    shared: dict[tuple[str, ...], frozenset[str]] = {}
    for type_, section in IDENTITY_SECTIONS:
        ids = changed.get(type_)
        if not ids:
            continue
        identities: Mapping[str, Identity] = getattr(directory, section)
        compiled = principals[type_] = dict(principals.get(type_, {}))
        for id_ in ids:
            identity = identities.get(id_)
            if identity is None:
                compiled.pop(id_, None)
            else:
                compiled[id_] = _principal(type_, identity, closure, shared, charter, number, revoked_keys, mfa_rules)
    attributes = base.resources
    resources = list(resources)
    if resources:
        attributes = dict(attributes)
        for name in resources:
            resource = directory.resources.get(name)
            if resource is None:
                attributes.pop(name, None)
            else:
                attributes[name] = resource.condition_attributes()
    snapshot = Snapshot(
        version=base.version,
        revision=revision,
        clock=base.clock,
        principals=principals,
        permits=base.permits,
        forbids=base.forbids,
        eligible=base.eligible,
        break_glass=base.break_glass,
        grants=base.grants,
        rules=base.rules,
        dropped=base.dropped,
        resources=attributes,
        obligations=base.obligations,
    )
    return snapshot


def _rule(number: int, sentence: ast.Rule, effective: dt.date) -> Rule:
    starts = _midnight(effective)
    ends = NEVER
    validity = sentence.validity
    if validity is not None:
        ends = _midnight(validity.until) if validity.until is not None else starts + validity.duration.seconds  # type: ignore[union-attr]
    else:
        starts = ALWAYS
    text = format_sentence(sentence)
    selector = compile_selector(sentence.subject, format_subject(sentence.subject))
    conditions = tuple(compile_condition(c) for c in sentence.conditions)
    return Rule(number, sentence, text, selector, conditions, starts, ends)


def _exemptions(rule: Rule, prohibition: ast.Prohibition) -> None:
    selectors = []
    for exemption in prohibition.exemptions:
        if exemption.kind is ast.ExceptionKind.BREAK_GLASS:
            rule.exempt_break_glass = True
        elif exemption.kind is ast.ExceptionKind.APPROVED_REQUEST:
            rule.exempt_request = True
        else:
            assert exemption.subject is not None
            selectors.append(compile_selector(exemption.subject, format_subject(exemption.subject)))
    rule.exempt_selectors = tuple(selectors)


def _until(rule: Rule) -> float | None:
    """When time alone may change what this rule's ready decision says (Decision.until)."""
    if any(condition.uses_time for condition in rule.conditions):
        return 0.0
    return None if rule.ends == NEVER else rule.ends


def _lapsed(rule: Rule, now: float) -> str:
    if now < rule.starts:
        starts = dt.datetime.fromtimestamp(rule.starts, dt.UTC)
        return f"it is not in force until {starts:%Y-%m-%d %H:%M} UTC"
    ends = dt.datetime.fromtimestamp(rule.ends, dt.UTC)
    return f"it lapsed at {ends:%Y-%m-%d %H:%M} UTC"


def _lapse_note(rule: Rule) -> tuple[str, ...]:
    if rule.ends == NEVER:
        return ()
    ends = dt.datetime.fromtimestamp(rule.ends, dt.UTC)
    return (f"access under clause {rule.clause} lapses at {ends:%Y-%m-%d %H:%M} UTC",)


def _principals(
    directory: Directory,
    charter: str,
    version: int,
    revoked: Mapping[str, int],
    mfa_rules: Sequence[tuple[Selector, int]],
) -> dict[str, dict[str, Principal]]:
    closure = group_closure(directory)
    shared: dict[tuple[str, ...], frozenset[str]] = {}
    result: dict[str, dict[str, Principal]] = {}
    for type_, section in IDENTITY_SECTIONS:
        identities: Mapping[str, Identity] = getattr(directory, section)
        result[type_] = {
            identity.id: _principal(type_, identity, closure, shared, charter, version, revoked, mfa_rules)
            for identity in identities.values()
        }
    return result


def _principal(
    type_: str,
    identity: Identity,
    closure: Mapping[str, frozenset[str]],
    shared: dict[tuple[str, ...], frozenset[str]],
    charter: str,
    version: int,
    revoked: Mapping[str, int],
    mfa_rules: Sequence[tuple[Selector, int]],
) -> Principal:
    """One identity compiled: its effective groups, and its ready denials (blocked, MFA required)."""
    groups = shared.get(identity.groups)
    if groups is None:
        groups = shared[identity.groups] = frozenset().union(*(closure[g] for g in identity.groups))
    principal = Principal(type_, identity.id, groups, identity.attributes)
    principal.blocked = _blocked(identity, principal, charter, version, revoked)
    for selector, clause in mfa_rules:
        if selector.names(principal) and selector.unmet(principal) is None:
            principal.mfa_decision = Decision(
                False,
                Basis.REQUIREMENT,
                charter,
                version,
                clause,
                (f"needs MFA: clause {clause} requires it of {selector.text[0].lower() + selector.text[1:]}",),
            )
            break
    return principal


def _blocked(
    identity: Identity, principal: Principal, charter: str, version: int, revoked: Mapping[str, int]
) -> Decision | None:
    if identity.state is not LifecycleState.ACTIVE:
        why = "the account is disabled" if identity.state is LifecycleState.DISABLED else "the person has left"
        return Decision(False, Basis.SUBJECT, charter, version, None, (why,))
    clause = revoked.get(principal.key)
    if clause is not None:
        return Decision(
            False,
            Basis.REVOCATION,
            charter,
            version,
            clause,
            (f'{principal.type} "{principal.id}" is revoked by clause {clause}',),
        )
    return None


def group_closure(directory: Directory, closure: dict[str, frozenset[str]] | None = None) -> dict[str, frozenset[str]]:
    """Each group with every group it is nested in (the directory loader has already rejected cycles).

    Given `closure`, fills in only the groups it lacks (in place), reusing the rest."""
    closure = {} if closure is None else closure

    def resolve(group: str) -> frozenset[str]:
        found = closure.get(group)
        if found is None:
            parents = directory.groups[group].groups if group in directory.groups else ()
            found = closure[group] = frozenset({group}).union(*(resolve(p) for p in parents))
        return found

    for group in directory.groups:
        resolve(group)
    return closure
