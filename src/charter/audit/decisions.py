"""The decision log: the evaluate path enqueues, a background thread writes batches to the "decisions" chain.

`record()` is all the hot path does: append a tuple to an in-memory queue (no I/O, no lock; deque
appends are atomic). Two queues, so that pressure never costs what must be kept:

- *kept*: every deny, and every allow under a just-in-time or break-glass grant. Never dropped while
  memory allows (past `kept_limit`, a loud count: the store has been unreachable for very long);
- *sampled*: the other allows, a `sample` fraction of them (default all), at most `capacity` queued;
  when full, the oldest is dropped and counted in `dropped`.

The writer thread wakes every `interval` seconds (or when a batch is ready), takes up to `batch` records
of each queue, orders them by time and has them appended in one transaction, by a writer process of its
own (`writer="process"`, what `charter serve` uses: the hashing and inserting then cost the server no
GIL time) or in the thread itself (`writer="thread"`); see charter/audit/writer.py. A failed write keeps
the batch for the next round. `stop()` drains everything before it returns, so a clean shutdown loses
nothing; a crash loses at most what `pending` counted at that moment.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from charter.audit import store
from charter.audit.chain import Entry
from charter.audit.trail import AuditTrail
from charter.audit.writer import ProcessWriter, ThreadWriter
from charter.clock import Clock, SystemClock
from charter.policy.decision import Basis, Decision
from charter.policy.request import Context, Request

log = logging.getLogger("charter.audit")
DEFAULT_CAPACITY = 100_000
DEFAULT_BATCH = 5_000
DEFAULT_INTERVAL = 0.2


class DecisionLog:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        trail: AuditTrail,
        clock: Clock | None = None,
        *,
        capacity: int = DEFAULT_CAPACITY,
        sample: float = 1.0,
        batch: int = DEFAULT_BATCH,
        interval: float = DEFAULT_INTERVAL,
        kept_limit: int | None = None,
        writer: str = "thread",
    ):
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample must be between 0 and 1, found {sample}")
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {', '.join(WRITERS)}, found {writer!r}")
        self.sessions = sessions
        self.trail = trail
        self._writer = WRITERS[writer](sessions, trail)
        self.capacity = capacity
        self.sample = sample
        self.batch = batch
        self.interval = interval
        self.kept_limit = kept_limit if kept_limit is not None else 10 * capacity
        clock = clock or SystemClock()
        self._now_ns: Callable[[], int] = time.time_ns if isinstance(clock, SystemClock) else lambda: _ns(clock.now())
        self._sampled: deque = deque(maxlen=capacity)
        self._kept: deque = deque()
        self._in_flight: list = []
        self.dropped = 0  # sampled allows dropped because the queue was full
        self.unsampled = 0  # allows not sampled
        self.kept_overflow = 0  # denies/privileged decisions beyond kept_limit (should stay 0)
        self.written = 0
        self.last_error: str | None = None
        self._writing = threading.Lock()  # the writer thread and `flush` take turns (never the hot path)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the hot path ------------------------------------------------------------------------------

    def record(self, request: Request, decision: Decision, pep: str | None = None, request_id: str | None = None):
        """Queue one decision for the log. Never blocks, never does I/O."""
        if decision.allowed and decision.grant is None:
            if self.sample < 1.0 and random.random() >= self.sample:
                self.unsampled += 1
                return
            queue = self._sampled
            if len(queue) == self.capacity:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10_000 == 0:
                    log.warning("decision log: queue full, %d allowed decisions dropped so far", self.dropped)
            queue.append(queued(self._now_ns(), request, decision, pep, request_id))
        else:
            if len(self._kept) >= self.kept_limit:
                self.kept_overflow += 1
                if self.kept_overflow == 1 or self.kept_overflow % 10_000 == 0:
                    log.error("decision log: %d denies/privileged decisions not logged", self.kept_overflow)
                return
            self._kept.append(queued(self._now_ns(), request, decision, pep, request_id))
            if len(self._kept) >= self.batch:
                self._wake.set()

    @property
    def pending(self) -> int:
        """Decisions accepted but not yet committed: what a crash now would lose."""
        return len(self._sampled) + len(self._kept) + len(self._in_flight)

    # --- the writer ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-decision-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the writer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()
        self._writer.close()
        lost = self.dropped + self.kept_overflow + self.pending
        log.log(
            logging.WARNING if lost else logging.INFO,
            "decision log stopped: %d decisions written, %d allowed ones dropped (queue full), %d not sampled, "
            "%d denied or privileged ones not logged, %d left unwritten",
            self.written,
            self.dropped,
            self.unsampled,
            self.kept_overflow,
            self.pending,
        )

    def flush(self) -> None:
        """Write everything queued now, in this thread (taking turns with the writer thread)."""
        while self.pending:
            if not self._write_batch():
                break

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            while not self._stop.is_set() and self.pending and self._write_batch():
                if self.pending < self.batch:
                    break

    def _write_batch(self) -> bool:
        """Take up to `batch` decisions and commit them; False (and keep them) when the store fails."""
        with self._writing:
            return self._write_batch_locked()

    def _write_batch_locked(self) -> bool:
        if not self._in_flight:
            self._in_flight = _take(self._kept, self.batch) + _take(self._sampled, self.batch)
            self._in_flight.sort(key=_time_of)
        if not self._in_flight:
            return False
        try:
            self._writer.write(self._in_flight)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning("decision log: writing %d decisions failed, will retry: %s", len(self._in_flight), error)
            self._stop.wait(min(self.interval * 5, 1.0))
            return False
        self.written += len(self._in_flight)
        self._in_flight = []
        self.last_error = None
        return True


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ns(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1) * 1000


def _take(queue: deque, most: int) -> list:
    taken = []
    try:
        for _ in range(most):
            taken.append(queue.popleft())
    except IndexError:
        pass
    return taken


def _time_of(item: tuple) -> int:
    return item[0]


def queued(moment_ns: int, request: Request, decision: Decision, pep: str | None, request_id: str | None) -> tuple:
    """A decision as the queues hold it: flat, so that a batch pickles fast for the writer process."""
    return (
        moment_ns,
        request.subject_type,
        request.subject,
        request.action,
        request.resource,
        request.context,
        decision,
        pep,
        request_id,
    )


def row_fields(item: tuple) -> store.Fields:
    """A queued decision as `store.append_fields` takes it: what `_entry` would write, without an Entry."""
    moment, subject_type, subject, action, resource, context, decision, pep, request_id = item
    details: dict[str, object] = {"basis": _BASIS[decision.basis]}
    if decision.grant is not None:
        details["grant"] = decision.grant
    if not decision.allowed and decision.reasons:
        details["reasons"] = list(decision.reasons)
    if pep is not None:
        details["pep"] = pep
    logged_context = _context(context)
    if logged_context:
        details["context"] = logged_context
    return (
        moment // 1000,
        f"{subject_type}:{subject}",
        action,
        resource,
        "allow" if decision.allowed else "deny",
        decision.version,
        decision.clause,
        request_id,
        details,
    )


_BASIS = {basis: basis.value for basis in Basis}
WRITERS = {"thread": ThreadWriter, "process": ProcessWriter}


def _entry(item: tuple) -> Entry:
    """A queued decision as an Entry: the record `row_fields` describes, for the general `store.append` path
    (tests write both ways and compare the rows)."""
    micros, actor, action, target, outcome, version, clause, request_id, details = row_fields(item)
    time = EPOCH + dt.timedelta(microseconds=micros)
    return Entry(time, actor, action, target, outcome, version, clause, request_id, details)


def _context(context: Context) -> dict[str, object]:
    """The request's context as logged: enough to ask the same question again (amendment simulation)."""
    logged: dict[str, object] = {}
    if context.mfa:
        logged["mfa"] = True
    if context.ip is not None:
        logged["ip"] = context.ip
    if context.time is not None:
        logged["time"] = context.time.astimezone(dt.UTC).isoformat()
    if context.scopes:
        logged["scopes"] = sorted(context.scopes)
    if context.resource_attributes:
        logged["resource_attributes"] = {
            key: list(value) if isinstance(value, tuple | list | frozenset | set) else value
            for key, value in context.resource_attributes.items()
        }
    return logged


def settings_from_env(writer: str = "thread") -> dict[str, object]:
    """DecisionLog keyword arguments from CHARTER_DECISION_LOG_{SAMPLE,CAPACITY,BATCH,INTERVAL,WRITER}
    (`writer` when CHARTER_DECISION_LOG_WRITER is not set)."""
    chosen = os.environ.get("CHARTER_DECISION_LOG_WRITER", "").strip().lower() or writer
    if chosen not in WRITERS:
        raise SystemExit(f"CHARTER_DECISION_LOG_WRITER must be one of {', '.join(WRITERS)}, found {chosen!r}")
    settings: dict[str, object] = {"writer": chosen}
    for name, kind, field in (
        ("SAMPLE", float, "sample"),
        ("CAPACITY", int, "capacity"),
        ("BATCH", int, "batch"),
        ("INTERVAL", float, "interval"),
    ):
        text = os.environ.get(f"CHARTER_DECISION_LOG_{name}", "").strip()
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            raise SystemExit(f"CHARTER_DECISION_LOG_{name} must be a {kind.__name__}, found {text!r}") from None
        if value < 0 or (name == "SAMPLE" and value > 1) or (name != "SAMPLE" and value == 0):
            raise SystemExit(f"CHARTER_DECISION_LOG_{name} is out of range: {text!r}")
        settings[field] = value
    return settings


def enabled_from_env() -> bool:
    """CHARTER_DECISION_LOG=off turns the decision log off (state changes are audited regardless)."""
    return os.environ.get("CHARTER_DECISION_LOG", "on").strip().lower() not in ("off", "0", "false", "no")
