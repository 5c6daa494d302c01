"""The checker finds what a parser cannot: numbering, unknown names, lapses, shadowing, revocations, conflicts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from charter.language.checker import KnownNames, check
from charter.language.parser import parse_amendment, parse_charter

EXAMPLES = Path(__file__).parent.parent / "examples"
ACME_NAMES = KnownNames(
    users=frozenset({"alice", "bob"}),
    groups=frozenset(
        {"security", "sre", "support", "contractors", "sre-leads", "admins", "legacy-admins", "helpdesk", "eng-leads"}
    ),
    services=frozenset({"billing-api"}),
    partners=frozenset({"acme-logistics"}),
)


def charter(*clauses: str, header: str = ""):
    body = "\n".join(f"Clause {i}. {c}" for i, c in enumerate(clauses, 1))
    return parse_charter(f'Charter "T".\n  Effective 2026-01-01.\n{header}\n{body}\n', "t.charter")


def findings(document, *amendments, names=None, today=None):
    result = check(document, amendments, names, today, "t.charter")
    return [(d.severity.value, d.clause, d.message) for d in result.diagnostics]


def test_acme_with_its_amendment_and_directory_is_clean():
    acme = parse_charter((EXAMPLES / "acme.charter").read_text())
    a4 = parse_amendment((EXAMPLES / "acme-amendment-4.amendment").read_text())
    result = check(acme, [a4], ACME_NAMES, dt.date(2026, 11, 24))
    assert result.diagnostics == ()
    assert result.version is not None and result.version.version == 4


def test_unknown_group_suggests_the_nearest_name():
    acme = parse_charter((EXAMPLES / "acme.charter").read_text())
    names = KnownNames(
        groups=(ACME_NAMES.groups - {"sre"}) | {"sres"}, services=ACME_NAMES.services, partners=ACME_NAMES.partners
    )
    result = check(acme, (), names, None, "acme.charter")
    unknown = [d for d in result.diagnostics if d.code == "check.unknown-group"]
    assert [(d.clause, d.message, d.hint) for d in unknown] == [
        (1, 'unknown group "sre"', 'did you mean "sres"?'),
        (5, 'unknown group "sre"', 'did you mean "sres"?'),
    ]
    assert all(not d.is_error for d in unknown)
    typo = charter('Members of group "sre-lead" may read "x".')
    (finding,) = check(typo, (), ACME_NAMES).diagnostics
    assert (finding.message, finding.hint) == ('unknown group "sre-lead"', 'did you mean "sre-leads"?')


def test_unknown_names_of_every_kind_and_place():
    doc = charter(
        'User "carol" may read "x".',
        'Service "billing" may read "x".',
        'Partner "acme" may read "x".',
        'Members of group "contractors" may request write on "x" for up to 1 hour, approved by 1 member of group "leads".',
        'Requests not decided within 4 hours escalate to group "securty".',
    )
    messages = {(clause, message) for _, clause, message in findings(doc, names=ACME_NAMES)}
    assert messages == {
        (1, 'unknown user "carol"'),
        (2, 'unknown service "billing"'),
        (3, 'unknown partner "acme"'),
        (4, 'unknown group "leads"'),
        (5, 'unknown group "securty"'),
    }


def test_duplicate_and_missing_clause_numbers():
    doc = parse_charter(
        'Charter "T".\n  Effective 2026-01-01.\nClause 1. Users may read "a".\nClause 1. Users may read "b".\n'
    )
    assert findings(doc) == [("error", 1, "clause 1 is numbered twice (first at line 3)")]
    gap = parse_charter(
        'Charter "T".\n  Effective 2026-01-01.\nClause 1. Users may read "a".\nClause 4. Users may read "b".\n'
    )
    assert findings(gap) == [("warning", 2, "clause numbers skip 2, 3: number clauses 1, 2, 3, ... without gaps")]


def test_lapsed_clauses_with_a_fixed_today():
    doc = charter(
        'Users may read "a" until 2026-06-01.',
        'Users may read "b" for 30 days.',
        'Users may read "c" until 2025-12-01.',
    )
    assert findings(doc, today=dt.date(2026, 3, 1)) == [
        ("warning", 2, "clause 2 lapsed on 2026-01-31: it no longer applies"),
        ("warning", 3, "clause 3 lapses on 2025-12-01, before it takes effect on 2026-01-01: it never applies"),
    ]
    assert findings(doc, today=dt.date(2026, 1, 15)) == [
        ("warning", 3, "clause 3 lapses on 2025-12-01, before it takes effect on 2026-01-01: it never applies"),
    ]


def test_a_for_duration_counts_from_the_amendment_that_inserted_it():
    doc = charter('Users may read "a".')
    a1 = parse_amendment(
        'Amendment 1 to Charter "T".\n  Effective 2026-06-01.\n  Reason "r".\n  Approved by 1 member of group "g".\n'
        'Insert clause 2: Users may read "b" for 30 days.\n'
    )

    def lapses(today):
        return [f for f in findings(doc, a1, today=today) if "lapse" in f[2]]

    assert lapses(dt.date(2026, 6, 20)) == []
    assert lapses(dt.date(2026, 7, 1)) == [("warning", 2, "clause 2 lapsed on 2026-07-01: it no longer applies")]


def test_permission_fully_shadowed_by_a_prohibition():
    doc = charter('Members of group "sre" may delete "db:prod/orders".', 'No one may delete "db:prod/*".')
    assert findings(doc) == [
        (
            "warning",
            1,
            "permission in clause 1 is fully shadowed by the prohibition in clause 2: it can never allow anything",
        )
    ]


def test_partial_or_conditional_prohibitions_do_not_shadow():
    doc = charter(
        'Members of group "sre" may read and delete "db:prod/*".',  # read is not prohibited
        'Members of group "sre" may delete "db:*".',  # db:* is wider than db:prod/*
        'Members of group "dba" may delete "db:prod/x".',  # dba is exempt
        'No one may delete "db:prod/*" except members of group "dba".',
        'No one may delete "db:*" on weekends.',  # conditional
    )
    assert findings(doc) == []


def test_eligibility_and_break_glass_shadowing_depend_on_the_exemption():
    blocked = charter(
        'Members of group "c" may request write on "db:prod/*" for up to 1 hour.',
        'No one may write "db:prod/*" except by break glass.',
    )
    assert [m for _, _, m in findings(blocked)] == [
        "request clause in clause 1 is fully shadowed by the prohibition in clause 2: it can never allow anything"
    ]
    allowed = charter(
        'Members of group "c" may request write on "db:prod/*" for up to 1 hour.',
        'No one may write "db:prod/*" except by approved request.',
    )
    assert findings(allowed) == []


def test_granting_a_revoked_group():
    doc = charter('Members of group "legacy-admins" may read "x".', 'Group "legacy-admins" is revoked.')
    assert findings(doc) == [
        ("warning", 1, 'clause 1 grants members of group "legacy-admins", which clause 2 revokes: it grants nothing')
    ]


def test_conflicting_obligations_are_errors():
    doc = charter(
        "Access tokens expire after 1 hour.",
        "Refresh tokens expire after 1 day.",
        "Access tokens expire after 2 hours.",
    )
    assert findings(doc) == [("error", 3, "clause 3 sets the access token lifetime again; clause 1 already does")]


def test_amendment_must_ask_for_at_least_the_charters_approvers():
    doc = charter('Users may read "a".', header='  Amendments are approved by 2 members of group "security".\n')
    weak = parse_amendment(
        'Amendment 1 to Charter "T".\n  Effective 2026-06-01.\n  Reason "r".\n  Approved by 1 member of group "security".\n'
        "Strike clause 1.\n"
    )
    assert findings(doc, weak) == [
        ("error", None, 'amendment 1 asks for 1 approver(s) from group "security"; the charter requires at least 2')
    ]


def test_the_newest_amendment_dated_in_the_past_is_flagged():
    doc = charter('Users may read "a".')
    a1 = parse_amendment(
        'Amendment 1 to Charter "T".\n  Effective 2026-06-01.\n  Reason "r".\n  Approved by 1 member of group "g".\n'
        "Strike clause 1.\n"
    )
    assert findings(doc, a1, today=dt.date(2026, 5, 1)) == []
    assert findings(doc, a1, today=dt.date(2026, 7, 1)) == [
        (
            "warning",
            None,
            "amendment 1 takes effect on 2026-06-01, a date already past: once approved it applies at once",
        )
    ]


def test_amendment_errors_stop_semantic_checks_and_name_the_amendment_file():
    doc = charter('Users may read "a".')
    bad = parse_amendment(
        'Amendment 1 to Charter "T".\n  Effective 2026-06-01.\n  Reason "r".\n  Approved by 1 member of group "g".\n'
        "Strike clause 7.\n"
    )
    result = check(doc, [bad], None, None, "t.charter", {1: "one.amendment"})
    assert result.version is None
    (diagnostic,) = result.diagnostics
    assert diagnostic.source_name == "one.amendment"
    assert (diagnostic.span.line, diagnostic.span.column) == (5, 1)
    assert diagnostic.message == "cannot strike clause 7: the charter has no such clause"
