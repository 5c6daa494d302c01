"""Authentication end to end: passwords, the sign-in pages, TOTP MFA and recovery codes, lockout, the per-address
limit, sessions, MFA reset by quorum, open redirects. A real server (the `live` fixture, a test clock) on both
backends, driven like a browser without JavaScript: forms posted with the CSRF token read from the page."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from charter.auth import passwords, totp
from charter.cli.main import cli
from charter.sealed import default_sealer
from charter.store.db import sessions as make_sessions
from charter.store.models import MfaFactorRow, PasswordRow, RecoveryCodeRow, SessionRow

PASSWORD = "correct staple orbit lantern"
GENERIC = "The user name or password is wrong, or the account is locked for a while."
ADMIN = "/admin/v1"


class Browser:
    """A browser without JavaScript: cookies kept, redirects not followed, forms posted with their CSRF token."""

    def __init__(self, server):
        self.http = httpx.Client(base_url=server.url, follow_redirects=False)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def form(self, page: str, action: str, **fields) -> httpx.Response:
        html = self.get(page).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token is not None, html
        return self.http.post(action, data={"csrf_token": token.group(1), **fields})

    def sign_in(self, user: str, password: str = PASSWORD, next_path: str | None = None) -> httpx.Response:
        page = "/login" + (f"?next={next_path}" if next_path else "")
        extra = {"next": next_path} if next_path else {}
        return self.form(page, "/login", username=user, password=password, **extra)

    def code(self, code: str) -> httpx.Response:
        return self.form("/login/mfa", "/login/mfa", code=code)

    def who(self) -> str | None:
        page = self.get("/account")
        if page.status_code != 200:
            return None
        return re.search(r'<span id="user">([^<]+)</span>', page.text).group(1)  # type: ignore[union-attr]


def error_of(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert">([^<]+)</p>', response.text)
    return found.group(1).replace("&#39;", "'") if found else ""


def set_password(db, user: str, password: str = PASSWORD) -> None:
    with make_sessions(db).begin() as session:
        passwords.set_password(session, user, password, dt.datetime.now(dt.UTC))


def audit(api, action: str, **filters) -> list[dict]:
    query = {"action": action, **filters}
    return api.ok("GET", f"{ADMIN}/audit/audit", params=query)["items"]


def secret_of(db, user: str) -> str:
    with make_sessions(db)() as session:
        row = session.get(MfaFactorRow, user)
        return default_sealer().open(row.sealed_secret).decode()


def code_at(secret: str, clock, later: dt.timedelta = dt.timedelta(0)) -> str:
    return pyotp.TOTP(secret).at(clock.now() + later)


# --- passwords -----------------------------------------------------------------------------------------


def test_the_password_policy_refuses_short_long_common_and_name_bearing_passwords_saying_why(monkeypatch, tmp_path):
    cases = {
        "short1": "too short: 6 characters, at least 12 expected",
        "x" * 257 + "y": "too long: 258 characters, at most 256 expected",
        "aaaaaaaaaaaaaa": "one character repeated",
        "Password1234": "list of common or leaked passwords",
        "qwertyuiop123": "list of common or leaked passwords",
        "my bob is great!": "contains the user name",
    }
    for password, message in cases.items():
        with pytest.raises(passwords.WeakPassword, match=re.escape(message)):
            passwords.check_policy(password, "bob")
    passwords.check_policy(PASSWORD, "bob")  # no composition rules: four words pass
    passwords.check_policy("ünïcode wörds hére", "bob")

    # A larger list: plain lines and HIBP-style SHA1:count lines, detected line by line.
    extra = tmp_path / "breached.txt"
    leaked = "orange giraffe umbrella"
    import hashlib

    extra.write_text(f"{hashlib.sha1(leaked.encode()).hexdigest().upper()}:42\nsome plain leaked one\n")
    monkeypatch.setenv(passwords.BREACHED_ENVIRONMENT, str(extra))
    for password in (leaked, "Some Plain Leaked One"):
        with pytest.raises(passwords.WeakPassword, match="leaked"):
            passwords.check_policy(password, "bob")
    passwords.check_policy(PASSWORD, "bob")


def test_hashes_are_argon2id_and_an_unknown_account_still_costs_one_verification():
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert passwords.verify(stored, PASSWORD) and not passwords.verify(stored, PASSWORD + "x")
    assert passwords.verify(None, PASSWORD) is False


def test_an_admin_sets_a_password_audited_without_it_and_the_user_must_change_it(live, db):
    server, api = live
    weak = api.put(f"{ADMIN}/users/bob/password", json={"password": "password1234"})
    assert weak.status_code == 400 and "common or leaked" in weak.json()["message"]
    assert api.put(f"{ADMIN}/users/nobody/password", json={"password": PASSWORD}).status_code == 404
    alice = api.new_credential("alice")
    assert api.put(f"{ADMIN}/users/bob/password", json={"password": PASSWORD}, credential=alice).status_code == 403
    done = api.ok("PUT", f"{ADMIN}/users/bob/password", json={"password": PASSWORD})
    assert done["must_change"] is True
    with make_sessions(db)() as session:
        row = session.get(PasswordRow, "bob")
        assert row.hash.startswith("$argon2id$") and PASSWORD not in row.hash and row.must_change
    (record,) = audit(api, "directory.user.password", outcome="ok")
    assert record["target"] == "directory:users/bob" and PASSWORD not in str(record)

    # bob signs in, is sent to choose his own password, and does.
    browser = Browser(server)
    signed = browser.sign_in("bob")
    assert signed.status_code == 303 and signed.headers["location"] == "/account/password"
    new = "violet harbour pancake drum"
    same = browser.form("/account/password", "/account/password", current=PASSWORD, new=PASSWORD, again=PASSWORD)
    assert same.status_code == 400 and "is the current one" in error_of(same)
    changed = browser.form("/account/password", "/account/password", current=PASSWORD, new=new, again=new)
    assert changed.status_code == 200 and "Password changed." in changed.text
    with make_sessions(db)() as session:
        assert session.get(PasswordRow, "bob").must_change is False
    assert Browser(server).sign_in("bob", new).headers["location"] == "/account"


# --- signing in -------------------------------------------------------------------------------------


def test_sign_in_without_mfa_gives_a_browser_session_cookie_that_opens_the_account_page(live, db):
    server, api = live
    set_password(db, "bob")
    browser = Browser(server)
    assert browser.get("/account").headers["location"] == "/login?next=%2Faccount"
    page = browser.get("/login")
    assert page.headers["x-frame-options"] == "DENY" and "no-store" in page.headers["cache-control"]
    signed = browser.sign_in("bob")
    assert signed.status_code == 303 and signed.headers["location"] == "/account"
    (cookie,) = [c for c in signed.headers.get_list("set-cookie") if c.startswith("charter_session=")]
    assert "charter_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Max-Age" not in cookie and "expires" not in cookie.lower()
    assert browser.who() == "bob"
    (record,) = audit(api, "auth.login", outcome="ok")
    assert record["details"]["amr"] == ["pwd"] and PASSWORD not in str(record)

    # Without the CSRF token the form is refused.
    forged = httpx.post(f"{server.url}/login", data={"username": "bob", "password": PASSWORD})
    assert forged.status_code == 403

    out = browser.form("/account", "/logout")
    assert out.status_code == 303 and browser.who() is None


def test_the_charter_requires_mfa_of_admins_enrolment_codes_once_then_totp_with_replay_refused(live, db):
    server, api = live
    set_password(db, "erin")  # in group "admins": clause 10 requires MFA
    browser = Browser(server)
    first = browser.sign_in("erin", next_path="/account")
    assert first.status_code == 303 and first.headers["location"] == "/login/enroll"
    assert browser.get("/account").status_code == 303  # not signed in yet
    page = browser.get("/login/enroll")
    assert "<svg" in page.text and "clause" not in error_of(page)
    secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', page.text).group(1)  # type: ignore[union-attr]
    assert secret == secret_of(db, "erin")
    wrong = browser.form("/login/enroll", "/login/enroll", code="000000")
    assert wrong.status_code == 400
    enrolled = browser.form("/login/enroll", "/login/enroll", code=code_at(secret, api.clock))
    assert enrolled.status_code == 200
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", enrolled.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert browser.who() == "erin"
    with make_sessions(db)() as session:
        stored = [r.digest for r in session.scalars(select(RecoveryCodeRow).where(RecoveryCodeRow.user == "erin"))]
        assert len(stored) == 10 and not set(codes) & set(stored)
        assert session.get(MfaFactorRow, "erin").confirmed_at is not None
    assert "10 recovery codes left" in browser.get("/account").text
    browser.form("/account", "/logout")

    # Next time: the password, then a code. The code used to confirm is not accepted again (replay).
    again = Browser(server)
    assert again.sign_in("erin").headers["location"] == "/login/mfa"
    replay = again.code(code_at(secret, api.clock))
    assert replay.status_code == 401 and "The code is wrong" in error_of(replay)
    api.clock.advance(dt.timedelta(seconds=30))
    fresh = code_at(secret, api.clock)
    assert again.code(fresh).headers["location"] == "/account"
    assert again.who() == "erin"
    with make_sessions(db)() as session:
        live_sessions = session.scalars(
            select(SessionRow).where(SessionRow.user == "erin", SessionRow.ended_at.is_(None))
        )
        assert sorted(tuple(s.amr) for s in live_sessions) == [("pwd", "otp")]
    third = Browser(server)
    third.sign_in("erin")
    assert third.code(fresh).status_code == 401  # the same code, once more: refused

    # A recovery code works once.
    assert third.code(codes[0].upper()).headers["location"] == "/account"
    fourth = Browser(server)
    fourth.sign_in("erin")
    assert fourth.code(codes[0]).status_code == 401
    assert fourth.code(codes[1]).status_code == 303
    assert "8 recovery codes left" in fourth.get("/account").text
    assert [r["details"]["reason"] for r in audit(api, "auth.login", outcome="denied")] == ["bad code"] * 3


def test_open_redirects_are_not_followed(live, db):
    server, _ = live
    set_password(db, "bob")
    for evil in ("//evil.example", "https://evil.example", "/\\evil.example", "javascript:alert(1)"):
        signed = Browser(server).sign_in("bob", next_path=evil)
        assert signed.headers["location"] == "/account", evil
    kept = Browser(server).sign_in("bob", next_path="/oauth/authorize?client_id=x")
    assert kept.headers["location"] == "/oauth/authorize?client_id=x"


# --- lockout and the per-address limit ---------------------------------------------------------------------


def test_guessing_past_the_lockout_is_refused_the_same_way_for_every_account_and_audited(live, db):
    server, api = live
    set_password(db, "bob")
    browser = Browser(server)
    wrong = [browser.sign_in("bob", "wrong password guess") for _ in range(5)]
    assert {(r.status_code, error_of(r)) for r in wrong} == {(401, GENERIC)}
    right = browser.sign_in("bob")
    unknown = browser.sign_in("nobody-here")
    for refused in (right, unknown):
        assert (refused.status_code, error_of(refused)) == (401, GENERIC)
        assert "charter_session" not in refused.headers.get("set-cookie", "")
    denied = audit(api, "auth.login", outcome="denied", target="user:bob")
    assert [r["details"]["reason"] for r in denied] == ["locked"] + ["bad password"] * 5
    assert denied[0]["details"]["clause"] == 12 and denied[1]["details"]["clause"] == 12
    assert denied[1]["details"]["failures"] == 5 and "locked_until" in denied[1]["details"]
    assert PASSWORD not in str(denied)
    # The case of the name does not matter to the lock.
    assert error_of(browser.sign_in(" BOB ")) == GENERIC

    api.clock.advance(dt.timedelta(minutes=15))
    assert browser.sign_in("bob").headers["location"] == "/account"


def test_failed_attempts_from_one_address_past_the_limit_get_429(live, db):
    server, api = live
    browser = Browser(server)
    for i in range(20):
        assert browser.sign_in(f"guess-{i}", "wrong password guess").status_code == 401
    limited = browser.sign_in("bob", "wrong password guess")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert audit(api, "auth.login", outcome="denied", limit=1)[0]["details"]["reason"] == "rate limited"
    api.clock.advance(dt.timedelta(minutes=5, seconds=1))
    assert browser.sign_in("bob", "wrong password guess").status_code == 401


# --- sessions -------------------------------------------------------------------------------------------------


def test_sessions_end_when_idle_after_the_absolute_limit_and_everywhere_on_request(live, db):
    server, api = live
    set_password(db, "bob")
    idle = Browser(server)
    idle.sign_in("bob")
    api.clock.advance(dt.timedelta(minutes=29))
    assert idle.who() == "bob"
    api.clock.advance(dt.timedelta(minutes=30, seconds=1))
    assert idle.who() is None

    busy = Browser(server)
    busy.sign_in("bob")
    for _ in range(12 * 3 - 1):
        api.clock.advance(dt.timedelta(minutes=20))
        assert busy.who() == "bob"
    api.clock.advance(dt.timedelta(minutes=20))  # 12 hours since sign-in, however active
    assert busy.who() is None

    one, other = Browser(server), Browser(server)
    one.sign_in("bob")
    other.sign_in("bob")
    assert one.who() == other.who() == "bob"
    assert other.form("/account", "/account/sign-out-everywhere").status_code == 303
    assert one.who() is None and other.who() is None
    assert len(audit(api, "auth.sign_out_everywhere")) == 1


# --- MFA reset ---------------------------------------------------------------------------------------------------


def enrol(db, user: str, clock) -> str:
    with make_sessions(db).begin() as session:
        _, secret = totp.enrol(session, user, clock.now(), default_sealer())
        assert totp.confirm(session, user, pyotp.TOTP(secret).at(clock.now()), clock.now(), default_sealer())
    return secret


def as_person(server, credential: str, *args: str):
    return CliRunner().invoke(cli, list(args), env={"CHARTER_URL": server.url, "CHARTER_CREDENTIAL": credential})


def test_a_lost_factor_is_reset_only_by_two_helpdesk_members_never_by_its_owner(live, db):
    server, api = live
    set_password(db, "erin")
    secret = enrol(db, "erin", api.clock)
    api.clock.advance(dt.timedelta(seconds=30))
    browser = Browser(server)
    browser.sign_in("erin")
    assert browser.code(code_at(secret, api.clock)).status_code == 303 and browser.who() == "erin"
    erin, grace, heidi, bob = (api.new_credential(who) for who in ("erin", "grace", "heidi", "bob"))
    body = {"user": "erin", "reason": "phone lost, identity checked in person"}

    not_helpdesk = api.post("/auth/v1/mfa-resets", json=body, credential=bob)
    assert not_helpdesk.status_code == 403 and not_helpdesk.json()["details"][0]["clause"] == 18
    own = api.post("/auth/v1/mfa-resets", json=body, credential=erin)
    assert own.status_code == 403 and "their own" in own.json()["message"]

    asked = as_person(server, grace, "mfa-reset", "request", "erin", "--reason", body["reason"])
    assert asked.exit_code == 0, asked.output
    reset_id = asked.output.split()[1].rstrip(":")
    assert "pending" in asked.output and 'waiting for 1 more of group "helpdesk"' in asked.output
    assert browser.who() == "erin"  # one member alone resets nothing
    again = as_person(server, grace, "mfa-reset", "approve", reset_id)
    assert again.exit_code == 1 and "already approved" in again.output
    self_approval = api.post(f"/auth/v1/mfa-resets/{reset_id}/approve", credential=erin)
    assert self_approval.status_code == 403 and "their own" in self_approval.json()["message"]
    listed = as_person(server, heidi, "mfa-reset", "list")
    assert reset_id in listed.output

    done = as_person(server, heidi, "mfa-reset", "approve", reset_id)
    assert done.exit_code == 0, done.output
    assert "done" in done.output
    with make_sessions(db)() as session:
        assert session.get(MfaFactorRow, "erin") is None
        assert not session.scalars(select(RecoveryCodeRow).where(RecoveryCodeRow.user == "erin")).all()
    assert browser.who() is None  # every session ended
    (record,) = audit(api, "mfa.reset.done")
    assert record["details"]["approvals"] == ["grace", "heidi"] and record["details"]["clause"] == 18
    assert len(audit(api, "mfa.reset.approve", outcome="denied")) == 2

    # erin enrols again at the next sign-in.
    assert Browser(server).sign_in("erin").headers["location"] == "/login/enroll"


# --- concurrency ---------------------------------------------------------------------------------------------


def test_concurrent_guesses_are_each_counted_and_none_gets_past_the_lock(db):
    """Eight wrong passwords at once on one account: exactly five counted as guesses, then the lock."""
    from concurrent.futures import ThreadPoolExecutor

    from charter.audit import store as audit_store
    from charter.auth.lockout import SourceLimiter
    from charter.auth.login import Authn
    from charter.bootstrap import initialize
    from charter.clock import FixedClock
    from charter.engine import Engine
    from charter.store.models import AuditRecordRow, LoginFailureRow

    clock = FixedClock(dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC))
    initialize(db, clock)
    engine = Engine(db, clock=clock)
    engine.rebuild()
    set_password(db, "bob")
    authn = Authn(engine, limiter=SourceLimiter(1000, dt.timedelta(minutes=5)))
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: authn.password("bob", "wrong guess here", f"10.0.0.{i}"), range(8)))
    assert {o.kind for o in outcomes} == {"refused"}
    assert authn.password("bob", PASSWORD, "10.0.0.9").kind == "refused"
    with make_sessions(db)() as session:
        row = session.get(LoginFailureRow, "bob")
        assert row.failures == 5 and row.locked_until is not None
        reasons = [
            audit_store.to_record(r).entry.details["reason"]
            for r in session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == "auth.login"))
        ]
    assert sorted(reasons) == ["bad password"] * 5 + ["locked"] * 4
