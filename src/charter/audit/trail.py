"""The audit trail as services use it: one record per change of state, in the change's own transaction.

`AuditTrail` knows the clock, the signing keyring and how often to checkpoint. The request id of the
HTTP request being served (X-Request-ID, or one made up for it) travels in the context variable
`REQUEST_ID`, so services record it without passing it through every call.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from charter.audit import store
from charter.audit.chain import Entry
from charter.audit.signing import KEYRING_DIRECTORY, Keyring, SigningKey
from charter.clock import Clock, SystemClock
from charter.policy.decision import Decision

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("charter_request_id", default=None)
DEFAULT_CHECKPOINT_EVERY = 1000


def checkpoint_every_from_env() -> int:
    text = os.environ.get("CHARTER_AUDIT_CHECKPOINT_EVERY", "").strip()
    if not text:
        return DEFAULT_CHECKPOINT_EVERY
    if not text.isdigit() or int(text) < 1:
        raise SystemExit(f"CHARTER_AUDIT_CHECKPOINT_EVERY must be a whole number above 0, found {text!r}")
    return int(text)


class AuditTrail:
    def __init__(
        self,
        clock: Clock | None = None,
        keyring: Keyring | None = None,
        checkpoint_every: int | None = None,
    ):
        self.clock = clock or SystemClock()
        self._keyring = keyring
        self.checkpoint_every = checkpoint_every if checkpoint_every is not None else checkpoint_every_from_env()

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:  # created on first use, so a process that never signs needs no data directory
            from charter.store.db import data_dir

            self._keyring = Keyring(Path(data_dir()) / KEYRING_DIRECTORY)
        return self._keyring

    def signing_key(self) -> SigningKey:
        return self.keyring.active()

    def now(self) -> dt.datetime:
        return self.clock.now().astimezone(dt.UTC)

    # --- writing -------------------------------------------------------------------------------------

    def write(self, session: Session, chain: str, entries: list[Entry]) -> int:
        """Append `entries`; the new head seq."""
        return store.append(session, chain, entries, self.signing_key, self.checkpoint_every, self.now())

    def record(
        self,
        session: Session,
        actor: str,
        action: str,
        target: str,
        outcome: str = "ok",
        decision: Decision | None = None,
        details: Mapping[str, object] | None = None,
    ) -> int:
        """Append one record to the audit chain in the caller's transaction; its seq."""
        return self.write(session, store.AUDIT, [self.entry(actor, action, target, outcome, decision, details)])

    def record_alone(self, sessions: sessionmaker[Session], *args, **kwargs) -> int:
        """`record` in a transaction of its own (an event that changes nothing else: a refused action)."""
        with sessions.begin() as session:
            return self.record(session, *args, **kwargs)

    def entry(
        self,
        actor: str,
        action: str,
        target: str,
        outcome: str = "ok",
        decision: Decision | None = None,
        details: Mapping[str, object] | None = None,
    ) -> Entry:
        return Entry(
            time=self.now(),
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            charter_version=decision.version if decision is not None else None,
            clause=decision.clause if decision is not None else None,
            request_id=REQUEST_ID.get(),
            details=dict(details or {}),
        )

    # --- checkpoints and keys ------------------------------------------------------------------------------

    def checkpoint(self, sessions: sessionmaker[Session]) -> dict[str, int | None]:
        """Sign the head of each chain not yet covered by a checkpoint (on shutdown, before pruning)."""
        signed = {}
        for chain in store.CHAINS:
            with sessions.begin() as session:
                signed[chain] = store.checkpoint_head(session, chain, self.signing_key(), self.now())
        return signed

    def rotate_key(self, sessions: sessionmaker[Session], actor: str) -> tuple[str, str | None]:
        """Checkpoint with the old key, switch to a new one, retire the old; audited. Returns (new id, old id)."""
        self.checkpoint(sessions)
        new, old = self.keyring.rotate()
        with sessions.begin() as session:
            store.register_key(session, new, self.now())
            if old is not None:
                store.retire_key(session, old.id, self.now())
            self.record(
                session,
                actor,
                "audit.key.rotate",
                f"audit-key:{new.id}",
                details={"new": new.id, "old": old and old.id},
            )
        self.checkpoint(sessions)
        return new.id, old.id if old is not None else None
