"""The amendment lifecycle through the API, on both backends: propose, plan, approve by quorum, apply on the date."""

from __future__ import annotations

import datetime as dt

from charter.audit import store
from charter.bootstrap import sample

ADMIN = "/admin/v1"

AMENDMENT_1 = sample("amendment-1.amendment")  # the Acme amendment 4, as the first of the sample charter


def _member(api, name: str, groups: list[str]) -> str:
    api.ok("PUT", f"{ADMIN}/users/{name}", json={"groups": groups})
    return api.new_credential(name)


def test_an_amendment_is_proposed_planned_approved_by_quorum_and_applied_on_its_date(api):
    erin = api.new_credential("erin")  # security (an owner), eng-leads, admins
    sam = _member(api, "sam", ["security"])
    lee = _member(api, "lee", ["eng-leads"])
    alice = api.new_credential("alice")

    proposed = api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1, credential=erin)
    assert (proposed["number"], proposed["status"], proposed["proposed_by"]) == (1, "proposed", "user:erin")
    assert proposed["tally"]["met"] is False

    plan = api.ok("GET", f"{ADMIN}/amendments/1/plan")
    summaries = {(c["summary"], tuple(f"{s['type']}:{s['id']}" for s in c["subjects"])) for c in plan["changes"]}
    assert summaries == {
        ('gains read on api:shipments/* (with scope "shipments.read")', ("partner:acme-logistics",)),
        ("loosened: read on tickets/*: no longer on weekdays between 08:00 and 18:00 UTC", ("user:carol",)),
    }  # striking clause 15 (group "legacy-admins" is revoked; it has no members) changes no one's access

    # The proposer cannot approve; someone outside the approving groups cannot either.
    assert api.request("POST", f"{ADMIN}/amendments/1/approve", credential=erin).status_code == 403
    assert api.request("POST", f"{ADMIN}/amendments/1/approve", credential=alice).status_code == 403
    after_sam = api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=sam)
    assert after_sam["status"] == "proposed"
    assert after_sam["tally"]["summary"] == 'waiting for 1 more of group "eng-leads"'
    assert api.request("POST", f"{ADMIN}/amendments/1/approve", credential=sam).status_code == 409  # once each
    approved = api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=lee, json={"comment": "fine"})
    assert approved["status"] == "scheduled"  # quorum met, 2026-12-15 still ahead

    admin = api.http.app.state.admin
    assert admin.apply_due_amendments("scheduler") == []  # not before its date
    carol_saturday = {"mfa": True, "time": "2026-12-19T10:00:00Z"}
    assert api.decide("carol", "read", "tickets/1", **carol_saturday)["decision"] is False

    api.clock.set(dt.datetime(2026, 12, 15, 0, 0, 1, tzinfo=dt.UTC))
    [applied] = admin.apply_due_amendments("scheduler")
    assert applied["status"] == "in_force"
    api.http.app.state.engine.wait_for(applied["revision"], 5)
    assert api.decide("carol", "read", "tickets/1", **carol_saturday)["decision"] is True
    assert api.ok("GET", f"{ADMIN}/revision")["version"] == 1

    engine = api.http.app.state.engine
    with engine.sessions() as session:
        steps = [
            (r.entry.action, r.entry.outcome)
            for r in store.records(session, "audit")
            if r.entry.action.startswith("amendment.")
        ]
    assert steps == [
        ("amendment.propose", "ok"),
        ("amendment.approve", "denied"),
        ("amendment.approve", "denied"),
        ("amendment.approve", "ok"),
        ("amendment.approve", "denied"),  # sam a second time
        ("amendment.approve", "ok"),
        ("amendment.apply", "ok"),
    ]


def test_a_bad_amendment_is_refused_with_its_diagnostics_and_stores_nothing(api):
    erin = api.new_credential("erin")
    bad = AMENDMENT_1.replace("Strike clause 15.", "Strike clause 99.")
    response = api.request("POST", f"{ADMIN}/amendments", content=bad, credential=erin)
    assert response.status_code == 422
    assert "99" in response.json()["message"]
    assert api.ok("GET", f"{ADMIN}/amendments")["total"] == 0


def test_only_owners_or_charter_managers_may_propose_and_a_rejection_ends_it(api):
    alice = api.new_credential("alice")
    assert api.request("POST", f"{ADMIN}/amendments", content=AMENDMENT_1, credential=alice).status_code == 403
    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1)  # the admin manages charter:*
    lee = _member(api, "lee", ["eng-leads"])
    rejected = api.ok("POST", f"{ADMIN}/amendments/1/reject", credential=lee, json={"comment": "not yet"})
    assert rejected["status"] == "rejected"
    assert api.request("POST", f"{ADMIN}/amendments/1/approve", credential=lee).status_code == 409


def test_one_person_in_two_approving_groups_fills_one_seat():
    from charter.language.ast import Quorum
    from charter.policy.quorum import tally

    quorum = (Quorum(1, "security"), Quorum(1, "eng-leads"))
    assert not tally(quorum, {"erin": {"security", "eng-leads"}}).met
    both = tally(quorum, {"erin": {"security", "eng-leads"}, "sam": {"security"}})
    assert both.met and set(both.seats) == {("security", "sam"), ("eng-leads", "erin")}  # erin moved to fit sam
    assert tally((Quorum(2, "helpdesk"),), {"grace": {"helpdesk"}}).missing == (("helpdesk", 1),)


def test_the_cli_plans_applies_and_shows_the_text_in_force_on_any_date(api, backend):
    from click.testing import CliRunner

    from charter.cli.main import cli

    env = {"CHARTER_DATABASE_URL": backend.url}
    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1)
    plan = CliRunner().invoke(cli, ["amend", "plan", "1"], env=env)
    assert plan.exit_code == 0, plan.output
    assert "loosened: read on tickets/*: no longer on weekdays between 08:00 and 18:00 UTC  [clause 2]" in plan.output
    assert "user carol" in plan.output and "partner acme-logistics" in plan.output

    for who, groups in (("sam", ["security"]), ("lee", ["eng-leads"])):
        api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=_member(api, who, groups))
    # The operator's apply, before the date: nothing is due (the machine's clock is past 2026-12-15, so the
    # CLI is not used for the apply itself; the scheduler path is tested above).
    api.clock.set(dt.datetime(2026, 12, 15, 9, 0, tzinfo=dt.UTC))
    assert api.http.app.state.admin.apply_due_amendments("scheduler")[0]["status"] == "in_force"

    before = CliRunner().invoke(cli, ["show", "--as-of", "2026-12-14"], env=env)
    after = CliRunner().invoke(cli, ["show", "--as-of", "2026-12-16"], env=env)
    assert before.exit_code == after.exit_code == 0, before.output + after.output
    old, new = (" ".join(result.output.split()) for result in (before, after))  # the text is wrapped at 80
    assert "version 0" in old and "on weekdays between 08:00 and 18:00 UTC" in old
    assert "version 1" in new and "on weekdays between 08:00" not in new
    assert 'Partner "acme-logistics" may read "api:shipments/*"' in new


def test_a_simulation_replays_the_decision_log_and_names_each_flip_by_clause(api):
    """Logged traffic replayed against amendment 1: carol's weekend reads (denied today by clause 2's
    weekday window, with MFA) and acme-logistics' shipment reads (denied by default) would be allowed;
    carol's weekday reads and alice's reads are the same under both versions."""
    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1)
    saturday = {"mfa": True, "time": "2026-05-30T10:00:00Z"}
    for ticket in range(3):
        assert api.decide("carol", "read", f"tickets/{ticket}", **saturday)["decision"] is False
    assert api.decide("carol", "read", "tickets/7", mfa=True, time="2026-05-27T10:00:00Z")["decision"] is True
    assert api.decide("alice", "read", "db:prod/orders")["decision"] is True
    partner = api.decide("acme-logistics", "read", "api:shipments/9", "partner", scopes=["shipments.read"])
    assert partner["decision"] is False
    api.http.app.state.decision_log.flush()
    api.clock.advance(dt.timedelta(minutes=1))

    report = api.ok("GET", f"{ADMIN}/amendments/1/simulate")
    assert (report["replayed"], report["flips"], report["deny_to_allow"], report["allow_to_deny"]) == (6, 4, 4, 0)
    assert report["window"]["days"] == 30
    weekend, shipments = report["groups"]
    assert (weekend["direction"], weekend["clause_before"], weekend["clause_after"], weekend["count"]) == (
        "deny -> allow",
        2,
        2,
        3,
    )
    assert weekend["summary"] == "denied by clause 2, allowed by clause 2"
    assert [e["resource"] for e in weekend["examples"]] == ["tickets/0", "tickets/1", "tickets/2"]
    assert "weekdays" in weekend["examples"][0]["reasons"][0]
    assert (shipments["clause_before"], shipments["clause_after"], shipments["count"]) == (None, 21, 1)
    assert shipments["examples"][0]["subject"] == "partner:acme-logistics"

    # A window that ends before the traffic replays nothing; a bad window is a 400 naming the parameter.
    api.clock.advance(dt.timedelta(days=2))
    assert api.ok("GET", f"{ADMIN}/amendments/1/simulate?days=1")["replayed"] == 0
    bad = api.request("GET", f"{ADMIN}/amendments/1/simulate?days=0")
    assert bad.status_code == 400 and "days" in bad.text
    assert api.request("GET", f"{ADMIN}/amendments/9/simulate").status_code == 404


def test_a_simulation_counts_allows_that_would_be_denied():
    """Pure: striking the clause that allowed a logged decision flips it to a default deny."""
    from charter.policy.request import Context
    from charter.policy.simulate import Logged, simulate
    from test_policy import WEDNESDAY_10, snapshot

    clauses = ('Members of group "sre" may read "db:*".', 'Members of group "support" may read "tickets/*".')
    strike = (
        'Amendment 1 to Charter "T".\n  Effective 2026-12-01.\n  Reason "r".\n'
        '  Approved by 1 member of group "admins".\n\nStrike clause 1.\n'
    )
    current, proposed = snapshot(*clauses), snapshot(*clauses, amendments=[strike])
    logged = [
        Logged(WEDNESDAY_10, "user", who, "read", resource, Context(time=WEDNESDAY_10))
        for who, resource in (("alice", "db:a"), ("bob", "tickets/1"), ("carol", "db:b"), ("alice", "x"))
    ]
    seen = []
    report = simulate(current, proposed, logged, progress=seen.append, every=2)
    assert (report.replayed, report.flips, report.flipped("allow -> deny")) == (4, 2, 2)
    [group] = report.ordered()
    assert group.describe() == "allowed by clause 1, denied by default (no clause)"
    assert [e.logged.subject for e in group.examples] == ["alice", "carol"]
    assert seen == [2, 4, 4]


def test_the_cli_simulates_over_the_log_with_a_progress_bar_and_json(api, backend):
    from click.testing import CliRunner

    from charter.cli.main import cli

    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1)
    for ticket in range(2):
        api.decide("carol", "read", f"tickets/{ticket}", mfa=True, time="2026-05-30T10:00:00Z")
    api.decide("alice", "read", "db:prod/orders")
    api.http.app.state.decision_log.flush()
    env = {"CHARTER_DATABASE_URL": backend.url}
    # The log was written at the test clock's time (2026-06-01); the CLI asks at the machine's.
    days = (dt.datetime.now(dt.UTC) - api.clock.now()).days + 2
    table = CliRunner().invoke(cli, ["amend", "simulate", "1", "--days", str(days)], env=env)
    assert table.exit_code == 0, table.output
    assert "3 decisions logged" in table.output and "replayed; 2 would flip" in table.output
    assert "2  deny -> allow: denied by clause 2, allowed by clause 2" in table.output
    assert "e.g. 2026-06-01 10:00:00 user carol read tickets/0" in table.output
    as_json = CliRunner().invoke(cli, ["amend", "simulate", "1", "--days", str(days), "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert '"flips": 2' in as_json.output
    missing = CliRunner().invoke(cli, ["amend", "simulate", "7"], env=env)
    assert missing.exit_code == 2 and "no amendment 7" in missing.output
