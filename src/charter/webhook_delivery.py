"""Sending queued webhook deliveries: signed with HMAC-SHA256, retried with backoff, each outcome recorded.

`charter.notify.publish` queues one pending delivery per subscribed webhook in the transaction of the change
that caused the event. Each server runs one `WebhookDeliverer` thread; every second it

1. claims up to `batch` due deliveries (pending, `next_attempt` reached, oldest first) in one short statement
   that pushes their `next_attempt` a lease ahead. On PostgreSQL the rows are chosen `FOR UPDATE SKIP LOCKED`,
   so two servers never claim the same one; on SQLite the statement takes the database's write lock. A server
   that dies holding a claim only delays those deliveries until the lease ends;
2. POSTs each event to its webhook with no database connection held (5 s timeout, redirects not followed);
3. records the outcome in another short transaction: a 2xx is delivered; anything else is retried after
   10 s, 20 s, 40 s, ... (capped at an hour, plus up to 10% jitter so that receivers coming back are not hit
   by every retry at once) until the 8th failed attempt, which marks it failed (logged as an error).

The request (docs/notifications.md says how a receiver checks it): the body is `{"id", "type", "at",
"payload"}`; `Charter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import select, update

from charter.engine import Engine
from charter.periodic import Periodic
from charter.store.models import EventRow, WebhookDeliveryRow, WebhookRow

log = logging.getLogger("charter.webhooks")

INTERVAL = 1.0  # seconds between rounds
BATCH = 50  # deliveries claimed per round
TIMEOUT = 5.0  # seconds a receiver has to answer
# Longer than a whole batch can take (50 receivers timing out at 5 s each), so a claim never lapses while
# its server is still sending, which would let another server send the same delivery again.
LEASE = dt.timedelta(seconds=BATCH * TIMEOUT + 50)
MAX_ATTEMPTS = 8
FIRST_RETRY = 10.0  # seconds; doubled after each failure
LONGEST_RETRY = 3600.0
JITTER = 0.1  # up to this share of the delay is added at random
MAX_ERROR = 500  # characters of an error kept on the delivery
SIGNATURE_TOLERANCE = 300  # seconds: what receivers are advised to accept between `t` and their clock


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this server holds until `lease`, with what sending it needs."""

    id: int
    attempts: int
    lease: dt.datetime
    webhook_id: str
    url: str
    secret: str
    webhook_disabled: bool
    event_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt: the delivery's new status, the receiver's HTTP status, the error."""

    delivery_id: int
    status: str  # delivered | pending (to be retried) | failed
    attempts: int
    last_status: int | None
    last_error: str | None


class WebhookDeliverer:
    def __init__(self, engine: Engine, *, interval: float = INTERVAL, batch: int = BATCH, timeout: float = TIMEOUT):
        self.engine = engine
        self.batch = batch
        self.timeout = timeout
        self._thread = Periodic("charter-webhook-deliverer", interval, self.run_once, log, first=interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def run_once(self) -> list[Outcome]:
        """One round: claim what is due, send it, record each outcome. Returns the outcomes, oldest first."""
        claimed = self.claim()
        if not claimed:
            return []
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as http:
            return [self._record(delivery, *self._send(http, delivery)) for delivery in claimed]

    # --- claiming ---------------------------------------------------------------------------------

    def claim(self) -> list[Claimed]:
        """Take up to `batch` due deliveries for this server, for the length of a lease, in one short transaction."""
        now = self._now()
        lease = now + LEASE
        due = (
            select(WebhookDeliveryRow.id)
            .where(WebhookDeliveryRow.status == "pending", WebhookDeliveryRow.next_attempt <= now)
            .order_by(WebhookDeliveryRow.id)
            .limit(self.batch)
            # PostgreSQL: rows another server is claiming are passed over, not waited for. (SQLite renders
            # no FOR UPDATE: there the single UPDATE statement holds the database's write lock instead.)
            .with_for_update(skip_locked=True)
        )
        with self.engine.sessions() as session, session.begin():
            ids = session.scalars(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id.in_(due.scalar_subquery()))
                .values(next_attempt=lease)
                .returning(WebhookDeliveryRow.id)
                .execution_options(synchronize_session=False)
            ).all()
            if not ids:
                return []
            rows = session.execute(
                select(WebhookDeliveryRow, WebhookRow, EventRow)
                .join(WebhookRow, WebhookRow.id == WebhookDeliveryRow.webhook_id)
                .join(EventRow, EventRow.id == WebhookDeliveryRow.event_id)
                .where(WebhookDeliveryRow.id.in_(ids))
                .order_by(WebhookDeliveryRow.id)
            )
            return [
                Claimed(
                    id=delivery.id,
                    attempts=delivery.attempts,
                    lease=lease,
                    webhook_id=hook.id,
                    url=hook.url,
                    secret=hook.secret,
                    webhook_disabled=hook.disabled_at is not None,
                    event_type=event.type,
                    body=event_body(event),
                )
                for delivery, hook, event in rows
            ]

    # --- sending ----------------------------------------------------------------------------------

    def _send(self, http: httpx.Client, delivery: Claimed) -> tuple[int | None, str | None]:
        """POST the event; (the receiver's status, None) on a 2xx, else (status or None, why it failed)."""
        # Disabling a webhook drops its pending deliveries, but an event published while it was being disabled
        # can still have queued one: send nothing to it.
        if delivery.webhook_disabled:
            return None, "the webhook was disabled"
        timestamp = int(self._now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Charter-Webhooks/1",
            "Charter-Event": delivery.event_type,
            "Charter-Delivery": str(delivery.id),
            "Charter-Signature": signature_header(delivery.secret, timestamp, delivery.body),
        }
        try:
            # Streamed and never read: a receiver's answer is its status alone, whatever the size of its body.
            with http.stream("POST", delivery.url, content=delivery.body, headers=headers) as response:
                status = response.status_code
        except Exception as error:  # whatever it is, it is this delivery's failure: recorded, retried
            return None, _short(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status} {response.reason_phrase}".rstrip()

    # --- recording --------------------------------------------------------------------------------

    def _record(self, delivery: Claimed, status: int | None, error: str | None) -> Outcome:
        now = self._now()
        attempts = delivery.attempts + (0 if delivery.webhook_disabled else 1)
        values: dict = {"attempts": attempts, "last_status": status, "last_error": error}
        if error is None:
            outcome = "delivered"
            values["delivered_at"] = now
        elif delivery.webhook_disabled or attempts >= MAX_ATTEMPTS:
            outcome = "failed"
        else:
            outcome = "pending"
            values["next_attempt"] = now + dt.timedelta(seconds=retry_delay(attempts))
        with self.engine.sessions() as session, session.begin():
            # Only while the claim is still ours: had the lease lapsed and another server taken the delivery,
            # its record stands.
            session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id == delivery.id,
                    WebhookDeliveryRow.status == "pending",
                    WebhookDeliveryRow.next_attempt == delivery.lease,
                )
                .values(status=outcome, **values)
                .execution_options(synchronize_session=False)
            )
        self._log(delivery, outcome, attempts, error)
        return Outcome(delivery.id, outcome, attempts, status, error)

    @staticmethod
    def _log(delivery: Claimed, outcome: str, attempts: int, error: str | None) -> None:
        # The receiver by webhook id and host only: hook URLs often carry a token in their path.
        receiver = f"webhook {delivery.webhook_id} ({urlsplit(delivery.url).hostname})"
        if outcome == "failed":
            log.error(
                "delivery %d of event %s to %s failed for good after %d attempts: %s",
                delivery.id,
                delivery.event_type,
                receiver,
                attempts,
                error,
            )
        elif outcome == "pending":
            log.warning("delivery %d to %s failed (attempt %d): %s", delivery.id, receiver, attempts, error)

    def _now(self) -> dt.datetime:
        return self.engine.clock.now().astimezone(dt.UTC)


def event_body(event: EventRow) -> bytes:
    """The JSON every receiver gets (and the event stream sends as `data`)."""
    return orjson.dumps(event_json(event))


def event_json(event: EventRow) -> dict:
    at = event.at if event.at.tzinfo is not None else event.at.replace(tzinfo=dt.UTC)  # SQLite: naive UTC
    return {"id": event.id, "type": event.type, "at": at.astimezone(dt.UTC).isoformat(), "payload": event.payload}


def retry_delay(failed_attempts: int) -> float:
    """Seconds before the next attempt after `failed_attempts` failures: 10, 20, 40, ... capped at an hour,
    plus up to 10% at random."""
    delay = min(FIRST_RETRY * 2 ** (failed_attempts - 1), LONGEST_RETRY)
    return delay + random.uniform(0, delay * JITTER)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the webhook's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, now: dt.datetime, tolerance: int = SIGNATURE_TOLERANCE
) -> bool:
    """What a receiver checks (Python receivers may copy this): a `v1` signature of this body under the
    secret, made within `tolerance` seconds of `now` (so a captured request cannot be replayed later)."""
    fields = [item.strip().partition("=") for item in header.split(",")]
    stamps = [value for key, _, value in fields if key == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now.timestamp() - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, value) for key, _, value in fields if key == "v1")


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
