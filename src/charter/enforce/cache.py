"""Decisions remembered at the enforcement point, for as long as they are sure to hold.

An entry is kept under the revision it was decided at and read back only while that is still the
current revision: when the server's revision moves (the replica's `on_change`, or a `Charter-Revision`
header passed to `observe`), every entry is dropped at once. A revocation is a new revision, so it is
honoured on the first request after the enforcement point sees it, never only when a TTL runs out.

Time alone can change an answer too: a just-in-time grant ends, a clause lapses, a time window closes.
An entry never outlives its decision's `until` (charter.policy.decision), and a decision that turned on
the time of the request (`until` 0) is not kept at all. `max_age` bounds every entry besides (a
belt, not the mechanism). Pure: the caller passes the time; no I/O, no lock (dict operations are atomic
under the GIL, and a lost entry is only a miss).
"""

from __future__ import annotations

from collections.abc import Hashable

from charter.policy.decision import Decision

DEFAULT_SIZE = 100_000
DEFAULT_MAX_AGE = 60.0


class DecisionCache:
    def __init__(self, size: int = DEFAULT_SIZE, max_age: float = DEFAULT_MAX_AGE):
        self.size = size
        self.max_age = max_age
        self.revision = -1
        self._entries: dict[Hashable, tuple[int, float, Decision]] = {}
        self.hits = self.misses = self.invalidations = 0

    def observe(self, revision: int) -> None:
        """The server is at `revision`: drop everything decided at another one."""
        if revision != self.revision:
            self.revision = revision
            self._entries = {}
            self.invalidations += 1

    def get(self, key: Hashable, now: float) -> Decision | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != self.revision or entry[1] <= now:
            self.misses += 1
            return None
        self.hits += 1
        return entry[2]

    def put(self, key: Hashable, decision: Decision, revision: int, now: float) -> None:
        """Remember `decision`, made at `revision` (ignored unless that is the current one)."""
        if revision != self.revision:
            return
        expires = now + self.max_age
        if decision.until is not None:
            if decision.until <= now:
                return  # it turned on the moment: never cache
            expires = min(expires, decision.until)
        entries = self._entries
        if len(entries) >= self.size:
            entries.clear()  # cheap and safe; the next calls just decide again
        entries[key] = (revision, expires, decision)

    def __len__(self) -> int:
        return len(self._entries)
