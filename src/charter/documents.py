"""Reading charter, amendment and directory files: the I/O around the pure `language` core.

Used by the command line (and later the server) so that loading, grouping
amendments with their charter and checking behave the same everywhere.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from charter.directory.model import Directory, load_directory
from charter.language import ast
from charter.language.checker import CheckResult, check
from charter.language.errors import CharterError, Diagnostic, Severity
from charter.language.parser import parse


@dataclass
class SourceFile:
    name: str
    text: str
    document: ast.Document | None = None
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass
class Report:
    """What `check` found across a set of files; `sources` lets each finding be shown with its line."""

    files: list[SourceFile]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def sources(self) -> dict[str, str]:
        return {f.name: f.text for f in self.files}

    @property
    def errors(self) -> int:
        return sum(d.is_error for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(not d.is_error for d in self.diagnostics)


class UsageError(Exception):
    """A file could not be read at all (missing, unreadable, not UTF-8)."""


class Findings(Exception):
    """Documents that could not be used, with each finding and the text of the files they point into."""

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: dict[str, str]):
        super().__init__("\n".join(d.headline() for d in diagnostics))
        self.diagnostics = tuple(diagnostics)
        self.sources = sources


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def load(path: str, text: str | None = None) -> SourceFile:
    """Parse one file; syntax errors are kept on the SourceFile rather than raised."""
    source = SourceFile(path, read_text(path) if text is None else text)
    try:
        source.document = parse(source.text, path)
    except CharterError as error:
        source.diagnostics = error.diagnostics
    return source


def load_directory_file(path: str) -> Directory:
    text = read_text(path)
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CharterError(
            [Diagnostic(Severity.ERROR, f"not valid YAML/JSON: {exc}", source_name=path, code="directory")]
        ) from None
    return load_directory(data, path)


def check_files(paths: Sequence[str], directory: Directory | None = None, today: dt.date | None = None) -> Report:
    """Parse every file, pair amendments with their charter, and check each charter with its amendments."""
    files = [load(p) for p in paths]
    report = Report(files, [d for f in files for d in f.diagnostics])
    charters = [f for f in files if isinstance(f.document, ast.Charter)]
    amendments = [f for f in files if isinstance(f.document, ast.Amendment)]
    for charter_file, own in _pair(charters, amendments):
        result = check_one(charter_file, own, directory, today)
        report.diagnostics.extend(result.diagnostics)
    return report


def check_one(
    charter_file: SourceFile, amendment_files: Iterable[SourceFile], directory: Directory | None, today: dt.date | None
) -> CheckResult:
    assert isinstance(charter_file.document, ast.Charter)
    amendment_list = [f for f in amendment_files if isinstance(f.document, ast.Amendment)]
    return check(
        charter_file.document,
        [f.document for f in amendment_list],  # type: ignore[misc]
        names=directory.names() if directory is not None else None,
        today=today,
        charter_source=charter_file.name,
        amendment_sources={f.document.number: f.name for f in amendment_list},  # type: ignore[union-attr]
    )


def _pair(charters: list[SourceFile], amendments: list[SourceFile]) -> list[tuple[SourceFile, list[SourceFile]]]:
    """With one charter every amendment goes to it (a wrong charter name is then reported); else match by name."""
    if len(charters) == 1:
        return [(charters[0], amendments)]
    by_name = {c.document.name: (c, []) for c in charters}  # type: ignore[union-attr]
    for amendment in amendments:
        pair = by_name.get(amendment.document.charter_name)  # type: ignore[union-attr]
        if pair is not None:
            pair[1].append(amendment)
    return list(by_name.values())


def load_version(charter_path: str, amendment_paths: Sequence[str], as_of: dt.date | None):
    """The charter version in force on `as_of` from files; raises Findings or UsageError.

    The charter and every amendment must pass the checker without errors first (warnings are
    allowed), so a document the checker refuses never takes effect, even in part.
    """
    from charter.language.consolidate import consolidate

    files = [load(p) for p in (charter_path, *amendment_paths)]
    sources = {f.name: f.text for f in files}
    bad = [d for f in files for d in f.diagnostics]
    if bad:
        raise Findings(bad, sources)
    charter, amendments = files[0], files[1:]
    if not isinstance(charter.document, ast.Charter):
        raise UsageError(f"{charter_path}: expected a charter, found an amendment")
    for amendment in amendments:
        if not isinstance(amendment.document, ast.Amendment):
            raise UsageError(f"{amendment.name}: expected an amendment, found a charter")
    errors = [d for d in check_one(charter, amendments, None, None).diagnostics if d.is_error]
    if errors:
        raise Findings(errors, sources)
    try:
        return consolidate(
            charter.document,
            [a.document for a in amendments],  # type: ignore[misc]
            as_of,
            {a.document.number: a.name for a in amendments},  # type: ignore[union-attr]
            charter.name,
        )
    except CharterError as error:
        raise Findings(error.diagnostics, sources) from None


def expectation_files_beside(charter_path: str) -> list[str]:
    """`acme.charter` keeps its policy tests in `acme.expect` and `acme.*.expect` beside it."""
    path = Path(charter_path)
    stem = path.name.rsplit(".", 1)[0]
    return sorted(
        str(p) for p in path.parent.glob("*.expect") if p.name == f"{stem}.expect" or p.name.startswith(f"{stem}.")
    )
