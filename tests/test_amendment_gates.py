"""Drafts, the expectation-file gate on approval, and canary cohorts: through the API, on both backends."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from charter.audit import store
from charter.bootstrap import sample
from charter.policy.canary import CanaryPlan, Counts, InvalidPlan, cohort, in_percent, judge
from charter.policy.principal import Principal
from charter.store.models import EventRow

ADMIN = "/admin/v1"
AMENDMENT_1 = sample("amendment-1.amendment")
# A policy test the Acme amendment 4 breaks: carol reads tickets on a Saturday only once it takes effect.
WEEKEND = """Expectations for Charter "Acme Production Access".
  As of 2026-06-06 10:00 UTC.

Expect deny by clause 2: user "carol" read "tickets/42" with MFA.
"""
WEEKEND_AFTER = WEEKEND.replace("Expect deny by clause 2", "Expect allow by clause 2")


def _approvers(api) -> tuple[str, str]:
    for who, groups in (("sam", ["security"]), ("lee", ["eng-leads"])):
        api.ok("PUT", f"{ADMIN}/users/{who}", json={"groups": groups})
    return api.new_credential("sam"), api.new_credential("lee")


def _audit_actions(api, prefix: str) -> list[tuple[str, str]]:
    with api.http.app.state.engine.sessions() as session:
        return [
            (r.entry.action, r.entry.outcome)
            for r in store.records(session, "audit")
            if r.entry.action.startswith(prefix)
        ]


# --- drafts ---------------------------------------------------------------------------------------


def test_a_draft_is_edited_then_proposed_and_cannot_be_approved_before(api):
    erin = api.new_credential("erin")
    sam, _ = _approvers(api)
    first = AMENDMENT_1.replace("Strike clause 15.\n", "")
    draft = api.ok("POST", f"{ADMIN}/amendments", 201, json={"text": first, "draft": True}, credential=erin)
    assert draft["status"] == "draft"
    assert api.request("POST", f"{ADMIN}/amendments/1/approve", credential=sam).status_code == 409  # not proposed

    bad = api.request("PUT", f"{ADMIN}/amendments/1", content=AMENDMENT_1.replace("15", "99"), credential=erin)
    assert bad.status_code == 422 and "99" in bad.json()["message"]
    assert "Strike clause" not in api.ok("GET", f"{ADMIN}/amendments/1")["text"]  # the bad edit changed nothing
    other = api.new_credential("alice")
    assert api.request("PUT", f"{ADMIN}/amendments/1", content=AMENDMENT_1, credential=other).status_code == 403

    edited = api.ok("PUT", f"{ADMIN}/amendments/1", content=AMENDMENT_1, credential=erin)
    assert edited["status"] == "draft" and "Strike clause 15." in edited["text"]
    proposed = api.ok("POST", f"{ADMIN}/amendments/1/propose", credential=erin)
    assert proposed["status"] == "proposed"
    assert api.request("PUT", f"{ADMIN}/amendments/1", content=AMENDMENT_1, credential=erin).status_code == 409
    assert api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=sam)["tally"]["met"] is False
    assert _audit_actions(api, "amendment.") == [
        ("amendment.draft", "ok"),
        ("amendment.approve", "denied"),
        ("amendment.edit", "denied"),
        ("amendment.edit", "ok"),
        ("amendment.propose", "ok"),
        ("amendment.approve", "ok"),
    ]


# --- the expectation gate -----------------------------------------------------------------------------


def test_failing_expectations_block_approval_unless_the_amendment_updates_them(api):
    erin = api.new_credential("erin")
    sam, lee = _approvers(api)
    assert [f["name"] for f in api.ok("GET", f"{ADMIN}/charter/expectations")["items"]] == ["sample.expect"]
    api.ok("PUT", f"{ADMIN}/charter/expectations/weekend.expect", content=WEEKEND)

    # Amendment 1 as it stands fails weekend.expect: the plan says so and no approval counts.
    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1, credential=erin)
    tests = api.ok("GET", f"{ADMIN}/amendments/1/plan")["expectations"]
    assert (tests["total"], tests["failed"]) == (11, 1)
    [failure] = tests["failures"]
    assert (failure["file"], failure["line"]) == ("weekend.expect", 4)
    assert failure["got"].startswith("got: allow by clause 2")
    refused = api.request("POST", f"{ADMIN}/amendments/1/approve", credential=sam)
    assert refused.status_code == 409
    assert "1 of 11 expectations fail" in refused.json()["message"] and "weekend.expect:4" in refused.json()["message"]
    assert api.ok("GET", f"{ADMIN}/amendments/1")["verdicts"] == []
    api.ok("POST", f"{ADMIN}/amendments/1/withdraw", credential=erin)
    reused = api.request("POST", f"{ADMIN}/amendments", content=AMENDMENT_1, credential=erin)
    assert reused.status_code == 409 and "amendment 1 was withdrawn; numbers are not reused" in reused.text

    # Amendment 2: the same change, updating the file: approvals count, and on its date the file changes.
    text = AMENDMENT_1.replace("Amendment 1", "Amendment 2")
    body = {"text": text, "expectations": {"weekend.expect": WEEKEND_AFTER}}
    assert api.ok("POST", f"{ADMIN}/amendments", 201, json=body, credential=erin)["expectation_updates"] == [
        "weekend.expect"
    ]
    assert api.ok("GET", f"{ADMIN}/amendments/2/plan")["expectations"]["failed"] == 0
    api.ok("POST", f"{ADMIN}/amendments/2/approve", credential=sam)
    assert api.ok("POST", f"{ADMIN}/amendments/2/approve", credential=lee)["status"] == "scheduled"
    files = {f["name"]: f["text"] for f in api.ok("GET", f"{ADMIN}/charter/expectations")["items"]}
    assert files["weekend.expect"] == WEEKEND  # not before it takes effect
    api.clock.set(dt.datetime(2026, 12, 15, 0, 0, 1, tzinfo=dt.UTC))
    [applied] = api.http.app.state.admin.apply_due_amendments("scheduler")
    assert applied["status"] == "in_force"
    files = {f["name"]: f["text"] for f in api.ok("GET", f"{ADMIN}/charter/expectations")["items"]}
    assert files["weekend.expect"] == WEEKEND_AFTER


def test_an_expectation_file_must_parse_and_pass_before_it_is_stored(api):
    bad = api.request("PUT", f"{ADMIN}/charter/expectations/x.expect", content=WEEKEND.replace("Expect deny", "Expct"))
    assert bad.status_code == 422 and bad.json()["details"][0]["line"] == 4
    failing = api.request("PUT", f"{ADMIN}/charter/expectations/x.expect", content=WEEKEND_AFTER)
    assert failing.status_code == 409 and "1 expectations fail against the version in force" in failing.text
    other = WEEKEND.replace("Acme Production Access", "Other")
    assert api.request("PUT", f"{ADMIN}/charter/expectations/x.expect", content=other).status_code == 400
    assert api.request("PUT", f"{ADMIN}/charter/expectations/-x", content=WEEKEND).status_code == 400
    alice = api.new_credential("alice")
    denied = api.request("PUT", f"{ADMIN}/charter/expectations/x.expect", content=WEEKEND, credential=alice)
    assert denied.status_code == 403
    assert [f["name"] for f in api.ok("GET", f"{ADMIN}/charter/expectations")["items"]] == ["sample.expect"]
    assert api.request("DELETE", f"{ADMIN}/charter/expectations/none.expect").status_code == 404
    api.ok("DELETE", f"{ADMIN}/charter/expectations/sample.expect")
    assert api.ok("GET", f"{ADMIN}/charter/expectations")["items"] == []


# --- canary -------------------------------------------------------------------------------------------


def _canary_amendment(api, canary: dict) -> None:
    erin = api.new_credential("erin")
    sam, lee = _approvers(api)
    api.ok("POST", f"{ADMIN}/amendments", 201, json={"text": AMENDMENT_1, "canary": canary}, credential=erin)
    api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=sam)
    api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=lee)


def _start(api) -> dict:
    api.clock.set(dt.datetime(2026, 12, 15, 0, 0, 1, tzinfo=dt.UTC))
    [started] = api.http.app.state.admin.apply_due_amendments("scheduler")
    assert started["status"] == "canary"
    assert api.http.app.state.engine.wait_for(started["revision"], 5)
    return started


SATURDAY_MFA = {"mfa": True, "time": "2026-12-19T10:00:00Z"}


def test_a_canary_applies_to_its_cohort_first_and_is_promoted_after_its_time(api):
    api.ok("PUT", f"{ADMIN}/users/cara", json={"groups": ["support"]})
    api.ok("PUT", f"{ADMIN}/users/carl", json={"groups": ["support"]})
    api.ok("PUT", f"{ADMIN}/groups/support-pilot", json={})
    api.ok("PUT", f"{ADMIN}/users/cara", json={"groups": ["support", "support-pilot"]})
    _canary_amendment(api, {"group": "support-pilot", "promote_after_hours": 48})
    _start(api)

    # cara (in the cohort) already has the amended clause 2; carl (support, not in the cohort) does not.
    cara = api.decide("cara", "read", "tickets/1", **SATURDAY_MFA)
    assert cara["decision"] is True and cara["context"]["version"] == 1
    carl = api.decide("carl", "read", "tickets/1", **SATURDAY_MFA)
    assert carl["decision"] is False and carl["context"]["version"] == 0
    assert api.ok("GET", f"{ADMIN}/revision")["version"] == 0  # the version in force is still 0
    view = api.ok("GET", f"{ADMIN}/amendments/1")
    assert view["status"] == "canary" and view["canary"]["group"] == "support-pilot"

    scheduler = api.http.app.state.scheduler
    api.clock.advance(dt.timedelta(hours=47))
    assert [r["status"] for r in scheduler.run_once()] == ["canary"]
    api.clock.advance(dt.timedelta(hours=2))
    [promoted] = scheduler.run_once()
    assert promoted["status"] == "in_force" and promoted["verdict"] == "promote"
    assert api.http.app.state.engine.wait_for(api.stored_revision(), 5)
    assert api.decide("carl", "read", "tickets/1", **SATURDAY_MFA)["decision"] is True
    assert api.ok("GET", f"{ADMIN}/revision")["version"] == 1
    versions = api.ok("GET", f"{ADMIN}/charter/versions")["items"]
    assert [(v["version"], v["amendment"]) for v in versions] == [(0, None), (1, 1)]
    assert _audit_actions(api, "amendment.canary") == [("amendment.canary.promote", "ok")]


def test_a_canary_whose_cohort_is_denied_more_than_before_is_withdrawn_and_alerted(api, caplog):
    """Amendment 1 with clause 2 requiring a network: the support cohort starts being denied."""
    tightened = AMENDMENT_1.replace(
        'may read "tickets/*" with MFA.', 'may read "tickets/*" with MFA, from network 10.0.0.0/8.'
    )
    erin = api.new_credential("erin")
    sam, lee = _approvers(api)
    plan = {"group": "support", "margin": 10, "min_decisions": 20, "baseline_days": 7}
    body = {"text": tightened, "canary": plan, "expectations": {"sample.expect": None}}  # it breaks a sample test
    api.ok("POST", f"{ADMIN}/amendments", 201, json=body, credential=erin)
    api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=sam)
    api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=lee)

    # The week before: carol reads tickets on weekdays with MFA, all allowed (baseline deny rate 0%).
    api.clock.set(dt.datetime(2026, 12, 10, 12, tzinfo=dt.UTC))
    for i in range(30):
        assert api.decide("carol", "read", f"tickets/{i}", mfa=True, time="2026-12-10T12:00:00Z")["decision"]
    api.http.app.state.decision_log.flush()
    _start(api)

    # Under the canary, the same reads from outside 10.0.0.0/8 are denied: the rate rises by 100 points.
    api.clock.advance(dt.timedelta(hours=1))
    for i in range(25):
        answer = api.decide("carol", "read", f"tickets/{i}", mfa=True, ip="192.0.2.1", time="2026-12-15T12:00:00Z")
        assert answer["decision"] is False
    api.http.app.state.decision_log.flush()
    api.clock.advance(dt.timedelta(minutes=1))
    [withdrawn] = api.http.app.state.scheduler.run_once()
    assert withdrawn["status"] == "withdrawn" and withdrawn["verdict"] == "withdraw"
    assert (withdrawn["baseline"]["decisions"], withdrawn["baseline"]["denies"]) == (30, 0)
    assert (withdrawn["during"]["decisions"], withdrawn["during"]["denies"]) == (25, 25)
    assert any("ALERT" in r.message and "withdrawn from canary" in r.message for r in caplog.records)

    assert api.http.app.state.engine.wait_for(api.stored_revision(), 5)
    assert api.decide("carol", "read", "tickets/1", mfa=True, ip="192.0.2.1", time="2026-12-15T12:00:00Z")["decision"]
    view = api.ok("GET", f"{ADMIN}/amendments/1")
    assert view["status"] == "withdrawn" and view["canary"]["outcome"]["verdict"] == "withdraw"
    assert _audit_actions(api, "amendment.canary") == [("amendment.canary.withdraw", "ok")]
    with api.http.app.state.engine.sessions() as session:  # webhooks and the event stream hear of it too
        [event] = session.scalars(select(EventRow).where(EventRow.type == "amendment.canary.withdrawn")).all()
    assert event.payload["number"] == 1 and event.payload["during"]["denies"] == 25


def test_a_bad_canary_plan_is_refused_and_stores_nothing(api):
    erin = api.new_credential("erin")
    for plan, field in (
        ({"group": "support", "percent": 5}, "group"),
        ({}, "group"),
        ({"percent": 0}, "percent"),
        ({"group": "nobody"}, "group"),
        ({"group": "support", "margin": -1}, "margin"),
        ({"group": "support", "promote_after_hours": 0}, "promote_after_hours"),
    ):
        response = api.request(
            "POST", f"{ADMIN}/amendments", json={"text": AMENDMENT_1, "canary": plan}, credential=erin
        )
        assert response.status_code in (400, 422), (plan, response.text)
        assert f"canary.{field}" in response.text, (plan, response.text)
    assert api.ok("GET", f"{ADMIN}/amendments")["total"] == 0


def test_a_percentage_cohort_is_stable_about_the_size_asked_and_differs_per_amendment():
    principals = [Principal("user", f"u{i}", frozenset(), {}) for i in range(4000)]
    plan = CanaryPlan.from_json({"percent": 10})
    first = cohort(plan, principals, "Acme/amendment 1")
    assert first == cohort(plan, list(reversed(principals)), "Acme/amendment 1")  # order and process do not matter
    assert 320 <= len(first) <= 480
    assert first != cohort(plan, principals, "Acme/amendment 2")
    assert all(in_percent("s", p.key, 100) for p in principals[:50])
    assert cohort(CanaryPlan.from_json({"group": "g"}), [Principal("user", "a", frozenset({"g"}), {})], "s") == {
        "user:a"
    }


def test_the_verdict_waits_for_enough_decisions_and_time():
    plan = CanaryPlan.from_json({"group": "g", "margin": 5, "min_decisions": 10, "promote_after_hours": 24})
    calm, day = Counts(100, 5), dt.timedelta(hours=24)
    assert judge(plan, calm, Counts(9, 9), dt.timedelta(hours=1)).action == "wait"  # too few to judge
    assert judge(plan, calm, Counts(10, 2), dt.timedelta(hours=1)).action == "withdraw"  # 20% vs 5%
    assert judge(plan, calm, Counts(100, 10), dt.timedelta(hours=1)).action == "wait"  # +5 is not more than 5
    assert judge(plan, calm, Counts(100, 10), day).action == "promote"
    try:
        CanaryPlan.from_json({"group": "g", "extra": 1})
    except InvalidPlan as error:
        assert error.field == "canary.extra"
    else:
        raise AssertionError("an unknown field was accepted")
