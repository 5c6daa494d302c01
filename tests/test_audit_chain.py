"""The audit hash chain names the first record that was altered, removed, inserted or reordered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from charter.audit.chain import GENESIS, Break, Entry, extend, seal, verify

T = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def records():
    entries = [
        Entry(T + dt.timedelta(seconds=i), "user:admin", "directory.put", f"users/u{i}", "ok", 0, 19) for i in range(10)
    ]
    return extend(0, GENESIS, entries)


def test_an_intact_chain_verifies(records):
    assert verify(records) is None
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))


def test_the_chain_continues_from_a_head(records):
    more = extend(records[-1].seq, records[-1].hash, [Entry(T, "a", "b", "c", "ok")])
    assert more[0].seq == 11
    assert verify([*records, *more]) is None


def test_altered_content_is_named(records):
    tampered = list(records)
    tampered[4] = dataclasses.replace(records[4], entry=dataclasses.replace(records[4].entry, outcome="denied"))
    finding = verify(tampered)
    assert (finding.seq, finding.kind) == (5, Break.ALTERED)


def test_an_altered_time_is_named(records):
    tampered = list(records)
    tampered[2] = dataclasses.replace(
        records[2], entry=dataclasses.replace(records[2].entry, time=T - dt.timedelta(days=1))
    )
    assert verify(tampered).kind is Break.ALTERED


def test_a_removed_record_is_named(records):
    finding = verify(records[:6] + records[7:])
    assert (finding.seq, finding.kind) == (8, Break.REMOVED)
    assert "1 record(s) before it are missing (after record 6)" in finding.detail


def test_an_inserted_record_is_named(records):
    forged = seal(5, Entry(T, "user:mallory", "grant", "x", "ok"), records[3].hash)
    finding = verify([*records[:4], forged, *records[4:]])
    assert (finding.seq, finding.kind) == (5, Break.INSERTED)


def test_a_reordered_record_is_named(records):
    swapped = list(records)
    swapped[3] = dataclasses.replace(records[4], seq=4)
    swapped[4] = dataclasses.replace(records[3], seq=5)
    finding = verify(swapped)
    assert (finding.seq, finding.kind) == (4, Break.REORDERED)
    assert finding.detail == "it was written as record 5"


def test_a_pruned_log_verifies_from_its_anchor(records):
    anchor = (records[4].seq, records[4].hash)
    assert verify(records[5:], anchor) is None
    assert verify(records[6:], anchor).kind is Break.REMOVED
