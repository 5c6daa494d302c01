"""The audit chains in a real store (SQLite and PostgreSQL): tampering with single rows, and `charter audit verify`.

Each case writes a chain through `AuditTrail` (checkpoints every 10 records), then changes the
database directly, as someone with write access to it would, and expects `charter audit verify` to name
the record and the kind of break. A chain rewritten consistently (hashes recomputed) is caught by the
signed checkpoints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from charter.audit import store
from charter.audit.chain import Entry, canonical
from charter.audit.signing import Keyring
from charter.audit.trail import AuditTrail
from charter.cli.main import cli
from charter.clock import FixedClock
from charter.store.db import make_engine, sessions, upgrade

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
RECORDS = 30


@pytest.fixture
def chain(backend, tmp_path):
    """A store whose audit chain holds records 1..30, signed at 10, 20 and 30."""
    db = make_engine(backend.url)
    upgrade(db)
    clock = FixedClock(START)
    trail = AuditTrail(clock, Keyring(tmp_path / "keys"), checkpoint_every=10)
    maker = sessions(db)
    for i in range(1, RECORDS + 1):
        with maker.begin() as session:
            trail.record(session, f"user:admin{i % 3}", "directory.user.put", f"directory:users/u{i}", details={"i": i})
        clock.advance(dt.timedelta(minutes=1))
    yield db, maker, trail, clock, backend
    db.dispose()


def verify(backend, *args) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(
        cli, ["audit", "verify", "--chain", "audit", "--json", *args], env={"CHARTER_DATABASE_URL": backend.url}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def finding(backend) -> tuple[int, str, str]:
    code, reports = verify(backend)
    assert code == 1, reports
    found = reports[0]["finding"]
    return found["seq"], found["kind"], found["detail"]


def sql(db, statement: str, **params) -> None:
    with db.begin() as connection:
        connection.execute(text(statement), params)


def test_an_untouched_chain_verifies_with_its_checkpoints(chain):
    _db, _maker, _trail, _clock, backend = chain
    code, reports = verify(backend)
    assert code == 0
    assert reports[0] | {"finding": None} == {
        "chain": "audit",
        "intact": True,
        "first": 1,
        "head": 30,
        "records": 30,
        "checkpoints": 3,
        "signed_through": 30,
        "finding": None,
    }


def test_an_altered_record_is_named(chain):
    db, *_, backend = chain
    sql(db, "UPDATE audit_records SET actor = 'user:mallory' WHERE seq = 25")
    assert finding(backend)[:2] == (25, "altered")


def test_an_altered_time_is_named(chain):
    db, *_, backend = chain
    sql(db, "UPDATE audit_records SET time = :t WHERE seq = 7", t=START - dt.timedelta(days=30))
    assert finding(backend)[:2] == (7, "altered")


def test_a_deleted_record_is_named(chain):
    db, *_, backend = chain
    sql(db, "DELETE FROM audit_records WHERE seq = 17")
    seq, kind, detail = finding(backend)
    assert (seq, kind) == (18, "removed")
    assert "after record 16" in detail


def test_deleting_the_last_record_is_named(chain):
    db, *_, backend = chain
    sql(db, "DELETE FROM audit_records WHERE seq = 30")
    assert finding(backend)[:2] == (30, "removed")


def test_an_inserted_record_is_named(chain):
    """A forged record claiming number 12, hashed properly after record 11."""
    db, maker, *_, backend = chain
    with maker() as session:
        eleven = next(r for r in store.records(session, "audit") if r.seq == 11)
    forged = Entry(START, "user:mallory", "grant.create", "grants:user/mallory", "ok", details={})
    digest = hashlib.sha256(canonical(12, forged, eleven.hash)).hexdigest()
    sql(
        db,
        "INSERT INTO audit_records (seq, time, actor, action, target, outcome, details, prev_hash, hash) "
        "VALUES (12, :time, 'user:mallory', 'grant.create', 'grants:user/mallory', 'ok', '{}', :prev, :hash)",
        time=START,
        prev=eleven.hash,
        hash=digest,
    )
    seq, kind, _ = finding(backend)
    assert (seq, kind) == (12, "inserted")


def test_a_record_appended_past_the_head_is_named(chain):
    db, maker, *_, backend = chain
    with maker() as session:
        head = store.read_head(session, "audit")
    forged = Entry(START + dt.timedelta(hours=1), "user:mallory", "grant.create", "grants:user/mallory", "ok")
    digest = hashlib.sha256(canonical(31, forged, head.hash)).hexdigest()
    sql(
        db,
        "INSERT INTO audit_records (seq, time, actor, action, target, outcome, details, prev_hash, hash) "
        "VALUES (31, :time, 'user:mallory', 'grant.create', 'grants:user/mallory', 'ok', '{}', :prev, :hash)",
        time=forged.time,
        prev=head.hash,
        hash=digest,
    )
    assert finding(backend)[:2] == (31, "inserted")


def test_two_swapped_records_are_named(chain):
    db, *_, backend = chain
    sql(db, "UPDATE audit_records SET seq = -1 WHERE seq = 13")
    sql(db, "UPDATE audit_records SET seq = 13 WHERE seq = 14")
    sql(db, "UPDATE audit_records SET seq = 14 WHERE seq = -1")
    seq, kind, detail = finding(backend)
    assert (seq, kind, detail) == (13, "reordered", "it was written as record 14")


def test_a_consistently_rewritten_chain_is_caught_by_its_checkpoint(chain):
    """Record 15 altered and every hash from there on recomputed, head included: only the signature can tell."""
    db, maker, *_, backend = chain
    with maker() as session:
        original = list(store.records(session, "audit"))
    previous = original[13].hash
    with db.begin() as connection:
        for record in original[14:]:
            entry = record.entry
            if record.seq == 15:
                entry = Entry(
                    entry.time, "user:mallory", entry.action, entry.target, entry.outcome, details=entry.details
                )
            digest = hashlib.sha256(canonical(record.seq, entry, previous)).hexdigest()
            connection.execute(
                text("UPDATE audit_records SET actor = :actor, prev_hash = :prev, hash = :hash WHERE seq = :seq"),
                {"actor": entry.actor, "prev": previous, "hash": digest, "seq": record.seq},
            )
            previous = digest
        connection.execute(text("UPDATE audit_heads SET hash = :hash WHERE chain = 'audit'"), {"hash": previous})
    seq, kind, detail = finding(backend)
    assert (seq, kind) == (20, "checkpoint")
    assert "vouches for a different record" in detail


def test_a_forged_checkpoint_signature_is_named(chain):
    db, *_, backend = chain
    sql(db, "UPDATE audit_checkpoints SET hash = :hash WHERE seq = 20", hash="0" * 64)
    seq, kind, detail = finding(backend)
    assert (seq, kind) == (20, "checkpoint")
    assert "valid signature" in detail


def test_pruning_keeps_the_rest_verifiable_and_a_forged_prune_is_named(chain):
    db, maker, _trail, _clock, backend = chain
    with maker.begin() as session:  # records 1..10 are older than START + 12 min; the checkpoint at 10 anchors
        assert store.prune(session, "audit", START + dt.timedelta(minutes=12)) == 10
    code, reports = verify(backend)
    assert code == 0 and reports[0]["first"] == 11 and reports[0]["records"] == 20
    # Cutting further without a checkpoint to anchor the new start is tampering.
    sql(db, "DELETE FROM audit_records WHERE seq <= 15")
    sql(db, "UPDATE audit_heads SET pruned_through = 15 WHERE chain = 'audit'")
    seq, kind, detail = finding(backend)
    assert (seq, kind) == (16, "checkpoint")
    assert "no valid signed checkpoint anchors" in detail


def test_nothing_is_pruned_without_a_checkpoint_old_enough(chain):
    _db, maker, *_ = chain
    with maker.begin() as session:
        assert store.prune(session, "audit", START + dt.timedelta(minutes=5)) is None
        assert store.read_head(session, "audit").pruned_through == 0


def test_after_rotation_old_checkpoints_verify_and_a_retired_key_cannot_sign_new_ones(chain):
    _db, maker, trail, clock, backend = chain
    old_key = trail.signing_key()
    new_id, old_id = trail.rotate_key(maker, "operator:test (cli)")
    assert old_id == old_key.id and new_id != old_id
    assert not (trail.keyring.directory / f"{old_id}.pem").exists()  # the old private key is gone
    assert verify(backend)[0] == 0
    # A checkpoint made later with the retired key (say, a stolen copy) is refused.
    clock.advance(dt.timedelta(hours=1))
    with maker.begin() as session:
        for i in range(10):
            trail.record(session, "user:x", "directory.user.put", f"directory:users/x{i}")
        head = store.read_head(session, "audit")
        store.write_checkpoint(session, "audit", head.seq, head.hash, old_key, clock.now())
    _seq, kind, detail = finding(backend)
    assert kind == "checkpoint" and "retired" in detail


def test_pinned_keys_refuse_a_key_added_to_the_store(chain, tmp_path):
    _db, maker, trail, clock, backend = chain
    key = trail.signing_key()
    pins = tmp_path / "pins"
    pins.write_text(f"{key.id} {key.public_bytes.hex()}\n")
    assert verify(backend, "--pin", str(pins))[0] == 0
    impostor = AuditTrail(clock, Keyring(tmp_path / "other-keys"), checkpoint_every=10)
    with maker.begin() as session:
        impostor.record(session, "user:mallory", "grant.create", "grants:user/mallory")
        head = store.read_head(session, "audit")
        store.write_checkpoint(session, "audit", head.seq, head.hash, impostor.signing_key(), clock.now())
    assert verify(backend)[0] == 0  # the store's own key list trusts it...
    seq, kind, detail = finding_pinned(backend, pins)
    assert (seq, kind) == (31, "checkpoint") and "not among the pinned keys" in detail  # ...a pinned list does not


def finding_pinned(backend, pins) -> tuple[int, str, str]:
    code, reports = verify(backend, "--pin", str(pins))
    assert code == 1
    found = reports[0]["finding"]
    return found["seq"], found["kind"], found["detail"]
