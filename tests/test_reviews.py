"""Access reviews through the API on both backends: membership campaigns opened by the sweeper from the sample's
clause 14 (`Membership of group "contractors" is reviewed every 30 days by group "sre-leads".`), verdicts
(keep, revoke), overdue tasks in the list, the drift report and the events, and break-glass reviews (clause 5,
by group "security" within 24 hours). Break glass itself is built elsewhere: its review tasks are written here
as it will write them. Then the pure rules, and `charter review` through a running server.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

import test_amendment_e2e
from charter.policy import reviews as rules
from charter.store.models import EventRow, ReviewTaskRow
from conftest import API_TEST_TIME

REVIEWS = "/access/v1/reviews"
ADMIN = "/admin/v1"
WINDOW = dt.timedelta(days=14)  # the sample's 30-day period, capped at rules.LONGEST_WINDOW


def _sweep(api) -> list[dict]:
    return api.http.app.state.reviews.sweep()


def _person(api, name: str, groups: list[str]) -> str:
    api.ok("PUT", f"{ADMIN}/users/{name}", json={"groups": groups})
    return api.new_credential(name)


def _campaign(api) -> dict:
    """The contractors campaign, opened by a sweep, as the admin reads it."""
    [opened] = _sweep(api)
    return api.ok("GET", f"{REVIEWS}/{opened['task']}")


def _events(api, type_: str) -> list[dict]:
    with api.http.app.state.engine.sessions() as session:
        return [row.payload for row in session.scalars(select(EventRow).where(EventRow.type == type_))]


def _audit(api, action: str) -> list[dict]:
    return api.ok("GET", f"{ADMIN}/audit/audit", params={"action": action})["items"]


def _verdict(api, credential, task_id, member, verdict, status=200, comment=None):
    kind, name = member.split(":")
    body = {"verdict": verdict, "comment": comment}
    return api.ok("POST", f"{REVIEWS}/{task_id}/members/{kind}/{name}", status, credential=credential, json=body)


# --- membership campaigns ------------------------------------------------------------------------------


def test_the_contractors_campaign_opens_on_the_first_sweep_listing_dave_and_only_once(api):
    task = _campaign(api)
    assert (task["kind"], task["clause"], task["reviewer_group"], task["subject"]) == (
        "membership",
        14,
        "sre-leads",
        "group:contractors",
    )
    assert (task["status"], task["overdue"], task["pending"]) == ("open", False, ["user:dave"])
    assert task["opened_at"] == API_TEST_TIME.isoformat()
    assert task["due"] == (API_TEST_TIME + WINDOW).isoformat()
    assert task["details"]["members"] == [{"type": "user", "id": "dave", "through": ["contractors"], "state": "active"}]
    assert _sweep(api) == []  # one campaign a period
    [event] = _events(api, "review.opened")
    assert (event["task"], event["clause"], event["reviewer_group"]) == (task["id"], 14, "sre-leads")
    [record] = _audit(api, "review.open")
    assert (record["actor"], record["target"], record["clause"]) == (
        "charter review sweeper",
        f"reviews:{task['id']}",
        14,
    )


def test_only_members_of_the_reviewer_group_see_and_decide_and_refusals_are_audited(api, alice):
    task = _campaign(api)
    bob = api.new_credential("bob")  # sre, not sre-leads
    refused = api.request("POST", f"{REVIEWS}/{task['id']}/members/user/dave", credential=bob, json={"verdict": "keep"})
    assert refused.status_code == 403
    assert 'not a member of group "sre-leads"' in refused.json()["message"]
    [denied] = [r for r in _audit(api, "review.keep") if r["outcome"] == "denied"]
    assert (denied["target"], denied["clause"]) == (f"reviews:{task['id']}", 14)
    assert api.request("GET", f"{REVIEWS}/{task['id']}", credential=bob).status_code == 403
    # Someone who may not read the charter sees only the tasks they review; the admin (iam-admins) all.
    assert api.ok("GET", REVIEWS, credential=bob)["items"] == []
    mine = api.ok("GET", REVIEWS, credential=alice)
    assert (mine["scope"], [t["id"] for t in mine["items"]]) == ("mine", [task["id"]])
    assert api.ok("GET", REVIEWS)["scope"] == "all"
    assert api.ok("GET", REVIEWS, params={"mine": "true"})["items"] == []  # admin reviews nothing
    assert api.ok("GET", f"{REVIEWS}/{task['id']}", credential=alice)["id"] == task["id"]


def test_a_keep_closes_the_campaign_and_dave_stays(api, alice):
    task = _campaign(api)
    kept = _verdict(api, alice, task["id"], "user:dave", "keep", comment="still on the migration")
    assert (kept["status"], kept["closed_by"], kept["outcome"]) == (
        "done",
        "user:alice",
        {"kept": ["user:dave"], "revoked": []},
    )
    assert kept["details"]["verdicts"]["user:dave"]["comment"] == "still on the migration"
    assert api.ok("GET", f"{ADMIN}/users/dave")["groups"] == ["contractors"]
    [record] = _audit(api, "review.keep")
    assert (record["outcome"], record["clause"], record["details"]["member"]) == ("ok", 14, "user:dave")
    twice = api.request(
        "POST", f"{REVIEWS}/{task['id']}/members/user/dave", credential=alice, json={"verdict": "revoke"}
    )
    assert twice.status_code == 409
    assert [t["id"] for t in api.ok("GET", REVIEWS, params={"status": "done"})["items"]] == [task["id"]]
    assert api.ok("GET", REVIEWS, params={"status": "open"})["items"] == []


def test_a_revoke_removes_daves_membership_at_once_through_the_audited_path(api, alice):
    from charter.audit.history import directory_at

    task = _campaign(api)
    assert api.decide("dave", "write", "db:staging/app")["context"]["eligible_clause"] == 3
    before = api.clock.now()
    api.clock.advance(dt.timedelta(hours=1))
    revoked = _verdict(api, alice, task["id"], "user:dave", "revoke", comment="contract ended")
    assert revoked["status"] == "done" and revoked["outcome"] == {"kept": [], "revoked": ["user:dave"]}
    assert revoked["details"]["verdicts"]["user:dave"]["removed_from"] == ["contractors"]
    assert api.ok("GET", f"{ADMIN}/users/dave")["groups"] == []
    assert api.ok("GET", f"{ADMIN}/groups/contractors")["members"] == []
    # The removal is recorded as any removal is, so the directory's history rebuilds: dave was a contractor.
    [removal] = _audit(api, "directory.group.member.remove")
    assert (removal["actor"].split(" ")[0], removal["target"], removal["clause"]) == (
        "user:alice",
        "directory:groups/contractors",
        14,
    )
    assert removal["details"]["member"] == {"kind": "user", "name": "dave"}
    assert removal["details"]["changed"] is True and removal["details"]["review"] == task["id"]
    [record] = _audit(api, "review.revoke")
    assert record["details"]["removed_from"] == ["contractors"]
    with api.http.app.state.engine.sessions() as session:
        assert directory_at(session, before)[0].users["dave"].groups == ("contractors",)
    with api.http.app.state.engine.sessions() as session:
        assert directory_at(session, api.clock.now())[0].users["dave"].groups == ()
    # The decision changed at once: dave may no longer ask for what contractors may request (clause 3).
    assert "eligible_clause" not in api.decide("dave", "write", "db:staging/app")["context"]


def test_a_member_through_a_nested_group_is_revoked_by_removing_the_membership_that_gives_it(api, alice):
    api.ok("PUT", f"{ADMIN}/groups/vendors", json={"parents": ["contractors"]})
    api.ok("PUT", f"{ADMIN}/users/victor", json={"groups": ["vendors", "support"]})
    task = _campaign(api)
    assert [(m["id"], m["through"]) for m in task["details"]["members"]] == [
        ("dave", ["contractors"]),
        ("victor", ["vendors"]),
    ]
    revoked = _verdict(api, alice, task["id"], "user:victor", "revoke")
    assert revoked["details"]["verdicts"]["user:victor"]["removed_from"] == ["vendors"]
    assert (revoked["status"], revoked["pending"]) == ("open", ["user:dave"])
    assert api.ok("GET", f"{ADMIN}/users/victor")["groups"] == ["support"]
    done = _verdict(api, alice, task["id"], "user:dave", "keep")
    assert done["outcome"] == {"kept": ["user:dave"], "revoked": ["user:victor"]}


def test_a_reviewer_never_decides_about_their_own_membership(api, alice):
    api.ok("PUT", f"{ADMIN}/groups/contractors/members/users/alice")
    task = _campaign(api)
    own = api.request("POST", f"{REVIEWS}/{task['id']}/members/user/alice", credential=alice, json={"verdict": "keep"})
    assert own.status_code == 403 and "their own membership" in own.json()["message"]
    bob = _person(api, "bob", ["sre", "sre-leads"])
    assert _verdict(api, bob, task["id"], "user:alice", "keep")["pending"] == ["user:dave"]


def test_bad_verdicts_unknown_tasks_and_members_are_refused(api, alice):
    task = _campaign(api)
    path = f"{REVIEWS}/{task['id']}/members/user/dave"
    assert api.request("POST", path, credential=alice, json={"verdict": "maybe"}).status_code == 400
    assert api.request("POST", path, credential=alice, json={"verdict": "keep", "extra": 1}).status_code == 400
    assert (
        api.request("POST", f"{REVIEWS}/nope/members/user/dave", credential=alice, json={"verdict": "keep"}).status_code
        == 404
    )
    assert (
        api.request(
            "POST", f"{REVIEWS}/{task['id']}/members/user/bob", credential=alice, json={"verdict": "keep"}
        ).status_code
        == 404
    )
    assert (
        api.request(
            "POST", f"{REVIEWS}/{task['id']}/members/group/x", credential=alice, json={"verdict": "keep"}
        ).status_code
        == 400
    )
    complete = api.request("POST", f"{REVIEWS}/{task['id']}/complete", credential=alice, json={"outcome": "ok"})
    assert complete.status_code == 409
    assert api.request("GET", REVIEWS, params={"status": "late"}).status_code == 400
    assert api.request("GET", REVIEWS, credential="").status_code == 401


def test_a_campaign_left_past_its_due_date_is_overdue_in_the_list_the_drift_report_and_one_event(api):
    task = _campaign(api)
    api.clock.advance(WINDOW)
    assert api.ok("GET", REVIEWS, params={"status": "overdue"})["items"] == []  # due now: still on time
    assert _sweep(api) == []
    api.clock.advance(dt.timedelta(seconds=1))
    [listed] = api.ok("GET", REVIEWS, params={"status": "overdue"})["items"]
    assert (listed["id"], listed["overdue"]) == (task["id"], True)
    [flagged] = _sweep(api)
    assert (flagged["task"], flagged["action"]) == (task["id"], "overdue")
    assert _sweep(api) == []  # flagged once
    [event] = _events(api, "review.overdue")
    assert (event["task"], event["clause"]) == (task["id"], 14)
    drift = api.ok("GET", f"{ADMIN}/drift")
    [finding] = [f for f in drift["findings"] if f["check"] == "review-overdue"]
    assert (finding["subject"], finding["clause"]) == (f"review:{task['id']}", 14)
    assert 'group "contractors"' in finding["detail"]
    assert "review-overdue" not in [n["check"] for n in drift["not_checked"]]
    # Still open a period later, it is still what reviewers must finish: no second campaign meanwhile.
    api.clock.advance(dt.timedelta(days=30))
    assert _sweep(api) == []


def test_the_next_campaign_opens_a_period_after_the_last(api, alice):
    task = _campaign(api)
    _verdict(api, alice, task["id"], "user:dave", "keep")
    api.clock.advance(dt.timedelta(days=30) - dt.timedelta(seconds=1))
    assert _sweep(api) == []
    api.clock.advance(dt.timedelta(seconds=1))
    [opened] = _sweep(api)
    assert opened["task"] != task["id"]
    nxt = api.ok("GET", f"{REVIEWS}/{opened['task']}")
    assert (nxt["status"], nxt["pending"], nxt["opened_at"]) == (
        "open",
        ["user:dave"],
        (API_TEST_TIME + dt.timedelta(days=30)).isoformat(),
    )
    assert len(_events(api, "review.opened")) == 2


def test_a_group_with_no_members_is_reviewed_and_done_at_once(api, alice):
    api.ok("DELETE", f"{ADMIN}/groups/contractors/members/users/dave")
    [opened] = _sweep(api)
    task = api.ok("GET", f"{REVIEWS}/{opened['task']}")
    assert (task["status"], task["outcome"], task["closed_by"]) == (
        "done",
        {"kept": [], "revoked": []},
        "charter review sweeper",
    )
    assert _events(api, "review.opened") == []


# --- break-glass reviews ----------------------------------------------------------------------------------


def _break_glass_task(api, user: str = "bob") -> str:
    """A use of break glass by `user` under clause 5, and its review task, as break glass will write them."""
    now = api.clock.now()
    grant = {
        "kind": "break glass",
        "subject_type": "user",
        "subject": user,
        "actions": ["delete"],
        "resource": "db:prod/orders",
        "ends": (now + dt.timedelta(hours=1)).isoformat(),
        "clause": 5,
    }
    grant_id = api.ok("POST", f"{ADMIN}/grants", 201, json=grant)["id"]
    task_id = f"bg-{grant_id}"
    with api.http.app.state.engine.sessions.begin() as session:
        session.add(
            ReviewTaskRow(
                id=task_id,
                kind="break glass",
                clause=5,
                reviewer_group="security",
                subject=grant_id,
                details={"subject": f"user:{user}", "reason": "orders table corrupted"},
                status="open",
                opened_at=now,
                due=now + dt.timedelta(hours=24),
            )
        )
    return task_id


def test_a_member_of_security_completes_a_break_glass_review(api):
    task_id = _break_glass_task(api)
    erin = api.new_credential("erin")  # security
    body = {"outcome": "misuse", "comment": "no incident ticket"}
    done = api.ok("POST", f"{REVIEWS}/{task_id}/complete", credential=erin, json=body)
    assert (done["status"], done["closed_by"]) == ("done", "user:erin")
    assert (done["outcome"]["outcome"], done["outcome"]["comment"]) == ("misuse", "no incident ticket")
    again = api.request("POST", f"{REVIEWS}/{task_id}/complete", credential=erin, json={"outcome": "ok"})
    assert again.status_code == 409
    [record] = [r for r in _audit(api, "review.complete") if r["outcome"] == "ok"]
    assert (record["clause"], record["details"]["outcome"]) == (5, "misuse")
    [refused] = [r for r in _audit(api, "review.complete") if r["outcome"] == "denied"]
    assert "already done" in refused["details"]["reasons"][0]
    bad = api.request("POST", f"{REVIEWS}/{_break_glass_task(api)}/complete", credential=erin, json={"outcome": "fine"})
    assert bad.status_code == 400


def test_the_break_glass_user_cannot_complete_their_own_review(api):
    task_id = _break_glass_task(api, "bob")
    bob = _person(api, "bob", ["sre", "security"])
    own = api.request("POST", f"{REVIEWS}/{task_id}/complete", credential=bob, json={"outcome": "ok"})
    assert own.status_code == 403 and "used this break glass" in own.json()["message"]
    alice = api.new_credential("alice")  # not in security
    assert (
        api.request("POST", f"{REVIEWS}/{task_id}/complete", credential=alice, json={"outcome": "ok"}).status_code
        == 403
    )
    verdict = api.request("POST", f"{REVIEWS}/{task_id}/members/user/bob", credential=bob, json={"verdict": "keep"})
    assert verdict.status_code == 409  # a break-glass review has no members


def test_a_break_glass_review_left_24_hours_and_a_second_is_overdue(api):
    task_id = _break_glass_task(api)
    api.clock.advance(dt.timedelta(hours=24))
    assert api.ok("GET", f"{REVIEWS}/{task_id}")["overdue"] is False
    api.clock.advance(dt.timedelta(seconds=1))
    assert api.ok("GET", f"{REVIEWS}/{task_id}")["overdue"] is True
    swept = _sweep(api)
    # Flagged; and the contractors campaign opens all the same: other kinds of task do not count as one.
    assert [(r["action"], r.get("group")) for r in swept] == [("overdue", None), ("opened", "contractors")]
    assert swept[0]["task"] == task_id
    [event] = _events(api, "review.overdue")
    assert (event["kind"], event["clause"], event["reviewer_group"]) == ("break glass", 5, "security")
    [finding] = [f for f in api.ok("GET", f"{ADMIN}/drift")["findings"] if f["subject"] == f"review:{task_id}"]
    assert finding["clause"] == 5 and "break-glass grant" in finding["detail"]
    erin = api.new_credential("erin")
    late = api.ok("POST", f"{REVIEWS}/{task_id}/complete", credential=erin, json={"outcome": "ok"})
    assert (late["status"], late["overdue"]) == ("done", False)


# --- the rules, on plain data ------------------------------------------------------------------------------


def test_the_due_window_is_the_period_capped_at_two_weeks():
    week, month = dt.timedelta(days=7), dt.timedelta(days=30)
    assert rules.Campaign(1, "g", "r", week, "7 days").window == week
    assert rules.Campaign(1, "g", "r", month, "30 days").window == rules.LONGEST_WINDOW


@pytest.mark.parametrize(
    ("last", "still_open", "due"),
    [(None, False, True), (29, False, False), (30, False, True), (45, True, False)],
)
def test_a_campaign_is_due_at_once_then_a_period_after_the_last_never_while_one_is_open(last, still_open, due):
    now = API_TEST_TIME
    campaign = rules.Campaign(14, "contractors", "sre-leads", dt.timedelta(days=30), "30 days")
    opened = None if last is None else now - dt.timedelta(days=last)
    assert rules.campaign_due(campaign, opened, still_open, now) is due


def test_through_names_the_direct_groups_that_give_membership_of_a_nested_group():
    parents = {"vendors": ["contractors"], "agency": ["vendors"], "support": []}
    assert rules.through(["agency", "support"], "contractors", parents) == ("agency",)
    assert rules.through(["contractors", "vendors"], "contractors", parents) == ("contractors", "vendors")
    assert rules.through(["support"], "contractors", parents) == ()


# --- charter review, through a running server -----------------------------------------------------------------


def test_charter_review_through_the_cli(live):
    as_person = test_amendment_e2e.as_person
    server, api = live
    alice = api.new_credential("alice")
    [opened] = api.http.app.state.reviews.sweep()
    task_id = opened["task"]
    listed = as_person(server, alice, "review", "list", "--mine")
    assert listed.exit_code == 0, listed.output
    assert task_id in listed.output and "user:dave" in listed.output and "to review" in listed.output
    bob = api.new_credential("bob")
    refused = as_person(server, bob, "review", "keep", task_id, "dave")
    assert refused.exit_code == 1 and "403" in refused.output
    revoked = as_person(server, alice, "review", "revoke", task_id, "user:dave", "--comment", "contract ended")
    assert revoked.exit_code == 0, revoked.output
    assert "removed from group contractors" in revoked.output and "done" in revoked.output
    assert as_person(server, alice, "review", "list").output.strip() == "no review tasks"
    task_id = _break_glass_task(api, "bob")
    erin = api.new_credential("erin")
    completed = as_person(server, erin, "review", "complete", task_id, "--outcome", "ok")
    assert completed.exit_code == 0 and "done, ok" in completed.output
