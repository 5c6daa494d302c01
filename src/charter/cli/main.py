"""`charter` commands. Exit codes: 0 ok, 1 findings, 2 usage (bad arguments, unreadable files)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

import click

from charter import documents
from charter.clock import SystemClock
from charter.clock import today as clock_today
from charter.language.consolidate import render, to_json
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
        click.echo(
            f"{_count(report.errors, 'error')}, {_count(report.warnings, 'warning')} in {_count(len(files), 'file')}"
        )
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
def consolidate_command(
    charter_file: str, amendment_files: tuple[str, ...], as_of: dt.date | None, as_json: bool
) -> None:
    """Print the text in force on a date: the charter with every amendment effective by then folded in."""
    as_of = as_of or clock_today(SystemClock())
    try:
        version = documents.load_version(charter_file, amendment_files, as_of)
    except documents.UsageError as error:
        _usage(str(error))
    except documents.Findings as error:
        _show(error.diagnostics, error.sources)
        sys.exit(FINDINGS)
    if as_json:
        click.echo(json.dumps(to_json(version), indent=2))
    else:
        click.echo(render(version), nl=False)


def _subject(text: str) -> tuple[str, str]:
    kind, _, name = text.partition(":")
    if name and kind in ("user", "service", "partner"):
        return kind, name
    return "user", text


def _snapshot(charter_file: str, amendment_files: tuple[str, ...], directory_file: str | None, at: dt.datetime):
    from charter.clock import FixedClock
    from charter.directory.model import EMPTY_DIRECTORY
    from charter.policy.snapshot import compile_snapshot

    try:
        version = documents.load_version(charter_file, amendment_files, at.date())
        directory = documents.load_directory_file(directory_file) if directory_file else EMPTY_DIRECTORY
    except documents.UsageError as error:
        _usage(str(error))
    except documents.Findings as error:
        _show(error.diagnostics, error.sources)
        sys.exit(FINDINGS)
    except CharterError as error:
        _show(error.diagnostics, {})
        sys.exit(FINDINGS)
    return compile_snapshot(version, directory, clock=FixedClock(at))


def _moment(value: str | None) -> dt.datetime:
    if value is None:
        return SystemClock().now()
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        _usage(f"{value!r} is not a date or time such as 2026-12-16 or 2026-12-16T10:00Z")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@cli.command("explain")
@click.option("--charter", "charter_file", required=True, metavar="FILE")
@click.option(
    "--amendment", "amendment_files", multiple=True, metavar="FILE", help="Amendments to fold in (repeatable)."
)
@click.option("--directory", "directory_file", metavar="FILE", help="YAML or JSON directory.")
@click.option("--subject", required=True, help='A user id, or "service:ID" / "partner:ID".')
@click.option("--action", required=True)
@click.option("--resource", required=True)
@click.option("--mfa", is_flag=True, help="The request was authenticated with MFA.")
@click.option("--ip", help="The request's source address.")
@click.option("--scope", "scopes", multiple=True, help="A scope the token carries (repeatable).")
@click.option("--at", "at_text", metavar="TIME", help="When the request is made (ISO 8601; default now).")
def explain_command(charter_file, amendment_files, directory_file, subject, action, resource, mfa, ip, scopes, at_text):
    """Decide one request and show every clause considered and why it applied or not."""
    from charter.policy.explain import explain
    from charter.policy.request import Context, Request

    at = _moment(at_text)
    snapshot = _snapshot(charter_file, amendment_files, directory_file, at)
    kind, name = _subject(subject)
    request = Request(name, action, resource, Context(mfa=mfa, ip=ip, time=at, scopes=frozenset(scopes)), kind)
    click.echo(explain(snapshot, request).render())


@cli.command("test")
@click.argument("charter_file", metavar="CHARTER")
@click.argument("amendment_files", metavar="[AMENDMENT]...", nargs=-1)
@click.option(
    "--expectations", "expectation_files", multiple=True, metavar="FILE", help="Default: CHARTER's stem .expect files."
)
@click.option("--directory", "directory_file", metavar="FILE", help="Overrides the expectation file's Directory line.")
def test_command(charter_file, amendment_files, expectation_files, directory_file):
    """Run policy tests: each `Expect allow/deny [by clause N]: ...` line against the charter."""
    from pathlib import Path

    from charter.language.expectations import parse_expectations
    from charter.policy import testing

    paths = list(expectation_files) or documents.expectation_files_beside(charter_file)
    if not paths:
        _usage(f"no expectation files: none beside {charter_file} and no --expectations given")
    failures = total = 0
    for path in paths:
        text = _read(path)
        try:
            suite = parse_expectations(text, path)
        except CharterError as error:
            _show(error.diagnostics, {path: text})
            sys.exit(FINDINGS)
        directory = directory_file or (str(Path(path).parent / suite.directory) if suite.directory else None)
        at = suite.as_of or SystemClock().now()
        snapshot = _snapshot(charter_file, amendment_files, directory, at)
        for outcome in testing.run(snapshot, suite.expectations):
            total += 1
            if not outcome.passed:
                failures += 1
                line = outcome.expectation.span.line
                click.echo(f"FAIL {path}:{line}: {outcome.expectation.text}\n{outcome.describe()}")
    click.echo(f"{total - failures} passed, {failures} failed")
    sys.exit(FINDINGS if failures else OK)


@cli.group("db")
def db_group() -> None:
    """The store: SQLite in the data directory by default, PostgreSQL with CHARTER_DATABASE_URL."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (also done on every start)."""
    from charter.store.db import make_engine, upgrade

    engine = make_engine()
    upgrade(engine)
    click.echo(f"schema up to date: {engine.url.render_as_string(hide_password=True)}")


def _initialize() -> tuple[object, object]:
    from charter.bootstrap import initialize
    from charter.store.db import make_engine

    engine = make_engine()
    return engine, initialize(engine)


def _announce_credential(result) -> None:
    if result.created:
        click.echo("Created the store with the sample charter and directory.")
        click.echo('Admin API credential (shown once; it acts as user "admin" of group "iam-admins"):')
        click.echo(f"  {result.admin_credential}")


@cli.command("init")
def init_command() -> None:
    """Create the store on first run: schema, sample charter and directory, a one-time admin credential."""
    engine, result = _initialize()
    _announce_credential(result)
    if not result.created:
        click.echo(f"Already initialised: {engine.url.render_as_string(hide_password=True)}")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--workers", default=1, show_default=True, type=int, help="Worker processes (each keeps its own snapshot)."
)
def serve_command(host: str, port: int, workers: int) -> None:
    """Serve the API (AuthZEN decisions, admin) on the embedded default or CHARTER_DATABASE_URL."""
    import uvicorn

    from charter import logs

    engine, result = _initialize()
    _announce_credential(result)
    base = f"http://{host}:{port}"
    os.environ.setdefault("CHARTER_ISSUER", base)  # read by each worker's engine
    click.echo(f"Database: {engine.url.render_as_string(hide_password=True)}")
    click.echo(f"API:      {base}/access/v1/evaluation (AuthZEN), {base}/admin/v1/ (admin)")
    click.echo(f"OpenAPI:  {base}/openapi.json   docs: {base}/docs")
    uvicorn.run(
        "charter.web.server:app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logs.uvicorn_config(),  # JSON lines with request ids, secrets removed (charter.logs)
        log_level=logs.level_from_env().lower(),
        access_log=False,  # at "warning" each request still built its log arguments, then dropped the line
        http="httptools",
        loop="uvloop",
    )


def _read(path: str) -> str:
    try:
        return documents.read_text(path)
    except documents.UsageError as error:
        _usage(str(error))
        raise  # unreachable: _usage exits


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def main() -> None:
    cli()


def _register() -> None:
    from charter.cli.access import COMMANDS as ACCESS_COMMANDS
    from charter.cli.amend import amend_group, expectations_group, show_command
    from charter.cli.audit import audit_group
    from charter.cli.drift import drift_command
    from charter.cli.keys import keys_group

    cli.add_command(audit_group)
    cli.add_command(keys_group)
    cli.add_command(drift_command)
    cli.add_command(amend_group)
    cli.add_command(show_command)
    cli.add_command(expectations_group)
    for command in ACCESS_COMMANDS:
        cli.add_command(command)

    _register_reviews()
    from charter.cli.authn import mfa_reset_group, user_group  # passwords, MFA resets

    cli.add_command(user_group)
    cli.add_command(mfa_reset_group)
    from charter.cli.oauth import oauth_client_group  # OAuth clients (docs/oidc.md)

    cli.add_command(oauth_client_group)
    from charter.cli.proxy import proxy_command  # the identity-aware reverse proxy (docs/enforcement.md)

    cli.add_command(proxy_command)


def _register_reviews() -> None:
    from charter.cli.review import review_group

    cli.add_command(review_group)


_register()
