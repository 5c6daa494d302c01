"""Prometheus metrics of this process (served at /metrics): the counters services raise."""

from __future__ import annotations

from prometheus_client import Counter

BREAK_GLASS = Counter("charter_break_glass_total", "Uses of break glass, by the clause used.", ["clause"])
