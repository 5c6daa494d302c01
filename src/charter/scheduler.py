"""The server's amendment scheduler: once a minute, apply every approved amendment whose date has come.

Each server runs one; two applying the same amendment at once is safe (the revision row's lock
serialises them, and the second finds it already in force). A failure leaves the previous version in
force, keeps the reason on the amendment and records it in the audit chain.
"""

from __future__ import annotations

import logging
import threading

from charter.admin import Admin

log = logging.getLogger("charter.scheduler")
ACTOR = "charter scheduler"


class AmendmentScheduler:
    def __init__(self, admin: Admin, interval: float = 60.0):
        self.admin = admin
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-amendment-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def run_once(self) -> list[dict]:
        results = self.admin.apply_due_amendments(ACTOR)
        for result in results:
            if result["status"] == "in_force":
                log.warning("amendment %s is in force (revision %s)", result["number"], result["revision"])
            else:
                log.error("amendment %s could not be applied: %s", result["number"], result["error"])
        return results

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception as error:  # the store may be down: try again next round
                log.warning("amendment scheduler failed: %s: %s", type(error).__name__, error)
            if self._stop.wait(self.interval):
                return
