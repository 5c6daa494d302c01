"""Charter texts in the store: upload a new version after it passes the checker; read the version in force.

An upload is all-or-nothing: the text is parsed and checked against the
directory first, and only a text without errors is stored (warnings are kept
and returned).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.directory.model import Directory
from charter.language import ast
from charter.language.checker import check
from charter.language.consolidate import Consolidated, consolidate, render
from charter.language.errors import CharterError, Diagnostic
from charter.language.parser import parse_amendment, parse_charter
from charter.store.models import AmendmentRow, CharterVersionRow, ConsolidatedRow

IN_FORCE_STATES = ("in_force",)


class Rejected(Exception):
    """The text did not pass the parser or the checker; nothing was stored."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]):
        super().__init__("; ".join(d.headline() for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass(frozen=True, slots=True)
class Uploaded:
    row: CharterVersionRow
    warnings: tuple[Diagnostic, ...]


def upload(
    session: Session,
    text: str,
    directory: Directory,
    actor: str,
    now: dt.datetime,
    revision: int,
    source: str = "charter",
) -> Uploaded:
    try:
        charter = parse_charter(text, source)
    except CharterError as error:
        raise Rejected(error.diagnostics) from None
    result = check(charter, (), directory.names(), now.date(), source)
    if result.errors:
        raise Rejected(result.errors)
    row = CharterVersionRow(
        name=charter.name,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        uploaded_by=actor,
        uploaded_at=now,
        revision=revision,
    )
    session.add(row)
    session.flush()
    record_version(session, row, consolidate(charter, (), max(now.date(), charter.effective)), None, now, revision)
    return Uploaded(row, result.warnings)


def record_version(
    session: Session,
    base: CharterVersionRow,
    version: Consolidated,
    amendment: int | None,
    now: dt.datetime,
    revision: int,
) -> ConsolidatedRow:
    """Keep a consolidated version as it was made, rendered with each clause's origin: readable forever."""
    text = render(version)
    row = ConsolidatedRow(
        charter_name=base.name,
        version=version.version,
        charter_version_id=base.id,
        amendment_number=amendment,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        made_at=now,
        revision=revision,
    )
    session.add(row)
    return row


def versions(session: Session, name: str) -> list[ConsolidatedRow]:
    """Every consolidated version of the charter `name` ever made, oldest first."""
    query = select(ConsolidatedRow).where(ConsolidatedRow.charter_name == name)
    return list(session.scalars(query.order_by(ConsolidatedRow.id)))


def latest(session: Session) -> CharterVersionRow | None:
    return session.scalar(select(CharterVersionRow).order_by(CharterVersionRow.id.desc()).limit(1))


def version_in_force(session: Session, today: dt.date, at: dt.datetime | None = None) -> Consolidated | None:
    """The newest stored charter already in effect, with its amendments in force, as of `today`.

    A charter uploaded with a later effective date waits; until then the one before it applies.
    None when no stored charter is in effect yet (then nothing is allowed).
    `at` (timezone-aware) asks about the past: only charters uploaded and amendments created at or
    before `at` count (an amendment's status is today's: its history is not kept).
    """
    for row in session.scalars(select(CharterVersionRow).order_by(CharterVersionRow.id.desc())):
        if at is not None and _aware(row.uploaded_at) > at:
            continue
        charter = parse_charter(row.text, f"charter version {row.id}")
        if charter.effective > today:
            continue
        amendments: list[ast.Amendment] = [
            parse_amendment(a.text, f"amendment {a.number}")
            for a in session.scalars(
                select(AmendmentRow).where(
                    AmendmentRow.charter_name == row.name, AmendmentRow.status.in_(IN_FORCE_STATES)
                )
            )
            if at is None or _aware(a.created_at) <= at
        ]
        return consolidate(charter, amendments, today)
    return None


def texts_in_force(session: Session, today: dt.date) -> tuple[str, list[str]] | None:
    """The texts `version_in_force` consolidates (the charter, its amendments in force by number) as of
    `today`: what a replica (charter.sdk.replica) needs to compile the same version. None as there."""
    for row in session.scalars(select(CharterVersionRow).order_by(CharterVersionRow.id.desc())):
        if parse_charter(row.text, f"charter version {row.id}").effective > today:
            continue
        query = select(AmendmentRow).where(
            AmendmentRow.charter_name == row.name, AmendmentRow.status.in_(IN_FORCE_STATES)
        )
        return row.text, [a.text for a in sorted(session.scalars(query), key=lambda a: a.number)]
    return None


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
