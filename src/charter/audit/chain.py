"""The hash chain: each audit record carries the SHA-256 of the one before it. Pure: no I/O.

A record's hash covers its sequence number, its fields and the previous hash,
over a canonical encoding (JSON, keys sorted, no spaces, UTF-8). Changing,
removing, inserting or reordering any record breaks the chain from there on,
and `verify` names the first record where it breaks and how.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import orjson

GENESIS = "0" * 64  # the "previous hash" of the first record ever written


@dataclass(frozen=True, slots=True)
class Entry:
    """What is written: who did what to what, with which outcome, under which clause."""

    time: dt.datetime
    actor: str
    action: str
    target: str
    outcome: str
    charter_version: int | None = None
    clause: int | None = None
    request_id: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """An entry as stored: its place in the chain and its hashes."""

    seq: int
    entry: Entry
    prev_hash: str
    hash: str


def canonical(seq: int, entry: Entry, prev_hash: str) -> bytes:
    """The bytes a record's hash is taken over. Changing this breaks every existing chain."""
    return canonical_fields(
        seq,
        instant(entry.time),
        entry.actor,
        entry.action,
        entry.target,
        entry.outcome,
        entry.charter_version,
        entry.clause,
        entry.request_id,
        dict(entry.details),
        prev_hash,
    )


def instant(moment: dt.datetime) -> str:
    """A record's time as hashed: UTC, to the microsecond (`2026-11-24T10:00:00.000000Z`)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_fields(
    seq: int,
    time: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    charter_version: int | None,
    clause: int | None,
    request_id: str | None,
    details: dict | orjson.Fragment,
    prev_hash: str,
) -> bytes:
    """`canonical` from the fields themselves (`time` as `instant` writes it; `details` a dict, or the
    Fragment of its JSON with keys sorted), for a writer that builds no Entry per record (the decision log's)."""
    document = {
        "seq": seq,
        "time": time,
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "charter_version": charter_version,
        "clause": clause,
        "request_id": request_id,
        "details": details,
        "prev": prev_hash,
    }
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def seal(seq: int, entry: Entry, prev_hash: str) -> Record:
    return Record(seq, entry, prev_hash, hashlib.sha256(canonical(seq, entry, prev_hash)).hexdigest())


def extend(head_seq: int, head_hash: str, entries: Iterable[Entry]) -> list[Record]:
    """Chain new entries after the record (`head_seq`, `head_hash`); 0 and GENESIS for an empty log."""
    records = []
    for entry in entries:
        head_seq += 1
        record = seal(head_seq, entry, head_hash)
        head_hash = record.hash
        records.append(record)
    return records


class Break(Enum):
    ALTERED = "altered"  # the record's content no longer matches its hash
    REMOVED = "removed"  # sequence numbers skip: records are missing
    INSERTED = "inserted"  # a record does not follow from the one before it, or repeats a number
    REORDERED = "reordered"  # sequence numbers go backwards
    CHECKPOINT = "checkpoint"  # a signed checkpoint disagrees with the record it vouches for


@dataclass(frozen=True, slots=True)
class Finding:
    seq: int
    kind: Break
    detail: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.kind.value}: {self.detail}"


def verify(
    records: Iterable[Record], anchor: tuple[int, str] | None = None, checkpoints: Mapping[int, str] | None = None
) -> Finding | None:
    """The first break in `records` (read in sequence order), or None if the chain holds.

    `anchor` is (seq, hash) of the record just before the first one given: GENESIS for
    a log read from the start, or a signed checkpoint after older records were pruned.
    `checkpoints` maps seq to the hash a (signature-checked) checkpoint vouches for: a chain rewritten
    consistently from some record on, hashes recomputed, still breaks at the first checkpoint after it.
    A record whose number was changed still hashes correctly under its original number, and
    its `prev_hash` names its true predecessor; such a record is reported as reordered.
    """
    expected_seq, expected_prev = anchor if anchor is not None else (0, GENESIS)
    for record in records:
        if record.seq <= expected_seq:
            kind = Break.INSERTED if record.seq == expected_seq else Break.REORDERED
            return Finding(record.seq, kind, f"expected record {expected_seq + 1}, found record {record.seq} again")
        if _digest(record.seq, record) != record.hash:
            moved_from = _original_place(record)
            if moved_from is not None:
                return Finding(record.seq, Break.REORDERED, f"it was written as record {moved_from}")
            return Finding(record.seq, Break.ALTERED, "its content does not match its hash")
        if record.seq > expected_seq + 1:
            missing = record.seq - expected_seq - 1
            return Finding(
                record.seq, Break.REMOVED, f"{missing} record(s) before it are missing (after record {expected_seq})"
            )
        if record.prev_hash != expected_prev:
            return Finding(record.seq, Break.INSERTED, f"it does not follow from record {expected_seq}")
        vouched = checkpoints.get(record.seq) if checkpoints else None
        if vouched is not None and vouched != record.hash:
            return Finding(
                record.seq,
                Break.CHECKPOINT,
                "a signed checkpoint vouches for a different record here: the chain up to it was rewritten",
            )
        expected_seq, expected_prev = record.seq, record.hash
    return None


def _digest(seq: int, record: Record) -> str:
    return hashlib.sha256(canonical(seq, record.entry, record.prev_hash)).hexdigest()


def _original_place(record: Record, window: int = 1000) -> int | None:
    """The number this record was sealed with, if it is intact but now stands elsewhere (searched nearby)."""
    for distance in range(1, window + 1):
        for candidate in (record.seq - distance, record.seq + distance):
            if candidate > 0 and _digest(candidate, record) == record.hash:
                return candidate
    return None
