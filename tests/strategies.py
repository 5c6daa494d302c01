"""Hypothesis strategies for random but valid charter-language syntax trees.

Every node type of `charter.language.ast` has a strategy here, and every value
is one the written language can express, so `parse(format_document(doc)) ==
doc` must hold for all of them. The constraints the grammar puts on values:

* quoted strings hold anything but a line break (`\\n`, `\\r`); names, values,
  scopes and reasons must also hold something other than whitespace;
* actions are lowercase words (`[a-z][a-z0-9_+-]*`) that are not words the
  grammar reads as a phrase boundary (on, with, from, ..., request, break);
  a rule lists each action and each resource once (the parser drops repeats);
* resource patterns are non-empty, hold no whitespace, and `*` only at the end;
* networks are in canonical form (`str(ipaddress.ip_network(...))`);
* a time window has days and/or a time range; a time range has both ends and
  they differ; the zone is UTC or an IANA name;
* `is` and `is not` compare with one value, `is one of` with one or more;
* a revocation names a group, user, service or partner, without `whose`;
  owners are groups or users, without `whose`;
* session limits give at least one limit; a validity gives a duration or a date;
* charters have at least one clause, amendments at least one change and approver.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import zoneinfo
from typing import get_args

from hypothesis import strategies as st

from charter.language import ast
from charter.language.parser import MAX_DURATION_SECONDS

# --- text ------------------------------------------------------------------------------

LINE_BREAKS = "\n\r"

# Characters that have a meaning to the lexer or the formatter, or are otherwise awkward.
AWKWARD = (
    '"',
    "\\",
    "\u201c",  # left double quotation mark: opens a string
    "\u201d",  # right double quotation mark: closes a string
    "'",
    "\u2019",
    " ",
    "  ",
    "\t",
    "#",
    "*",
    ":",
    ".",
    ",",
    ";",
    "/",
    "\\\\",
    '\\"',
    "\u00a0",  # no-break space
    "\u2028",  # line separator (not a line break to the language)
    "\x0b",
    "\x0c",
    "\x00",
    "\u00e9",
    "\u65e5\u672c",
    "\U0001f512",
    "\u0663",  # Arabic-Indic digit three
    "MFA",
    "is",
    "and",
    "Clause 1.",
)

_plain_char = st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS)
_piece = st.one_of(_plain_char, st.sampled_from(AWKWARD))

#: Any text without a line break, possibly empty or all whitespace.
text = st.lists(_piece, max_size=8).map("".join)

_visible_char = _plain_char.filter(lambda c: not c.isspace())

#: Text with at least one character that is not whitespace: names, values, scopes, reasons.
names = st.one_of(
    st.sampled_from(["sre", "sre-leads", "security", "billing-api", "acme-logistics", "Acme Production Access"]),
    st.builds(lambda before, middle, after: before + middle + after, text, _visible_char, text),
)

#: Attribute names: bare words, words the grammar also uses, and arbitrary quoted names.
attribute_names = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,12}", fullmatch=True),
    st.sampled_from(["department", "cost-center", "is", "and", "not", "one", "of", "whose", "may", "the", "own"]),
    names,
)

comments = st.lists(text, max_size=2).map(tuple)

# --- values ------------------------------------------------------------------------------

RESERVED_ACTIONS = frozenset(
    {"on", "with", "from", "for", "until", "when", "except", "between", "and", "or", "not", "to", "request", "break"}
)

actions = st.one_of(
    st.sampled_from(["read", "write", "delete", "update", "view", "approve", "is", "may", "each", "of", "whose"]),
    st.from_regex(r"[a-z][a-z0-9_+-]{0,10}", fullmatch=True),
).filter(lambda word: word not in RESERVED_ACTIONS)

action_lists = st.lists(actions, min_size=1, max_size=3, unique=True).map(tuple)

_pattern_char = st.one_of(
    _visible_char.filter(lambda c: c != "*"),
    st.sampled_from([a for a in AWKWARD if "*" not in a and not any(c.isspace() for c in a)]),
)
_pattern_body = st.lists(_pattern_char, max_size=8).map("".join)
resources = st.one_of(
    st.sampled_from(["db:prod/*", "db:prod/invoices", "*", "tickets/*", "api:shipments/*"]),
    _pattern_body.filter(bool),
    _pattern_body.map(lambda body: body + "*"),
)
resource_lists = st.lists(resources, min_size=1, max_size=3, unique=True).map(tuple)

durations = st.sampled_from(ast.TimeUnit).flatmap(
    lambda unit: st.builds(
        ast.Duration,
        st.one_of(st.integers(1, 100), st.integers(1, MAX_DURATION_SECONDS // unit.seconds)),
        st.just(unit),
    )
)

dates = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))

quorums = st.builds(ast.Quorum, st.integers(1, 1000), names)
quorum_lists = st.lists(quorums, min_size=1, max_size=3).map(tuple)


def _network(address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> str:
    return str(ipaddress.ip_network((address, min(prefix, address.max_prefixlen)), strict=False))


networks = st.one_of(
    st.builds(_network, st.ip_addresses(v=4), st.integers(0, 32)),
    st.builds(_network, st.ip_addresses(v=6), st.integers(0, 128)),
    st.builds(_network, st.ip_addresses(v=6, network="::ffff:0:0/96"), st.integers(96, 128)),  # IPv4-mapped
    st.sampled_from(["10.0.0.0/8", "0.0.0.0/0", "::/0", "::1/128", "2001:db8::/32"]),
)

# The parser refuses "localtime" (the machine's own zone) and "Factory" (a placeholder).
TIME_ZONES = ("UTC", *sorted(zoneinfo.available_timezones() - {"localtime", "Factory"}))
#: IANA names that are neither upper case nor hold a "/": the ones a parser can mistake for a word.
WORDLIKE_ZONES = tuple(z for z in TIME_ZONES if "/" not in z and not z.isupper())
times = st.builds(dt.time, st.integers(0, 23), st.integers(0, 59))

# --- subjects ------------------------------------------------------------------------------


@st.composite
def attribute_tests(draw: st.DrawFn) -> ast.AttributeTest:
    comparison = draw(st.sampled_from(ast.Comparison))
    count = draw(st.integers(1, 4)) if comparison is ast.Comparison.IS_ONE_OF else 1
    values = tuple(draw(st.lists(names, min_size=count, max_size=count)))
    return ast.AttributeTest(draw(attribute_names), comparison, values)


NAMED_KINDS = (ast.SubjectKind.GROUP, ast.SubjectKind.USER, ast.SubjectKind.SERVICE, ast.SubjectKind.PARTNER)


@st.composite
def subjects(
    draw: st.DrawFn, kinds: tuple[ast.SubjectKind, ...] = tuple(ast.SubjectKind), narrowed: bool = True
) -> ast.Subject:
    """A subject of one of `kinds`; with `narrowed`, sometimes with `whose` attribute tests."""
    kind = draw(st.sampled_from(kinds))
    name = draw(names) if kind in NAMED_KINDS else None
    where = tuple(draw(st.lists(attribute_tests(), max_size=3))) if narrowed else ()
    return ast.Subject(kind, name, where)


# --- conditions ------------------------------------------------------------------------------


@st.composite
def time_windows(draw: st.DrawFn) -> ast.TimeWindow:
    days = draw(
        st.one_of(
            st.just(()),
            st.just((0, 1, 2, 3, 4)),
            st.just((5, 6)),
            st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True).map(lambda d: tuple(sorted(d))),
        )
    )
    start = end = None
    if not days or draw(st.booleans()):
        start = draw(times)
        end = draw(times.filter(lambda t: t != start))
    zone = draw(st.one_of(st.just("UTC"), st.sampled_from(TIME_ZONES), st.sampled_from(WORDLIKE_ZONES)))
    return ast.TimeWindow(days, start, end, zone)


CONDITIONS: dict[type, st.SearchStrategy] = {
    ast.RequireMfa: st.just(ast.RequireMfa()),
    ast.FromNetworks: st.builds(ast.FromNetworks, st.lists(networks, min_size=1, max_size=3).map(tuple)),
    ast.TimeWindow: time_windows(),
    ast.WithScopes: st.builds(ast.WithScopes, st.lists(names, min_size=1, max_size=3).map(tuple)),
    ast.ResourceAttribute: st.builds(ast.ResourceAttribute, attribute_tests()),
    ast.SubjectAttribute: st.builds(ast.SubjectAttribute, attribute_tests()),
    ast.AttributeRelation: st.builds(ast.AttributeRelation, attribute_names, attribute_names),
    ast.Ownership: st.just(ast.Ownership()),
    ast.SameAttribute: st.builds(ast.SameAttribute, attribute_names),
}
assert set(CONDITIONS) == set(get_args(ast.Condition))

conditions = st.one_of(*CONDITIONS.values())
condition_lists = st.lists(conditions, max_size=4).map(tuple)

validities = st.one_of(
    st.none(),
    st.builds(ast.Validity, duration=durations),
    st.builds(ast.Validity, until=dates),
)

# --- sentences ------------------------------------------------------------------------------

exemptions = st.one_of(
    st.sampled_from([ast.Exemption(ast.ExceptionKind.BREAK_GLASS), ast.Exemption(ast.ExceptionKind.APPROVED_REQUEST)]),
    st.builds(ast.Exemption, st.just(ast.ExceptionKind.SUBJECT), subjects()),
)
assert {ast.ExceptionKind.BREAK_GLASS, ast.ExceptionKind.APPROVED_REQUEST, ast.ExceptionKind.SUBJECT} == set(
    ast.ExceptionKind
)

SENTENCES: dict[type, st.SearchStrategy] = {
    ast.Permission: st.builds(ast.Permission, subjects(), action_lists, resource_lists, condition_lists, validities),
    ast.Prohibition: st.builds(
        ast.Prohibition,
        st.one_of(st.just(ast.Subject(ast.SubjectKind.ANYONE)), subjects()),  # "No one", or "<subject> may not"
        action_lists,
        resource_lists,
        condition_lists,
        st.lists(exemptions, max_size=3).map(tuple),
        validities,
    ),
    ast.Eligibility: st.builds(
        ast.Eligibility,
        subjects(),
        action_lists,
        resource_lists,
        durations,
        condition_lists,
        st.booleans(),
        st.lists(quorums, max_size=3).map(tuple),
        validities,
    ),
    ast.BreakGlass: st.builds(
        ast.BreakGlass,
        subjects(),
        st.one_of(st.just(()), action_lists),
        resource_lists,
        durations,
        names,
        durations,
        condition_lists,
        validities,
    ),
    ast.TokenLifetime: st.builds(ast.TokenLifetime, st.sampled_from(ast.TokenKind), durations),
    ast.Rotation: st.builds(ast.Rotation, st.sampled_from(ast.CredentialKind), durations),
    ast.MfaRequirement: st.builds(ast.MfaRequirement, subjects()),
    ast.SessionLimits: st.one_of(
        st.builds(ast.SessionLimits, durations, st.none() | durations),
        st.builds(ast.SessionLimits, st.none(), durations),
    ),
    ast.Lockout: st.builds(ast.Lockout, durations, st.integers(1, 10**6)),
    ast.Retention: st.builds(ast.Retention, st.sampled_from(ast.RecordKind), durations),
    ast.MembershipReview: st.builds(ast.MembershipReview, names, durations, names),
    ast.Escalation: st.builds(ast.Escalation, durations, names),
    ast.RequestExpiry: st.builds(ast.RequestExpiry, durations),
    ast.Offboarding: st.builds(ast.Offboarding, durations),
    ast.Recovery: st.builds(ast.Recovery, quorum_lists),
    ast.Revocation: st.builds(ast.Revocation, subjects(kinds=NAMED_KINDS, narrowed=False)),
}
assert set(SENTENCES) == set(get_args(ast.Sentence))

sentences = st.one_of(*SENTENCES.values())

# --- documents ------------------------------------------------------------------------------

clause_numbers = st.integers(1, 10**6)

clauses = st.builds(ast.Clause, clause_numbers, sentences, comments)

owners = subjects(kinds=(ast.SubjectKind.GROUP, ast.SubjectKind.USER), narrowed=False)

charters = st.builds(
    ast.Charter,
    names,
    dates,
    st.lists(owners, max_size=3).map(tuple),
    st.lists(quorums, max_size=2).map(tuple),
    st.lists(clauses, min_size=1, max_size=4).map(tuple),
    comments,
    comments,
)

CHANGES: dict[type, st.SearchStrategy] = {
    ast.ReplaceClause: st.builds(ast.ReplaceClause, clause_numbers, sentences, comments),
    ast.InsertClause: st.builds(ast.InsertClause, clause_numbers, sentences, comments),
    ast.StrikeClause: st.builds(ast.StrikeClause, clause_numbers, comments),
}
assert set(CHANGES) == set(get_args(ast.Change))

amendments = st.builds(
    ast.Amendment,
    st.integers(1, 10**6),
    names,
    dates,
    names,
    quorum_lists,
    st.lists(st.one_of(*CHANGES.values()), min_size=1, max_size=4).map(tuple),
    comments,
    comments,
)

documents = st.one_of(charters, amendments)


def charter_with(sentence: ast.Sentence) -> ast.Charter:
    """The smallest charter holding `sentence` as its one clause."""
    return ast.Charter("Test", dt.date(2026, 12, 1), clauses=(ast.Clause(1, sentence),))


def permission_with(*conditions: ast.Condition) -> ast.Permission:
    """A plain permission carrying `conditions`."""
    return ast.Permission(ast.Subject(ast.SubjectKind.USERS), ("read",), ("db:prod/*",), tuple(conditions))


# --- trees the language may not be able to express ---------------------------------------------
# Each varies one thing that the tree allows but the text may not: the formatter must either
# write text that parses back to the same tree or refuse with ValueError, never write other text.

_loose_subjects = st.builds(
    ast.Subject, st.sampled_from(ast.SubjectKind), st.none() | names, st.lists(attribute_tests(), max_size=1).map(tuple)
)
_loose_attribute_tests = st.builds(
    ast.AttributeTest, attribute_names, st.sampled_from(ast.Comparison), st.lists(names, max_size=3).map(tuple)
)
_loose_time_windows = st.builds(
    ast.TimeWindow,
    st.sampled_from([(), (0,), (5, 6), (0, 1, 2, 3, 4)]),
    st.none() | times,
    st.none() | times,
    st.sampled_from(["UTC", "Europe/Paris", "Japan"]),
)
_loose_validities = st.builds(ast.Validity, st.none() | durations, st.none() | dates)


def _loose_permission(**changes) -> st.SearchStrategy[ast.Charter]:
    fields = {
        "subject": st.just(ast.Subject(ast.SubjectKind.USERS)),
        "actions": st.just(("read",)),
        "resources": st.just(("db:prod/*",)),
        "conditions": st.just(()),
        "validity": st.none(),
    } | changes
    return st.builds(ast.Permission, **fields).map(charter_with)


LOOSE_DOCUMENTS: dict[str, st.SearchStrategy] = {
    "subject": _loose_permission(subject=_loose_subjects),
    "attribute test": _loose_permission(
        conditions=st.builds(ast.ResourceAttribute, _loose_attribute_tests).map(lambda c: (c,))
    ),
    "time window": _loose_permission(conditions=_loose_time_windows.map(lambda c: (c,))),
    "validity": _loose_permission(validity=_loose_validities),
    "lists": _loose_permission(
        actions=st.lists(actions, max_size=1, unique=True).map(tuple),
        resources=st.lists(resources, max_size=1).map(tuple),
        conditions=st.builds(ast.FromNetworks, st.lists(networks, max_size=1).map(tuple)).map(lambda c: (c,)),
    ),
    "session limits": st.builds(ast.SessionLimits, st.none() | durations, st.none() | durations).map(charter_with),
    "revocation": st.builds(ast.Revocation, _loose_subjects).map(charter_with),
    "recovery": st.builds(ast.Recovery, st.lists(quorums, max_size=1).map(tuple)).map(charter_with),
    "owners": st.builds(
        lambda owners, charter: ast.Charter(charter.name, charter.effective, owners, clauses=charter.clauses),
        st.lists(_loose_subjects, max_size=2).map(tuple),
        charters,
    ),
    "charter": st.builds(ast.Charter, names, dates, clauses=st.lists(clauses, max_size=1).map(tuple)),
    "amendment": st.builds(
        ast.Amendment,
        st.integers(1, 99),
        names,
        dates,
        names,
        st.lists(quorums, max_size=1).map(tuple),
        st.lists(st.one_of(*CHANGES.values()), max_size=1).map(tuple),
    ),
}
