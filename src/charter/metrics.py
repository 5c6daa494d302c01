"""Prometheus metrics of this process (served at /metrics): the SLIs an IAM team watches.

Three kinds, by what they cost:

- counters and histograms the services raise as things happen (sign-ins, token issuance, break glass,
  snapshot builds): a labelled `inc()` or `observe()` next to work that already costs a database round trip;
- the AuthZEN decisions (`DecisionMeter`), on the hot path, where a prometheus-client counter (a lock
  and a label lookup, about a microsecond) would cost a third of a decision: a plain dict counts them by
  effect and clause, and one decision in 64 is timed for the latency histogram. Counting happens where
  the decision is made, not in the decision log's writer, because that log may sample allows, drop
  them when its queue is full, or be off, and these counts must be exact. The dict is read at scrape time;
- gauges that need the store (pending and overdue requests and reviews, credential age, identities without
  an owner): `StoreGauges` reads them in a background thread at most every `interval` seconds, and a
  scrape only reads the last figures, never the store.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

log = logging.getLogger("charter.metrics")

BREAK_GLASS = Counter("charter_break_glass_total", "Uses of break glass, by the clause used.", ["clause"])
AUTH_ATTEMPTS = Counter(
    "charter_auth_attempts_total",
    "Authentication attempts (sign-in steps and token endpoint requests), by method.",
    ["method"],
)
AUTH_SUCCESSES = Counter(
    "charter_auth_successes_total", "Authentication attempts that succeeded, by method.", ["method"]
)
AUTH_RATE_LIMITED = Counter(
    "charter_auth_rate_limited_total", "Attempts refused with 429 by a per-address limit, by endpoint.", ["endpoint"]
)
TOKEN_SECONDS = Histogram(
    "charter_token_issuance_seconds",
    "Time to answer a token endpoint request, by grant type and outcome (issued or refused).",
    ["grant_type", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DECISION_SECONDS = Histogram(
    "charter_decision_seconds",
    f"Time to evaluate one AuthZEN decision against the snapshot (1 in {64} decisions is timed).",
    buckets=(1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2),
)
SNAPSHOT_REVISION = Gauge("charter_snapshot_revision", "The store revision the decision snapshot was built from.")
SNAPSHOT_BUILD_SECONDS = Histogram(
    "charter_snapshot_build_seconds",
    "Time to build a decision snapshot, by kind (full rebuild or incremental step).",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SNAPSHOT_BUILT_AT = Gauge("charter_snapshot_built_timestamp_seconds", "When the current snapshot was swapped in.")

SAMPLE_MASK = 63  # one decision in 64 is timed


class DecisionMeter:
    """Counts AuthZEN decisions by effect and clause and times a sample of them; no lock.

    Called on the event loop's thread (the AuthZEN endpoints are async and evaluate inline), so the plain
    dict and counter are updated by one thread; a stray update from another thread may at worst lose one
    count, never corrupt the dict.
    """

    __slots__ = ("allows", "denies", "ticket")

    def __init__(self) -> None:
        self.allows: defaultdict[int | None, int] = defaultdict(int)  # by deciding clause (None: no clause)
        self.denies: defaultdict[int | None, int] = defaultdict(int)
        self.ticket = itertools.count(1)

    def evaluate(self, snapshot, request):
        """`snapshot.evaluate(request)`, counted (and, one time in 64, timed). Costs about 0.2 µs a decision
        (bench/metrics_overhead.py): two dicts keyed by the clause number, no tuple, no lock."""
        if next(self.ticket) & SAMPLE_MASK:
            decision = snapshot.evaluate(request)
        else:
            started = time.perf_counter_ns()
            decision = snapshot.evaluate(request)
            DECISION_SECONDS.observe((time.perf_counter_ns() - started) / 1e9)
        (self.allows if decision.allowed else self.denies)[decision.clause] += 1
        return decision

    def total(self) -> int:
        return sum(self.allows.values()) + sum(self.denies.values())

    def collect(self) -> Iterator[CounterMetricFamily]:
        decisions = CounterMetricFamily(
            "charter_decisions",
            "AuthZEN decisions answered, by effect and deciding clause.",
            labels=["effect", "clause"],
        )
        denies = CounterMetricFamily(
            "charter_denies", "AuthZEN decisions that denied, by deciding clause.", labels=["clause"]
        )
        for effect, counts in (("allow", self.allows), ("deny", self.denies)):
            for clause, count in sorted(counts.copy().items(), key=lambda item: item[0] or 0):
                label = "none" if clause is None else str(clause)
                decisions.add_metric([effect, label], count)
                if effect == "deny":
                    denies.add_metric([label], count)
        yield decisions
        yield denies


DECISIONS = DecisionMeter()


@dataclass
class StoreFigures:
    """What `StoreGauges` last read from the store."""

    requests_pending: int = 0
    requests_overdue: int = 0
    reviews_open: int = 0
    reviews_overdue: int = 0
    credentials_oldest_seconds: float = 0.0
    credentials_past_rotation: int = 0
    rotation_window_seconds: float | None = None
    identities_without_owner: int = 0
    read_at: float = 0.0
    errors: int = 0
    labels: dict = field(default_factory=dict)


def read_figures(session, now: dt.datetime, rotation: dt.timedelta | None) -> StoreFigures:
    """The store's gauges in one read. Overdue requests are pending ones already escalated (past the
    charter's escalation window); overdue reviews are open tasks past their due date; credentials are the
    active API clients and OAuth client secrets of services; identities without owner are active services
    and partners with none recorded."""
    from charter.store.models import AccessRequestRow, ApiClientRow, IdentityRow, OAuthClientRow, ReviewTaskRow

    figures = StoreFigures(rotation_window_seconds=rotation.total_seconds() if rotation is not None else None)
    figures.requests_pending = _count(session, AccessRequestRow.status == "pending")
    figures.requests_overdue = _count(
        session, AccessRequestRow.status == "pending", AccessRequestRow.escalated_to.is_not(None)
    )
    figures.reviews_open = _count(session, ReviewTaskRow.status == "open")
    figures.reviews_overdue = _count(session, ReviewTaskRow.status == "open", ReviewTaskRow.due < now)
    figures.identities_without_owner = _count(
        session,
        IdentityRow.kind.in_(("service", "partner")),
        IdentityRow.state == "active",
        IdentityRow.owner.is_(None),
    )
    made = list(
        session.scalars(
            select(ApiClientRow.created_at).where(
                ApiClientRow.subject_type == "service", ApiClientRow.revoked_at.is_(None)
            )
        )
    )
    made += session.scalars(
        select(OAuthClientRow.secret_created_at).where(
            OAuthClientRow.service.is_not(None),
            OAuthClientRow.revoked_at.is_(None),
            OAuthClientRow.secret_created_at.is_not(None),
        )
    )
    ages = [(now - _aware(moment)).total_seconds() for moment in made]
    figures.credentials_oldest_seconds = max(ages, default=0.0)
    if rotation is not None:
        figures.credentials_past_rotation = sum(1 for age in ages if age > rotation.total_seconds())
    return figures


def _count(session, *conditions) -> int:
    table = conditions[0].left.table
    return int(session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class StoreGauges:
    """Reads `StoreFigures` with `read()` every `interval` seconds in a daemon thread; `collect()` serves the last."""

    def __init__(self, read: Callable[[], StoreFigures], interval: float = 15.0):
        self.read = read
        self.interval = interval
        self.figures = StoreFigures()
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        try:
            figures = self.read()
            figures.read_at = time.time()
            self.figures = figures
        except Exception as error:  # the store away: keep the last figures, count the failure
            self.errors += 1
            log.warning("store gauges not read: %s: %s", type(error).__name__, error)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-store-gauges", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.interval)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = self.figures
        yield _gauge("charter_requests_pending", "Access requests waiting for approval.", f.requests_pending)
        yield _gauge(
            "charter_requests_overdue", "Pending access requests past the escalation window.", f.requests_overdue
        )
        yield _gauge("charter_reviews_open", "Review tasks open.", f.reviews_open)
        yield _gauge("charter_reviews_overdue", "Review tasks open past their due date.", f.reviews_overdue)
        yield _gauge(
            "charter_credential_age_max_seconds",
            "Age of the oldest active service credential (API client or OAuth client secret).",
            f.credentials_oldest_seconds,
        )
        yield _gauge(
            "charter_credentials_past_rotation",
            "Active service credentials older than the charter's rotation window.",
            f.credentials_past_rotation,
        )
        if f.rotation_window_seconds is not None:
            yield _gauge(
                "charter_credential_rotation_window_seconds",
                "The charter's rotation window for service credentials.",
                f.rotation_window_seconds,
            )
        yield _gauge(
            "charter_identities_without_owner",
            "Active services and partners with no owner.",
            f.identities_without_owner,
        )
        yield _gauge("charter_store_gauges_read_timestamp_seconds", "When these store gauges were read.", f.read_at)
        yield CounterMetricFamily("charter_store_gauges_errors", "Failed reads of the store gauges.", value=self.errors)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class DecisionLogGauges:
    """The decision log's queue depth, drops and writes, read from its counters at scrape time (no lock)."""

    def __init__(self, decision_log) -> None:
        self.decision_log = decision_log

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        dl = self.decision_log
        yield _gauge("charter_decision_log_queue_depth", "Decisions queued for the decision log.", dl.pending)
        dropped = CounterMetricFamily(
            "charter_decision_log_dropped", "Decisions not logged, by reason.", labels=["reason"]
        )
        dropped.add_metric(["queue_full"], dl.dropped)
        dropped.add_metric(["kept_overflow"], dl.kept_overflow)
        dropped.add_metric(["unsampled"], dl.unsampled)
        yield dropped
        yield CounterMetricFamily("charter_decision_log_written", "Decisions written to the log.", value=dl.written)


class _Swappable(Collector):
    """A collector registered once per process whose source the current app sets (tests make many apps)."""

    def __init__(self) -> None:
        self.source: object | None = None

    def collect(self):
        source = self.source
        return source.collect() if source is not None else iter(())


_STORE = _Swappable()
_DECISION_LOG = _Swappable()
_registered = False
_registering = threading.Lock()


def install(store_gauges: StoreGauges | None, decision_log) -> None:
    """Expose these store gauges and decision log (and the decision counts) in the default registry."""
    global _registered
    with _registering:
        if not _registered:
            REGISTRY.register(DECISIONS)  # type: ignore[arg-type]
            REGISTRY.register(_STORE)
            REGISTRY.register(_DECISION_LOG)
            _registered = True
    _STORE.source = store_gauges
    _DECISION_LOG.source = DecisionLogGauges(decision_log) if decision_log is not None else None


def snapshot_built(kind: str, revision: int, seconds: float) -> None:
    """A snapshot was swapped in: its revision, when, and how long it took."""
    SNAPSHOT_REVISION.set(revision)
    SNAPSHOT_BUILT_AT.set(time.time())
    SNAPSHOT_BUILD_SECONDS.labels(kind).observe(seconds)
