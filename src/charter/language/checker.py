"""Semantic checks on a charter and its amendments: findings a parser cannot see.

Errors make a document unusable (a duplicate clause number, an amendment that
replaces a clause that does not exist, two clauses setting one obligation).
Warnings mark clauses that can never apply (an unknown group, a lapsed date, a
permission fully shadowed by a prohibition, a grant to a revoked group).
Every finding carries its clause number and position.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from charter.language import ast, patterns
from charter.language.consolidate import Consolidated, ConsolidatedClause, consolidate
from charter.language.errors import CharterError, Diagnostic, Severity, did_you_mean
from charter.language.formatter import format_subject

RULES = (ast.Permission, ast.Prohibition, ast.Eligibility, ast.BreakGlass)


@dataclass(frozen=True, slots=True)
class KnownNames:
    """The identities a directory holds, by kind: what charter names are checked against."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    partners: frozenset[str] = frozenset()

    def of(self, kind: ast.SubjectKind) -> frozenset[str]:
        return {
            ast.SubjectKind.USER: self.users,
            ast.SubjectKind.GROUP: self.groups,
            ast.SubjectKind.SERVICE: self.services,
            ast.SubjectKind.PARTNER: self.partners,
        }.get(kind, frozenset())


@dataclass(frozen=True, slots=True)
class CheckResult:
    diagnostics: tuple[Diagnostic, ...]
    version: Consolidated | None  # the charter with every amendment folded in, when that succeeded

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)


def check(
    charter: ast.Charter,
    amendments: Sequence[ast.Amendment] = (),
    names: KnownNames | None = None,
    today: dt.date | None = None,
    charter_source: str = "<text>",
    amendment_sources: Mapping[int, str] | None = None,
) -> CheckResult:
    """Check a charter and the amendments to it; the semantic checks run on the text with all amendments in force."""
    sources = dict(amendment_sources or {})
    findings = list(_structure(charter, charter_source))
    if any(d.is_error for d in findings):
        return CheckResult(tuple(findings), None)
    try:
        version = consolidate(charter, amendments, None, sources)
    except CharterError as error:
        return CheckResult(tuple(findings) + error.diagnostics, None)

    def source_of(clause: ConsolidatedClause) -> str:
        if clause.origin.amendment is None:
            return charter_source
        return sources.get(clause.origin.amendment, f"amendment {clause.origin.amendment}")

    findings += _amendment_findings(charter, amendments, names, today, sources)
    context = _Context(version, source_of, names, today, charter_source)
    findings += context.run()
    # A charter with errors never half-applies: there is no version in force to use.
    return CheckResult(tuple(findings), None if any(d.is_error for d in findings) else version)


def _structure(charter: ast.Charter, source: str) -> Iterator[Diagnostic]:
    seen: dict[int, ast.Clause] = {}
    numbers = {c.number for c in charter.clauses}
    unused = min(set(range(1, max(numbers, default=0) + 2)) - numbers)
    for clause in charter.clauses:
        if clause.number in seen:
            first = seen[clause.number]
            yield Diagnostic(
                Severity.ERROR,
                f"clause {clause.number} is numbered twice (first at line {first.span.line})",
                clause.span,
                source,
                hint=f"did you mean clause {unused}?",
                clause=clause.number,
                code="check.duplicate-clause",
            )
        seen[clause.number] = clause
    if seen:
        missing = sorted(set(range(1, max(seen) + 1)) - set(seen))
        if missing:
            listed = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
            after_gap = min((c for c in charter.clauses if c.number > missing[0]), key=lambda c: c.number)
            yield Diagnostic(
                Severity.WARNING,
                f"clause numbers skip {listed}: number clauses 1, 2, 3, ... without gaps",
                after_gap.span,  # the clause that comes where the missing number should be
                source,
                clause=missing[0],
                code="check.missing-clause",
            )
        numbers = [c.number for c in charter.clauses]
        if numbers != sorted(numbers) and len(set(numbers)) == len(numbers):
            yield Diagnostic(
                Severity.WARNING,
                "clauses are not in number order",
                charter.span,
                source,
                code="check.clause-order",
            )


def _amendment_findings(
    charter: ast.Charter,
    amendments: Sequence[ast.Amendment],
    names: KnownNames | None,
    today: dt.date | None,
    sources: Mapping[int, str],
) -> Iterator[Diagnostic]:
    newest = max((a.number for a in amendments), default=None)
    for amendment in amendments:
        source = sources.get(amendment.number, f"amendment {amendment.number}")
        if today is not None and amendment.number == newest and amendment.effective < today:
            yield Diagnostic(
                Severity.WARNING,
                f"amendment {amendment.number} takes effect on {amendment.effective.isoformat()}, a date already "
                "past: once approved it applies at once",
                amendment.span,
                source,
                code="check.past-date",
            )
        for required in charter.amendment_approvers:
            offering = [q for q in amendment.approvers if q.group == required.group]
            offered = sum(q.count for q in offering)
            if offered < required.count:
                members = "member" if required.count == 1 else "members"
                yield Diagnostic(
                    Severity.ERROR,
                    f'amendment {amendment.number} asks for {offered} approver(s) from group "{required.group}"; '
                    f"the charter requires at least {required.count}",
                    offering[0].span if offering else amendment.span,
                    source,
                    hint=f'ask for {required.count} {members} of group "{required.group}" in the "Approved by" line',
                    code="check.too-few-approvers",
                )
        if names is not None:
            for quorum in amendment.approvers:
                yield from _unknown(ast.SubjectKind.GROUP, quorum.group, quorum.span, source, None, names)


class _Context:
    """Runs the checks that need the whole text in force."""

    def __init__(
        self, version: Consolidated, source_of, names: KnownNames | None, today: dt.date | None, charter_source: str
    ):
        self.charter_source = charter_source
        self.version = version
        self.source_of = source_of
        self.names = names
        self.today = today

    def run(self) -> list[Diagnostic]:
        found: list[Diagnostic] = []
        found += self.names_found()
        found += self.lapses()
        found += self.shadowed()
        found += self.revoked_but_granted()
        found += self.conflicting_obligations()
        return found

    def diagnostic(self, severity: Severity, clause: ConsolidatedClause, message: str, code: str, span=None, hint=None):
        return Diagnostic(
            severity,
            message,
            span or clause.sentence.span,
            self.source_of(clause),
            hint=hint,
            clause=clause.number,
            code=code,
        )

    # unknown identities ---------------------------------------------------------------

    def names_found(self) -> Iterator[Diagnostic]:
        if self.names is None:
            return
        charter = self.version.charter
        for owner in charter.owners:
            yield from _unknown(owner.kind, owner.name, owner.span, self.charter_source, None, self.names)
        for clause in self.version.clauses:
            for kind, name, span in _references(clause.sentence):
                yield from _unknown(kind, name, span, self.source_of(clause), clause.number, self.names)

    # dates ---------------------------------------------------------------------------------

    def lapses(self) -> Iterator[Diagnostic]:
        for clause in self.version.clauses:
            validity = getattr(clause.sentence, "validity", None)
            if validity is None:
                continue
            starts = clause.origin.effective
            if validity.until is not None:
                ends = validity.until
                if ends <= starts:
                    yield self.diagnostic(
                        Severity.WARNING,
                        clause,
                        f"clause {clause.number} lapses on {ends.isoformat()}, before it takes effect on "
                        f"{starts.isoformat()}: it never applies",
                        "check.lapsed",
                        validity.span,
                    )
                    continue
            else:
                assert validity.duration is not None
                ends = starts + dt.timedelta(days=-(-validity.duration.seconds // 86400))
            if self.today is not None and ends <= self.today:
                yield self.diagnostic(
                    Severity.WARNING,
                    clause,
                    f"clause {clause.number} lapsed on {ends.isoformat()}: it no longer applies",
                    "check.lapsed",
                    validity.span,
                )

    # prohibitions ---------------------------------------------------------------------

    def shadowed(self) -> Iterator[Diagnostic]:
        # Index the prohibitions that can shadow at all (no condition, no lapse) by action, in clause order: a rule
        # is shadowed only by one that forbids each of its actions, so only those listing its first action are tried
        # (rules x prohibitions made this quadratic: 3 s at 10,000 clauses).
        by_action: dict[str, list[ConsolidatedClause]] = {}
        for c in self.version.clauses:
            if isinstance(c.sentence, ast.Prohibition) and not c.sentence.conditions and c.sentence.validity is None:
                for action in c.sentence.actions:
                    by_action.setdefault(action, []).append(c)
        for clause in self.version.clauses:
            rule = clause.sentence
            if not isinstance(rule, ast.Permission | ast.Eligibility | ast.BreakGlass) or not rule.actions:
                continue
            for prohibition_clause in by_action.get(rule.actions[0], ()):
                prohibition = prohibition_clause.sentence
                assert isinstance(prohibition, ast.Prohibition)
                if _shadows(prohibition, rule):
                    kind = {
                        ast.Permission: "permission",
                        ast.Eligibility: "request clause",
                        ast.BreakGlass: "break-glass clause",
                    }[type(rule)]
                    yield self.diagnostic(
                        Severity.WARNING,
                        clause,
                        f"{kind} in clause {clause.number} is fully shadowed by the prohibition in clause "
                        f"{prohibition_clause.number}: it can never allow anything",
                        "check.shadowed",
                        hint=_rescue_hint(rule),
                    )
                    break

    # revocations ------------------------------------------------------------------------

    def revoked_but_granted(self) -> Iterator[Diagnostic]:
        revoked = {
            (c.sentence.subject.kind, c.sentence.subject.name): c
            for c in self.version.clauses
            if isinstance(c.sentence, ast.Revocation)
        }
        if not revoked:
            return
        for clause in self.version.clauses:
            rule = clause.sentence
            if not isinstance(rule, ast.Permission | ast.Eligibility | ast.BreakGlass):
                continue
            revoking = revoked.get((rule.subject.kind, rule.subject.name))
            if revoking is not None:
                yield self.diagnostic(
                    Severity.WARNING,
                    clause,
                    f"clause {clause.number} grants {format_subject(rule.subject, lowercase=True)}, which clause "
                    f"{revoking.number} revokes: it grants nothing",
                    "check.revoked-granted",
                    rule.subject.span,
                )

    # obligations --------------------------------------------------------------------------

    def conflicting_obligations(self) -> Iterator[Diagnostic]:
        first: dict[object, ConsolidatedClause] = {}
        for clause in self.version.clauses:
            key = _obligation_key(clause.sentence)
            if key is None:
                continue
            if key in first:
                earlier = first[key]
                yield self.diagnostic(
                    Severity.ERROR,
                    clause,
                    f"clause {clause.number} sets {key[1]} again; clause {earlier.number} already does",
                    "check.conflicting-obligation",
                    hint=f"strike or merge one of clauses {earlier.number} and {clause.number}",
                )
            else:
                first[key] = clause


def _unknown(
    kind: ast.SubjectKind,
    name: str | None,
    span: ast.Span,
    source: str,
    clause: int | None,
    names: KnownNames,
) -> Iterator[Diagnostic]:
    if name is None or kind not in (
        ast.SubjectKind.USER,
        ast.SubjectKind.GROUP,
        ast.SubjectKind.SERVICE,
        ast.SubjectKind.PARTNER,
    ):
        return
    known = names.of(kind)
    if name not in known:
        yield Diagnostic(
            Severity.WARNING,
            f'unknown {kind.value} "{name}"',
            span,
            source,
            hint=did_you_mean(name, known),
            clause=clause,
            code=f"check.unknown-{kind.value}",
        )


def _references(sentence: ast.Sentence) -> Iterator[tuple[ast.SubjectKind, str | None, ast.Span]]:
    """Every identity a sentence names, with where it names it."""
    subject = getattr(sentence, "subject", None)
    if isinstance(subject, ast.Subject):
        yield subject.kind, subject.name, subject.span
    for exemption in getattr(sentence, "exemptions", ()):
        if exemption.subject is not None:
            yield exemption.subject.kind, exemption.subject.name, exemption.subject.span
    for quorum in getattr(sentence, "approvers", ()):
        yield ast.SubjectKind.GROUP, quorum.group, quorum.span
    for attribute in ("reviewer_group", "group"):
        group = getattr(sentence, attribute, None)
        if isinstance(group, str):
            yield ast.SubjectKind.GROUP, group, sentence.span


def _covers_subject(outer: ast.Subject, inner: ast.Subject) -> bool:
    if outer.where:
        return outer == inner
    if outer.kind is ast.SubjectKind.ANYONE:
        return True
    if outer.kind is ast.SubjectKind.USERS:
        return inner.kind in (ast.SubjectKind.USER, ast.SubjectKind.USERS)
    return outer.kind is inner.kind and outer.name == inner.name


def _may_overlap(a: ast.Subject, b: ast.Subject) -> bool:
    broad = (ast.SubjectKind.GROUP, ast.SubjectKind.USERS, ast.SubjectKind.ANYONE)
    if a.kind in broad or b.kind in broad:
        return True
    return a.kind is b.kind and a.name == b.name


def _shadows(prohibition: ast.Prohibition, rule: ast.Permission | ast.Eligibility | ast.BreakGlass) -> bool:
    if prohibition.conditions or prohibition.validity is not None:
        return False
    if not _covers_subject(prohibition.subject, rule.subject):
        return False
    if not rule.actions or not set(rule.actions) <= set(prohibition.actions):
        return False
    if not all(any(patterns.covers(p, r) for p in prohibition.resources) for r in rule.resources):
        return False
    rescue = {
        ast.Permission: None,
        ast.Eligibility: ast.ExceptionKind.APPROVED_REQUEST,
        ast.BreakGlass: ast.ExceptionKind.BREAK_GLASS,
    }[type(rule)]
    for exemption in prohibition.exemptions:
        if exemption.kind is rescue:
            return False
        if exemption.subject is not None and _may_overlap(exemption.subject, rule.subject):
            return False
    return True


def _rescue_hint(rule: ast.Sentence) -> str:
    if isinstance(rule, ast.Eligibility):
        return 'add "except by approved request" to the prohibition if approved requests should pass'
    if isinstance(rule, ast.BreakGlass):
        return 'add "except by break glass" to the prohibition'
    return 'narrow the prohibition, or name these subjects in its "except"'


def _obligation_key(sentence: ast.Sentence) -> tuple[object, str] | None:
    match sentence:
        case ast.TokenLifetime(token=token):
            return (token, f"the {token.value} token lifetime")
        case ast.Rotation(credential=kind):
            return (kind, f"the rotation period of {kind.value}")
        case ast.SessionLimits():
            return ("sessions", "the session limits")
        case ast.Lockout():
            return ("lockout", "the account lockout")
        case ast.Retention(records=records):
            return (records, f"the retention of {records.value} records")
        case ast.MembershipReview(group=group):
            return (("review", group), f'the review of group "{group}"')
        case ast.Escalation():
            return ("escalation", "the escalation of undecided requests")
        case ast.RequestExpiry():
            return ("request-expiry", "the expiry of undecided requests")
        case ast.Offboarding():
            return ("offboarding", "the offboarding deadline")
        case ast.Recovery():
            return ("recovery", "the recovery of lost MFA devices")
    return None
