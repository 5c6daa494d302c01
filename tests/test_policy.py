"""Decision semantics: each rule of docs/language.md, shown by the decision a user would get."""

from __future__ import annotations

import datetime as dt

import pytest

from charter.clock import FixedClock
from charter.directory.model import load_directory
from charter.language import consolidate, parse_amendment, parse_charter
from charter.policy.decision import Basis
from charter.policy.grants import Grant, GrantKind
from charter.policy.request import Context, Request
from charter.policy.snapshot import compile_snapshot

WEDNESDAY_10 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
DIRECTORY = {
    "users": {
        "alice": {"groups": ["sre"], "attributes": {"department": "engineering", "email": "alice@acme.example"}},
        "bob": {"groups": ["support"], "attributes": {"department": "finance"}},
        "carol": {"groups": ["oncall"], "attributes": {"department": "engineering"}},
        "dan": {"groups": ["sre"], "state": "disabled"},
        "erin": {"groups": ["admins"]},
        "old": {"groups": ["legacy"]},
    },
    "groups": {
        "engineering": {},
        "sre": {"groups": ["engineering"]},
        "oncall": {"groups": ["sre"]},
        "support": {},
        "admins": {},
        "legacy": {},
    },
    "services": {"billing": {}},
    "resources": {"doc:alice-notes": {"owner": "alice", "attributes": {"department": "engineering", "env": "prod"}}},
}


def snapshot(*clauses: str, grants=(), amendments=(), at=WEDNESDAY_10, directory=None):
    text = 'Charter "T".\n  Effective 2026-12-01.\n\n' + "\n".join(f"Clause {i}. {c}" for i, c in enumerate(clauses, 1))
    version = consolidate(parse_charter(text), [parse_amendment(a) for a in amendments], at.date())
    return compile_snapshot(version, load_directory(directory or DIRECTORY), grants, FixedClock(at))


def decide(s, subject="alice", action="read", resource="x", subject_type="user", **context):
    return s.evaluate(Request(subject, action, resource, Context(**context), subject_type))


def test_deny_by_default():
    d = decide(snapshot('Members of group "support" may read "tickets/*".'))
    assert not d.allowed
    assert d.basis is Basis.DEFAULT
    assert d.clause is None
    assert str(d) == "deny: T v0 (no clause allows it)"


def test_allow_names_clause_and_version():
    d = decide(snapshot('Members of group "sre" may read "db:*".'), resource="db:orders")
    assert d.allowed and d.clause == 1 and d.basis is Basis.PERMISSION
    assert str(d) == "allow: T v0, clause 1"


def test_nested_groups_grant_through_their_parents():
    s = snapshot('Members of group "engineering" may read "db:*".')
    assert decide(s, "carol", resource="db:x").allowed  # oncall -> sre -> engineering
    assert not decide(s, "bob", resource="db:x").allowed


def test_prohibition_beats_permission():
    s = snapshot('Members of group "sre" may read and delete "db:*".', 'No one may delete "db:prod/*".')
    d = decide(s, action="delete", resource="db:prod/a")
    assert not d.allowed and d.clause == 2 and d.basis is Basis.PROHIBITION
    assert d.reasons == ('forbidden by clause 2: No one may delete "db:prod/*".',)
    assert decide(s, action="delete", resource="db:staging/a").allowed


def test_subject_exemption_lifts_the_prohibition_for_them_only():
    s = snapshot('Users may delete "db:*".', 'No one may delete "db:*" except members of group "sre".')
    assert decide(s, "alice", "delete", "db:a").allowed
    assert decide(s, "bob", "delete", "db:a").clause == 2


def test_break_glass_exemption_needs_an_active_break_glass_grant():
    grant = Grant(
        "bg-1",
        GrantKind.BREAK_GLASS,
        "user",
        "alice",
        frozenset(),
        "db:prod/*",
        WEDNESDAY_10,
        WEDNESDAY_10 + dt.timedelta(hours=1),
        2,
    )
    clauses = (
        'No one may delete "db:prod/*" except by break glass.',
        'Members of group "sre" may break glass on "db:prod/*" for up to 1 hour; each use is reviewed by group "security" within 24 hours.',
    )
    assert decide(snapshot(*clauses), action="delete", resource="db:prod/a").clause == 1
    s = snapshot(*clauses, grants=[grant])
    d = decide(s, action="delete", resource="db:prod/a")
    assert d.allowed and d.basis is Basis.BREAK_GLASS and d.grant == "bg-1" and d.clause == 2
    assert 'each use is reviewed by group "security" within 24 hours' in d.obligations
    later = WEDNESDAY_10 + dt.timedelta(hours=1)
    assert not decide(s, action="delete", resource="db:prod/a", time=later).allowed


def test_a_request_grant_does_not_pass_a_prohibition_without_its_exemption():
    grant = Grant(
        "g-1",
        GrantKind.REQUEST,
        "user",
        "bob",
        frozenset({"write"}),
        "db:prod/*",
        WEDNESDAY_10,
        WEDNESDAY_10 + dt.timedelta(hours=8),
        1,
    )
    eligible = 'Members of group "support" may request write on "db:prod/*" for up to 8 hours.'
    blocked = snapshot(eligible, 'No one may write "db:prod/*".', grants=[grant])
    assert decide(blocked, "bob", "write", "db:prod/a").clause == 2
    passing = snapshot(eligible, 'No one may write "db:prod/*" except by approved request.', grants=[grant])
    d = decide(passing, "bob", "write", "db:prod/a")
    assert d.allowed and d.basis is Basis.GRANT and d.clause == 1


def test_grants_apply_exactly_between_start_and_expiry():
    start = WEDNESDAY_10 + dt.timedelta(minutes=5)
    end = start + dt.timedelta(hours=8)
    grant = Grant("g-2", GrantKind.REQUEST, "user", "bob", frozenset({"write"}), "db:staging/*", start, end, 1)
    s = snapshot('Members of group "support" may request write on "db:staging/*" for up to 8 hours.', grants=[grant])
    assert not decide(s, "bob", "write", "db:staging/a", time=start - dt.timedelta(seconds=1)).allowed
    assert decide(s, "bob", "write", "db:staging/a", time=start).allowed
    assert decide(s, "bob", "write", "db:staging/a", time=end - dt.timedelta(seconds=1)).allowed
    assert not decide(s, "bob", "write", "db:staging/a", time=end).allowed
    assert not decide(s, "bob", "read", "db:staging/a", time=start).allowed
    assert not decide(s, "bob", "write", "db:prod/a", time=start).allowed


def test_for_duration_lapses_counted_from_the_clause_effective_date():
    s = snapshot('Members of group "sre" may read "db:*" for 30 days.')
    assert decide(s, resource="db:a", time=dt.datetime(2026, 12, 30, 23, 59, tzinfo=dt.UTC)).allowed
    d = decide(s, resource="db:a", time=dt.datetime(2026, 12, 31, tzinfo=dt.UTC))
    assert not d.allowed and d.basis is Basis.CONDITION
    assert d.reasons == ("clause 1 would allow it, but it lapsed at 2026-12-31 00:00 UTC",)


def test_for_duration_of_an_inserted_clause_counts_from_the_amendment():
    amendment = (
        'Amendment 1 to Charter "T".\n  Effective 2026-12-10.\n  Reason "r".\n  Approved by 1 member of group "admins".\n'
        'Insert clause 2: Members of group "support" may read "tickets/*" for 1 day.\n'
    )
    s = snapshot('Users may read "public/*".', amendments=[amendment], at=dt.datetime(2026, 12, 10, 12, tzinfo=dt.UTC))
    assert decide(s, "bob", resource="tickets/1").allowed
    assert decide(s, "bob", resource="tickets/1").version == 1
    assert not decide(s, "bob", resource="tickets/1", time=dt.datetime(2026, 12, 11, tzinfo=dt.UTC)).allowed


def test_until_is_exclusive():
    s = snapshot('Members of group "sre" may read "db:*" until 2026-12-24.')
    assert decide(s, resource="db:a", time=dt.datetime(2026, 12, 23, 23, 59, tzinfo=dt.UTC)).allowed
    assert not decide(s, resource="db:a", time=dt.datetime(2026, 12, 24, tzinfo=dt.UTC)).allowed


def test_revoked_group_grants_nothing_and_revoked_identity_is_denied():
    s = snapshot(
        'Members of group "legacy" may read "*".',
        'Group "legacy" is revoked.',
        'User "bob" is revoked.',
        'Users may read "public/*".',
    )
    assert not decide(s, "old", resource="anything").allowed
    d = decide(s, "bob", resource="public/x")
    assert not d.allowed and d.basis is Basis.REVOCATION and d.clause == 3


def test_disabled_and_unknown_subjects_are_denied():
    s = snapshot('Users may read "*".')
    assert decide(s, "dan").reasons == ("the account is disabled",)
    assert decide(s, "nobody").basis is Basis.SUBJECT
    assert not decide(s, "billing", subject_type="service").allowed  # Users means people, not services


def test_must_use_mfa_denies_every_request_without_it():
    s = snapshot('Users may read "*".', 'Members of group "admins" must use MFA.')
    d = decide(s, "erin")
    assert not d.allowed and d.basis is Basis.REQUIREMENT and d.clause == 2
    assert decide(s, "erin", mfa=True).allowed
    assert decide(s, "alice").allowed


def test_condition_failures_are_named():
    s = snapshot(
        'Members of group "support" may read "tickets/*" with MFA, on weekdays between 08:00 and 18:00 UTC.',
        'Service "billing" may read "db:prod/invoices" from network 10.0.0.0/8.',
    )
    assert decide(s, "bob", resource="tickets/1").reasons == ("clause 1 would allow it, but needs MFA",)
    evening = decide(s, "bob", resource="tickets/1", mfa=True, time=WEDNESDAY_10.replace(hour=19))
    assert evening.reasons == (
        "clause 1 would allow it, but outside weekdays 08:00-18:00 UTC (it is Wednesday 19:00 UTC)",
    )
    assert decide(s, "bob", resource="tickets/1", mfa=True).allowed
    remote = decide(s, "billing", resource="db:prod/invoices", subject_type="service", ip="192.168.1.4")
    assert remote.reasons == ("clause 2 would allow it, but network 192.168.1.4 not in 10.0.0.0/8",)
    assert decide(s, "billing", resource="db:prod/invoices", subject_type="service", ip="10.9.8.7").allowed


def test_time_windows_use_their_zone_and_wrap_midnight():
    s = snapshot('Users may read "night/*" between 22:00 and 06:00 Europe/Paris.')
    # 2026-12-02 21:30 UTC is 22:30 in Paris (UTC+1 in winter)
    assert decide(s, resource="night/a", time=dt.datetime(2026, 12, 2, 21, 30, tzinfo=dt.UTC)).allowed
    assert decide(s, resource="night/a", time=dt.datetime(2026, 12, 3, 4, 59, tzinfo=dt.UTC)).allowed
    assert not decide(s, resource="night/a", time=dt.datetime(2026, 12, 3, 5, 0, tzinfo=dt.UTC)).allowed


def test_an_overnight_window_belongs_to_the_day_it_opens():
    s = snapshot('Users may read "batch/*" on Friday between 22:00 and 02:00 UTC.')
    friday_late = dt.datetime(2026, 12, 4, 23, 0, tzinfo=dt.UTC)
    assert decide(s, resource="batch/a", time=friday_late).allowed
    assert decide(s, resource="batch/a", time=friday_late + dt.timedelta(hours=2, minutes=30)).allowed  # Saturday 01:30
    assert not decide(s, resource="batch/a", time=dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)).allowed  # Friday 01:00
    assert not decide(
        s, resource="batch/a", time=dt.datetime(2026, 12, 5, 23, 0, tzinfo=dt.UTC)
    ).allowed  # Saturday 23:00


def test_subject_and_resource_attributes_and_relations():
    s = snapshot(
        'Users whose department is "finance" may read "reports:finance/*".',
        'Users may read "doc:*" they own.',
        'Users may write "doc:*" of their own department.',
        'Users may delete "doc:*" when the resource\'s "env" is not "prod".',
        'Users may share "doc:*" when the resource\'s "contact" is the subject\'s "email".',
    )
    assert decide(s, "bob", resource="reports:finance/q3").allowed
    assert (
        'department is "engineering", needs "finance"' in decide(s, "alice", resource="reports:finance/q3").reasons[0]
    )
    assert decide(s, "alice", resource="doc:alice-notes").allowed  # owner held in the directory
    assert not decide(s, "bob", resource="doc:alice-notes").allowed
    assert decide(
        s, "bob", resource="doc:new", resource_attributes={"owner": "bob"}
    ).allowed  # owner given with the request
    assert decide(s, "carol", "write", "doc:alice-notes").allowed  # same department
    assert not decide(s, "bob", "write", "doc:alice-notes").allowed
    assert not decide(s, "alice", "delete", "doc:alice-notes").allowed  # env is prod in the directory
    assert decide(
        s, "alice", "delete", "doc:alice-notes", resource_attributes={"env": "dev"}
    ).allowed  # request overrides
    assert decide(s, "alice", "share", "doc:x", resource_attributes={"contact": "alice@acme.example"}).allowed


def test_scopes_for_partners():
    directory = {**DIRECTORY, "partners": {"acme": {}}}
    s = snapshot('Partner "acme" may read "api:shipments/*" with scope "shipments.read".', directory=directory)
    assert not decide(s, "acme", resource="api:shipments/1", subject_type="partner").allowed
    assert decide(
        s, "acme", resource="api:shipments/1", subject_type="partner", scopes=frozenset({"shipments.read"})
    ).allowed


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("db:prod/*", "db:prod/orders", True),
        ("db:prod/*", "db:prod/eu/orders", True),
        ("db:prod/*", "db:prod", False),
        ("db:prod/*", "db:production", False),
        ("db:prod", "db:prod", True),
        ("db:prod", "db:prod/x", False),
        ("*", "anything:at/all", True),
        ("db:p*", "db:prod", True),
    ],
)
def test_pattern_semantics(pattern, resource, expected):
    assert decide(snapshot(f'Users may read "{pattern}".'), resource=resource).allowed is expected


def test_the_lowest_matching_clause_decides():
    s = snapshot('Users may read "db:*".', 'Members of group "sre" may read "db:prod/*".')
    assert decide(s, resource="db:prod/a").clause == 1


def test_a_deny_says_which_clause_would_let_the_subject_request_it():
    s = snapshot('Members of group "support" may request write on "db:staging/*" for up to 8 hours, with a reason.')
    d = decide(s, "bob", "write", "db:staging/a")
    assert d.eligible == 1
    assert d.reasons[-1] == "clause 1 lets the subject request it"


def test_lapse_obligation_rides_along():
    d = decide(snapshot('Users may read "x" until 2027-01-01.'))
    assert d.obligations == ("access under clause 1 lapses at 2027-01-01 00:00 UTC",)


def test_evaluate_many_answers_in_order():
    s = snapshot('Users may read "a".')
    answers = s.evaluate_many([Request("alice", "read", "a"), Request("alice", "read", "b")])
    assert [a.allowed for a in answers] == [True, False]
