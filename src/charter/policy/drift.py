"""Drift: where live state disagrees with the obligations of the charter in force. Pure: plain data in, findings out.

The charter says what must hold (a revoked group has no members, service credentials rotate every 90
days, ...); the engine enforces what it can at decision time, and this module reports where the
directory, the live grants and API clients, and the amendments' states still disagree, so that someone
can clean them up. Each finding names the clause its obligation comes from (None when the obligation is
not a clause, such as every service having an owner). Checks whose state does not exist yet (MFA
issued tokens) are reported as not checked, with the issue that adds them.

`charter.drift` reads the store and calls `find_drift`; docs/drift.md explains each check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from charter.directory.model import Directory, Identity, LifecycleState
from charter.language import ast, patterns
from charter.language.consolidate import Consolidated, ConsolidatedClause, OriginKind
from charter.language.formatter import format_duration
from charter.policy.grants import Grant, GrantKind
from charter.policy.obligations import DEFAULT_ACCESS_TOKEN

DUE_STATUSES = ("approved", "scheduled")  # an amendment in one of these is applied once its date comes


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement: `check` (a stable id), who or what it is about ("user:bob", "amendment:2"), the
    clause the obligation comes from (None when it is not a clause's)."""

    check: str
    subject: str
    detail: str
    clause: int | None

    def to_json(self) -> dict:
        return {"check": self.check, "subject": self.subject, "detail": self.detail, "clause": self.clause}


@dataclass(frozen=True, slots=True)
class NotChecked:
    """A check the charter calls for whose state Charter does not hold yet, and the issue that adds it.

    `clauses`: the clauses of the version in force that state the obligation (empty when it states none).
    """

    check: str
    description: str
    issue: str
    clauses: tuple[int, ...] = ()

    def to_json(self) -> dict:
        return {
            "check": self.check,
            "description": self.description,
            "issue": self.issue,
            "clauses": list(self.clauses),
        }


@dataclass(frozen=True, slots=True)
class LiveClient:
    """An API client that is not revoked: whom it acts as, and when it was created (timezone-aware)."""

    id: str
    name: str
    subject_type: str
    subject: str
    created_at: dt.datetime  # for an OAuth client: when its current secret was made
    kind: str = "API client"  # or "OAuth client" (a service's client credentials, charter.oidc.clients)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token issued (from its `oidc.token.issue` audit record): its lifetime and expiry."""

    jti: str
    client_id: str
    subject_type: str
    subject: str
    lifetime: dt.timedelta
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AmendmentState:
    """Where an amendment to the charter in force is in its lifecycle."""

    number: int
    status: str  # draft | proposed | approved | scheduled | in_force | rejected | withdrawn
    effective: dt.date
    last_error: str | None = None  # why the last attempt to apply it failed


@dataclass(frozen=True, slots=True)
class OpenReview:
    """A review task not done yet (`charter.reviews`): what it reviews, by whom, under which clause, by when."""

    id: str
    kind: str  # membership | break glass
    clause: int
    reviewer_group: str
    subject: str  # "group:contractors", or the break-glass grant's id
    opened_at: dt.datetime
    due: dt.datetime


@dataclass(frozen=True, slots=True)
class Drift:
    """The findings (sorted by check, then subject) and what could not be checked, as of `as_of`."""

    charter: str
    version: int
    as_of: dt.datetime
    findings: tuple[Finding, ...]
    not_checked: tuple[NotChecked, ...]

    def to_json(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "charter": self.charter,
            "version": self.version,
            "findings": [f.to_json() for f in self.findings],
            "not_checked": [n.to_json() for n in self.not_checked],
            "total": len(self.findings),
        }


@dataclass
class _Live:
    """Everything a check reads, with the lookups several checks share."""

    version: Consolidated
    directory: Directory
    grants: tuple[Grant, ...]  # not revoked, not ended
    clients: tuple[LiveClient, ...]
    amendments: tuple[AmendmentState, ...]
    now: dt.datetime
    reviews: tuple[OpenReview, ...] = ()
    mfa_enrolled: frozenset[str] = frozenset()  # users with a confirmed second factor
    issued: tuple[IssuedToken, ...] = ()
    last_active: Mapping[str, dt.datetime] = field(default_factory=dict)  # user -> latest sign-in or creation
    inactive_after: dt.timedelta = dt.timedelta(days=90)
    revoked_groups: Mapping[str, int] = field(init=False)  # group -> the clause revoking it
    revoked_identities: Mapping[str, int] = field(init=False)  # "user:bob" -> the clause revoking it

    def __post_init__(self) -> None:
        groups: dict[str, int] = {}
        identities: dict[str, int] = {}
        for clause in self.version.clauses:
            sentence = clause.sentence
            if isinstance(sentence, ast.Revocation):
                subject = sentence.subject
                if subject.kind is ast.SubjectKind.GROUP:
                    groups.setdefault(subject.name or "", clause.number)
                else:
                    identities.setdefault(f"{subject.kind.value}:{subject.name}", clause.number)
        self.revoked_groups, self.revoked_identities = groups, identities

    def identity(self, subject_type: str, name: str) -> Identity | None:
        section = {"user": self.directory.users, "service": self.directory.services, "partner": self.directory.partners}
        return section.get(subject_type, {}).get(name)

    def first_clause(self, wanted: Callable[[ast.Sentence], bool]) -> ConsolidatedClause | None:
        return next((c for c in self.version.clauses if wanted(c.sentence)), None)

    def holdings(self) -> Iterator[tuple[str, str, str]]:
        """(subject type, subject, what it holds) for every live API client and grant."""
        for client in self.clients:
            yield client.subject_type, client.subject, f'{client.kind} "{client.name}" ({client.id})'
        for grant in self.grants:
            yield grant.subject_type, grant.subject, _describe_grant(grant)


# A check yields (subject, detail, clause); `find_drift` stamps its id on each.
Check = Callable[[_Live], Iterator[tuple[str, str, int | None]]]


def find_drift(
    version: Consolidated,
    directory: Directory,
    grants: Sequence[Grant],
    clients: Sequence[LiveClient],
    amendments: Sequence[AmendmentState],
    now: dt.datetime,
    reviews: Sequence[OpenReview] = (),
    mfa_enrolled: Collection[str] = (),
    issued: Sequence[IssuedToken] = (),
    last_active: Mapping[str, dt.datetime] | None = None,
    inactive_after: dt.timedelta = dt.timedelta(days=90),
) -> Drift:
    """Every check of `CHECKS` over the live state; `grants` are those not revoked (the ended are skipped),
    `reviews` the review tasks still open, `mfa_enrolled` the users with a confirmed second factor, `issued`
    the access tokens issued recently, `last_active` each user's latest sign-in (or creation), and users idle
    longer than `inactive_after` are reported (users missing from `last_active` are not judged)."""
    live = _Live(
        version,
        directory,
        tuple(g for g in grants if g.ends > now),
        tuple(clients),
        tuple(amendments),
        now,
        tuple(reviews),
        frozenset(mfa_enrolled),
        tuple(issued),
        dict(last_active or {}),
        inactive_after,
    )
    findings = [
        Finding(check, subject, detail, clause)
        for check, (_, run) in CHECKS.items()
        for subject, detail, clause in run(live)
    ]
    findings.sort(key=lambda f: (f.check, f.subject, f.detail))
    return Drift(version.name, version.version, now, tuple(findings), _not_checked(version))


# --- the checks ------------------------------------------------------------------------------------


def _revoked_group_members(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    ancestors = _ancestors(live.directory)
    for identities in (live.directory.users, live.directory.services, live.directory.partners):
        for identity in identities.values():
            for group, clause in sorted(live.revoked_groups.items()):
                direct = [g for g in identity.groups if group in ancestors.get(g, {g})]
                if not direct:
                    continue
                how = "" if group in direct else f' through group "{sorted(direct)[0]}"'
                detail = f'member of group "{group}"{how}, which clause {clause} revokes'
                yield _key(identity), detail, clause


def _revoked_identities_active(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    for key, clause in sorted(live.revoked_identities.items()):
        subject_type, _, name = key.partition(":")
        identity = live.identity(subject_type, name)
        if identity is not None and identity.state is LifecycleState.ACTIVE:
            yield key, f"active in the directory, though clause {clause} revokes it", clause


def _revoked_identities_holding(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    for subject_type, subject, held in live.holdings():
        key = f"{subject_type}:{subject}"
        clause = live.revoked_identities.get(key)
        if clause is not None:
            yield key, f"holds {held}, though clause {clause} revokes it", clause


def _without_owner(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    for identities in (live.directory.services, live.directory.partners):
        for identity in identities.values():
            if identity.state is not LifecycleState.ACTIVE:
                continue  # a disabled service acts for no one: no one needs to answer for it
            problem = _owner_problem(identity.owner, live.directory)
            if problem is not None:
                yield _key(identity), problem, None


def _owner_problem(owner: str | None, directory: Directory) -> str | None:
    if owner is None:
        return "has no owner"
    person = directory.users.get(owner)
    if person is None:
        return f'its owner "{owner}" is not a user in the directory'
    if person.state is not LifecycleState.ACTIVE:
        return f'its owner "{owner}" {_state_phrase(person.state)}'
    return None


def _credentials_past_rotation(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    clause = live.first_clause(
        lambda s: isinstance(s, ast.Rotation) and s.credential is ast.CredentialKind.SERVICE_CREDENTIALS
    )
    if clause is None:
        return
    every = clause.sentence.every  # type: ignore[union-attr]
    for client in live.clients:
        age = live.now - client.created_at
        if client.subject_type == "service" and age > every.timedelta:
            created = client.created_at.astimezone(dt.UTC)
            made = "was created" if client.kind == "API client" else "has had its secret since"
            detail = (
                f'{client.kind} "{client.name}" ({client.id}) {made} {created:%Y-%m-%d}, {age.days} days ago; '
                f"service credentials rotate every {format_duration(every)}"
            )
            yield f"service:{client.subject}", detail, clause.number


def _long_lived_tokens(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    """Access tokens still live that were issued for longer than the charter now allows (say, after an
    amendment shortened it); Charter's default lifetime applies when the charter states none."""
    clause = live.first_clause(lambda s: isinstance(s, ast.TokenLifetime) and s.token is ast.TokenKind.ACCESS)
    allowed = clause.sentence.lifetime.timedelta if clause is not None else DEFAULT_ACCESS_TOKEN  # type: ignore[union-attr]
    for token in live.issued:
        if token.expires_at > live.now and token.lifetime > allowed:
            detail = (
                f"access token {token.jti} (client {token.client_id}) was issued for "
                f"{_words(token.lifetime)} and is live until {token.expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC; "
                f"access tokens expire after {_words(allowed)}"
            )
            yield f"{token.subject_type}:{token.subject}", detail, clause.number if clause is not None else None


def _words(duration: dt.timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}" + ("" if n == 1 else "s")
    return f"{seconds} seconds"


def _inactive_holders(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    # For people, the offboarding clause says their access is revoked when they leave; services and
    # partners have no such clause, but a disabled one holding access is drift all the same.
    offboarding = live.first_clause(lambda s: isinstance(s, ast.Offboarding))
    for subject_type, subject, held in live.holdings():
        identity = live.identity(subject_type, subject)
        if identity is not None and identity.state is LifecycleState.ACTIVE:
            continue
        state = "is not in the directory" if identity is None else _state_phrase(identity.state)
        clause = offboarding.number if offboarding is not None and subject_type == "user" else None
        yield f"{subject_type}:{subject}", f"{state}, yet holds {held}", clause


def _grants_without_authority(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    for grant in live.grants:
        gap = _authority_gap(grant, live)
        if gap is not None:
            detail = f"{_describe_grant(grant)} is under clause {grant.clause}, {gap}"
            yield f"{grant.subject_type}:{grant.subject}", detail, grant.clause


def _authority_gap(grant: Grant, live: _Live) -> str | None:
    """Why the grant's clause no longer allows it, or None when it still does."""
    version = live.version
    clause = version.clause(grant.clause)
    if clause is None:
        struck = next((s for s in version.struck if s.number == grant.clause), None)
        if struck is not None:
            return f"which amendment {struck.amendment} struck"
        return "which the charter in force does not have"
    sentence = clause.sentence
    wanted = ast.Eligibility if grant.kind is GrantKind.REQUEST else ast.BreakGlass
    if not isinstance(sentence, wanted):
        how = f" (replaced by amendment {clause.origin.amendment})" if clause.origin.kind is OriginKind.REPLACED else ""
        return f"which is now {_sentence_kind(sentence)}{how}, not {_sentence_kind(wanted)}"
    assert isinstance(sentence, ast.Eligibility | ast.BreakGlass)
    lapsed = _lapsed_on(clause, sentence.validity, live.now)
    if lapsed is not None:
        return f"which lapsed on {lapsed.isoformat()}"
    if sentence.subject.kind is ast.SubjectKind.GROUP and sentence.subject.name in live.revoked_groups:
        revoking = live.revoked_groups[sentence.subject.name or ""]
        return f'whose group "{sentence.subject.name}" clause {revoking} revokes'
    if not any(patterns.covers(pattern, grant.resource) for pattern in sentence.resources):
        return f'which does not cover "{grant.resource}"'
    beyond = _actions_beyond(grant, sentence)
    if beyond:
        return f"which does not allow {beyond}"
    return None


def _lapsed_on(clause: ConsolidatedClause, validity: ast.Validity | None, now: dt.datetime) -> dt.date | None:
    """The day a clause with a validity stopped being in force, if that day has come (as the snapshot counts it)."""
    if validity is None:
        return None
    if validity.until is not None:
        ends = dt.datetime.combine(validity.until, dt.time(), dt.UTC)
    else:
        assert validity.duration is not None
        ends = dt.datetime.combine(clause.origin.effective, dt.time(), dt.UTC) + validity.duration.timedelta
    return ends.date() if now >= ends else None


def _actions_beyond(grant: Grant, sentence: ast.Eligibility | ast.BreakGlass) -> str | None:
    """The grant's actions the clause does not allow, in words; None when it allows them all."""
    if isinstance(sentence, ast.BreakGlass) and not sentence.actions:
        return None  # break glass on every action
    if not grant.actions:
        return "every action"
    missing = sorted(grant.actions - set(sentence.actions))
    return ", ".join(missing) or None


def _overdue_amendments(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    today = live.now.astimezone(dt.UTC).date()
    for amendment in live.amendments:
        if amendment.status in DUE_STATUSES and amendment.effective <= today:
            why = amendment.last_error or "not applied yet (the scheduler applies due amendments every minute)"
            detail = f"{amendment.status}, effective {amendment.effective.isoformat()}, not in force: {why}"
            yield f"amendment:{amendment.number}", detail, None


def _overdue_reviews(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    for review in live.reviews:
        if live.now > review.due:
            due = review.due.astimezone(dt.UTC)
            detail = (
                f'{_describe_review(review)}, by group "{review.reviewer_group}", '
                f"was due {due:%Y-%m-%d %H:%M} UTC and is not done"
            )
            yield f"review:{review.id}", detail, review.clause


def _inactive_accounts(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    """Active people who have not signed in (or been made) within `inactive_after`: accounts to disable."""
    for identity in live.directory.users.values():
        last = live.last_active.get(identity.id)
        if identity.state is not LifecycleState.ACTIVE or last is None:
            continue
        idle = live.now - last
        if idle > live.inactive_after:
            yield (
                _key(identity),
                f"no sign-in for {idle.days} days (last activity {last.astimezone(dt.UTC):%Y-%m-%d}); "
                f"accounts unused for {live.inactive_after.days} days should be disabled",
                None,
            )


def _admins_without_mfa(live: _Live) -> Iterator[tuple[str, str, int | None]]:
    """Active users an MfaRequirement clause names (its `whose` tests met) with no confirmed factor."""
    from charter.policy.principal import Principal
    from charter.policy.rules import compile_selector

    rules = [
        (compile_selector(c.sentence.subject, ""), c.number)  # type: ignore[union-attr]
        for c in live.version.clauses
        if isinstance(c.sentence, ast.MfaRequirement)
    ]
    if not rules:
        return
    ancestors = _ancestors(live.directory)
    for identity in live.directory.users.values():
        if identity.state is not LifecycleState.ACTIVE or identity.id in live.mfa_enrolled:
            continue
        groups = frozenset().union(*(ancestors.get(g, frozenset({g})) for g in identity.groups))
        principal = Principal("user", identity.id, groups, identity.attributes)
        for selector, clause in rules:
            if selector.names(principal) and selector.unmet(principal) is None:
                yield _key(identity), f"clause {clause} requires MFA of this user, who has no factor enrolled", clause
                break


def _describe_review(review: OpenReview) -> str:
    if review.kind == "membership":
        kind, _, name = review.subject.partition(":")
        return f'the membership review of {kind} "{name}"'
    return f"the review of break-glass grant {review.subject}"


# Every check run, by id: a one-line description (docs/drift.md says more) and the check itself.
CHECKS: dict[str, tuple[str, Check]] = {
    "revoked-group-member": (
        "a member (directly or through nested groups) of a group the charter revokes",
        _revoked_group_members,
    ),
    "revoked-identity-active": (
        "a user, service or partner the charter revokes that is still active in the directory",
        _revoked_identities_active,
    ),
    "revoked-identity-access": (
        "a user, service or partner the charter revokes that still holds an API client or a grant",
        _revoked_identities_holding,
    ),
    "no-owner": ("a service or partner with no owner, or whose owner is not an active user", _without_owner),
    "rotation-overdue": (
        "a service credential older than the charter's `Service credentials rotate every N days`",
        _credentials_past_rotation,
    ),
    "token-lifetime": (
        "a live access token issued with a lifetime above the charter's `Access tokens expire after ...`",
        _long_lived_tokens,
    ),
    "inactive-identity-access": (
        "an API client or live grant held by an identity that is disabled, has left or is not in the directory",
        _inactive_holders,
    ),
    "grant-without-authority": (
        "a live grant whose clause is no longer in force or no longer allows that grant",
        _grants_without_authority,
    ),
    "amendment-overdue": (
        "an approved amendment whose effective date has passed but which is not in force",
        _overdue_amendments,
    ),
    "review-overdue": (
        "a review task (a membership campaign, a use of break glass) still open past its due date",
        _overdue_reviews,
    ),
    "admin-without-mfa": (
        "an active user the charter requires MFA of (`... must use MFA.`) with no second factor enrolled",
        _admins_without_mfa,
    ),
    "inactive-account": (
        "an active person with no sign-in for longer than CHARTER_INACTIVE_DAYS (default 90)",
        _inactive_accounts,
    ),
}

# Checks the charter calls for whose state Charter does not hold yet: (id, description, issue, the
# sentences stating the obligation). Empty since issue 9: every obligation the language states is checked.
NOT_YET: tuple[tuple[str, str, str, Callable[[ast.Sentence], bool]], ...] = ()


def _not_checked(version: Consolidated) -> tuple[NotChecked, ...]:
    return tuple(
        NotChecked(check, description, issue, tuple(c.number for c in version.clauses if states(c.sentence)))
        for check, description, issue, states in NOT_YET
    )


# --- words and lookups -------------------------------------------------------------------------------


def _key(identity: Identity) -> str:
    return f"{identity.kind.value}:{identity.id}"


def _state_phrase(state: LifecycleState) -> str:
    return {LifecycleState.DISABLED: "is disabled", LifecycleState.LEFT: "has left"}.get(state, f"is {state.value}")


def _describe_grant(grant: Grant) -> str:
    actions = ", ".join(sorted(grant.actions)) or "every action"
    ends = grant.ends.astimezone(dt.UTC)
    return f'{grant.kind.value} grant {grant.id} ({actions} on "{grant.resource}" until {ends:%Y-%m-%d %H:%M} UTC)'


_SENTENCE_KINDS: dict[type, str] = {
    ast.Permission: "a permission",
    ast.Prohibition: "a prohibition",
    ast.Eligibility: "a request clause",
    ast.BreakGlass: "a break-glass clause",
    ast.Revocation: "a revocation",
}


def _sentence_kind(sentence: ast.Sentence | type) -> str:
    kind = sentence if isinstance(sentence, type) else type(sentence)
    return _SENTENCE_KINDS.get(kind, "an obligation")


def _ancestors(directory: Directory) -> dict[str, frozenset[str]]:
    """Each group with every group it is nested in, itself included (nesting has no cycles: the store refuses them)."""
    found: dict[str, frozenset[str]] = {}

    def resolve(group: str) -> frozenset[str]:
        if group not in found:
            found[group] = frozenset()  # a guard, should a cycle ever slip in
            parents = directory.groups[group].groups if group in directory.groups else ()
            found[group] = frozenset({group}).union(*(resolve(p) for p in parents))
        return found[group]

    for group in directory.groups:
        resolve(group)
    return found
