"""Roll back as a new amendment: the text written (pure, and as a property over random histories), and
through the API on both backends: proposed, planned, approved by quorum and applied like any other."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import strategies as s
from charter.audit import store
from charter.bootstrap import sample
from charter.language import ast
from charter.language.checker import check
from charter.language.consolidate import Consolidated, consolidate
from charter.language.formatter import format_amendment, format_sentence
from charter.language.parser import parse_amendment, parse_charter
from charter.language.rollback import NothingToRollBack, approvers_for, in_effect, write_rollback

ADMIN = "/admin/v1"
CHARTER = parse_charter(sample("charter.charter"))
AMENDMENT_1 = sample("amendment-1.amendment")  # replaces clause 2, inserts 21 (for 90 days), strikes 15
SUPPORT_WEEKDAYS = 'Members of group "support" may read "tickets/*" with MFA, on weekdays between 08:00 and 18:00 UTC.'
CAROL_SATURDAY = {"mfa": True, "time": "2026-12-19T10:00:00Z"}


def amendment(number: int, effective: str, *changes: str, approvers: str = '1 member of group "security"'):
    return parse_amendment(
        f'Amendment {number} to Charter "Acme Production Access".\n  Effective {effective}.\n  Reason "r".\n'
        f"  Approved by {approvers}.\n\n" + "\n".join(changes) + "\n"
    )


def roll_back(current: Consolidated, target: Consolidated, number: int, effective: dt.date):
    return write_rollback(current, target, number, effective, "Roll back", approvers_for(current, target))


def sentences(version: Consolidated) -> Counter:
    return Counter(format_sentence(c.sentence) for c in version.clauses)


# --- the text written --------------------------------------------------------------------------------


def test_rolling_back_the_sample_amendment_restores_version_0_with_clause_15_under_a_new_number():
    a1 = parse_amendment(AMENDMENT_1)
    current, original = consolidate(CHARTER, [a1]), consolidate(CHARTER, [])
    rollback = roll_back(current, original, 2, dt.date(2026, 12, 16))
    assert rollback.text == (
        "# Rolls back to version 0: undoes amendment 1.\n"
        'Amendment 2 to Charter "Acme Production Access".\n'
        "  Effective 2026-12-16.\n"
        '  Reason "Roll back".\n'
        '  Approved by 1 member of group "security" and 1 member of group "eng-leads".\n'
        "\n"
        "# Clause 2 of version 0 (the original text).\n"
        'Replace clause 2 with: Members of group "support" may read "tickets/*" with MFA,\n'
        "                       on weekdays between 08:00 and 18:00 UTC.\n"
        "# Not in version 0: inserted by amendment 1.\n"
        "Strike clause 21.\n"
        "# Clause 15 of version 0 (the original text), struck by amendment 1, and struck numbers are not reused.\n"
        'Insert clause 22: Group "legacy-admins" is revoked.\n'
    )
    assert (rollback.undone, rollback.renumbered) == ((1,), {15: 22})
    assert parse_amendment(rollback.text) == rollback.amendment  # it parses, and is in canonical form
    assert format_amendment(parse_amendment(rollback.text)) == rollback.text
    assert check(CHARTER, [a1, rollback.amendment], None, dt.date(2026, 12, 15)).diagnostics == ()
    restored = consolidate(CHARTER, [a1, rollback.amendment])
    assert sentences(restored) == sentences(original)
    assert format_sentence(restored.clause(22).sentence) == format_sentence(original.clause(15).sentence)


def test_the_example_in_the_docs_is_what_is_written():
    doc = (Path(__file__).parent.parent / "docs" / "rollback.md").read_text()
    example = doc.split("```charter\n", 1)[1].split("```", 1)[0]
    a1 = parse_amendment(AMENDMENT_1)
    current, original = consolidate(CHARTER, [a1]), consolidate(CHARTER, [])
    approvers = approvers_for(current, original)
    written = write_rollback(current, original, 2, dt.date(2026, 12, 16), "Back to the original rules", approvers)
    assert written.text == example


def test_a_clause_for_90_days_comes_back_until_the_day_it_lapsed_not_90_days_from_the_roll_back():
    a1 = parse_amendment(AMENDMENT_1)
    a2 = amendment(2, "2027-01-01", "Strike clause 21.")
    current, version_1 = consolidate(CHARTER, [a1, a2]), consolidate(CHARTER, [a1])
    rollback = roll_back(current, version_1, 3, dt.date(2027, 1, 10))
    [insert] = rollback.amendment.changes
    assert isinstance(insert, ast.InsertClause) and insert.number == 22 and rollback.renumbered == {21: 22}
    assert insert.sentence.validity == ast.Validity(until=dt.date(2027, 3, 15))  # 2026-12-15 + 90 days
    assert '"for 90 days" from 2026-12-15 is written "until 2027-03-15"' in rollback.text
    restored = consolidate(CHARTER, [a1, a2, rollback.amendment])
    assert in_effect(restored.clause(22)) == in_effect(version_1.clause(21))


def test_a_window_of_hours_is_rounded_towards_less_access():
    charter = parse_charter(
        'Charter "T".\n  Effective 2026-01-01.\n  Owned by group "security".\n\n'
        'Clause 1. Members of group "sre" may read "db:*" for 36 hours.\n'
        'Clause 2. No one may delete "db:*" for 36 hours.\n'
    )
    a1 = parse_amendment(
        'Amendment 1 to Charter "T".\n  Effective 2026-01-01.\n  Reason "r".\n'
        '  Approved by 1 member of group "security".\n\nStrike clause 1.\nStrike clause 2.\n'
    )
    rollback = roll_back(consolidate(charter, [a1]), consolidate(charter, []), 2, dt.date(2026, 1, 5))
    permission, prohibition = (change.sentence for change in rollback.amendment.changes)
    assert permission.validity.until == dt.date(2026, 1, 2)  # granted until 2026-01-02 12:00: ends earlier
    assert prohibition.validity.until == dt.date(2026, 1, 3)  # forbidden until 2026-01-02 12:00: ends later
    assert "rounded to a whole day, towards less access" in rollback.text


def test_approvers_are_the_charter_minimum_and_the_groups_that_approved_what_is_undone():
    strict = parse_charter(
        sample("charter.charter").replace(
            '  Owned by group "security".',
            '  Owned by group "security".\n  Amendments are approved by 2 members of group "security".',
        )
    )
    a1 = amendment(
        1,
        "2026-12-15",
        "Strike clause 15.",
        approvers='2 members of group "security" and 1 member of group "eng-leads"',
    )
    a2 = amendment(2, "2026-12-20", "Strike clause 14.", approvers='3 members of group "security"')
    current = consolidate(strict, [a1, a2])
    assert approvers_for(current, consolidate(strict, [a1])) == (ast.Quorum(3, "security"),)
    assert approvers_for(current, consolidate(strict, [])) == (ast.Quorum(3, "security"), ast.Quorum(1, "eng-leads"))
    loose = consolidate(CHARTER, [])  # no "Amendments are approved by" line, nothing undone: the owner group
    assert approvers_for(loose, loose) == (ast.Quorum(1, "security"),)


def test_versions_that_act_alike_have_nothing_to_roll_back():
    a1 = parse_amendment(AMENDMENT_1)
    version_1 = consolidate(CHARTER, [a1])
    with pytest.raises(NothingToRollBack, match="version 1 is the version in force: nothing to roll back"):
        roll_back(version_1, version_1, 2, dt.date(2027, 1, 1))
    same_text = amendment(2, "2027-01-01", f"Replace clause 1 with: {format_sentence(CHARTER.clause(1).sentence)}")
    with pytest.raises(NothingToRollBack, match="version 1 has the same clauses as version 2 in force"):
        roll_back(consolidate(CHARTER, [a1, same_text]), version_1, 3, dt.date(2027, 1, 2))


def test_rolling_back_a_roll_back_keeps_the_clause_it_restored_instead_of_renumbering_again():
    a1 = parse_amendment(AMENDMENT_1)
    a2 = roll_back(consolidate(CHARTER, [a1]), consolidate(CHARTER, []), 2, dt.date(2026, 12, 16)).amendment
    a3 = amendment(3, "2027-01-01", "Strike clause 20.")
    rollback = roll_back(consolidate(CHARTER, [a1, a2, a3]), consolidate(CHARTER, []), 4, dt.date(2027, 1, 2))
    assert rollback.renumbered == {15: 22, 20: 23}  # clause 22 (restored by amendment 2) stands for clause 15
    assert [(type(c).__name__, c.number) for c in rollback.amendment.changes] == [("InsertClause", 23)]
    assert rollback.undone == (1, 2, 3)


# --- the property: any history, any earlier version ------------------------------------------------------

# Whole days only: a window of hours is rounded when restored (tested above), so it could not compare equal.
_WHOLE_DAYS = st.builds(ast.Duration, st.integers(1, 400), st.sampled_from([ast.TimeUnit.DAY, ast.TimeUnit.WEEK]))
_VALIDITIES = st.one_of(
    st.none(),
    st.builds(ast.Validity, duration=_WHOLE_DAYS),
    st.builds(ast.Validity, until=st.dates(dt.date(2026, 1, 1), dt.date(2030, 12, 31))),
)
_SENTENCES = st.one_of(
    st.builds(ast.Permission, s.subjects(), s.action_lists, s.resource_lists, s.condition_lists, _VALIDITIES),
    st.builds(
        ast.Prohibition, s.subjects(), s.action_lists, s.resource_lists, s.condition_lists, st.just(()), _VALIDITIES
    ),
    *(s.SENTENCES[kind] for kind in (ast.Revocation, ast.TokenLifetime, ast.Rotation, ast.Escalation)),
)
START = dt.date(2026, 1, 1)


@st.composite
def histories(draw) -> tuple[ast.Charter, list[ast.Amendment]]:
    """A charter and amendments 1..n to it that consolidate: each replaces, inserts or strikes clauses in force."""
    clauses = draw(st.lists(_SENTENCES, min_size=1, max_size=5))
    charter = ast.Charter(
        "T",
        START,
        amendment_approvers=draw(st.lists(s.quorums, max_size=1).map(tuple)),
        clauses=tuple(ast.Clause(n, c) for n, c in enumerate(clauses, 1)),
    )
    in_force, used, day, amendments = set(range(1, len(clauses) + 1)), len(clauses), START, []
    for number in range(1, draw(st.integers(1, 4)) + 1):
        changes: list[ast.Change] = []
        for touched in draw(st.lists(st.sampled_from(sorted(in_force)), unique=True, max_size=3)) if in_force else []:
            if draw(st.booleans()):
                changes.append(ast.ReplaceClause(touched, draw(_SENTENCES)))
            else:
                changes.append(ast.StrikeClause(touched))
                in_force.discard(touched)
        for _ in range(draw(st.integers(0 if changes else 1, 2))):
            used += 1
            changes.append(ast.InsertClause(used, draw(_SENTENCES)))
            in_force.add(used)
        day += dt.timedelta(days=draw(st.integers(0, 120)))
        approvers = charter.amendment_approvers + draw(st.lists(s.quorums, min_size=1, max_size=2).map(tuple))
        amendments.append(ast.Amendment(number, "T", day, "r", approvers, tuple(changes)))
    return charter, amendments


@given(histories(), st.data())
def test_a_roll_back_to_version_k_on_top_of_any_history_gives_the_clauses_of_version_k(history, data):
    charter, amendments = history
    k = data.draw(st.integers(0, len(amendments) - 1), label="k")
    current, target = consolidate(charter, amendments), consolidate(charter, amendments[:k])
    effective = amendments[-1].effective + dt.timedelta(days=data.draw(st.integers(0, 60)))
    try:
        rollback = roll_back(current, target, len(amendments) + 1, effective)
    except NothingToRollBack:
        event("nothing to roll back")
        assert Counter(map(in_effect, current.clauses)) == Counter(map(in_effect, target.clauses))
        return
    assert parse_amendment(rollback.text) == rollback.amendment
    assert format_amendment(rollback.amendment) == rollback.text
    event(f"renumbered: {bool(rollback.renumbered)}")
    restored = consolidate(charter, [*amendments, rollback.amendment])
    by_number = {rollback.renumbered.get(c.number, c.number): in_effect(c) for c in target.clauses}
    assert {c.number: in_effect(c) for c in restored.clauses} == by_number  # sentence by sentence, and lapses
    if not check(charter, amendments[:k]).errors and not check(charter, amendments).errors:
        event("checked")
        assert not check(charter, [*amendments, rollback.amendment]).errors


# --- through the API, on both backends ------------------------------------------------------------------


def _member(api, name: str, groups: list[str]) -> str:
    api.ok("PUT", f"{ADMIN}/users/{name}", json={"groups": groups})
    return api.new_credential(name)


def _apply_due(api) -> None:
    [applied] = api.http.app.state.admin.apply_due_amendments("scheduler")
    assert applied["status"] == "in_force", applied
    api.http.app.state.engine.wait_for(applied["revision"], 5)


def _amendment_1_in_force(api) -> dict[str, str]:
    """Amendment 1 proposed by erin, approved by sam (security) and lee (eng-leads), applied on 2026-12-15."""
    people = {"erin": api.new_credential("erin"), "sam": _member(api, "sam", ["security"])}
    people["lee"] = _member(api, "lee", ["eng-leads"])
    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1, credential=people["erin"])
    for approver in ("sam", "lee"):
        api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=people[approver])
    api.clock.set(dt.datetime(2026, 12, 15, 0, 0, 1, tzinfo=dt.UTC))
    _apply_due(api)
    return people


def _acme_reads_shipments(api) -> bool:
    return api.decide("acme-logistics", "read", "api:shipments/1", "partner", scopes=["shipments.read"])["decision"]


def test_a_roll_back_is_proposed_planned_approved_by_quorum_and_restores_version_0(api):
    people = _amendment_1_in_force(api)
    assert api.decide("carol", "read", "tickets/1", **CAROL_SATURDAY)["decision"] is True
    assert _acme_reads_shipments(api) is True

    body = {"to_version": 0, "reason": "Back to the original rules"}
    proposed = api.ok("POST", f"{ADMIN}/amendments/rollback", 201, json=body, credential=people["erin"])
    assert (proposed["number"], proposed["status"], proposed["effective"]) == (2, "proposed", "2026-12-16")  # tomorrow
    assert proposed["proposed_by"] == "user:erin" and proposed["reason"] == "Back to the original rules"
    assert proposed["approvers"] == [{"count": 1, "group": "security"}, {"count": 1, "group": "eng-leads"}]
    assert proposed["rollback"] == {"to_version": 0, "undoes": [1], "renumbered": {"15": 22}}
    assert "Strike clause 21." in proposed["text"] and "Insert clause 22:" in proposed["text"]
    assert api.ok("GET", f"{ADMIN}/amendments/2")["text"] == proposed["text"]

    plan = api.ok("GET", f"{ADMIN}/amendments/2/plan")
    summaries = {(c["summary"], tuple(f"{s['type']}:{s['id']}" for s in c["subjects"])) for c in plan["changes"]}
    assert summaries == {
        ('loses read on api:shipments/* (with scope "shipments.read")', ("partner:acme-logistics",)),
        ("tightened: read on tickets/*: now on weekdays between 08:00 and 18:00 UTC", ("user:carol",)),
    }

    # Its own approval: never the proposer, and the quorum of both groups.
    assert api.request("POST", f"{ADMIN}/amendments/2/approve", credential=people["erin"]).status_code == 403
    assert api.ok("POST", f"{ADMIN}/amendments/2/approve", credential=people["sam"])["status"] == "proposed"
    assert api.ok("POST", f"{ADMIN}/amendments/2/approve", credential=people["lee"])["status"] == "scheduled"

    api.clock.set(dt.datetime(2026, 12, 16, 0, 0, 1, tzinfo=dt.UTC))
    _apply_due(api)
    assert api.ok("GET", f"{ADMIN}/charter")["in_force"]["version"] == 2
    assert api.decide("carol", "read", "tickets/1", **CAROL_SATURDAY)["decision"] is False
    assert _acme_reads_shipments(api) is False

    version_2 = api.http.app.state.engine.snapshot.version
    version_0 = consolidate(CHARTER, [])
    assert version_2.version == 2
    assert sentences(version_2) == sentences(version_0)
    assert [format_sentence(version_2.clause(n).sentence) for n in (2, 22)] == [
        SUPPORT_WEEKDAYS,
        'Group "legacy-admins" is revoked.',
    ]

    with api.http.app.state.engine.sessions() as session:
        proposals = [r.entry for r in store.records(session, "audit") if r.entry.action == "amendment.propose"]
    assert [(e.actor.split()[0], e.outcome, e.details.get("rollback_to")) for e in proposals] == [
        ("user:erin", "ok", None),
        ("user:erin", "ok", 0),
    ]
    assert proposals[1].details["number"] == 2 and proposals[1].target == "charter:Acme Production Access/amendments"


def test_rolling_back_to_the_version_in_force_is_refused_and_stores_nothing(api):
    refused = api.request("POST", f"{ADMIN}/amendments/rollback", json={"to_version": 0, "reason": "r"})
    assert refused.status_code == 409
    assert refused.json()["message"] == "version 0 is the version in force: nothing to roll back"

    _amendment_1_in_force(api)
    revision = api.stored_revision()
    refused = api.request("POST", f"{ADMIN}/amendments/rollback", json={"to_version": 1, "reason": "r"})
    assert refused.status_code == 409 and "version 1 is the version in force" in refused.json()["message"]
    assert api.ok("GET", f"{ADMIN}/amendments")["total"] == 1
    assert api.stored_revision() == revision


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"to_version": "0", "reason": "r"}, 400, "to_version"),
        ({"to_version": -1, "reason": "r"}, 400, "to_version"),
        ({"reason": "r"}, 400, "to_version"),
        ({"to_version": 0}, 400, "reason"),
        ({"to_version": 0, "reason": "   "}, 400, "reason"),
        ({"to_version": 0, "reason": "two\nlines"}, 400, "reason"),
        ({"to_version": 0, "reason": "r", "effective": "16/12/2026"}, 400, "effective"),
        ({"to_version": 0, "reason": "r", "effective": "2026-02-30"}, 400, "effective"),
        ({"to_version": 0, "reason": "r", "when": "2026-12-20"}, 400, "when"),
        ({"to_version": 7, "reason": "r"}, 422, "there is no version 7 to roll back to: the version in force is 1"),
        ({"to_version": 0, "reason": "r", "effective": "2026-12-01"}, 422, "before amendment 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_stores_nothing(api, body, status, words):
    _amendment_1_in_force(api)
    revision = api.stored_revision()
    response = api.request("POST", f"{ADMIN}/amendments/rollback", json=body)
    assert response.status_code == status, response.text
    assert words in response.text
    assert api.ok("GET", f"{ADMIN}/amendments")["total"] == 1
    assert api.stored_revision() == revision


def test_only_proposers_may_roll_back_and_not_while_another_amendment_is_pending(api):
    people = _amendment_1_in_force(api)
    alice = api.new_credential("alice")  # neither an owner nor allowed to manage the charter
    body = {"to_version": 0, "reason": "r"}
    assert api.request("POST", f"{ADMIN}/amendments/rollback", json=body, credential=alice).status_code == 403

    pending = (
        'Amendment 2 to Charter "Acme Production Access".\n  Effective 2027-01-15.\n  Reason "Auditors go".\n'
        '  Approved by 1 member of group "security".\n\nStrike clause 20.\n'
    )
    api.ok("POST", f"{ADMIN}/amendments", 201, content=pending, credential=people["erin"])
    refused = api.request("POST", f"{ADMIN}/amendments/rollback", json=body, credential=people["erin"])
    assert refused.status_code == 409
    assert refused.json()["message"].startswith("amendments pending: 2 (proposed)")
    api.ok("POST", f"{ADMIN}/amendments/2/withdraw", credential=people["erin"])
    rolled = api.ok("POST", f"{ADMIN}/amendments/rollback", 201, json=body, credential=people["erin"])
    assert rolled["number"] == 3  # a withdrawn number stays taken


def test_a_version_never_in_force_cannot_be_restored(api):
    erin, lee, sam = api.new_credential("erin"), _member(api, "lee", ["eng-leads"]), _member(api, "sam", ["security"])
    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1, credential=erin)
    api.ok("POST", f"{ADMIN}/amendments/1/reject", credential=lee)
    strike_20 = (
        'Amendment 2 to Charter "Acme Production Access".\n  Effective 2026-12-15.\n  Reason "Auditors go".\n'
        '  Approved by 1 member of group "security".\n\nStrike clause 20.\n'
    )
    api.ok("POST", f"{ADMIN}/amendments", 201, content=strike_20, credential=erin)
    api.ok("POST", f"{ADMIN}/amendments/2/approve", credential=sam)
    api.clock.set(dt.datetime(2026, 12, 15, 9, 0, tzinfo=dt.UTC))
    _apply_due(api)

    refused = api.request("POST", f"{ADMIN}/amendments/rollback", json={"to_version": 1, "reason": "r"})
    assert refused.status_code == 422
    assert refused.json()["message"] == "there is no version 1 to roll back to: amendment 1 is rejected, never in force"
    rolled = api.ok("POST", f"{ADMIN}/amendments/rollback", 201, json={"to_version": 0, "reason": "r"})
    assert (rolled["number"], rolled["rollback"]["undoes"], rolled["approvers"]) == (
        3,
        [2],
        [{"count": 1, "group": "security"}],
    )
