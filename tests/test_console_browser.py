"""The web console in a real browser: Playwright driving Debian's chromium (headless) against a live server.

One story, as people would live it: dave signs in with a password and a TOTP code and asks for write on a
staging database under clause 3 with a reason; alice (sre-leads), in another browser context, approves
it; dave sees the grant. The admin proposes an amendment and erin (security) approves it, having read the
side-by-side text and the plan. An application's decision is denied by clause 4; the admin finds that deny
in the audit trail, with its clause. On the way every console page is photographed: into the test's
temporary directory, or where CHARTER_CONSOLE_SHOTS names (`CHARTER_CONSOLE_SHOTS=docs/console` makes the
screenshots docs/console.md shows; they are not rewritten on every run, since ids and times change).

Without chromium (or the playwright package) the test skips, saying so; CHARTER_REQUIRE_BROWSER=1 (CI)
makes that a failure instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pyotp
import pytest

from charter.auth import passwords, totp
from charter.sealed import default_sealer
from oidc_helpers import PASSWORD, running

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
AMENDMENT = """Amendment 1 to Charter "Acme Production Access".
  Effective 2026-07-01.
  Reason "Auditors may read the finance reports".
  Approved by 1 member of group "security".

Insert clause 21: Members of group "auditors" may read "reports:finance/*".
"""


def _chromium():
    """Playwright's sync API, or a skip (a failure under CHARTER_REQUIRE_BROWSER=1) saying what is missing."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing is None and shutil.which(CHROMIUM) is None:
        missing = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("CHARTER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CHARTER_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"browser tests need {missing}")
    return sync_playwright


@pytest.fixture
def browser():
    sync_playwright = _chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def console(live):
    return running(live)


def _enrol(console, user: str) -> pyotp.TOTP:
    """Give `user` a password and a TOTP factor enrolled a minute ago (the account set-up, not under test)."""
    earlier = console.now() - dt.timedelta(minutes=1)
    with console.engine.sessions.begin() as session:
        passwords.set_password(session, user, PASSWORD, console.now())
        _, seed = totp.enrol(session, user, earlier, default_sealer())
        assert totp.confirm(session, user, pyotp.TOTP(seed).at(earlier), earlier, default_sealer())
    return pyotp.TOTP(seed)


@pytest.fixture
def shots(tmp_path, backend) -> Path:
    """Where the screenshots go: CHARTER_CONSOLE_SHOTS (the SQLite run only), else a temporary directory."""
    chosen = os.environ.get("CHARTER_CONSOLE_SHOTS")
    folder = Path(chosen) if chosen and backend.name == "sqlite" else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sign_in(console, browser, user: str, path: str, shot: Path | None = None):
    """A new browser context for `user`, signed in through the real pages (password, then the code), at `path`."""
    code = _enrol(console, user)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(console.url + path)
    assert page.url.startswith(console.url + "/login?next=")  # not signed in: sent to sign in first
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    if shot:
        page.screenshot(path=str(shot))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/login/mfa**")
    page.locator("input[name=code]").fill(code.at(console.now()))
    page.locator("button[type=submit]").click()
    page.wait_for_url(console.url + path)
    assert page.locator("#who").inner_text() == user
    return page


def _shoot(page, shots: Path, name: str, whole: bool = False) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=whole)


def _until(page, selector: str, text: str, seconds: float = 15.0) -> None:
    """Reload until `selector` holds `text` (the decision log is written a moment after the decision)."""
    deadline = time.monotonic() + seconds
    while text not in page.locator(selector).inner_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in {selector}"
        time.sleep(0.3)
        page.reload()


def test_request_approve_amend_and_find_a_deny(console, browser, shots):
    # dave (contractors) asks for write on staging under clause 3, with a reason
    dave = _sign_in(console, browser, "dave", "/console/access", shot=shots / "login.png")
    asking = dave.get_by_role("region", name="Request access")
    asking.get_by_label("Action").fill("write")
    asking.get_by_label("Resource").fill("db:staging/orders")
    asking.get_by_label("For how long").fill("4h")
    asking.get_by_label("Reason").fill("migrate the orders table (CHG-1234)")
    asking.get_by_role("button", name="Request").click()
    assert "Your request is in" in dave.get_by_role("status").inner_text()
    mine = dave.locator("#mine")
    assert "db:staging/orders" in mine.inner_text() and "pending" in mine.inner_text()
    assert "migrate the orders table" in mine.inner_text()
    # the charter does not let a contractor read the directory: a 403 page that says why
    refused = dave.goto(console.url + "/console/directory")
    assert refused.status == 403
    assert "does not allow you to read directory:users/*" in dave.locator("#problem").inner_text()

    # alice (sre-leads, the clause's approvers) sees it waiting, and approves it in her own browser
    alice = _sign_in(console, browser, "alice", "/console")
    assert "dave asks to write db:staging/orders" in alice.locator("#requests-to-decide").inner_text()
    alice.get_by_role("link", name="Access", exact=True).click()
    waiting = alice.locator("#to-decide")
    assert "migrate the orders table" in waiting.inner_text()
    waiting.get_by_label("Comment").fill("ok for the migration window")
    waiting.get_by_role("button", name="Approve").click()
    assert "Your approval is recorded" in alice.get_by_role("status").inner_text()

    # clause 14's review of the contractors falls to sre-leads: alice keeps dave, with a comment
    assert console.api.http.app.state.reviews.open_due_campaigns()
    alice.get_by_role("link", name="Reviews").click()
    review = alice.locator("section.card", has_text="Membership review")
    assert "Clause 14" in review.inner_text() and "user:dave" in review.inner_text()
    _shoot(alice, shots, "reviews")
    review.get_by_label("Comment on user:dave").fill("still on the migration project")
    review.get_by_role("button", name="Keep").click()
    assert "Kept" in alice.get_by_role("status").inner_text()
    alice.goto(console.url + "/console/reviews?status=done")
    assert "keep by user:alice" in alice.locator("main").inner_text()

    # dave sees the grant: on his request, and among what the explorer says he may do
    dave.goto(console.url + "/console/access")
    mine = dave.locator("#mine")
    assert "approved" in mine.inner_text() and "grant" in mine.inner_text()
    assert "alice: approve" in mine.inner_text()
    _shoot(dave, shots, "access")
    dave.goto(console.url + "/console/explorer?ask=what&subject_type=user&subject=dave")
    grant_row = dave.locator("#answer tr.grant")
    assert "write" in grant_row.inner_text() and "db:staging/orders" in grant_row.inner_text()
    assert "3" in grant_row.locator("td[data-label=Clause]").inner_text()

    # the admin proposes an amendment; erin (security) reads the diff and the plan and approves it
    admin = _sign_in(console, browser, "admin", "/console/amendments")
    admin.get_by_label("Amendment text").fill(AMENDMENT)
    admin.get_by_role("button", name="Propose").click()
    admin.wait_for_url("**/console/amendments/1?done=proposed")
    assert "proposed" in admin.locator("#status").inner_text()
    erin = _sign_in(console, browser, "erin", "/console")
    assert "Amendment 1" in erin.locator("#amendments-to-approve").inner_text()
    erin.get_by_role("link", name="Amendment 1").click()
    erin.wait_for_url("**/console/amendments/1")
    added = " ".join(erin.locator("#diff tr.added").all_inner_texts())
    assert 'Clause 21. Members of group "auditors" may read "reports:finance/*".' in added
    assert "auditors" in erin.locator("#plan").inner_text() or "No one" in erin.locator("#plan").inner_text()
    erin.get_by_role("button", name="Replay the last 7 days of decisions").click()
    assert "decisions logged in the last 7 days replayed" in erin.locator("#simulation").inner_text()
    _shoot(erin, shots, "amendment", whole=True)
    erin.get_by_label("Comment").fill("read-only, finance asked for it")
    erin.get_by_role("button", name="Approve").click()
    assert "Your approval of the amendment is recorded" in erin.get_by_role("status").inner_text()
    assert erin.locator("#status").inner_text() == "scheduled"  # quorum met; effective 2026-07-01
    assert "erin: approve" in erin.locator("#verdicts").inner_text()
    admin.goto(console.url + "/console/amendments")
    assert "scheduled" in admin.locator("#amendments").inner_text()
    _shoot(admin, shots, "amendments")

    # an application asks whether bob may delete a production table: denied by clause 4
    answer = console.api.decide("bob", "delete", "db:prod/orders")
    assert answer["decision"] is False and answer["context"]["clause"] == 4
    admin.goto(console.url + "/console/explorer")
    admin.locator("#why-subject").fill("bob")
    admin.locator("#why-action").fill("delete")
    admin.locator("#why-resource").fill("db:prod/orders")
    admin.get_by_role("button", name="Explain").click()
    assert "Denied" in admin.locator("#verdict").inner_text() and "clause 4" in admin.locator("#verdict").inner_text()
    assert "prohibition" in admin.locator("#trace").inner_text()
    _shoot(admin, shots, "explorer", whole=True)
    # ... and the admin finds that deny in the audit trail, with its clause
    admin.goto(console.url + "/console/audit")
    admin.get_by_label("Chain").select_option("decisions")
    admin.get_by_label("Actor or subject").fill("user:bob")
    admin.get_by_label("Outcome").select_option("deny")
    admin.get_by_role("button", name="Search").click()
    _until(admin, "#records", "db:prod/orders")
    row = admin.locator("#records tbody tr").first
    assert "deny" in row.inner_text() and "delete" in row.inner_text()
    assert row.locator("td.clause").inner_text().startswith("4")
    _shoot(admin, shots, "audit")
    with admin.expect_download() as downloading:
        admin.get_by_role("link", name="Export JSON Lines").click()
    exported = Path(downloading.value.path()).read_text()
    assert '"outcome":"deny"' in exported and '"clause":4' in exported
    row.get_by_role("link", name="Ask why under the charter in force now").click()
    assert "clause 4" in admin.locator("#verdict").inner_text()

    # the dashboard counts the day's sign-ins (every step here succeeded) and the deny
    admin.goto(console.url + "/console")
    assert admin.locator("#auth-rate").inner_text() == "100.0%"
    _shoot(admin, shots, "dashboard")
    # the remaining pages, photographed as the admin sees them
    for path, name in [
        ("/console/charter", "charter"),
        ("/console/directory", "directory"),
    ]:
        assert admin.goto(console.url + path).status == 200
        _shoot(admin, shots, name)
    # at phone width no page scrolls sideways (wide tables scroll inside their own box)
    admin.set_viewport_size(PHONE)
    for path in ["/console", "/console/charter", "/console/amendments/1", "/console/explorer", "/console/reviews",
                 "/console/directory", "/console/audit", "/console/access"]:  # fmt: skip
        admin.goto(console.url + path)
        width = admin.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways at phone width ({width}px)"
    _shoot(admin, shots, "access-phone")
