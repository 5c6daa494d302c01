"""The web console over HTTP without a browser: sign-in required, the charter deciding what each person sees
and does (a refusal is a 403 page naming why, and audited), CSRF on every form, each page rendering."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from oidc_helpers import browser, running, sign_in


@pytest.fixture
def console(live):
    return running(live)


def _person(console, user: str) -> httpx.Client:
    person = browser(console)
    sign_in(console, person, user)
    return person


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def test_every_page_renders_for_an_admin(console):
    admin = _person(console, "admin")
    for path in [
        "/console",
        "/console/charter",
        "/console/charter?as_of=2026-01-02",
        "/console/charter/versions/0",
        "/console/amendments",
        "/console/explorer",
        "/console/explorer?ask=who&action=read&resource=db:prod/orders",
        "/console/explorer?ask=what&subject_type=user&subject=alice",
        "/console/explorer?ask=why&subject_type=user&subject=bob&action=delete&resource=db:prod/orders",
        "/console/access",
        "/console/reviews",
        "/console/directory",
        "/console/directory?section=groups",
        "/console/directory?section=services",
        "/console/directory?section=partners",
        "/console/audit",
        "/console/audit?chain=decisions",
    ]:
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text)
        assert '<header class="top">' in page.text and '<main id="main">' in page.text and "aria-current" in page.text
        _every_field_has_a_label(path, page.text)


def _every_field_has_a_label(path: str, html: str) -> None:
    """Each visible input, select and textarea has a <label for> (or, a checkbox, sits inside its label)."""
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'type="hidden"' in tag or 'type="submit"' in tag:
            continue
        found = re.search(r'\bid="([^"]+)"', tag)
        if found is None:
            assert 'type="checkbox"' in tag, (path, tag)
            continue
        assert f'for="{found.group(1)}"' in html, (path, tag)


def test_not_signed_in_goes_to_sign_in_and_comes_back(console):
    with browser(console) as anonymous:
        page = anonymous.get("/console/audit?chain=decisions")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fconsole%2Faudit%3Fchain%3Ddecisions"
        posted = anonymous.post("/console/access/request", data={"action": "write"})
        assert posted.status_code == 303 and posted.headers["location"] == "/login"


def test_a_refusal_is_a_403_page_naming_why_and_is_audited(console):
    dave = _person(console, "dave")
    page = dave.get("/console/audit")
    assert page.status_code == 403
    assert "The charter does not allow you to read audit:audit: no clause of the charter allows it." in page.text
    denied = console.audit("read", "denied")
    assert denied[-1]["actor"] == "user:dave (client console)" and denied[-1]["target"] == "audit:audit"
    # about oneself the explorer answers; about someone else it needs read on the charter
    assert dave.get("/console/explorer?ask=what&subject_type=user&subject=dave").status_code == 200
    other = dave.get("/console/explorer?ask=what&subject_type=user&subject=alice")
    assert other.status_code == 403 and "read charter:Acme Production Access" in other.text
    # the dashboard still shows what is dave's, and says why the rest is not shown (without auditing a
    # refusal of each part it leaves out: he asked for none of them)
    refusals = len(console.audit("read", "denied"))
    home = dave.get("/console")
    assert home.status_code == 200 and "Not shown: The charter does not allow you to read audit:audit" in home.text
    assert len(console.audit("read", "denied")) == refusals


def test_forms_need_the_csrf_token(console):
    dave = _person(console, "dave")
    fields = {"action": "write", "resource": "db:staging/x", "duration": "1h", "reason": "r"}
    refused = dave.post("/console/access/request", data=fields)
    assert refused.status_code == 403 and "did not come from this site" in refused.text
    assert console.audit("request.create") == []
    token = _csrf(dave.get("/console/access"))
    done = dave.post("/console/access/request", data={**fields, "csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == "/console/access?done=requested"
    assert console.audit("request.create")[-1]["actor"] == "user:dave (client console)"


def test_approve_then_the_holder_revokes_the_grant(console):
    dave, alice = _person(console, "dave"), _person(console, "alice")
    fields = {"action": "write", "resource": "db:staging/x", "duration": "2h", "reason": "fix the index"}
    dave.post("/console/access/request", data={**fields, "csrf_token": _csrf(dave.get("/console/access"))})
    page = alice.get("/console/access")
    request_id = re.search(r'action="/console/access/requests/([^/]+)/decide"', page.text).group(1)
    done = alice.post(
        f"/console/access/requests/{request_id}/decide",
        data={"verdict": "approve", "comment": "go", "csrf_token": _csrf(page)},
    )
    assert done.headers["location"] == "/console/access?done=approved"
    assert console.api.decide("dave", "write", "db:staging/x")["decision"] is True
    page = dave.get("/console/access")
    grant = re.search(r'action="/console/access/grants/([^/]+)/revoke"', page.text).group(1)
    revoked = dave.post(f"/console/access/grants/{grant}/revoke", data={"csrf_token": _csrf(page)})
    assert revoked.headers["location"] == "/console/access?done=revoked"
    assert console.api.decide("dave", "write", "db:staging/x")["decision"] is False
    assert console.audit("grant.revoke")[-1]["actor"] == "user:dave (client console)"


def test_a_request_outside_any_clause_is_refused_with_the_reason(console):
    dave = _person(console, "dave")
    token = _csrf(dave.get("/console/access"))
    fields = {"action": "write", "resource": "db:prod/orders", "duration": "1h", "reason": "r", "csrf_token": token}
    page = dave.post("/console/access/request", data=fields)
    assert page.status_code == 403 and "Not done" in page.text
    assert "db:prod/orders" in page.text


def test_a_bad_amendment_is_shown_again_with_the_checker_message(console):
    admin = _person(console, "admin")
    token = _csrf(admin.get("/console/amendments"))
    text = 'Amendment 1 to Charter "Acme Production Access".\n  Effective 2026-07-01.\n\nStrike clause 99.\n'
    page = admin.post("/console/amendments", data={"text": text, "csrf_token": token})
    assert page.status_code == 422
    assert "clause 99" in page.text and "Strike clause 99." in page.text  # the message, and the text kept


def test_review_keep_and_revoke_through_the_console(console):
    reviews = console.api.http.app.state.reviews
    opened = reviews.open_due_campaigns()
    assert opened, "clause 14's campaign (contractors, by sre-leads) should be due on a fresh store"
    alice = _person(console, "alice")
    page = alice.get("/console/reviews")
    assert "Membership review of" in page.text and "user:dave" in page.text
    task = re.search(r'action="/console/reviews/([^/]+)/members"', page.text).group(1)
    done = alice.post(
        f"/console/reviews/{task}/members",
        data={"member": "user:dave", "verdict": "keep", "comment": "still on the project", "csrf_token": _csrf(page)},
    )
    assert done.status_code == 303
    after = alice.get("/console/reviews?status=done")
    assert "keep by user:alice" in after.text and "still on the project" in after.text


def test_figures_count_the_days_sign_ins_decisions_and_denies(console):
    from charter.clients import Caller
    from charter.overview import service_figures

    _person(console, "admin")
    with browser(console) as wrong:
        token = _csrf(wrong.get("/login"))
        wrong.post("/login", data={"username": "admin", "password": "not it", "csrf_token": token})
    console.api.decide("bob", "delete", "db:prod/orders")
    console.api.decide("alice", "read", "db:prod/orders")
    admin = console.api.http.app.state.admin
    import time

    deadline = time.monotonic() + 10
    while True:
        figures = service_figures(admin, Caller("t", "user", "admin"))
        totals = {s.name: s.total for s in figures["series"]}
        if totals["decisions"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert totals["decisions"] == 2 and totals["denies"] == 1
    assert totals["sign-in steps that succeeded"] == 2 and totals["sign-in steps refused"] == 1
    assert figures["auth_success_rate"] == pytest.approx(2 / 3) and figures["deny_rate"] == 0.5
    assert len(figures["series"][0].hourly) == 24 and figures["series"][0].hourly[-1] == 2


def test_the_diff_sets_the_two_texts_side_by_side(console):
    from charter.clients import Caller
    from charter.overview import amendment_diff

    text = (
        'Amendment 1 to Charter "Acme Production Access".\n  Effective 2026-07-01.\n  Reason "Longer retention".\n'
        '  Approved by 1 member of group "security".\n\n'
        "Replace clause 13 with: Audit records are kept for 400 days.\n"
    )
    console.api.ok("POST", "/admin/v1/amendments", 201, json={"text": text})
    rows = amendment_diff(console.api.http.app.state.admin, Caller("t", "user", "admin"), 1)
    changed = [(before, after) for kind, before, after in rows if kind == "changed"]
    assert (
        "Clause 13. Audit records are kept for 365 days.",
        "Clause 13. Audit records are kept for 400 days.",
    ) in changed
    assert ('Clause 1. Members of group "sre" may read and write "db:prod/*".',) * 2 in [
        (b, a) for kind, b, a in rows if kind == "same"
    ]


def test_a_person_signed_in_with_mfa_meets_the_charters_mfa_requirement(console):
    # erin is in group "admins", whom clause 10 requires to use MFA; made an iam-admin, she may read the
    # directory, because her console session proved a second factor
    console.api.ok("PUT", "/admin/v1/groups/iam-admins/members/users/erin")
    api_only = console.api.decide("erin", "read", "directory:users/*")
    assert api_only["decision"] is False and api_only["context"]["clause"] == 10  # without MFA: no
    erin = _person(console, "erin")
    page = erin.get("/console/directory")
    assert page.status_code == 200 and "grace" in page.text


def test_unchanged_runs_are_folded_around_the_changes():
    from charter.web.console import _fold

    rows = [("same", f"{i}", f"{i}") for i in range(10)] + [("changed", "a", "b")]
    rows += [("same", f"{i}", f"{i}") for i in range(10, 20)]
    folded = _fold(rows)
    assert folded[0] == ("fold", "8 unchanged lines", "")
    assert [r[1] for r in folded[1:6]] == ["8", "9", "a", "10", "11"]
    assert folded[-1] == ("fold", "8 unchanged lines", "")


def test_break_glass_gives_access_at_once_and_a_review_for_security(console):
    bob = _person(console, "bob")
    page = bob.get("/console/access")
    fields = {"action": "delete", "resource": "db:prod/orders", "duration": "30m", "reason": "INC-77 runaway rows"}
    done = bob.post("/console/access/break-glass", data={**fields, "csrf_token": _csrf(page)})
    assert done.headers["location"] == "/console/access?done=broke-glass"
    assert "Break glass used" in bob.get(done.headers["location"]).text
    assert console.api.decide("bob", "delete", "db:prod/orders")["decision"] is True
    used = console.audit("break_glass.use")[-1]
    assert used["actor"] == "user:bob (client console)" and used["reason"] == "INC-77 runaway rows"
    erin = _person(console, "erin")
    reviews = erin.get("/console/reviews")
    assert "Break glass review" in reviews.text and "Justified" in reviews.text


def test_an_approver_rejects_an_amendment_with_a_comment(console):
    text = (
        'Amendment 1 to Charter "Acme Production Access".\n  Effective 2026-07-01.\n  Reason "Tidy".\n'
        '  Approved by 1 member of group "security".\n\nStrike clause 15.\n'
    )
    console.api.ok("POST", "/admin/v1/amendments", 201, json={"text": text})
    erin = _person(console, "erin")
    page = erin.get("/console/amendments/1")
    removed = re.search(r'<tr class="removed"><td class="before">([^<]*)</td>', page.text)
    assert removed is not None and unescape(removed.group(1)) == 'Clause 15. Group "legacy-admins" is revoked.'
    done = erin.post(
        "/console/amendments/1/decide", data={"verdict": "reject", "comment": "keep it", "csrf_token": _csrf(page)}
    )
    assert done.headers["location"] == "/console/amendments/1?done=reject"
    after = erin.get(done.headers["location"])
    assert "rejected" in after.text and "erin: reject" in after.text and "keep it" in after.text
    # the proposer's own verdict is refused by the amendment's rules, shown as a page
    admin = _person(console, "admin")
    page = admin.get("/console/amendments/1")
    assert 'value="approve"' not in page.text  # no verdict form for the proposer
