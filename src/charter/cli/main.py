"""`charter` commands. Exit codes: 0 ok, 1 findings, 2 usage (bad arguments, unreadable files)."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click

from charter import documents
from charter.clock import SystemClock
from charter.clock import today as clock_today
from charter.language import ast
from charter.language.consolidate import consolidate, render, to_json
from charter.language.errors import CharterError, Diagnostic
from charter.language.formatter import format_document

OK, FINDINGS, USAGE = 0, 1, 2


class _Date(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date as YYYY-MM-DD", param, ctx)


DATE = _Date()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charter-iam", prog_name="charter")
def cli() -> None:
    """Charter: identity and access management whose configuration is a written access charter."""


def _show(diagnostics: list[Diagnostic] | tuple[Diagnostic, ...], sources: dict[str, str]) -> None:
    for diagnostic in diagnostics:
        click.echo(diagnostic.render(sources.get(diagnostic.source_name)))


def _usage(message: str) -> None:
    click.echo(f"charter: {message}", err=True)
    sys.exit(USAGE)


@cli.command("check")
@click.argument("files", nargs=-1, required=True)
@click.option("--directory", "directory_file", metavar="FILE", help="YAML or JSON directory to check names against.")
@click.option("--today", "today", type=DATE, help="Check dates as if today were this date (default: the system clock).")
def check_command(files: tuple[str, ...], directory_file: str | None, today: dt.date | None) -> None:
    """Check charters and amendments: syntax, clause numbers, names, dates, shadowed clauses.

    Amendments are checked against the charter given with them.
    """
    try:
        directory = documents.load_directory_file(directory_file) if directory_file else None
        report = documents.check_files(files, directory, today or clock_today(SystemClock()))
    except documents.UsageError as error:
        _usage(str(error))
    except CharterError as error:
        _show(error.diagnostics, {})
        sys.exit(FINDINGS)
    _show(report.diagnostics, report.sources)
    if report.diagnostics:
        click.echo(f"{_count(report.errors, 'error')}, {_count(report.warnings, 'warning')} in {_count(len(files), 'file')}")
        sys.exit(FINDINGS)
    click.echo(f"{_count(len(files), 'file')} checked: no findings")


@cli.command("fmt")
@click.argument("files", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if any file is not formatted.")
def fmt_command(files: tuple[str, ...], check_only: bool) -> None:
    """Rewrite charters and amendments in canonical form ("-" reads standard input, writes standard output)."""
    findings = False
    for path in files:
        text = sys.stdin.read() if path == "-" else _read(path)
        source = documents.load(path, text)
        if source.document is None:
            _show(source.diagnostics, {path: text})
            findings = True
            continue
        formatted = format_document(source.document)
        if path == "-":
            click.echo(formatted, nl=False)
        elif formatted != text:
            if check_only:
                click.echo(f"would reformat {path}")
                findings = True
            else:
                with open(path, "w", encoding="utf-8") as out:
                    out.write(formatted)
                click.echo(f"reformatted {path}")
    sys.exit(FINDINGS if findings else OK)


@cli.command("consolidate")
@click.argument("charter_file", metavar="CHARTER")
@click.argument("amendment_files", metavar="[AMENDMENT]...", nargs=-1)
@click.option("--as-of", type=DATE, help="The date to consolidate for (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: each clause with its text and origin.")
def consolidate_command(charter_file: str, amendment_files: tuple[str, ...], as_of: dt.date | None, as_json: bool) -> None:
    """Print the text in force on a date: the charter with every amendment effective by then folded in."""
    as_of = as_of or clock_today(SystemClock())
    files = [_load_or_exit(p) for p in (charter_file, *amendment_files)]
    charter, amendments = files[0], files[1:]
    if not isinstance(charter.document, ast.Charter):
        _usage(f"{charter_file}: expected a charter first, found an amendment")
    for amendment in amendments:
        if not isinstance(amendment.document, ast.Amendment):
            _usage(f"{amendment.name}: expected an amendment, found a charter")
    sources = {f.name: f.text for f in files}
    try:
        version = consolidate(
            charter.document,  # type: ignore[arg-type]
            [a.document for a in amendments],  # type: ignore[misc]
            as_of,
            {a.document.number: a.name for a in amendments},  # type: ignore[union-attr]
        )
    except CharterError as error:
        _show(error.diagnostics, sources)
        sys.exit(FINDINGS)
    if as_json:
        click.echo(json.dumps(to_json(version), indent=2))
    else:
        click.echo(render(version), nl=False)


def _read(path: str) -> str:
    try:
        return documents.read_text(path)
    except documents.UsageError as error:
        _usage(str(error))
        raise  # unreachable: _usage exits


def _load_or_exit(path: str) -> documents.SourceFile:
    source = documents.load(path, _read(path))
    if source.document is None:
        _show(source.diagnostics, {path: source.text})
        sys.exit(FINDINGS)
    return source


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def main() -> None:
    cli()
