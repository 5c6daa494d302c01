"""Just-in-time access and break glass end to end: the CLI and the API of a running server (a test clock), on
both backends; approvals under concurrency; a revocation seen by a second server (real processes)."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from charter.cli.main import cli
from charter.store.models import EventRow, GrantRow, ReviewTaskRow
from live import LiveServer

ADMIN = "/admin/v1"
STAGING = {"action": "write", "resource": "db:staging/app", "reason": "migrate the orders table"}


def as_person(server: LiveServer, credential: str, *args: str):
    return CliRunner().invoke(cli, list(args), env={"CHARTER_URL": server.url, "CHARTER_CREDENTIAL": credential})


def dave_may_write(api, at: dt.datetime | None = None) -> bool:
    context = {"time": at.isoformat()} if at is not None else {}
    return api.decide("dave", "write", "db:staging/app", **context)["decision"]


def test_a_contractor_requests_staging_write_an_sre_lead_approves_and_it_ends_on_time(live):
    server, api = live
    dave, alice, bob = (api.new_credential(who) for who in ("dave", "alice", "bob"))
    assert dave_may_write(api) is False

    # 9 hours is more than clause 3 allows: refused, citing the clause; nothing is stored.
    nine = as_person(server, dave, "request", "write", "db:staging/app", "--for", "9h", "--reason", "long one")
    assert nine.exit_code == 1
    assert "clause 3 allows requests for up to 8 hours, 9 hours asked" in nine.output
    refused = api.request("POST", "/access/v1/requests", json={**STAGING, "duration": "9h"}, credential=dave)
    assert refused.status_code == 403 and refused.json()["details"][0]["clause"] == 3
    no_reason = api.request("POST", "/access/v1/requests", json={**STAGING, "reason": None, "duration": "8h"},
                            credential=dave)  # fmt: skip
    assert no_reason.status_code == 403 and "clause 3 requires a reason" in no_reason.text
    elsewhere = api.request("POST", "/access/v1/requests", json={**STAGING, "resource": "db:prod/x", "duration": "1h"},
                            credential=dave)  # fmt: skip
    assert elsewhere.status_code == 403 and "no clause lets user dave request write on db:prod/x" in elsewhere.text
    assert api.ok("GET", "/access/v1/requests", credential=dave)["items"] == []

    # 8 hours with a reason: pending until one member of sre-leads approves.
    asked = as_person(server, dave, "request", "write", "db:staging/app", "--for", "8h", "--reason", STAGING["reason"])
    assert asked.exit_code == 0, asked.output
    request_id = asked.output.split()[1].rstrip(":")
    assert "pending" in asked.output and "under clause 3" in asked.output
    assert dave_may_write(api) is False
    self_approval = as_person(server, dave, "approve", request_id)
    assert self_approval.exit_code == 1 and "dave made request" in self_approval.output
    not_a_lead = as_person(server, bob, "approve", request_id)  # sre, not sre-leads
    assert not_a_lead.exit_code == 1 and "not a member of a group that approves" in not_a_lead.output
    assert [r["id"] for r in api.ok("GET", "/access/v1/requests?status=pending", credential=alice)["items"]] == [
        request_id
    ]

    approved_at = api.clock.now()
    approved = as_person(server, alice, "approve", request_id, "--comment", "go ahead")
    assert approved.exit_code == 0, approved.output
    assert "approved" in approved.output and ", grant " in approved.output
    assert dave_may_write(api) is True
    decision = api.decide("dave", "write", "db:staging/app")
    assert decision["context"]["basis"] == "grant" and decision["context"]["clause"] == 3

    # Exactly 8 hours: allowed one second before, denied one second after, with no sweeper in between.
    assert dave_may_write(api, approved_at + dt.timedelta(hours=8, seconds=-1)) is True
    api.clock.set(approved_at + dt.timedelta(hours=8, seconds=1))
    assert dave_may_write(api) is False
    assert dave_may_write(api, approved_at + dt.timedelta(hours=8)) is False  # the end is exclusive


def test_two_approvers_at_once_on_a_one_approver_request_make_exactly_one_grant(live):
    server, api = live
    api.ok("PUT", f"{ADMIN}/users/lena", json={"groups": ["sre-leads"]})
    dave, alice, lena = (api.new_credential(who) for who in ("dave", "alice", "lena"))
    for _ in range(5):
        request_id = api.ok("POST", "/access/v1/requests", 201, json={**STAGING, "duration": "1h"}, credential=dave)[
            "id"
        ]

        def approve(credential: str, request_id: str = request_id) -> int:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                path = f"/access/v1/requests/{request_id}/approve"
                return client.post(path, headers={"Authorization": f"Bearer {credential}"}).status_code

        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(approve, (alice, lena)))
        assert statuses == [200, 409]
        with api.http.app.state.engine.sessions() as session:
            grants = session.scalars(select(GrantRow).where(GrantRow.created_by == f"request {request_id}")).all()
        assert len(grants) == 1
        view = api.ok("GET", f"/access/v1/requests/{request_id}", credential=dave)
        assert view["status"] == "approved" and len(view["verdicts"]) == 1 and view["grant"] == grants[0].id


def test_a_grant_is_revoked_by_its_approver_its_holder_or_an_admin_and_not_by_others(live):
    server, api = live
    dave, alice, bob = (api.new_credential(who) for who in ("dave", "alice", "bob"))
    grants = []
    for _ in range(3):
        request_id = api.ok("POST", "/access/v1/requests", 201, json={**STAGING, "duration": "2h"}, credential=dave)[
            "id"
        ]
        grants.append(api.ok("POST", f"/access/v1/requests/{request_id}/approve", credential=alice)["grant"])
    assert api.request("DELETE", f"/access/v1/grants/{grants[0]}", credential=bob).status_code == 403
    for grant, who in zip(grants, (alice, dave, api.admin_credential), strict=True):
        assert dave_may_write(api) is True
        revoked = as_person(server, who, "revoke", grant)
        assert revoked.exit_code == 0, revoked.output
    assert dave_may_write(api) is False
    assert api.request("DELETE", f"/access/v1/grants/{grants[0]}", credential=alice).status_code == 409


def test_undecided_requests_escalate_then_expire_by_the_charter(live):
    """Clause 16: requests not decided within 4 hours escalate to group "security"."""
    _, api = live
    dave, erin = api.new_credential("dave"), api.new_credential("erin")  # erin: security, not sre-leads
    request_id = api.ok("POST", "/access/v1/requests", 201, json={**STAGING, "duration": "1h"}, credential=dave)["id"]
    assert api.request("POST", f"/access/v1/requests/{request_id}/approve", credential=erin).status_code == 403
    api.clock.advance(dt.timedelta(hours=4, seconds=1))
    api.http.app.state.scheduler.run_once()
    view = api.ok("GET", f"/access/v1/requests/{request_id}", credential=dave)
    assert view["escalated_to"] == "security"
    assert api.ok("POST", f"/access/v1/requests/{request_id}/approve", credential=erin)["status"] == "approved"
    with api.http.app.state.engine.sessions() as session:
        types = [e.type for e in session.scalars(select(EventRow).order_by(EventRow.id))]
    assert types == ["request.created", "request.escalated", "request.approved"]


def test_break_glass_grants_at_once_with_a_loud_record_an_event_a_metric_and_a_review_due(live, caplog):
    import json

    from test_notify import Receiver, expected_signature

    server, api = live
    receiver = Receiver().__enter__()
    hook = api.ok("POST", f"{ADMIN}/webhooks", 201, json={"url": receiver.url, "events": ["break_glass.used"]})
    alice = api.new_credential("alice")  # sre: clause 5, up to 1 hour, reviewed by security within 24 hours
    dave = api.new_credential("dave")
    before = _break_glass_count(server)
    assert api.decide("alice", "delete", "db:prod/orders")["decision"] is False  # clause 4, except by break glass

    too_long = as_person(server, alice, "break-glass", "delete", "db:prod/orders", "--for", "2h", "--reason", "r")
    assert too_long.exit_code == 1 and "clause 5 allows break glass for up to 1 hour, 2 hours asked" in too_long.output
    assert as_person(server, dave, "break-glass", "delete", "db:prod/x", "--for", "1h", "--reason", "r").exit_code == 1

    used = as_person(server, alice, "break-glass", "delete", "db:prod/orders", "--for", "1h", "--reason", "outage 42")
    assert used.exit_code == 0, used.output
    assert used.output.startswith("BREAK GLASS: grant ")
    answer = api.decide("alice", "delete", "db:prod/orders")
    assert answer["decision"] is True and answer["context"]["basis"] == "break glass"
    assert any("BREAK GLASS" in r.message and "outage 42" in r.message for r in caplog.records)
    assert _break_glass_count(server) == before + 1

    with api.http.app.state.engine.sessions() as session:
        [task] = session.scalars(select(ReviewTaskRow)).all()
        events = [e.type for e in session.scalars(select(EventRow).order_by(EventRow.id))]
    assert (task.kind, task.clause, task.reviewer_group, task.status) == ("break glass", 5, "security", "open")
    assert task.details["subject"] == "user:alice" and task.details["reason"] == "outage 42"
    due = task.due if task.due.tzinfo else task.due.replace(tzinfo=dt.UTC)
    assert due - api.clock.now() == dt.timedelta(hours=24)
    assert events == ["break_glass.used", "review.opened"]

    # The webhook subscribed to break glass receives it, signed with its secret.
    api.http.app.state.deliverer.run_once()  # (or the server's own deliverer thread got there first)
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    receiver.__exit__()
    [sent] = receiver.requests
    body = json.loads(sent["body"])
    assert body["type"] == "break_glass.used" and body["payload"]["reason"] == "outage 42"
    assert body["payload"]["grant"]["subject"] == {"type": "user", "id": "alice"}
    timestamp, signature = (part.split("=", 1)[1] for part in sent["headers"]["Charter-Signature"].split(","))
    assert signature == expected_signature(hook["secret"], timestamp, sent["body"])
    records = api.ok("GET", f"{ADMIN}/audit/audit?action=break_glass.use")["items"]
    assert sorted(r["outcome"] for r in records) == ["denied", "denied", "ok"]  # refusals are audited too
    [used_record] = [r for r in records if r["outcome"] == "ok"]
    assert used_record["details"]["loud"] is True and used_record["details"]["clause"] == 5

    api.clock.advance(dt.timedelta(hours=1, seconds=1))
    assert api.decide("alice", "delete", "db:prod/orders")["decision"] is False  # the hour is over

    # The security review left past its 24 hours is overdue: in the drift report and the review list.
    assert not [f for f in api.ok("GET", f"{ADMIN}/drift")["findings"] if f["check"] == "review-overdue"]
    api.clock.advance(dt.timedelta(hours=23))
    overdue = [f for f in api.ok("GET", f"{ADMIN}/drift")["findings"] if f["check"] == "review-overdue"]
    assert [f["clause"] for f in overdue] == [5]
    assert [t["id"] for t in api.ok("GET", "/access/v1/reviews?status=overdue")["items"]] == [task.id]


def _break_glass_count(server: LiveServer) -> float:
    text = httpx.get(server.url + "/metrics").text
    lines = [line for line in text.splitlines() if line.startswith('charter_break_glass_total{clause="5"}')]
    return float(lines[0].split()[-1]) if lines else 0.0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_grant_revoked_on_one_server_is_denied_on_a_second_within_a_second(backend, servers):
    from test_servers import bearer, server_env

    env = server_env(backend)
    first = servers.start("first", env)
    second = servers.start("second", env)
    admin = first.credential()
    with httpx.Client(timeout=10.0) as client:

        def credential(user: str) -> str:
            body = {"name": user, "subject_type": "user", "subject": user}
            response = client.post(first.url + f"{ADMIN}/clients", json=body, headers=bearer(admin))
            assert response.status_code == 201, response.text
            return response.json()["credential"]

        dave, alice = credential("dave"), credential("alice")
        asked = client.post(
            first.url + "/access/v1/requests", json={**STAGING, "duration": "1h"}, headers=bearer(dave)
        ).json()
        approved = client.post(first.url + f"/access/v1/requests/{asked['id']}/approve", headers=bearer(alice))
        assert approved.status_code == 200, approved.text

        def dave_on_second() -> bool:
            body = {
                "subject": {"type": "user", "id": "dave"},
                "action": {"name": "write"},
                "resource": {"type": "db", "id": "staging/app"},
            }
            return client.post(second.url + "/access/v1/evaluation", json=body, headers=bearer(admin)).json()[
                "decision"
            ]

        deadline = time.monotonic() + 5
        while not dave_on_second():
            assert time.monotonic() < deadline, "the second server never saw the grant"
            time.sleep(0.02)
        revoked = client.delete(first.url + f"/access/v1/grants/{approved.json()['grant']}", headers=bearer(alice))
        since = time.monotonic()
        assert revoked.status_code == 200, revoked.text
        while dave_on_second():
            assert time.monotonic() - since < 1.0, "the second server still allowed the revoked grant after 1 s"
            time.sleep(0.01)
