"""Consolidation gives the text in force on any date, each clause with its origin; bad amendments apply nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from charter.language.consolidate import OriginKind, consolidate, render, to_json
from charter.language.errors import CharterError
from charter.language.formatter import format_sentence
from charter.language.parser import parse_amendment, parse_charter

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def acme():
    return parse_charter((EXAMPLES / "acme.charter").read_text(), "acme.charter")


@pytest.fixture
def amendment4():
    return parse_amendment((EXAMPLES / "acme-amendment-4.amendment").read_text())


def amendment(text: str):
    return parse_amendment(text)


def test_before_the_amendment_date_the_original_text_is_in_force(acme, amendment4):
    version = consolidate(acme, [amendment4], dt.date(2026, 12, 14))
    assert version.version == 0
    assert version.applied == ()
    assert version.clause(2).sentence == acme.clause(2).sentence
    assert version.clause(15) is not None
    assert version.clause(19) is None


def test_amendment_4_replaces_inserts_and_strikes(acme, amendment4):
    version = consolidate(acme, [amendment4], dt.date(2026, 12, 16))
    assert version.version == 4
    assert format_sentence(version.clause(2).sentence) == 'Members of group "support" may read "tickets/*" with MFA.'
    assert version.clause(2).origin.kind is OriginKind.REPLACED
    assert version.clause(2).origin.amendment == 4
    assert version.clause(19).origin.kind is OriginKind.INSERTED
    assert version.clause(19).origin.effective == dt.date(2026, 12, 15)
    assert version.clause(15) is None
    assert [(s.number, s.amendment) for s in version.struck] == [(15, 4)]
    assert version.clause(1).origin.kind is OriginKind.ORIGINAL
    assert [c.number for c in version.clauses] == [*range(1, 15), 16, 17, 18, 19]


def test_the_amendment_applies_on_its_effective_date(acme, amendment4):
    assert consolidate(acme, [amendment4], dt.date(2026, 12, 15)).version == 4


def test_rendered_text_is_a_valid_charter_with_origins(acme, amendment4):
    version = consolidate(acme, [amendment4], dt.date(2026, 12, 16))
    text = render(version)
    assert "# Clause 2: replaced by amendment 4, in force since 2026-12-15." in text
    assert "# Clause 15: struck by amendment 4, in force since 2026-12-15." in text
    assert "# Clause 19: inserted by amendment 4, in force since 2026-12-15." in text
    reparsed = parse_charter(text)
    assert [c.sentence for c in reparsed.clauses] == [c.sentence for c in version.clauses]


def test_json_shape(acme, amendment4):
    data = to_json(consolidate(acme, [amendment4], dt.date(2026, 12, 16)))
    assert data["version"] == 4
    assert data["struck"] == [{"number": 15, "amendment": 4, "effective": "2026-12-15"}]
    clause19 = next(c for c in data["clauses"] if c["number"] == 19)
    assert clause19["origin"] == {"kind": "inserted", "amendment": 4, "effective": "2026-12-15"}
    assert clause19["text"].startswith('Partner "acme-logistics" may read')


def test_amendments_apply_in_number_order(acme):
    a5 = amendment(
        'Amendment 5 to Charter "Acme Production Access".\n  Effective 2027-01-01.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\nReplace clause 19 with: Partner "acme-logistics" may read "api:*".\n'
    )
    a4 = parse_amendment((EXAMPLES / "acme-amendment-4.amendment").read_text())
    version = consolidate(acme, [a5, a4], dt.date(2027, 1, 2))
    assert version.version == 5
    assert version.clause(19).origin.amendment == 5
    assert version.clause(19).origin.kind is OriginKind.REPLACED


def _errors(charter, amendments, as_of=None):
    with pytest.raises(CharterError) as caught:
        consolidate(charter, amendments, as_of)
    return [d.message for d in caught.value.diagnostics]


def test_replacing_or_striking_a_missing_clause_fails_whole(acme):
    bad = amendment(
        'Amendment 4 to Charter "Acme Production Access".\n  Effective 2026-12-15.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\n'
        'Replace clause 2 with: Users may read "x".\nStrike clause 42.\nReplace clause 99 with: Users may read "y".\n'
    )
    assert _errors(acme, [bad]) == [
        "cannot strike clause 42: the charter has no such clause",
        "cannot replace clause 99: the charter has no such clause",
    ]


def test_inserting_an_existing_or_struck_number_fails(acme, amendment4):
    bad = amendment(
        'Amendment 5 to Charter "Acme Production Access".\n  Effective 2026-12-20.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\n'
        'Insert clause 3: Users may read "x".\nInsert clause 15: Users may read "y".\n'
    )
    assert _errors(acme, [amendment4, bad]) == [
        "cannot insert clause 3: the charter already has a clause 3",
        "clause 15 was struck by amendment 4; struck numbers are not reused",
    ]


def test_changing_one_clause_twice_in_an_amendment_fails(acme):
    bad = amendment(
        'Amendment 4 to Charter "Acme Production Access".\n  Effective 2026-12-15.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\nStrike clause 3.\nReplace clause 3 with: Users may read "x".\n'
    )
    assert _errors(acme, [bad]) == ["amendment 4 changes clause 3 twice"]


def test_wrong_charter_and_order_and_dates(acme):
    wrong = amendment(
        'Amendment 1 to Charter "Acme Production Acess".\n  Effective 2026-11-01.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\nStrike clause 3.\n'
    )
    later = amendment(
        'Amendment 2 to Charter "Acme Production Access".\n  Effective 2026-10-01.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\nStrike clause 4.\n'
    )
    with pytest.raises(CharterError) as caught:
        consolidate(acme, [wrong, later])
    diagnostics = caught.value.diagnostics
    assert diagnostics[0].message == 'amendment 1 amends Charter "Acme Production Acess", not "Acme Production Access"'
    assert diagnostics[0].hint == 'did you mean "Acme Production Access"?'
    messages = [d.message for d in diagnostics]
    assert "amendment 1 takes effect on 2026-11-01, before the charter itself (2026-12-01)" in messages
    assert any(m.startswith("amendment 2 takes effect on 2026-10-01, before amendment 1") for m in messages)


def test_a_charter_not_yet_in_force(acme):
    assert _errors(acme, [], dt.date(2026, 11, 30)) == [
        'Charter "Acme Production Access" is not in force on 2026-11-30: it takes effect on 2026-12-01'
    ]
