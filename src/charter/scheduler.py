"""The server's amendment scheduler: once a minute, apply every approved amendment whose date has come,
judge the amendments in canary (withdraw or promote them), escalate or expire undecided access requests, and
rotate the token signing keys when due (charter.oidc.rotation).

Each server runs one; two applying the same amendment at once is safe (the revision row's lock
serialises them, and the second finds it already in force). A failure leaves the previous version in
force, keeps the reason on the amendment and records it in the audit chain.
"""

from __future__ import annotations

import logging

from charter.admin import Admin
from charter.oidc.rotation import rotate_if_due
from charter.periodic import Periodic

log = logging.getLogger("charter.scheduler")
ACTOR = "charter scheduler"


class AmendmentScheduler:
    def __init__(self, admin: Admin, interval: float = 60.0):
        self.admin = admin
        self.interval = interval
        thread = Periodic("charter-amendment-scheduler", interval, self.run_once, log, first=0)
        self._thread = thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def run_once(self) -> list[dict]:
        try:
            rotate_if_due(self.admin.engine)
        except Exception as error:  # keys are no reason to hold up amendments: next tick tries again
            log.warning("signing key rotation failed: %s: %s", type(error).__name__, error)
        results = self.admin.apply_due_amendments(ACTOR) + self.admin.watch_canaries(ACTOR)
        for swept in self.admin.sweep_requests(ACTOR):
            log.warning("access request %s %s", swept["request"], swept["did"])
        for result in results:
            if result["status"] == "failed":
                log.error("amendment %s could not move on: %s", result["number"], result["error"])
            elif result["status"] != "canary" or "revision" in result:
                log.warning("amendment %s is %s", result["number"], result["status"].replace("_", " "))
        return results
