"""Signing in: the password step, the second factor, forced enrolment, and the account's own changes.

`Authn.password` answers one of: refused (one generic message, whatever the reason: unknown account, wrong
password, locked, disabled), signed in, second factor needed, or enrolment needed (the charter requires
MFA of the user and no factor is confirmed). The second step takes a TOTP code or a recovery code;
its failures count toward the same lockout. Failures are forgotten only when sign-in completes, so a
known password does not reset the count of guessed codes.

Every outcome is audited as `auth.login` (details: `step`, `reason` on a refusal, the source address;
never a password or code) in the transaction that changes the lockout counter. The session's `amr` is
`["pwd"]`, `["pwd", "otp"]` after a TOTP code, or `["pwd", "mfa"]` after a recovery code (both count as
MFA for decisions; the difference stays visible).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from charter import metrics
from charter.auth import lockout, passwords, sessions, totp
from charter.auth.sessions import SignedIn
from charter.engine import Engine
from charter.sealed import Sealer, Unsealable, default_sealer
from charter.store.models import IdentityRow, PasswordRow, SessionRow

GENERIC = "The user name or password is wrong, or the account is locked for a while."
GENERIC_CODE = "The code is wrong, or the account is locked for a while."
PENDING_TTL = {"mfa": 300, "enroll": 900}  # seconds between the password and the second step


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a sign-in step came to: refused | rate_limited | signed_in | mfa | enroll."""

    kind: str
    user: str | None = None
    token: str | None = None  # the new session's cookie token (signed_in)
    retry_after: int | None = None  # seconds (rate_limited)
    must_change: bool = False  # an admin set the password: the user must choose their own
    codes: list[str] = field(default_factory=list)  # recovery codes, shown once (enrolment)


class Authn:
    def __init__(self, engine: Engine, limiter: lockout.SourceLimiter | None = None, sealer: Sealer | None = None):
        self.engine = engine
        self.limiter = limiter or lockout.SourceLimiter(*lockout.rate_from_env())
        self._sealer = sealer
        self.sessions = sessions.Sessions(engine.sessions, engine.clock)

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            self._sealer = default_sealer()
        return self._sealer

    def now(self) -> dt.datetime:
        return self.engine.clock.now().astimezone(dt.UTC)

    def _audit(self, session: Session, user: str, outcome: str, details: dict, action: str = "auth.login") -> None:
        self.engine.audit.record(session, f"user:{user}", action, f"user:{user}", outcome, None, details)

    def _rate_limited(self, account: str, source: str, step: str) -> Outcome | None:
        retry = self.limiter.retry_after(source, self.now())
        if retry is None:
            return None
        details = {"step": step, "reason": "rate limited", "source": source, "retry_after": retry}
        with self.engine.sessions.begin() as session:
            self._audit(session, account, "denied", details)
        return Outcome("rate_limited", retry_after=retry)

    def _refuse(self, session: Session, account: str, reason: str, source: str, step: str, until) -> None:
        """Count a failure (unless the account is already locked) and audit the refusal."""
        limits = self.engine.snapshot.auth
        details: dict = {"step": step, "reason": reason, "source": source}
        if until is None:
            counted = lockout.fail(session, account, self.now(), limits)
            details["failures"] = counted.failures
            if counted.locked_now:
                details.update(locked_until=counted.locked_until.isoformat(), clause=limits.lockout_clause)  # type: ignore[union-attr]
        else:
            details.update(locked_until=until.isoformat(), clause=limits.lockout_clause)
        self._audit(session, account, "denied", details)

    def _active(self, identity: IdentityRow | None) -> bool:
        if identity is None or identity.state != "active":
            return False
        principal = self.engine.snapshot.principal("user", identity.name)
        return principal is None or principal.blocked is None

    def mfa_required(self, user: str) -> bool:
        principal = self.engine.snapshot.principal("user", user)
        return principal is not None and principal.mfa_decision is not None

    # --- the steps ---------------------------------------------------------------------------------

    def password(self, name: str, password: str, source: str, user_agent: str | None = None) -> Outcome:
        """The password step (counted in charter_auth_attempts_total / _successes_total, method "password")."""
        return _counted("password", self._password(name, password, source, user_agent))

    def _password(self, name: str, password: str, source: str, user_agent: str | None = None) -> Outcome:
        account = lockout.account_key(name)
        limited = self._rate_limited(account, source, "password")
        if limited is not None:
            return limited
        now = self.now()
        with self.engine.sessions.begin() as session:
            until = lockout.locked_until(session, account, now)  # locks the counter row for this transaction
            typed = str(name).strip()
            identity = session.scalar(select(IdentityRow).where(IdentityRow.kind == "user", IdentityRow.name == typed))
            stored = passwords.stored_hash(session, identity.name if identity is not None else None)
            matches = passwords.verify(stored.hash if stored is not None else None, password)  # always one verify
            reason = (
                "locked" if until is not None
                else "unknown account" if identity is None
                else "no password" if stored is None
                else "bad password" if not matches
                else "inactive account" if not self._active(identity)
                else None
            )  # fmt: skip
            if reason is not None:
                self._refuse(session, account, reason, source, "password", until)
            else:
                user = identity.name  # type: ignore[union-attr]
                if passwords.needs_rehash(stored.hash):  # type: ignore[union-attr]
                    stored.hash = passwords.hash_password(password)  # type: ignore[union-attr]
                must_change = bool(stored.must_change)  # type: ignore[union-attr]
                if totp.confirmed(session, user):
                    self._audit(session, user, "ok", {"step": "password", "next": "mfa", "source": source})
                    return Outcome("mfa", user, must_change=must_change)
                if self.mfa_required(user):
                    self._audit(session, user, "ok", {"step": "password", "next": "enroll", "source": source})
                    return Outcome("enroll", user, must_change=must_change)
                token = self._sign_in(session, account, user, ["pwd"], source, user_agent, "password")
                return Outcome("signed_in", user, token, must_change=must_change)
        self.limiter.failed(source, now)
        return Outcome("refused")

    def second_factor(self, user: str, code: str, source: str, user_agent: str | None = None) -> Outcome:
        """A TOTP code (6 digits) or a recovery code, after the password step for `user`."""
        return _counted("second_factor", self._second_factor(user, code, source, user_agent))

    def _second_factor(self, user: str, code: str, source: str, user_agent: str | None = None) -> Outcome:
        account = lockout.account_key(user)
        limited = self._rate_limited(account, source, "mfa")
        if limited is not None:
            return limited
        now = self.now()
        compact = "".join(str(code).split())
        method = "totp" if compact.isdigit() and len(compact) == 6 else "recovery code"
        with self.engine.sessions.begin() as session:
            until = lockout.locked_until(session, account, now)
            identity = session.scalar(select(IdentityRow).where(IdentityRow.kind == "user", IdentityRow.name == user))
            ok = False
            if until is None and self._active(identity):
                if method == "totp":
                    ok = totp.check_code(session, user, compact, now, self.sealer)
                else:
                    ok = totp.use_recovery_code(session, user, code, now)
            if not ok:
                reason = (
                    "locked" if until is not None else "inactive account" if not self._active(identity) else "bad code"
                )
                self._refuse(session, account, reason, source, "mfa", until)
            else:
                amr = ["pwd", "otp"] if method == "totp" else ["pwd", "mfa"]
                token = self._sign_in(session, account, user, amr, source, user_agent, "mfa", method=method)
                row = session.get(PasswordRow, user)
                return Outcome("signed_in", user, token, must_change=bool(row and row.must_change))
        self.limiter.failed(source, now)
        return Outcome("refused")

    def _sign_in(self, session, account, user, amr, source, user_agent, step, **more) -> str:
        lockout.succeed(session, account)
        _, token = sessions.start(session, user, amr, self.now(), source, user_agent)
        self._audit(session, user, "ok", {"step": step, "amr": amr, "source": source, **more})
        return token

    # --- enrolment ------------------------------------------------------------------------------------

    def enrolment(self, user: str) -> dict:
        """The pending factor to show: its secret, otpauth URI and QR code (SVG). ValueError when one is confirmed."""
        with self.engine.sessions.begin() as session:
            _, secret = totp.enrol(session, user, self.now(), self.sealer)
        uri = totp.provisioning_uri(secret, user)
        return {"secret": secret, "uri": uri, "qr": totp.qr_svg(uri)}

    def confirm_enrolment(self, user: str, code: str, source: str, user_agent: str | None, sign_in: bool) -> Outcome:
        """Confirm the pending factor; with `sign_in` (forced enrolment at sign-in) the session starts too."""
        with self.engine.sessions.begin() as session:
            codes = totp.confirm(session, user, code, self.now(), self.sealer)
            if codes is None:
                self._audit(session, user, "denied", {"reason": "bad code", "source": source}, "mfa.enroll")
                return Outcome("refused", user)
            self._audit(session, user, "ok", {"source": source, "recovery_codes": len(codes)}, "mfa.enroll")
            token = None
            if sign_in:
                account = lockout.account_key(user)
                token = self._sign_in(session, account, user, ["pwd", "otp"], source, user_agent, "enroll")
            row = session.get(PasswordRow, user)
            return Outcome("signed_in", user, token, must_change=bool(row and row.must_change), codes=codes)

    def regenerate_codes(self, user: str, source: str) -> list[str]:
        with self.engine.sessions.begin() as session:
            if not totp.confirmed(session, user):
                raise ValueError("no confirmed factor: enrol first")
            codes = totp.new_recovery_codes(session, user, self.now())
            self._audit(session, user, "ok", {"source": source}, "mfa.recovery_codes.regenerate")
        return codes

    # --- pending sign-in state (between the password and the second step) -------------------------------

    def pending(self, user: str, stage: str) -> str:
        plain = json.dumps({"user": user, "stage": stage}).encode()
        return self.sealer.seal(plain, at=self.now().timestamp())

    def pending_user(self, sealed: str | None, stage: str) -> str | None:
        if not sealed:
            return None
        try:
            value = json.loads(self.sealer.open(sealed, ttl=PENDING_TTL[stage], at=self.now().timestamp()))
        except (Unsealable, ValueError):
            return None
        return value.get("user") if isinstance(value, dict) and value.get("stage") == stage else None

    # --- the signed-in account -------------------------------------------------------------------------

    def current(self, token: str | None) -> SignedIn | None:
        signed = self.sessions.current(token, self.engine.snapshot.auth)
        if signed is None:
            return None
        principal = self.engine.snapshot.principal("user", signed.user)
        if principal is not None and principal.blocked is not None:
            return None
        return signed

    def account(self, signed: SignedIn) -> dict:
        user = signed.user
        with self.engine.sessions() as session:
            row = totp.factor(session, user)
            stored = session.get(PasswordRow, user)
            left = totp.recovery_codes_left(session, user)
        principal = self.engine.snapshot.principal("user", user)
        return {
            "user": user,
            "amr": list(signed.amr),
            "mfa_enrolled": row is not None and row.confirmed_at is not None,
            "mfa_required_by": principal.mfa_decision.clause if principal and principal.mfa_decision else None,
            "recovery_codes_left": left,
            "must_change": bool(stored and stored.must_change),
            "sessions": self.sessions.list_for(user, self.engine.snapshot.auth),
            "expires_at": signed.expires_at,
        }

    def sign_out(self, signed: SignedIn, source: str) -> None:
        with self.engine.sessions.begin() as session:
            sessions._end(session, [SessionRow.id == signed.id], self.now(), "signed out")
            self._audit(session, signed.user, "ok", {"source": source}, "auth.logout")

    def sign_out_everywhere(self, user: str, source: str, actor: str | None = None) -> dict:
        with self.engine.sessions.begin() as session:
            ended = sessions.end_everything(session, user, self.now(), "signed out everywhere")
            self.engine.audit.record(
                session, actor or f"user:{user}", "auth.sign_out_everywhere", f"user:{user}", "ok", None,
                {"source": source, **ended},
            )  # fmt: skip
        return ended

    def change_password(self, signed: SignedIn, current: str, new: str, source: str) -> bool:
        """The user's own change: the current password first (a wrong one counts toward the lockout).

        False for a wrong current password; WeakPassword for a new one the policy refuses. Other sessions
        of the user end (the current one stays).
        """
        user, now = signed.user, self.now()
        account = lockout.account_key(user)
        passwords.check_policy(new, user)
        with self.engine.sessions.begin() as session:
            until = lockout.locked_until(session, account, now)
            stored = passwords.stored_hash(session, user)
            ok = passwords.verify(stored.hash if stored is not None else None, current) and until is None
            if not ok:
                self._refuse(session, account, "locked" if until else "bad password", source, "password change", until)
            else:
                if stored is not None and passwords.verify(stored.hash, new):
                    raise passwords.WeakPassword("the new password is the current one: choose a different one")
                passwords.set_password(session, user, new, now)
                session.execute(
                    update(SessionRow)
                    .where(SessionRow.user == user, SessionRow.id != signed.id, SessionRow.ended_at.is_(None))
                    .values(ended_at=now, ended_reason="password changed")
                )
                self._audit(session, user, "ok", {"source": source}, "auth.password.change")
        if not ok:
            self.limiter.failed(source, now)
        return ok


def set_password_by_admin(admin, caller, name: str, password: object):
    """`PUT /admin/v1/users/{name}/password`: `manage` on `directory:users/<name>`, audited without the password;
    the user must choose their own at the next sign-in."""
    from charter import admin as admin_ops
    from charter.directory import repository

    if not isinstance(password, str):
        raise admin_ops.Invalid("password", "expected a string")
    try:
        passwords.check_policy(password, name)
    except passwords.WeakPassword as weak:
        raise admin_ops.Invalid("password", str(weak)) from None
    with admin.change(caller, f"directory:users/{name}", "directory.user.password") as change:
        repository.identity(change.session, "user", name)
        passwords.set_password(change.session, name, password, admin.now(), must_change=True)
        change.details.update(user=name, must_change=True)
    return admin_ops.Done(change.revision, {"user": name, "must_change": True})


def _counted(method: str, outcome: Outcome) -> Outcome:
    """Raise the authentication metrics for one attempt at a sign-in step and its outcome."""
    metrics.AUTH_ATTEMPTS.labels(method).inc()
    if outcome.kind == "rate_limited":
        metrics.AUTH_RATE_LIMITED.labels("login").inc()
    elif outcome.kind != "refused":
        metrics.AUTH_SUCCESSES.labels(method).inc()
    return outcome
