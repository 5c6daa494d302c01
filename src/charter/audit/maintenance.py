"""The server's audit housekeeping thread: sign the chains' heads every minute, prune by retention hourly.

Frequent checkpoints bound what an attacker with write access to the store could rewrite unnoticed
(only records after the newest checkpoint are protected by the hash chain alone). Pruning follows the
retention clauses of the charter version in force.
"""

from __future__ import annotations

import logging
import time

from charter.audit.retention import prune_expired
from charter.engine import Engine
from charter.periodic import Periodic

log = logging.getLogger("charter.audit")
ACTOR = "charter server (retention)"


class AuditMaintenance:
    def __init__(self, engine: Engine, checkpoint_interval: float = 60.0, prune_interval: float = 3600.0):
        self.engine = engine
        self.checkpoint_interval = checkpoint_interval
        self.prune_interval = prune_interval
        self._last_prune = float("-inf")
        thread = Periodic(
            "charter-audit-maintenance", checkpoint_interval, self.run_once, log, first=checkpoint_interval
        )
        self._thread = thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

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
