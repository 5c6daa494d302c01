"""The chains in the database: append in the caller's transaction, read, checkpoint, verify, prune.

Two chains: "audit" (changes of state) and "decisions" (the decision log). Appending takes the chain's
head row first (an UPDATE, so a row lock on PostgreSQL and the write lock on SQLite): appends to one
chain are serialised and their sequence numbers never collide. A signed checkpoint is written in the
same transaction whenever an append crosses a multiple of `checkpoint_every`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256

import orjson
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from charter.audit.chain import GENESIS, Break, Entry, Finding, Record, canonical_fields, instant, verify
from charter.audit.signing import SigningKey, signature_holds
from charter.store.models import AuditKeyRow, AuditRecordRow, ChainHeadRow, CheckpointRow, DecisionRecordRow

AUDIT = "audit"
DECISIONS = "decisions"
CHAINS = (AUDIT, DECISIONS)
TABLES = {AUDIT: AuditRecordRow, DECISIONS: DecisionRecordRow}
READ_BATCH = 5000  # records fetched per round trip when walking a chain


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    pruned_through: int


def table_of(chain: str):
    try:
        return TABLES[chain]
    except KeyError:
        raise ValueError(f"no audit chain {chain!r}: expected {' or '.join(CHAINS)}") from None


# --- writing ----------------------------------------------------------------------------------------


def lock_head(session: Session, chain: str) -> Head:
    """The chain's head, locked until the caller's transaction ends."""
    session.execute(update(ChainHeadRow).where(ChainHeadRow.chain == chain).values(seq=ChainHeadRow.seq))
    return read_head(session, chain)


def read_head(session: Session, chain: str) -> Head:
    row = session.execute(
        select(ChainHeadRow.seq, ChainHeadRow.hash, ChainHeadRow.pruned_through).where(ChainHeadRow.chain == chain)
    ).one()
    return Head(int(row.seq), row.hash, int(row.pruned_through))


def append(
    session: Session,
    chain: str,
    entries: Iterable[Entry],
    signer: Callable[[], SigningKey] | None = None,
    checkpoint_every: int = 0,
    now: dt.datetime | None = None,
) -> int:
    """Chain `entries` after the head, in the caller's transaction; checkpoint if a multiple is crossed.

    `signer` gives the signing key; it is asked only when a checkpoint is due. Returns the new head seq.
    One write path for every chain: `append_fields` (the decision log calls it directly).
    """
    return append_fields(session, chain, [_fields_of(entry) for entry in entries], signer, checkpoint_every, now)


def _fields_of(entry: Entry) -> Fields:
    micros = (aware(entry.time) - _EPOCH) // dt.timedelta(microseconds=1)
    return (
        micros,
        entry.actor,
        entry.action,
        entry.target,
        entry.outcome,
        entry.charter_version,
        entry.clause,
        entry.request_id,
        dict(entry.details),
    )


Fields = tuple  # (µs since the epoch, actor, action, target, outcome, charter_version, clause, request_id, details)
_COLUMNS = (
    "seq",
    "time",
    "actor",
    "action",
    "target",
    "outcome",
    "charter_version",
    "clause",
    "request_id",
    "details",
    "prev_hash",
    "hash",
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def append_fields(
    session: Session,
    chain: str,
    items: Sequence[Fields],
    signer: Callable[[], SigningKey] | None = None,
    checkpoint_every: int = 0,
    now: dt.datetime | None = None,
) -> int:
    """`append` for a writer of many records a second (the decision log): the same records, rows and hashes
    as `append` writes for the same entries, without an Entry, a Record and a row dict per record, and
    inserted as plain tuples (`_insert_rows`); `details` is serialised once, for the hash and the row alike.
    Each item is (time in µs since the epoch, UTC, actor, action, target, outcome, charter_version, clause,
    request_id, details: a dict). Returns the new head seq.
    """
    table = table_of(chain).__table__
    head = lock_head(session, chain)
    if not items:
        return head.seq
    connection = session.connection()
    times = _Times(connection.dialect, table.c.time.type)
    seq, prev = head.seq, head.hash
    rows = []
    for micros, actor, action, target, outcome, charter_version, clause, request_id, details in items:
        seq += 1
        hashed, stored = times(micros)
        serialised = orjson.dumps(details, option=orjson.OPT_SORT_KEYS)  # as the document would embed it
        digest = sha256(
            canonical_fields(
                seq,
                hashed,
                actor,
                action,
                target,
                outcome,
                charter_version,
                clause,
                request_id,
                orjson.Fragment(serialised),
                prev,
            )
        ).hexdigest()
        rows.append(
            (
                seq,
                stored,
                actor,
                action,
                target,
                outcome,
                charter_version,
                clause,
                request_id,
                serialised.decode(),
                prev,
                digest,
            )
        )
        prev = digest
    _insert_rows(session, table, rows)
    session.execute(update(ChainHeadRow).where(ChainHeadRow.chain == chain).values(seq=seq, hash=prev))
    if signer is not None and checkpoint_every > 0 and seq // checkpoint_every > head.seq // checkpoint_every:
        last_time = _EPOCH + dt.timedelta(microseconds=items[-1][0])
        write_checkpoint(session, chain, seq, prev, signer(), now or last_time)
    return seq


def _insert_rows(session: Session, table, rows: list[tuple]) -> None:
    """INSERT the rows (values in `_COLUMNS` order, as the driver takes them), without SQLAlchemy's work per row.

    PostgreSQL (psycopg): COPY, each row formatted by psycopg in C. SQLite: a page of rows per statement,
    not an executemany: Python's sqlite3 gives up the GIL around every row's step, and a thread that must
    take it back 5,000 times while the server's event loop holds it crawls (and each of the loop's waits
    for it is a pause in answering); a page of rows is one statement, one step."""
    connection = session.connection()
    dialect = connection.dialect
    columns = ", ".join(_COLUMNS)
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]
    one = "(" + ", ".join([mark] * len(_COLUMNS)) + ")"
    if dialect.name != "sqlite":  # another driver: its executemany
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) VALUES {one}", rows)
        return
    page = max(1, min(dialect.insertmanyvalues_page_size, dialect.insertmanyvalues_max_parameters // len(_COLUMNS)))
    for first in range(0, len(rows), page):
        part = rows[first : first + page]
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({columns}) VALUES " + ", ".join([one] * len(part)),
            tuple(itertools.chain.from_iterable(part)),
        )


class _Times:
    """µs since the epoch -> (the time as `chain.instant` writes it, the time as the column's type binds it
    for this dialect), computed once a second and completed with the microseconds."""

    def __init__(self, dialect, column_type):
        # as SQLAlchemy binds the column: SQLite's DATETIME makes a string; PostgreSQL's (psycopg) nothing
        self.process = column_type.dialect_impl(dialect).bind_processor(dialect)
        self.second: int | None = None

    def __call__(self, micros: int) -> tuple[str, object]:
        second, micro = divmod(micros, 1_000_000)
        if second != self.second:
            self.second = second
            self.base = _EPOCH + dt.timedelta(seconds=second)
            self.hashed = instant(self.base)[: -len(".000000Z")]
            bound = self.process(self.base) if self.process is not None else None
            # SQLite's DATETIME binds `YYYY-MM-DD HH:MM:SS.ffffff`: complete the second's text likewise
            self.bound = bound[: -len(".000000")] if isinstance(bound, str) and bound.endswith(".000000") else None
        hashed = f"{self.hashed}.{micro:06d}Z"
        if self.bound is not None:
            return hashed, f"{self.bound}.{micro:06d}"
        moment = self.base.replace(microsecond=micro)
        return hashed, moment if self.process is None else self.process(moment)


# --- checkpoints and keys ------------------------------------------------------------------------------


def checkpoint_payload(chain: str, seq: int, hash_: str, time: dt.datetime, key_id: str) -> bytes:
    """The bytes a checkpoint signs. Changing this invalidates every existing checkpoint."""
    document = {"chain": chain, "seq": seq, "hash": hash_, "time": _instant(time), "key": key_id}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def write_checkpoint(session: Session, chain: str, seq: int, hash_: str, key: SigningKey, now: dt.datetime) -> None:
    register_key(session, key, now)
    signature = key.sign(checkpoint_payload(chain, seq, hash_, now, key.id))
    session.add(CheckpointRow(chain=chain, seq=seq, hash=hash_, time=now, key_id=key.id, signature=signature))
    session.flush()


def checkpoint_head(session: Session, chain: str, key: SigningKey, now: dt.datetime) -> int | None:
    """Sign the chain's head unless a checkpoint already covers it; the seq signed, or None."""
    head = lock_head(session, chain)
    if head.seq == 0:
        return None
    latest = session.scalar(
        select(CheckpointRow.seq).where(CheckpointRow.chain == chain).order_by(CheckpointRow.seq.desc()).limit(1)
    )
    if latest is not None and latest >= head.seq:
        return None
    write_checkpoint(session, chain, head.seq, head.hash, key, now)
    return head.seq


def register_key(session: Session, key: SigningKey, now: dt.datetime) -> None:
    if session.get(AuditKeyRow, key.id) is None:
        session.add(AuditKeyRow(key_id=key.id, public_key=key.public_bytes, created_at=now, retired_at=None))
        session.flush()


def retire_key(session: Session, key_id: str, now: dt.datetime) -> None:
    session.execute(update(AuditKeyRow).where(AuditKeyRow.key_id == key_id).values(retired_at=now))


# --- reading ------------------------------------------------------------------------------------------


def records(
    session: Session,
    chain: str,
    after: int = 0,
    until: int | None = None,
    batch: int = READ_BATCH,
    *,
    time_from: dt.datetime | None = None,
    time_to: dt.datetime | None = None,
) -> Iterator[Record]:
    """The chain's records in order (seq, then storage order, so duplicates show), fetched in batches.

    `time_from` (inclusive) and `time_to` (exclusive) keep only the records written in that interval;
    `time_span` gives the seq bounds to pass as `after` and `until` so the walk covers only that part.
    """
    table = table_of(chain)
    last_seq, last_id = after, 0
    while True:
        query = (
            select(table)
            .where(table.seq >= last_seq, or_(table.seq > last_seq, and_(table.seq == last_seq, table.id > last_id)))
            .where(*during(table, time_from, time_to))
            .order_by(table.seq, table.id)
            .limit(batch)
        )
        if until is not None:
            query = query.where(table.seq <= until)
        rows = session.scalars(query).all()
        for row in rows:
            yield to_record(row)
        if len(rows) < batch:
            return
        last_seq, last_id = rows[-1].seq, rows[-1].id


def decision_questions(
    session: Session, time_from: dt.datetime, time_to: dt.datetime, batch: int = 20_000
) -> Iterator[tuple[dt.datetime, str, str, str, str]]:
    """What each logged decision asked, written in [time_from, time_to), in seq order: (time, actor, action,
    target, details as stored). For replaying the log (amendment simulation): a few columns, no Record."""
    table = DecisionRecordRow.__table__
    columns = (table.c.time, table.c.actor, table.c.action, table.c.target, table.c.details)
    last_seq, last_id = 0, 0
    while True:
        query = (
            select(*columns, table.c.seq, table.c.id)
            .where(*during(table.c, time_from, time_to))
            .where(or_(table.c.seq > last_seq, and_(table.c.seq == last_seq, table.c.id > last_id)))
            .order_by(table.c.seq, table.c.id)
            .limit(batch)
        )
        rows = session.execute(query).all()
        for row in rows:
            yield aware(row[0]), row[1], row[2], row[3], row[4]
        if len(rows) < batch:
            return
        last_seq, last_id = rows[-1][5], rows[-1][6]


def time_span(
    session: Session, chain: str, time_from: dt.datetime | None = None, time_to: dt.datetime | None = None
) -> tuple[int, int, int]:
    """(first seq, last seq, number) of the records written in [time_from, time_to), by the time index.

    Times follow sequence numbers only roughly (concurrent writers, the decision log's batches), so the
    bounds are the smallest and largest seq in the interval, not those of its earliest and latest records.
    (0, 0, 0) when there are none.
    """
    table = table_of(chain)
    row = session.execute(
        select(func.min(table.seq), func.max(table.seq), func.count()).where(*during(table, time_from, time_to))
    ).one()
    if not row[2]:
        return 0, 0, 0
    return int(row[0]), int(row[1]), int(row[2])


def during(table, time_from: dt.datetime | None, time_to: dt.datetime | None) -> list:
    """WHERE conditions: written at or after `time_from` and before `time_to` (either may be None)."""
    conditions = []
    if time_from is not None:
        conditions.append(table.time >= _stored(time_from))
    if time_to is not None:
        conditions.append(table.time < _stored(time_to))
    return conditions


def _stored(moment: dt.datetime) -> dt.datetime:
    """A bound as the store compares it: UTC (SQLite keeps naive UTC datetimes, compared as text)."""
    return aware(moment).astimezone(dt.UTC)


def to_record(row) -> Record:
    entry = Entry(
        time=aware(row.time),
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        charter_version=row.charter_version,
        clause=row.clause,
        request_id=row.request_id,
        details=orjson.loads(row.details),
    )
    return Record(int(row.seq), entry, row.prev_hash, row.hash)


def aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _instant(moment: dt.datetime) -> str:
    return aware(moment).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- verifying ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """What `verify_chain` found: how much it checked, how far signatures vouch, and the first break."""

    chain: str
    records: int  # records read
    first: int  # the first seq present (pruned_through + 1 when records were pruned)
    head: int  # the head's seq
    signed_through: int  # the highest seq a valid checkpoint vouches for (0: none)
    checkpoints: int
    finding: Finding | None

    @property
    def intact(self) -> bool:
        return self.finding is None


def verify_chain(session: Session, chain: str, trusted: Mapping[str, bytes] | None = None) -> Report:
    """Walk one chain and its checkpoints; report the first record altered, removed, inserted or reordered.

    `trusted` pins the public keys (id -> raw key) checkpoints may be signed with; by default the keys in
    the store are trusted (see docs/audit.md for what pinning adds).
    """
    head = read_head(session, chain)
    keys = {row.key_id: row for row in session.scalars(select(AuditKeyRow))}
    vouched: dict[int, str] = {}
    checkpoint_rows = list(
        session.scalars(select(CheckpointRow).where(CheckpointRow.chain == chain).order_by(CheckpointRow.seq))
    )
    finding = None
    for row in checkpoint_rows:
        problem = _checkpoint_problem(chain, row, keys, trusted)
        if problem is not None:
            finding = finding or Finding(int(row.seq), Break.CHECKPOINT, problem)
            continue
        vouched[int(row.seq)] = row.hash
    anchor = (0, GENESIS)
    if head.pruned_through > 0:
        if head.pruned_through not in vouched:
            finding = finding or Finding(
                head.pruned_through + 1,
                Break.CHECKPOINT,
                f"the chain says records through {head.pruned_through} were pruned, "
                "but no valid signed checkpoint anchors that point",
            )
        anchor = (head.pruned_through, vouched.get(head.pruned_through, GENESIS))
    counted = _Counter(records(session, chain, after=0))
    chain_finding = verify(counted, anchor, vouched)
    if chain_finding is None:
        chain_finding = _tail_finding(counted, head, vouched, anchor[0])
    signed = [seq for seq in vouched if seq <= counted.last]
    return Report(
        chain,
        counted.count,
        head.pruned_through + 1,
        head.seq,
        max(signed, default=0),
        len(checkpoint_rows),
        finding
        if finding is not None and (chain_finding is None or finding.seq <= chain_finding.seq)
        else chain_finding,
    )


def _checkpoint_problem(
    chain: str, row: CheckpointRow, keys: Mapping, trusted: Mapping[str, bytes] | None
) -> str | None:
    key = keys.get(row.key_id)
    if key is None:
        return f"the checkpoint of record {row.seq} is signed by key {row.key_id}, which the store does not know"
    if trusted is not None and trusted.get(row.key_id) != bytes(key.public_key):
        return f"the checkpoint of record {row.seq} is signed by key {row.key_id}, which is not among the pinned keys"
    payload = checkpoint_payload(chain, int(row.seq), row.hash, aware(row.time), row.key_id)
    if not signature_holds(bytes(key.public_key), payload, bytes(row.signature)):
        return f"the checkpoint of record {row.seq} does not carry a valid signature of key {row.key_id}"
    if key.retired_at is not None and aware(row.time) > aware(key.retired_at):
        return f"the checkpoint of record {row.seq} is dated after its key {row.key_id} was retired"
    return None


class _Counter:
    """Passes records through, counting them and remembering the last."""

    def __init__(self, source: Iterable[Record]):
        self.source = source
        self.count = 0
        self.last = 0
        self.last_hash = GENESIS

    def __iter__(self) -> Iterator[Record]:
        for record in self.source:
            self.count += 1
            self.last, self.last_hash = record.seq, record.hash
            yield record


def _tail_finding(counted: _Counter, head: Head, vouched: Mapping[int, str], start: int) -> Finding | None:
    """Breaks only the end of the chain shows: records removed from the end, or appended past the head."""
    last = counted.last if counted.count else start
    if last < head.seq:
        return Finding(head.seq, Break.REMOVED, f"records {last + 1} to {head.seq} are missing (the chain's end)")
    if last > head.seq:
        return Finding(head.seq + 1, Break.INSERTED, f"records after the chain's head ({head.seq}) were added")
    if counted.count and counted.last_hash != head.hash:
        return Finding(last, Break.ALTERED, "the last record does not match the chain's head")
    beyond = [seq for seq in vouched if seq > last]
    if beyond:
        return Finding(
            min(beyond), Break.REMOVED, f"a signed checkpoint vouches for record {min(beyond)}, which is missing"
        )
    return None


# --- pruning ----------------------------------------------------------------------------------------


def prune(session: Session, chain: str, before: dt.datetime) -> int | None:
    """Delete the records older than `before`, up to the newest checkpoint that lets what remains verify.

    Only whole runs up to a signed checkpoint go, so the checkpoint becomes the anchor of the new start.
    Returns the seq pruned through (None when nothing could be pruned). Signatures are checked first: a
    checkpoint that does not verify is never used as an anchor.
    """
    table = table_of(chain)
    head = lock_head(session, chain)
    keys = {row.key_id: row for row in session.scalars(select(AuditKeyRow))}
    candidates = session.scalars(
        select(CheckpointRow)
        .where(CheckpointRow.chain == chain, CheckpointRow.seq > head.pruned_through)
        .order_by(CheckpointRow.seq.desc())
    )
    for checkpoint in candidates:
        newest = session.scalar(select(table.time).where(table.seq == checkpoint.seq).limit(1))
        if newest is None or aware(newest) >= before:
            continue
        if _checkpoint_problem(chain, checkpoint, keys, None) is not None:
            continue
        session.execute(delete(table).where(table.seq <= checkpoint.seq))
        session.execute(update(ChainHeadRow).where(ChainHeadRow.chain == chain).values(pruned_through=checkpoint.seq))
        return int(checkpoint.seq)
    return None
