"""The decision log: the evaluate path enqueues, a background thread writes batches to the "decisions" chain.

`record()` is all the hot path does: append a tuple to an in-memory queue (no I/O, no lock; deque
appends are atomic). Two queues, so that pressure never costs what must be kept:

- *kept*: every deny, and every allow under a just-in-time or break-glass grant. Never dropped while
  memory allows (past `kept_limit`, a loud count: the store has been unreachable for very long);
- *sampled*: the other allows, a `sample` fraction of them (default all), at most `capacity` queued;
  when full, the oldest is dropped and counted in `dropped`.

The writer thread wakes every `interval` seconds (or when a batch is ready), takes up to `batch` records
of each queue and has them appended, ordered by time, in one transaction, by a writer process of its
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
from collections.abc import Callable, Mapping

import orjson
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
        self._sampled: deque = deque()
        self._kept: deque = deque()
        # Decisions in each queue = added - taken (- dropped): each counter is written by one thread only
        # (added and dropped by the one that records, taken by the writer), so none loses an update.
        self._sampled_added = self._sampled_taken = 0
        self._kept_added = self._kept_taken = 0
        self._in_flight: list = []
        self._in_flight_count = 0
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
        keep = not decision.allowed or decision.grant is not None
        self._queue(keep, 1, queued(self._now_ns(), request, decision, pep, request_id))

    def record_at(
        self, moment_ns: int, request: Request, decision: Decision, pep: str | None, request_id: str | None
    ) -> None:
        """Queue a decision made elsewhere at `moment_ns` (an enforcement point's, charter.web.enforce)."""
        keep = not decision.allowed or decision.grant is not None
        self._queue(keep, 1, queued(moment_ns, request, decision, pep, request_id))

    def record_exchange(
        self, body: bytes, answer: bytes, count: int, keep: bool, pep: str | None, request_id: str | None
    ) -> None:
        """Queue an AuthZEN exchange: the request body as received and the answer as sent, holding `count`
        decisions; `keep` when one of them is a deny or a grant's allow. The writer takes the decisions out
        of the two documents, so the evaluate path does nothing per decision (at saturation, a tuple per
        decision cost a fifth of batch throughput in allocation and collection alone)."""
        self._queue(keep, count, (EXCHANGE, count, self._now_ns(), body, answer, pep, request_id))

    def _queue(self, keep: bool, count: int, item: tuple) -> None:
        if keep:
            if self._kept_added - self._kept_taken >= self.kept_limit:
                before = self.kept_overflow
                self.kept_overflow += count
                if before == 0 or before // 10_000 != self.kept_overflow // 10_000:
                    log.error("decision log: %d denies/privileged decisions not logged so far", self.kept_overflow)
                return
            self._kept.append(item)
            self._kept_added += count
            if self._kept_added - self._kept_taken >= self.batch and not self._wake.is_set():
                self._wake.set()
            return
        if self.sample < 1.0 and random.random() >= self.sample:
            self.unsampled += count
            return
        queue = self._sampled
        if self._sampled_added - self._sampled_taken - self.dropped + count > self.capacity:
            self._drop_oldest(count)
        queue.append(item)
        self._sampled_added += count

    def _drop_oldest(self, room: int) -> None:
        before = self.dropped
        while self._sampled_added - self._sampled_taken - self.dropped + room > self.capacity:
            try:
                self.dropped += self._sampled.popleft()[1]
            except IndexError:  # the writer took the rest meanwhile
                break
        if before // 10_000 != self.dropped // 10_000 or before == 0:
            log.warning("decision log: queue full, %d allowed decisions dropped so far", self.dropped)

    @property
    def pending(self) -> int:
        """Decisions accepted but not yet committed: what a crash now would lose."""
        sampled = self._sampled_added - self._sampled_taken - self.dropped
        return sampled + self._kept_added - self._kept_taken + self._in_flight_count

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
            kept, kept_count = _take(self._kept, self.batch)
            sampled, sampled_count = _take(self._sampled, self.batch)
            self._kept_taken += kept_count
            self._sampled_taken += sampled_count
            self._in_flight, self._in_flight_count = kept + sampled, kept_count + sampled_count
        if not self._in_flight:
            return False
        try:
            self._writer.write(self._in_flight)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning("decision log: writing %d decisions failed, will retry: %s", self._in_flight_count, error)
            self._stop.wait(min(self.interval * 5, 1.0))
            return False
        self.written += self._in_flight_count
        self._in_flight, self._in_flight_count = [], 0
        self.last_error = None
        return True


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ns(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1) * 1000


def _take(queue: deque, most: int) -> tuple[list, int]:
    """Items from the front of `queue` up to `most` decisions (at least one item), and their decisions."""
    taken, count = [], 0
    try:
        while count < most:
            item = queue.popleft()
            taken.append(item)
            count += item[1]
    except IndexError:
        pass
    return taken, count


# What the queues hold: tuples of strings, numbers, bytes and tuples of those only, (kind, decisions, ...).
# The garbage collector stops tracking such a tuple at its first collection, so however long the queue,
# full collections never walk it; and a batch of them pickles fast for the writer process.
DECISION = "d"  # (DECISION, 1, ns, the request's and the decision's fields as `_decision_item` lays them out)
EXCHANGE = "x"  # (EXCHANGE, decisions, ns, request body, answer body, pep, request id)


def queued(moment_ns: int, request: Request, decision: Decision, pep: str | None, request_id: str | None) -> tuple:
    """One decision as the queues hold it."""
    reasons = () if decision.allowed else decision.reasons
    return _decision_item(
        moment_ns,
        request,
        decision.allowed,
        _BASIS[decision.basis],
        decision.version,
        decision.clause,
        decision.grant,
        reasons,
        pep,
        request_id,
    )


def _decision_item(moment_ns, request, allowed, basis, version, clause, grant, reasons, pep, request_id) -> tuple:
    context = request.context
    attributes = context.resource_attributes
    return (
        DECISION,
        1,
        moment_ns,
        request.subject_type,
        request.subject,
        request.action,
        request.resource,
        context.mfa,
        context.ip,
        None if context.time is None else context.time.timestamp(),  # a float pickles in a third of the time
        tuple(context.scopes) if context.scopes else (),
        _atoms(attributes) if attributes else (),
        allowed,
        basis,
        version,
        clause,
        grant,
        tuple(reasons),
        pep,
        request_id,
    )


def _atoms(attributes: Mapping[str, object]) -> tuple:
    return tuple(
        (key, tuple(value) if isinstance(value, tuple | list | frozenset | set) else value)
        for key, value in attributes.items()
    )


def rows_of(item: tuple) -> list[store.Fields]:
    """A queued item as `store.append_fields` takes it: one row per decision."""
    if item[0] == DECISION:
        return [row_fields(item)]
    return [row_fields(decision) for decision in exchange_decisions(item)]


def exchange_decisions(item: tuple) -> list[tuple]:
    """The decisions of an AuthZEN exchange, as `queued` items: the questions parsed from the request body
    the way the endpoint parsed them, each paired with its answer (a batch stopped early by its semantics
    answers fewer than it asked)."""
    from charter.web import authzen  # the AuthZEN mapping: pure functions, no I/O

    _, _, moment_ns, body, answer, pep, request_id = item
    asked, told = orjson.loads(body), orjson.loads(answer)
    if "evaluations" in told:
        defaults = {key: asked[key] for key in authzen.EVALUATION_KEYS if key in asked}
        items = authzen.evaluation_items(asked) or []
        requests = [authzen.to_request(authzen.merged(defaults, entry, i)) for i, entry in enumerate(items)]
        answers = told["evaluations"]
    else:
        requests, answers = [authzen.to_request(asked)], [told]
    decisions = []
    for request, result in zip(requests, answers, strict=False):
        if request.subject_type == "token" and request.subject != "refused":
            # The endpoint logs a token subject as the subject it verified (charter.web.tokens); should a raw
            # token ever reach here, it is a bearer secret and is not written.
            request.subject = "(withheld)"
        allowed, context = result["decision"], result["context"]
        reasons = () if allowed else context.get("reasons", ())
        decisions.append(
            _decision_item(
                moment_ns,
                request,
                allowed,
                context["basis"],
                context["version"],
                context["clause"],
                context.get("grant"),
                reasons,
                pep,
                request_id,
            )
        )
    return decisions


def storable(text: str) -> str:
    """`text` as a text column can hold it: PostgreSQL refuses NUL characters, and one decision about a subject
    named with one made every batch that held it fail, so the log stopped writing. NUL becomes U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def row_fields(item: tuple) -> store.Fields:
    """A queued decision as `store.append_fields` takes it: what `_entry` would write, without an Entry."""
    (
        _,
        _,
        moment,
        subject_type,
        subject,
        action,
        resource,
        mfa,
        ip,
        time_,
        scopes,
        attributes,
        allowed,
        basis,
        version,
        clause,
        grant,
        reasons,
        pep,
        request_id,
    ) = item
    details: dict[str, object] = {"basis": basis}
    if grant is not None:
        details["grant"] = grant
    if reasons:
        details["reasons"] = list(reasons)
    if pep is not None:
        details["pep"] = pep
    # The request's context as logged: enough to ask the same question again (amendment simulation).
    context: dict[str, object] = {}
    if mfa:
        context["mfa"] = True
    if ip is not None:
        context["ip"] = ip
    if time_ is not None:
        context["time"] = dt.datetime.fromtimestamp(time_, dt.UTC).isoformat()  # exact to the microsecond
    if scopes:
        context["scopes"] = sorted(scopes)
    if attributes:
        context["resource_attributes"] = {
            key: list(value) if type(value) is tuple else value for key, value in attributes
        }
    if context:
        details["context"] = context
    return (
        moment // 1000,
        storable(f"{subject_type}:{subject}"),
        storable(action),
        storable(resource),
        "allow" if allowed else "deny",
        version,
        clause,
        request_id,
        details,
    )


def logged_context(details: Mapping[str, object], written: dt.datetime) -> Context:
    """The context a logged decision was asked with (the inverse of `row_fields`), at the moment it was
    decided: its own `time` when it had one, else `written`, the record's time."""
    context = details.get("context") or {}
    assert isinstance(context, dict)
    moment = context.get("time")
    return Context(
        mfa=bool(context.get("mfa")),
        ip=context.get("ip"),
        time=dt.datetime.fromisoformat(moment) if isinstance(moment, str) else written,
        scopes=frozenset(context.get("scopes") or ()),
        resource_attributes=context.get("resource_attributes") or {},
    )


_BASIS = {basis: basis.value for basis in Basis}
WRITERS = {"thread": ThreadWriter, "process": ProcessWriter}


def _entry(item: tuple) -> Entry:
    """A queued decision as an Entry: the record `row_fields` describes, for the general `store.append` path
    (tests write both ways and compare the rows)."""
    micros, actor, action, target, outcome, version, clause, request_id, details = row_fields(item)
    time = EPOCH + dt.timedelta(microseconds=micros)
    return Entry(time, actor, action, target, outcome, version, clause, request_id, details)


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
