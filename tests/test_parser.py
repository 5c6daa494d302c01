"""The parser turns each sentence family into the tree its meaning needs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from charter.language import ast
from charter.language.ast import Comparison, SubjectKind, TimeUnit
from charter.language.errors import CharterError
from charter.language.parser import parse, parse_amendment, parse_charter

EXAMPLES = Path(__file__).parent.parent / "examples"
HEADER = 'Charter "T".\n  Effective 2026-01-01.\n\n'


def sentence(text: str) -> ast.Sentence:
    return parse_charter(HEADER + "Clause 1. " + text).clauses[0].sentence


def hours(n: int) -> ast.Duration:
    return ast.Duration(n, TimeUnit.HOUR)


def test_acme_charter_header_and_clause_count():
    charter = parse_charter((EXAMPLES / "acme.charter").read_text(), "acme.charter")
    assert charter.name == "Acme Production Access"
    assert charter.effective == dt.date(2026, 12, 1)
    assert charter.owners == (ast.Subject(SubjectKind.GROUP, "security"),)
    assert [c.number for c in charter.clauses] == list(range(1, 19))
    assert charter.comments == (
        "The Acme production access charter: the sketch's example, in force from 1 December 2026.",
    )


def test_acme_amendment():
    amendment = parse_amendment((EXAMPLES / "acme-amendment-4.amendment").read_text())
    assert amendment.number == 4
    assert amendment.charter_name == "Acme Production Access"
    assert amendment.effective == dt.date(2026, 12, 15)
    assert amendment.reason == "Support moves to MFA; partner access for Acme Logistics"
    assert amendment.approvers == (ast.Quorum(1, "security"), ast.Quorum(1, "eng-leads"))
    kinds = [type(c) for c in amendment.changes]
    assert kinds == [ast.ReplaceClause, ast.InsertClause, ast.StrikeClause]
    assert [c.number for c in amendment.changes] == [2, 19, 15]


def test_permission_with_lapse():
    p = sentence('Members of group "sre" may read and write "db:prod/*" for 30 days.')
    assert p == ast.Permission(
        ast.Subject(SubjectKind.GROUP, "sre"),
        ("read", "write"),
        ("db:prod/*",),
        validity=ast.Validity(duration=ast.Duration(30, TimeUnit.DAY)),
    )


def test_permission_until_date_and_several_resources():
    p = sentence('User "alice" may read, write and delete "a:x", "a:y" and "b:*" until 2027-01-05.')
    assert p.actions == ("read", "write", "delete")
    assert p.resources == ("a:x", "a:y", "b:*")
    assert p.validity == ast.Validity(until=dt.date(2027, 1, 5))


def test_mfa_and_time_window_conditions():
    p = sentence('Members of group "support" may read "tickets/*" with MFA, on weekdays between 08:00 and 18:00 UTC.')
    assert p.conditions == (
        ast.RequireMfa(),
        ast.TimeWindow((0, 1, 2, 3, 4), dt.time(8), dt.time(18), "UTC"),
    )


@pytest.mark.parametrize(
    ("text", "days", "zone"),
    [
        ("on weekends", (5, 6), "UTC"),
        ("on Monday and Friday", (0, 4), "UTC"),
        ("on Tuesday through Thursday Europe/Paris", (1, 2, 3), "Europe/Paris"),
        ("between 22:00 and 06:00 America/New_York", (), "America/New_York"),
    ],
)
def test_time_window_forms(text, days, zone):
    (window,) = sentence(f'Users may read "x" {text}.').conditions
    assert window.days == days
    assert window.zone == zone


def test_network_condition_is_canonical():
    (condition,) = sentence(
        'Service "billing-api" may read "db:prod/invoices" from networks 10.0.0.0/8 and 2001:DB8::/32.'
    ).conditions
    assert condition == ast.FromNetworks(("10.0.0.0/8", "2001:db8::/32"))


def test_subject_attributes_and_relations():
    p = sentence('Users whose department is "finance" and level is one of "3", "4" may read "reports:finance/*".')
    assert p.subject.kind is SubjectKind.USERS
    assert p.subject.where == (
        ast.AttributeTest("department", Comparison.IS, ("finance",)),
        ast.AttributeTest("level", Comparison.IS_ONE_OF, ("3", "4")),
    )
    owned = sentence('Members of group "editors" may update and delete "todo:*" they own.')
    assert owned.conditions == (ast.Ownership(),)
    same = sentence('Users may view "record:*" of their own department.')
    assert same.conditions == (ast.SameAttribute("department"),)
    relation = sentence('Users may read "doc:*" when the resource\'s "owner" is the subject\'s "email".')
    assert relation.conditions == (ast.AttributeRelation("owner", "email"),)
    tagged = sentence('Anyone authenticated may read "doc:*" when the resource\'s "classification" is not "secret".')
    assert tagged.conditions == (
        ast.ResourceAttribute(ast.AttributeTest("classification", Comparison.IS_NOT, ("secret",))),
    )


def test_partner_scope():
    p = sentence('Partner "acme-logistics" may read "api:shipments/*" with scope "shipments.read" for 90 days.')
    assert p.subject == ast.Subject(SubjectKind.PARTNER, "acme-logistics")
    assert p.conditions == (ast.WithScopes(("shipments.read",)),)


def test_prohibitions_and_exemptions():
    p = sentence('No one may delete "db:prod/*" except by break glass.')
    assert p == ast.Prohibition(
        ast.Subject(SubjectKind.ANYONE),
        ("delete",),
        ("db:prod/*",),
        exemptions=(ast.Exemption(ast.ExceptionKind.BREAK_GLASS),),
    )
    q = sentence(
        'Members of group "contractors" may not write "db:*" except by approved request or members of group "dba".'
    )
    assert q.subject == ast.Subject(SubjectKind.GROUP, "contractors")
    assert q.exemptions == (
        ast.Exemption(ast.ExceptionKind.APPROVED_REQUEST),
        ast.Exemption(ast.ExceptionKind.SUBJECT, ast.Subject(SubjectKind.GROUP, "dba")),
    )
    freeze = sentence('No one may write "db:prod/*" until 2027-01-05.')
    assert freeze.validity == ast.Validity(until=dt.date(2027, 1, 5))


def test_eligibility():
    e = sentence(
        'Members of group "contractors" may request write on "db:staging/*" for up to 8 hours, '
        'with a reason, approved by 1 member of group "sre-leads" and 2 members of group "dba".'
    )
    assert e == ast.Eligibility(
        ast.Subject(SubjectKind.GROUP, "contractors"),
        ("write",),
        ("db:staging/*",),
        hours(8),
        reason_required=True,
        approvers=(ast.Quorum(1, "sre-leads"), ast.Quorum(2, "dba")),
    )


def test_break_glass():
    b = sentence(
        'Members of group "sre" may break glass on "db:prod/*" for up to 1 hour; '
        'each use is reviewed by group "security" within 24 hours.'
    )
    assert b == ast.BreakGlass(
        ast.Subject(SubjectKind.GROUP, "sre"), (), ("db:prod/*",), hours(1), "security", hours(24)
    )
    narrow = sentence(
        'Members of group "sre" may break glass to delete on "db:prod/*" for up to 1 hour; '
        'each use is reviewed by group "security" within 24 hours.'
    )
    assert narrow.actions == ("delete",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Access tokens expire after 1 hour.", ast.TokenLifetime(ast.TokenKind.ACCESS, hours(1))),
        (
            "Refresh tokens expire after 30 days.",
            ast.TokenLifetime(ast.TokenKind.REFRESH, ast.Duration(30, TimeUnit.DAY)),
        ),
        ("ID tokens expire after 5 minutes.", ast.TokenLifetime(ast.TokenKind.ID, ast.Duration(5, TimeUnit.MINUTE))),
        (
            "Service credentials rotate every 90 days.",
            ast.Rotation(ast.CredentialKind.SERVICE_CREDENTIALS, ast.Duration(90, TimeUnit.DAY)),
        ),
        (
            "Signing keys rotate every 4 weeks.",
            ast.Rotation(ast.CredentialKind.SIGNING_KEYS, ast.Duration(4, TimeUnit.WEEK)),
        ),
        ('Members of group "admins" must use MFA.', ast.MfaRequirement(ast.Subject(SubjectKind.GROUP, "admins"))),
        ("Everyone must use MFA.", ast.MfaRequirement(ast.Subject(SubjectKind.ANYONE))),
        (
            "Sessions end after 12 hours, or after 30 minutes idle.",
            ast.SessionLimits(hours(12), ast.Duration(30, TimeUnit.MINUTE)),
        ),
        ("Sessions end after 30 minutes idle.", ast.SessionLimits(None, ast.Duration(30, TimeUnit.MINUTE))),
        ("Accounts lock for 15 minutes after 5 failed logins.", ast.Lockout(ast.Duration(15, TimeUnit.MINUTE), 5)),
        ("Audit records are kept for 365 days.", ast.Retention(ast.RecordKind.AUDIT, ast.Duration(365, TimeUnit.DAY))),
        (
            "Decision records are kept for 30 days.",
            ast.Retention(ast.RecordKind.DECISION, ast.Duration(30, TimeUnit.DAY)),
        ),
        (
            'Membership of group "contractors" is reviewed every 30 days by group "sre-leads".',
            ast.MembershipReview("contractors", ast.Duration(30, TimeUnit.DAY), "sre-leads"),
        ),
        ('Requests not decided within 4 hours escalate to group "security".', ast.Escalation(hours(4), "security")),
        ("Requests not decided within 3 days expire.", ast.RequestExpiry(ast.Duration(3, TimeUnit.DAY))),
        ("Accounts of people who leave are disabled within 1 hour.", ast.Offboarding(hours(1))),
        (
            'Lost MFA devices are reset only by 2 members of group "helpdesk".',
            ast.Recovery((ast.Quorum(2, "helpdesk"),)),
        ),
        ('Group "legacy-admins" is revoked.', ast.Revocation(ast.Subject(SubjectKind.GROUP, "legacy-admins"))),
        ('Service "old-batch" is revoked.', ast.Revocation(ast.Subject(SubjectKind.SERVICE, "old-batch"))),
    ],
)
def test_obligations_and_revocations(text, expected):
    assert sentence(text) == expected


def test_keywords_are_case_insensitive_and_typographic_quotes_accepted():
    p = sentence("MEMBERS OF GROUP \u201csre\u201d MAY read \u201cdb:*\u201d WITH mfa.")
    assert p == ast.Permission(ast.Subject(SubjectKind.GROUP, "sre"), ("read",), ("db:*",), (ast.RequireMfa(),))


def test_escaped_quotes_in_strings():
    charter = parse_charter(
        'Charter "The \\"Main\\" \\\\ charter".\n  Effective 2026-01-01.\nClause 1. Users may read "x".'
    )
    assert charter.name == 'The "Main" \\ charter'


def test_every_node_has_a_position():
    charter = parse_charter(HEADER + 'Clause 1. Members of group "sre" may read "db:*" with MFA for 2 hours.')
    clause = charter.clauses[0]
    permission = clause.sentence
    assert (clause.span.line, clause.span.column) == (4, 1)
    assert (permission.span.line, permission.span.column) == (4, 11)
    assert (permission.subject.span.line, permission.subject.span.column) == (4, 11)
    assert permission.conditions[0].span.column == 50
    assert permission.validity.span.column == 59
    assert permission.validity.duration.span.column == 63


def test_comments_attach_to_the_following_clause():
    charter = parse_charter(
        HEADER
        + '# why clause 1 exists\nClause 1. Users may read "x". # trailing\nClause 2. Users may read "y".\n# the end\n'
    )
    assert charter.clauses[0].comments == ("why clause 1 exists", "trailing")
    assert charter.clauses[1].comments == ()
    assert charter.trailing_comments == ("the end",)


def test_every_syntax_error_is_reported_at_once():
    text = (
        HEADER
        + 'Clause 1. Users may reed.\nClause 2. Users may read "x".\nClause 3. Memebrs of group "a" may read "y".\n'
    )
    with pytest.raises(CharterError) as caught:
        parse(text)
    assert [d.clause for d in caught.value.diagnostics] == [1, 3]


def test_parse_charter_refuses_an_amendment():
    with pytest.raises(CharterError, match="expected charter, but this document is an amendment"):
        parse_charter((EXAMPLES / "acme-amendment-4.amendment").read_text())
