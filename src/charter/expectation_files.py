"""Expectation files (policy tests) kept in the store with the charter, and run against a proposed version.

They are the approval gate of amendments: before anyone's approval counts, the files, as the amendment
would leave them (it may add, replace or delete files), run against the version the amendment would
make; a failing expectation refuses the approval. In the store a file's `Directory` line is ignored:
the store's directory is the one that counts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.clock import FixedClock
from charter.directory.model import Directory
from charter.language.consolidate import Consolidated
from charter.language.errors import CharterError, Diagnostic
from charter.language.expectations import ExpectationFile, parse_expectations
from charter.policy import testing
from charter.policy.snapshot import compile_snapshot
from charter.store.models import ExpectationFileRow

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class BadFile(ValueError):
    """An expectation file that cannot be stored: a bad name, a parse error, another charter's file."""

    def __init__(self, name: str, message: str, diagnostics: tuple[Diagnostic, ...] = ()):
        super().__init__(f"expectation file {name!r}: {message}")
        self.name = name
        self.diagnostics = diagnostics


@dataclass(frozen=True, slots=True)
class Failure:
    file: str
    line: int
    expectation: str
    got: str

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "expectation": self.expectation, "got": self.got}

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.expectation} -- {self.got}"


@dataclass(frozen=True, slots=True)
class Results:
    files: tuple[str, ...]
    total: int
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        return {
            "files": list(self.files),
            "total": self.total,
            "failed": len(self.failures),
            "failures": [f.to_json() for f in self.failures],
        }


def parse_file(name: str, text: str, charter_name: str) -> ExpectationFile:
    """Parse one file for the charter `charter_name`; BadFile says what is wrong and where."""
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise BadFile(str(name), "a name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not isinstance(text, str):
        raise BadFile(name, "expected the file's text")
    try:
        parsed = parse_expectations(text, name)
    except CharterError as error:
        raise BadFile(name, error.diagnostics[0].headline(), error.diagnostics) from None
    if parsed.charter_name != charter_name:
        raise BadFile(name, f'it is for Charter "{parsed.charter_name}", not "{charter_name}"')
    return parsed


def parse_updates(updates: object, charter_name: str) -> dict[str, str | None]:
    """An amendment's updates ({name: text, or null to delete}), each text parsed now, so a bad one is refused."""
    if updates is None:
        return {}
    if not isinstance(updates, Mapping):
        raise BadFile("", 'expected an object {"file name": "text", or null to delete it}')
    for name, text in updates.items():
        if text is not None:
            parse_file(name, text, charter_name)
        elif NAME.fullmatch(str(name)) is None:
            raise BadFile(str(name), "not a valid file name")
    return dict(updates)


def stored(session: Session, charter_name: str) -> dict[str, str]:
    rows = session.scalars(select(ExpectationFileRow).where(ExpectationFileRow.charter_name == charter_name))
    return {row.name: row.text for row in rows}


def with_updates(files: Mapping[str, str], updates: Mapping[str, str | None] | None) -> dict[str, str]:
    merged = dict(files)
    for name, text in (updates or {}).items():
        if text is None:
            merged.pop(name, None)
        else:
            merged[name] = text
    return merged


def save(session: Session, charter_name: str, name: str, text: str | None, actor: str, now: dt.datetime) -> bool:
    """Store (or with `text` None delete) one file; True when something was there before."""
    query = select(ExpectationFileRow).where(
        ExpectationFileRow.charter_name == charter_name, ExpectationFileRow.name == name
    )
    row = session.scalar(query)
    existed = row is not None
    if text is None:
        if row is not None:
            session.delete(row)
        return existed
    if row is None:
        row = ExpectationFileRow(charter_name=charter_name, name=name)
        session.add(row)
    row.text, row.updated_by, row.updated_at = text, actor, now
    return existed


def run(files: Mapping[str, str], version: Consolidated, directory: Directory, default_time: dt.datetime) -> Results:
    """Every expectation of `files` against `version` over `directory`, each at its own time, else its
    file's `As of`, else `default_time`."""
    failures: list[Failure] = []
    total = 0
    for name in sorted(files):
        suite = parse_expectations(files[name], name)
        snapshot = compile_snapshot(version, directory, clock=FixedClock(suite.as_of or default_time))
        for outcome in testing.run(snapshot, suite.expectations):
            total += 1
            if not outcome.passed:
                got = " ".join(outcome.describe().split("\n")[1].split())  # the "got: ..." line
                failures.append(Failure(name, outcome.expectation.span.line, outcome.expectation.text, got))
    return Results(tuple(sorted(files)), total, tuple(failures))
