"""Explain, queries and policy tests: the slower tools over a snapshot agree with its decisions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.cli.main import cli
from charter.clock import FixedClock
from charter.documents import load_directory_file
from charter.language import CharterError, consolidate, parse_amendment, parse_charter
from charter.language.expectations import parse_expectations
from charter.policy import testing
from charter.policy.explain import explain
from charter.policy.grants import Grant, GrantKind
from charter.policy.queries import entitlements, who_may
from charter.policy.request import Context, Request
from charter.policy.snapshot import compile_snapshot

EXAMPLES = Path(__file__).parent.parent / "examples"
AT = dt.datetime(2026, 12, 16, 10, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def acme():
    charter = parse_charter((EXAMPLES / "acme.charter").read_text())
    amendment = parse_amendment((EXAMPLES / "acme-amendment-4.amendment").read_text())
    directory = load_directory_file(str(EXAMPLES / "acme-directory.yaml"))
    grants = [
        Grant(
            "g1",
            GrantKind.REQUEST,
            "user",
            "dave",
            frozenset({"write"}),
            "db:staging/*",
            AT,
            AT + dt.timedelta(hours=8),
            3,
        ),
        Grant("bg1", GrantKind.BREAK_GLASS, "user", "bob", frozenset(), "db:prod/*", AT, AT + dt.timedelta(hours=1), 5),
    ]
    return compile_snapshot(consolidate(charter, [amendment], AT.date()), directory, grants, FixedClock(AT))


SUBJECTS = st.sampled_from(
    [("user", u) for u in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "nobody")]
    + [("service", "billing-api"), ("partner", "acme-logistics")]
)
RESOURCES = st.sampled_from(
    [
        "db:prod/orders",
        "db:prod/invoices",
        "db:staging/app",
        "tickets/1",
        "reports:finance/q3",
        "api:shipments/7",
        "other",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    subject=SUBJECTS,
    action=st.sampled_from(["read", "write", "delete", "update"]),
    resource=RESOURCES,
    mfa=st.booleans(),
    ip=st.sampled_from([None, "10.1.1.1", "192.168.1.4"]),
    hours=st.integers(min_value=-48, max_value=24 * 40),
    scoped=st.booleans(),
)
def test_explain_derives_the_same_effect_as_evaluate(acme, subject, action, resource, mfa, ip, hours, scoped):
    context = Context(
        mfa=mfa, ip=ip, time=AT + dt.timedelta(hours=hours), scopes=frozenset({"shipments.read"} if scoped else ())
    )
    request = Request(subject[1], action, resource, context, subject[0])
    explanation = explain(acme, request)
    assert explanation.agrees, explanation.render()


def test_explain_renders_every_clause_considered(acme):
    text = explain(acme, Request("dave", "write", "db:staging/app")).render()
    assert "clause 3 request clause eligible" in " ".join(text.split())
    assert "grant g1" in text
    assert text.splitlines()[-2:] == [
        "decision: allow: Acme Production Access v4, clause 3 (request grant g1 under clause 3)",
        "  obligation: grant g1 ends at 2026-12-16 18:00 UTC",
    ]


def test_entitlements_list_standing_requestable_and_forbidden(acme):
    kinds = {(e.kind, e.clause) for e in entitlements(acme, "user", "alice")}
    assert ("standing", 1) in kinds and ("break glass", 5) in kinds and ("forbidden", 4) in kinds
    assert ("requestable", 3) not in kinds  # alice is not a contractor
    dave = {(e.kind, e.clause) for e in entitlements(acme, "user", "dave")}
    assert ("requestable", 3) in dave and ("grant", 3) in dave
    assert entitlements(acme, "user", "nobody") == []


def test_who_may_agrees_with_decisions(acme):
    readers = {(t, s) for t, s, _ in who_may(acme, "read", "db:prod/orders")}
    assert readers == {("user", "alice"), ("user", "bob")}
    deleters = {(t, s) for t, s, _ in who_may(acme, "delete", "db:prod/orders")}
    assert deleters == {("user", "bob")}  # only through the break-glass grant


def test_expectation_file_parses_every_request_form():
    suite = parse_expectations(
        'Expectations for Charter "T".\n  As of 2026-12-16 10:00 Europe/Paris.\n  Directory "d.yaml".\n'
        'Expect allow by clause 2: service "s" read "x" with MFA, with scope "a", from 10.0.0.1, at 2026-12-17 09:00 UTC,'
        ' where the resource\'s "env" is "prod".\nExpect deny: user "u" write "y".\n'
    )
    first, second = suite.expectations
    assert suite.as_of == dt.datetime(2026, 12, 16, 9, tzinfo=dt.UTC)
    assert suite.directory == "d.yaml"
    assert (first.allow, first.clause, first.subject_type, first.mfa, first.ip) == (
        True,
        2,
        "service",
        True,
        "10.0.0.1",
    )
    assert first.scopes == ("a",) and first.resource_attributes == (("env", "prod"),)
    assert first.at == dt.datetime(2026, 12, 17, 9, tzinfo=dt.UTC)
    assert (second.allow, second.clause, second.subject) == (False, None, "u")


def test_bad_expectations_name_position_and_expectation():
    with pytest.raises(CharterError) as caught:
        parse_expectations('Expectations for Charter "T".\nExpect alow: user "u" read "x".\n', "t.expect")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 8)
    assert diagnostic.message == 'expected "allow" or "deny" after "Expect", found "alow"'
    assert diagnostic.hint == 'did you mean "allow"?'


def test_failed_expectation_reads_as_a_diff(acme):
    suite = parse_expectations(
        'Expectations for Charter "T".\nExpect allow by clause 1: user "alice" delete "db:prod/x".\n'
    )
    (outcome,) = testing.run(acme, suite.expectations)
    assert not outcome.passed
    assert outcome.describe().splitlines() == [
        "  expected: allow by clause 1",
        '  got:      deny by clause 4 (forbidden by clause 4: No one may delete "db:prod/*" except by break glass.)',
    ]


def test_charter_test_command_passes_the_acme_expectations():
    result = CliRunner().invoke(cli, ["test", str(EXAMPLES / "acme.charter")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("15 passed, 0 failed")


def test_charter_test_command_fails_readably(tmp_path):
    expect = tmp_path / "x.expect"
    expect.write_text(
        'Expectations for Charter "Acme Production Access".\n  As of 2026-12-02 10:00 UTC.\n'
        f'  Directory "{EXAMPLES / "acme-directory.yaml"}".\n'
        'Expect allow: user "carol" read "tickets/1".\n'
    )
    result = CliRunner().invoke(cli, ["test", str(EXAMPLES / "acme.charter"), "--expectations", str(expect)])
    assert result.exit_code == 1
    assert f'FAIL {expect}:4: Expect allow: user "carol" read "tickets/1".' in result.output
    assert "  got:      deny by clause 2 (clause 2 would allow it, but needs MFA)" in result.output
    assert result.output.strip().endswith("0 passed, 1 failed")


def test_charter_explain_command():
    result = CliRunner().invoke(
        cli,
        [
            "explain", "--charter", str(EXAMPLES / "acme.charter"), "--directory", str(EXAMPLES / "acme-directory.yaml"),
            "--subject", "service:billing-api", "--action", "read", "--resource", "db:prod/invoices",
            "--ip", "192.168.1.4", "--at", "2026-12-02T10:00Z",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "network 192.168.1.4 not in 10.0.0.0/8" in result.output
    assert result.output.strip().splitlines()[-1].startswith("decision: deny: Acme Production Access v0, clause 6")
