"""The syntax tree of charters and amendments: plain, immutable dataclasses.

Every node carries a `span` (where it came from in the source). Spans take no
part in equality, so a document parsed from formatted text compares equal to
the document it was formatted from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range of source characters, with the 1-based line and column of its start."""

    start: int
    end: int
    line: int
    column: int


NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


# --- values -----------------------------------------------------------------


class TimeUnit(Enum):
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"

    @property
    def seconds(self) -> int:
        return _UNIT_SECONDS[self]


_UNIT_SECONDS = {
    TimeUnit.SECOND: 1,
    TimeUnit.MINUTE: 60,
    TimeUnit.HOUR: 3600,
    TimeUnit.DAY: 86400,
    TimeUnit.WEEK: 604800,
}


@dataclass(frozen=True, slots=True)
class Duration:
    """An amount of time as written (`8 hours`): the unit is kept so text round-trips."""

    amount: int
    unit: TimeUnit
    span: Span = _span()

    @property
    def seconds(self) -> int:
        return self.amount * self.unit.seconds

    @property
    def timedelta(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.seconds)


# --- subjects ---------------------------------------------------------------


class SubjectKind(Enum):
    USER = "user"
    GROUP = "group"  # the members of a group (nested groups included)
    SERVICE = "service"
    PARTNER = "partner"
    USERS = "users"  # every user (a person), usually narrowed by attributes
    ANYONE = "anyone"  # anyone authenticated: users, services and partners


class Comparison(Enum):
    IS = "is"
    IS_NOT = "is not"
    IS_ONE_OF = "is one of"


@dataclass(frozen=True, slots=True)
class AttributeTest:
    """`department is "finance"`: compares one attribute with literal values."""

    attribute: str
    comparison: Comparison
    values: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a clause speaks of: a named identity, a group's members, or everyone, narrowed by `whose`."""

    kind: SubjectKind
    name: str | None = None
    where: tuple[AttributeTest, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Quorum:
    """`2 members of group "helpdesk"`: how many distinct people of which group."""

    count: int
    group: str
    span: Span = _span()


# --- conditions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequireMfa:
    """`with MFA`: the request was authenticated with a second factor."""

    span: Span = _span()


@dataclass(frozen=True, slots=True)
class FromNetworks:
    """`from network 10.0.0.0/8`: the request's source address lies in one of these networks."""

    networks: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """`on weekdays between 08:00 and 18:00 UTC`: days (0 = Monday) and/or a time range in a zone.

    `days` is empty when any day will do; `start`/`end` are None when any time will do.
    An `end` at or before `start` wraps past midnight.
    """

    days: tuple[int, ...]
    start: dt.time | None
    end: dt.time | None
    zone: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class WithScopes:
    """`with scope "shipments.read"`: the presented token carries every one of these scopes."""

    scopes: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ResourceAttribute:
    """`when the resource's "env" is "prod"`."""

    test: AttributeTest
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SubjectAttribute:
    """`when the subject's "level" is "senior"`."""

    test: AttributeTest
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class AttributeRelation:
    """`when the resource's "owner" is the subject's "email"`: compares the two sides' attributes."""

    resource_attribute: str
    subject_attribute: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Ownership:
    """`they own`: the subject is the resource's owner."""

    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SameAttribute:
    """`of their own department`: the resource's attribute equals the subject's attribute of that name."""

    attribute: str
    span: Span = _span()


Condition = (
    RequireMfa
    | FromNetworks
    | TimeWindow
    | WithScopes
    | ResourceAttribute
    | SubjectAttribute
    | AttributeRelation
    | Ownership
    | SameAttribute
)


@dataclass(frozen=True, slots=True)
class Validity:
    """`for 30 days` (counted from when the clause takes effect) or `until 2027-01-01` (exclusive)."""

    duration: Duration | None = None
    until: dt.date | None = None
    span: Span = _span()


# --- rules ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Permission:
    """Standing access: `<subject> may <actions> <resources> [conditions] [for D | until DATE].`"""

    subject: Subject
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    validity: Validity | None = None
    span: Span = _span()


class ExceptionKind(Enum):
    BREAK_GLASS = "break glass"
    APPROVED_REQUEST = "approved request"
    SUBJECT = "subject"


@dataclass(frozen=True, slots=True)
class Exemption:
    """One `except ...` of a prohibition: by break glass, by approved request, or a subject."""

    kind: ExceptionKind
    subject: Subject | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Prohibition:
    """Explicit deny: `No one may <actions> <resources> [conditions] [except ...].`"""

    subject: Subject  # ANYONE for "No one"
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    exemptions: tuple[Exemption, ...] = ()
    validity: Validity | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Just-in-time access.

    `<subject> may request <actions> on <resources> for up to D[, with a reason][, approved by Q].`
    """

    subject: Subject
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    max_duration: Duration
    conditions: tuple[Condition, ...] = ()
    reason_required: bool = False
    approvers: tuple[Quorum, ...] = ()
    validity: Validity | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """Emergency access.

    `<subject> may break glass on <resources> for up to D; each use is reviewed by group G within D.`

    An empty `actions` means every action on the resources.
    """

    subject: Subject
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    max_duration: Duration
    reviewer_group: str
    review_within: Duration
    conditions: tuple[Condition, ...] = ()
    validity: Validity | None = None
    span: Span = _span()


# --- obligations ------------------------------------------------------------------


class TokenKind(Enum):
    ACCESS = "access"
    REFRESH = "refresh"
    ID = "ID"


@dataclass(frozen=True, slots=True)
class TokenLifetime:
    """`Access tokens expire after 1 hour.`"""

    token: TokenKind
    lifetime: Duration
    span: Span = _span()


class CredentialKind(Enum):
    SERVICE_CREDENTIALS = "service credentials"
    SIGNING_KEYS = "signing keys"


@dataclass(frozen=True, slots=True)
class Rotation:
    """`Service credentials rotate every 90 days.`"""

    credential: CredentialKind
    every: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MfaRequirement:
    """`Members of group "admins" must use MFA.`"""

    subject: Subject
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """`Sessions end after 12 hours, or after 30 minutes idle.` Either limit may be absent."""

    absolute: Duration | None
    idle: Duration | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Lockout:
    """`Accounts lock for 15 minutes after 5 failed logins.`"""

    duration: Duration
    attempts: int
    span: Span = _span()


class RecordKind(Enum):
    AUDIT = "audit"
    DECISION = "decision"


@dataclass(frozen=True, slots=True)
class Retention:
    """`Audit records are kept for 365 days.`"""

    records: RecordKind
    keep: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MembershipReview:
    """`Membership of group "contractors" is reviewed every 30 days by group "sre-leads".`"""

    group: str
    every: Duration
    reviewer_group: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Escalation:
    """`Requests not decided within 4 hours escalate to group "security".`"""

    within: Duration
    group: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RequestExpiry:
    """`Requests not decided within 3 days expire.`"""

    within: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Offboarding:
    """`Accounts of people who leave are disabled within 1 hour.`"""

    within: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Recovery:
    """`Lost MFA devices are reset only by 2 members of group "helpdesk".`"""

    approvers: tuple[Quorum, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Revocation:
    """`Group "legacy-admins" is revoked.`: standing access through that identity ends."""

    subject: Subject
    span: Span = _span()


Rule = Permission | Prohibition | Eligibility | BreakGlass
Obligation = (
    TokenLifetime
    | Rotation
    | MfaRequirement
    | SessionLimits
    | Lockout
    | Retention
    | MembershipReview
    | Escalation
    | RequestExpiry
    | Offboarding
    | Recovery
)
Sentence = Rule | Obligation | Revocation


# --- documents -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clause:
    """`Clause N. <sentence>`, with the comment lines written just before it."""

    number: int
    sentence: Sentence
    comments: tuple[str, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Charter:
    """The full text of one organisation's (or scope's) access rules."""

    name: str
    effective: dt.date
    owners: tuple[Subject, ...] = ()
    amendment_approvers: tuple[Quorum, ...] = ()
    clauses: tuple[Clause, ...] = ()
    comments: tuple[str, ...] = ()  # before the header
    trailing_comments: tuple[str, ...] = ()
    span: Span = _span()

    def clause(self, number: int) -> Clause | None:
        for clause in self.clauses:
            if clause.number == number:
                return clause
        return None


@dataclass(frozen=True, slots=True)
class ReplaceClause:
    """`Replace clause 2 with: <sentence>`"""

    number: int
    sentence: Sentence
    comments: tuple[str, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class InsertClause:
    """`Insert clause 19: <sentence>`"""

    number: int
    sentence: Sentence
    comments: tuple[str, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class StrikeClause:
    """`Strike clause 15.`"""

    number: int
    comments: tuple[str, ...] = ()
    span: Span = _span()


Change = ReplaceClause | InsertClause | StrikeClause


@dataclass(frozen=True, slots=True)
class Amendment:
    """A numbered change to a named charter, with its reason, approvers and effective date."""

    number: int
    charter_name: str
    effective: dt.date
    reason: str
    approvers: tuple[Quorum, ...]
    changes: tuple[Change, ...]
    comments: tuple[str, ...] = ()
    trailing_comments: tuple[str, ...] = ()
    span: Span = _span()


Document = Charter | Amendment
