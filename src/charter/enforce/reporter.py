"""The enforcement point's decisions, to the server's decision log (`POST /access/v1/decision-log`).

Why through the server and not the store: the proxy then needs no database credentials and no audit
signing key, the decisions join the same "decisions" chain through the server's one writer (ordered,
hashed, checkpointed as its own), and the record names the enforcement point's client id as the PEP.

`report()` is all the request path does: one dict appended to a deque (no I/O, no lock). A thread posts
what has gathered every `interval` seconds, up to `batch` at a time. A failed post keeps the batch for the
next round; beyond `capacity` waiting, allows are dropped first (counted in `dropped`), denies last.
`close()` sends what is left. Tokens are never reported: only the subject they verified as.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import orjson

from charter.client import CharterClient, CharterError
from charter.clock import Clock, SystemClock

log = logging.getLogger("charter.enforce")
PATH = "/access/v1/decision-log"


class Reporter:
    def __init__(
        self,
        client: CharterClient,
        clock: Clock | None = None,
        *,
        interval: float = 0.5,
        batch: int = 2_000,
        capacity: int = 200_000,
    ):
        self.client = client
        self.clock = clock or SystemClock()
        self.interval = interval
        self.batch = batch
        self.capacity = capacity
        self._queue: deque[dict] = deque()
        self.sent = self.dropped = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread and close() take turns sending
        self._thread = threading.Thread(target=self._run, name="charter-decision-reporter", daemon=True)
        self._thread.start()

    def report(self, outcome, client_ip: str | None, request_id: str | None) -> None:
        """Queue the decision of one gate outcome (charter.enforce.gate.Outcome)."""
        match, token, decision = outcome.match, outcome.token, outcome.decision
        if match is None or match.action is None or (token is None and outcome.status != 401):
            return  # no decision about a subject was made (no route, Charter out of sight)
        item: dict = {
            "at": int(self.clock.now().timestamp() * 1e9),
            "action": match.action,
            "resource": match.resource,
            "ip": client_ip,
            "request_id": request_id,
        }
        if token is None:  # refused before a decision: the token (or its absence) was the reason
            item.update(subject_type="token", subject="refused", allowed=False, basis="subject")
            item["reasons"] = [outcome.reason]
        else:
            item.update(subject_type=token.subject_type, subject=token.subject, mfa=token.mfa)
        if decision is not None:
            item.update(
                allowed=decision.allowed,
                basis=decision.basis.value,
                charter=decision.charter,
                version=decision.version,
                clause=decision.clause,
                grant=decision.grant,
                reasons=list(decision.reasons),
            )
        elif token is not None:
            return  # no decision was made (Charter unreachable): nothing to log as one
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return
        self._queue.append(item)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> None:
        """Send everything queued now (tests, shutdown)."""
        with self._lock:
            while self._queue and self._send_one():
                pass

    def _send_one(self) -> bool:
        batch = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
        try:
            self.client.admin("POST", PATH, content=orjson.dumps({"decisions": batch}))
        except CharterError as error:
            self._queue.extendleft(reversed(batch))
            self.last_error = str(error)
            log.warning("decision log: %d decisions not sent yet: %s", len(self._queue), error)
            return False
        self.sent += len(batch)
        self.last_error = None
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
