"""The live decision state of one server: the current snapshot and API-client table, kept fresh.

Readers take `engine.snapshot` (one attribute read: no lock, no I/O). A
background thread rebuilds the snapshot whenever the store's revision moves:
woken at once by PostgreSQL NOTIFY, by a local write (`refresh_now`), or by
polling the revision every `poll_interval` seconds (the fallback, and the only
way on SQLite or with `listen=False`). A new day also triggers a rebuild, so
amendments and charters take effect on their dates. Changes that touch only the
directory are applied incrementally (`charter.incremental`): the changed
principals are recompiled and everything else is shared with the previous snapshot.
`wait_for(R)` lets a caller insist on seeing revision R (the `Charter-Min-Revision` header).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Mapping
from functools import cached_property

from sqlalchemy import Engine as DbEngine
from sqlalchemy import select

from charter import amendments, charters, clients, incremental, metrics
from charter.audit.trail import AuditTrail
from charter.clock import Clock, SystemClock
from charter.directory import repository
from charter.directory.model import EMPTY_DIRECTORY
from charter.language import ast
from charter.language.consolidate import Consolidated
from charter.oidc import keys
from charter.oidc.verify import TokenVerifier
from charter.policy.canary import cohort, salt
from charter.policy.grants import Grant, GrantKind
from charter.policy.snapshot import Snapshot, compile_snapshot, with_canary
from charter.sealed import Sealer, default_sealer
from charter.store.db import NOTIFY_CHANNEL, current_revision, is_postgres, sessions
from charter.store.models import GrantRow, RevokedTokenRow

log = logging.getLogger("charter.engine")
DEFAULT_ISSUER = "http://127.0.0.1:8080"


def empty_version(today: dt.date) -> Consolidated:
    """The version used before any charter is in effect: no clauses, so nothing is allowed."""
    return Consolidated(ast.Charter("(no charter in effect)", today), None, 0, (), (), ())


class Engine:
    def __init__(
        self,
        db: DbEngine,
        clock: Clock | None = None,
        poll_interval: float = 0.5,
        *,
        listen: bool = True,
        audit: AuditTrail | None = None,
    ):
        self.db = db
        self.listen = listen  # False: never LISTEN on PostgreSQL, rely on polling alone
        self.clock = clock or SystemClock()
        self.audit = audit or AuditTrail(self.clock)  # where every change of state is recorded
        self.poll_interval = poll_interval
        self.sessions = sessions(db)
        self.snapshot: Snapshot = compile_snapshot(
            empty_version(self._today()), EMPTY_DIRECTORY, clock=self.clock, revision=-1
        )
        self.clients: Mapping[str, clients.ClientKey] = {}
        # The OpenID Connect issuer: tokens carry it and verification demands it (CHARTER_ISSUER; `charter serve`
        # sets it to its own address when unset).
        self.issuer: str = os.environ.get("CHARTER_ISSUER", "").rstrip("/") or DEFAULT_ISSUER
        self.keyring: keys.KeyRing | None = None  # token signing keys (charter.oidc.keys), loaded with each snapshot
        self.tokens = TokenVerifier(None, self.issuer)  # verifies access tokens from memory (charter.oidc.verify)
        self._built_on: dt.date | None = None
        self._basis: incremental.Basis | None = None  # what the incremental step builds on (charter.incremental)
        self._building = threading.RLock()  # one build at a time: the basis is changed in place
        self.steps = {"full": 0, "incremental": 0}  # how each refresh was made (tests, benches)
        # SQLite admits one writer at a time and makes the others wait in its busy handler, which sleeps in
        # growing steps (up to 100 ms): under concurrent writes (a bulk load) the lock sits idle between them
        # and some writers starve for seconds. This server's writers queue here instead (Admin._transaction);
        # PostgreSQL's row locks wake waiters at once and need none.
        self.write_lock: contextlib.AbstractContextManager = (
            contextlib.nullcontext() if is_postgres(db) else threading.RLock()
        )
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @cached_property
    def sealer(self) -> Sealer:
        """Seals and opens the secrets the store keeps (charter.sealed)."""
        return default_sealer()

    def _today(self) -> dt.date:
        return self.clock.now().astimezone(dt.UTC).date()

    # --- building -------------------------------------------------------------------------

    def rebuild(self) -> Snapshot:
        """Read the store in one consistent transaction and swap in a new snapshot."""
        with self._building:
            return self._rebuild()

    def _rebuild(self) -> Snapshot:
        started = time.perf_counter()
        now = self.clock.now().astimezone(dt.UTC)
        today = now.date()
        with self.sessions() as session:
            if is_postgres(self.db):
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            # The audit head before the revision: on SQLite (no read transaction) a change may commit between
            # the two reads, and then its record must lie after `audit_seq` (the incremental step skips it
            # as already in the snapshot's revision), never before it with a revision the snapshot lacks.
            audit_seq = incremental.audit_head(session)
            revision = current_revision(session)
            directory = repository.load(session)
            version = charters.version_in_force(session, today) or empty_version(today)
            grants = [
                grant_of(row)
                for row in session.scalars(select(GrantRow).where(GrantRow.revoked_at.is_(None), GrantRow.ends > now))
            ]
            table = clients.active_keys(session)
            canary = amendments.canary_in_effect(session, today)
            key_rows = keys.live_rows(session, now)
            revoked = session.scalars(select(RevokedTokenRow.jti).where(RevokedTokenRow.expires_at > now)).all()
            for row in key_rows:
                session.expunge(row)
        snapshot = compile_snapshot(version, directory, grants, self.clock, revision)
        if canary is not None:
            row, with_amendment, plan = canary
            trial = compile_snapshot(with_amendment, directory, grants, self.clock, revision)
            principals = [p for kind in snapshot.principals.values() for p in kind.values()]
            members = cohort(plan, principals, salt(row.charter_name, row.number))
            with_canary(snapshot, row.number, trial, members)
        self._basis = incremental.Basis.of(directory, audit_seq, full=canary is None)
        self.steps["full"] += 1
        with self._changed:
            self.snapshot = snapshot
            self.clients = table
            self.keyring = keys.KeyRing(key_rows, self.sealer, now)
            self.tokens = TokenVerifier(self.keyring, self.issuer, revoked, subjects=snapshot)
            self._built_on = today
            self._changed.notify_all()
        metrics.snapshot_built("full", revision, time.perf_counter() - started)
        return snapshot

    def refresh_if_stale(self) -> bool:
        """Rebuild when the store's revision or the date has moved on; True when it rebuilt."""
        with self.sessions() as session:
            revision = current_revision(session)
        if revision != self.snapshot.revision or self._built_on != self._today():
            with self._building:
                if self._built_on != self._today() or not self._step():
                    self._rebuild()
            return True
        return False

    def _step(self) -> bool:
        """Apply the directory changes since the snapshot's revision (charter.incremental); False: rebuild."""
        basis = self._basis
        if basis is None:
            return False
        started = time.perf_counter()
        try:
            with self.sessions() as session:
                if is_postgres(self.db):
                    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                revision = current_revision(session)
                if revision == self.snapshot.revision:
                    return True
                snapshot = incremental.step(session, basis, self.snapshot, revision)
        except Exception as error:  # never keep a basis that may be half-updated
            log.warning("incremental refresh failed, rebuilding: %s: %s", type(error).__name__, error)
            snapshot = None
        if snapshot is None:
            self._basis = None
            return False
        self.steps["incremental"] += 1
        tokens = TokenVerifier(self.keyring, self.issuer, self.tokens.revoked, subjects=snapshot)
        with self._changed:
            self.snapshot = snapshot
            self.tokens = tokens  # a token's subject must be an active principal of this snapshot
            self._changed.notify_all()
        metrics.snapshot_built("incremental", snapshot.revision, time.perf_counter() - started)
        return True

    # --- waiting -----------------------------------------------------------------------------

    def refresh_now(self) -> None:
        """Ask the background thread to look at the store at once (after a local write)."""
        self._wake.set()

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Block until the snapshot has at least `revision`; False on timeout."""
        if self.snapshot.revision >= revision:
            return True
        self._wake.set()
        with self._changed:
            return self._changed.wait_for(lambda: self.snapshot.revision >= revision, timeout)

    def catch_up(self, revision: int, timeout: float = 2.0) -> bool:
        """After a write on this server: wake the refresh and wait (bounded) until the snapshot has `revision`.

        So this server's next answer reflects its own writes: a new credential works and a revoked one
        fails at once. Returns at once (False) when the refresh thread is not running.
        """
        self.refresh_now()
        if self._thread is None or not self._thread.is_alive():
            return False
        return self.wait_for(revision, timeout)

    # --- the background thread ----------------------------------------------------------------

    def start(self) -> None:
        self.rebuild()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        listener = None
        while not self._stop.is_set():
            if listener is None and self.listen and is_postgres(self.db):
                listener = self._listen()
            try:
                if listener is not None:
                    self._await_notify(listener)
                else:
                    self._wake.wait(self.poll_interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                self.refresh_if_stale()
                self.last_error = None
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("snapshot refresh failed, keeping revision %s: %s", self.snapshot.revision, self.last_error)
                if listener is not None:
                    _close(listener)
                    listener = None
                self._stop.wait(self.poll_interval)
        if listener is not None:
            _close(listener)

    def _listen(self):
        import psycopg

        try:
            url = self.db.url.set(drivername="postgresql").render_as_string(hide_password=False)
            connection = psycopg.connect(url, autocommit=True, connect_timeout=5)
            connection.execute("LISTEN " + NOTIFY_CHANNEL)
            return connection
        except Exception as error:
            self.last_error = f"LISTEN failed: {error}"
            return None

    def _await_notify(self, listener) -> None:
        """Return on the first notification, a local wake-up, or after `poll_interval` seconds."""
        deadline = self.poll_interval
        step = min(0.05, deadline)
        waited = 0.0
        while waited < deadline and not self._wake.is_set():
            for _ in listener.notifies(timeout=step, stop_after=1):
                return
            waited += step


def _close(connection) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection
        connection.close()


def grant_of(row: GrantRow) -> Grant:
    """A stored grant as the snapshot takes it."""
    return Grant(
        row.id,
        GrantKind(row.kind),
        row.subject_type,
        row.subject,
        frozenset(row.actions),
        row.resource,
        _aware(row.starts),
        _aware(row.ends),
        row.clause,
    )


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
