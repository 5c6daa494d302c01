"""The bad-document corpus (tests/corpus): each mistake gives exactly the diagnostic a user should read.

Layout and conventions: tests/corpus/README.md. A one-file case is a syntax
error; a directory case is a checker or consolidation finding on documents that
parse. Either way the first diagnostic, rendered with its source line, caret
and hint, must equal the case's expected text, and nothing may half-apply.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from charter import documents
from charter.cli.main import cli
from charter.directory.model import Directory
from charter.language.errors import CharterError
from charter.language.parser import parse

CORPUS = Path(__file__).parent / "corpus"
BAD = CORPUS / "bad"
TODAY = dt.date(2026, 12, 10)  # the README's fixed "today" for date checks

SYNTAX_CASES = sorted(p for p in BAD.iterdir() if p.suffix in (".charter", ".amendment"))
CHECK_CASES = sorted(p for p in BAD.iterdir() if p.is_dir())


def _relative(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


def _expected(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), f"{_relative(path)} must end with a newline"
    return text[:-1]


def _check(case: Path) -> tuple[documents.Report, Directory | None]:
    """check_files on a directory case, run from tests/corpus so that source names are relative."""
    files = [_relative(p) for p in sorted(case.glob("*.charter")) + sorted(case.glob("*.amendment"))]
    directory_file = case / "directory.yaml"
    directory = documents.load_directory_file(_relative(directory_file)) if directory_file.exists() else None
    return documents.check_files(files, directory, TODAY), directory


def test_the_corpus_has_at_least_45_cases_each_with_its_expected_text():
    assert len(SYNTAX_CASES) + len(CHECK_CASES) >= 45
    for document in SYNTAX_CASES:
        assert document.with_suffix(".expected").is_file(), f"{_relative(document)} has no .expected file"
    for case in CHECK_CASES:
        assert (case / "charter.charter").is_file(), f"{_relative(case)} has no charter.charter"
        assert (case / "expected").is_file(), f"{_relative(case)} has no expected file"
    documents_by_stem = {p.with_suffix("") for p in SYNTAX_CASES}
    orphans = [_relative(p) for p in BAD.glob("*.expected") if p.with_suffix("") not in documents_by_stem]
    assert orphans == []


@pytest.mark.parametrize("path", SYNTAX_CASES, ids=lambda p: p.name)
def test_syntax_error_renders_exactly_as_expected(path: Path):
    name = _relative(path)
    source = path.read_text(encoding="utf-8")
    with pytest.raises(CharterError) as raised:
        parse(source, name)
    diagnostics = raised.value.diagnostics
    assert [d.is_error for d in diagnostics] == [True], "one mistake must give exactly one error"
    assert diagnostics[0].render(source) == _expected(path.with_suffix(".expected"))


@pytest.mark.parametrize("path", SYNTAX_CASES, ids=lambda p: p.name)
def test_a_document_with_a_syntax_error_yields_no_document(path: Path):
    loaded = documents.load(_relative(path), path.read_text(encoding="utf-8"))
    assert loaded.document is None
    assert loaded.diagnostics


@pytest.mark.parametrize("case", CHECK_CASES, ids=lambda p: p.name)
def test_checker_finding_renders_exactly_as_expected(case: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(CORPUS)
    report, _ = _check(case)
    unparsed = [f.name for f in report.files if f.document is None]
    assert unparsed == [], "a checker case's documents must all parse"
    assert len(report.diagnostics) == 1, [d.headline() for d in report.diagnostics]
    (finding,) = report.diagnostics
    assert finding.render(report.sources[finding.source_name]) == _expected(case / "expected")


@pytest.mark.parametrize("case", CHECK_CASES, ids=lambda p: p.name)
def test_a_checker_error_leaves_no_version_in_force(case: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(CORPUS)
    report, directory = _check(case)
    (finding,) = report.diagnostics
    charter_file = next(f for f in report.files if f.name.endswith(".charter"))
    amendment_files = [f for f in report.files if f.name.endswith(".amendment")]
    result = documents.check_one(charter_file, amendment_files, directory, TODAY)
    if finding.is_error:
        assert result.version is None
    else:  # a warning marks a clause that can never apply; the rest of the charter still does
        assert result.version is not None


# --- the command line -----------------------------------------------------------------------------


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_check_prints_the_caret_line_and_exits_1(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(CORPUS)
    result = _cli("check", "bad/misspelt-members.charter")
    assert result.exit_code == 1
    assert _expected(BAD / "misspelt-members.expected") + "\n" in result.stdout
    assert "                ^^^^^^^\n" in result.stdout
    assert result.stdout.endswith("1 error, 0 warnings in 1 file\n")


def test_check_with_a_directory_suggests_the_nearest_group(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(CORPUS)
    case = "bad/unknown-group"
    result = _cli("check", "--directory", f"{case}/directory.yaml", "--today", "2026-12-10", f"{case}/charter.charter")
    assert result.exit_code == 1
    assert _expected(BAD / "unknown-group" / "expected") + "\n" in result.stdout
    assert '  hint: did you mean "sre-leads"?\n' in result.stdout


def test_check_of_a_missing_file_is_a_usage_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(CORPUS)
    result = _cli("check", "bad/no-such-document.charter")
    assert result.exit_code == 2
    assert result.stderr == "charter: bad/no-such-document.charter: no such file\n"
    assert result.stdout == ""


def test_consolidate_prints_no_text_for_a_charter_with_a_duplicate_clause_number(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(CORPUS)
    result = _cli("consolidate", "bad/duplicate-clause-numbers/charter.charter", "--as-of", "2026-12-10")
    assert result.exit_code == 1
    headline_and_caret = "\n".join(_expected(BAD / "duplicate-clause-numbers" / "expected").splitlines()[:3])
    assert result.stdout.startswith(headline_and_caret + "\n")
    assert "Consolidated text" not in result.stdout


def test_fmt_leaves_a_bad_document_untouched(tmp_path: Path):
    bad = tmp_path / "missing-period.charter"
    shutil.copy(BAD / "missing-period.charter", bad)
    before = bad.read_bytes()
    result = _cli("fmt", str(bad))
    assert result.exit_code == 1
    assert 'expected "." to end the clause, found "Clause" on line 5' in result.stdout
    assert bad.read_bytes() == before
