"""The one clock all time logic reads, so that expiry and lapse can be tested without sleeping."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that stands still until moved: for tests and for `--today`."""

    def __init__(self, at: dt.datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at

    @classmethod
    def on(cls, day: dt.date) -> FixedClock:
        return cls(dt.datetime.combine(day, dt.time(), dt.UTC))

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, delta: dt.timedelta) -> None:
        self._at += delta

    def set(self, at: dt.datetime) -> None:
        self._at = at


def today(clock: Clock) -> dt.date:
    return clock.now().astimezone(dt.UTC).date()
