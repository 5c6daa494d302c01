"""The server's audit housekeeping thread: sign the chains' heads every minute, prune by retention hourly.

Frequent checkpoints bound what an attacker with write access to the store could rewrite unnoticed
(only records after the newest checkpoint are protected by the hash chain alone). Pruning follows the
retention clauses of the charter version in force.
"""

from __future__ import annotations

import logging
import threading
import time

from charter.audit.retention import prune_expired
from charter.engine import Engine

log = logging.getLogger("charter.audit")
ACTOR = "charter server (retention)"


class AuditMaintenance:
    def __init__(self, engine: Engine, checkpoint_interval: float = 60.0, prune_interval: float = 3600.0):
        self.engine = engine
        self.checkpoint_interval = checkpoint_interval
        self.prune_interval = prune_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = float("-inf")

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-audit-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def run_once(self) -> None:
        """One round: checkpoint the heads, and prune when the prune interval has passed."""
        audit = self.engine.audit
        audit.checkpoint(self.engine.sessions)
        if time.monotonic() - self._last_prune >= self.prune_interval:
            self._last_prune = time.monotonic()
            pruned = prune_expired(self.engine.sessions, audit, self.engine.snapshot.version, ACTOR)
            for chain, through in pruned.items():
                if through is not None:
                    log.info("audit: pruned the %s chain through record %d (retention)", chain, through)

    def _run(self) -> None:
        while not self._stop.wait(self.checkpoint_interval):
            try:
                self.run_once()
            except Exception as error:  # the store may be down: try again next round
                log.warning("audit maintenance failed: %s: %s", type(error).__name__, error)
