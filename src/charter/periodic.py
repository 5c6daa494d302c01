"""A background thread that runs one job every `interval` seconds until stopped, surviving the job's failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    def __init__(self, name: str, interval: float, job: Callable[[], object], log: logging.Logger, *, first: float):
        """`first`: seconds before the first run (0 runs at once)."""
        self.name = name
        self.interval = interval
        self.job = job
        self.log = log
        self.first = first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        wait = self.first
        while not self._stop.wait(wait):
            try:
                self.job()
            except Exception as error:  # the store may be down: try again next round
                self.log.warning("%s failed: %s: %s", self.name, type(error).__name__, error)
            wait = self.interval
