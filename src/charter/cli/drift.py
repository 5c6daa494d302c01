"""`charter drift`: where live state disagrees with the obligations of the charter in force.

Like `charter audit`, it acts on the store directly (CHARTER_DATABASE_URL or the data directory's
SQLite file), as of the system clock. It changes nothing. Exit 0 when there is no drift, 1 when there
are findings, 2 when the store cannot be read.
"""

from __future__ import annotations

import json
import sys

import click

from charter.cli.audit import _database

OK, FINDINGS, USAGE = 0, 1, 2


@click.command("drift")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, as GET /admin/v1/drift answers.")
def drift_command(as_json: bool) -> None:
    """Where live state disagrees with the obligations of the charter in force (see docs/drift.md).

    Members of revoked groups, revoked identities still active or holding access, services and
    partners without an active owner, service credentials past rotation, access held by disabled or
    departed identities, grants whose clause no longer allows them, amendments due but not in force,
    access reviews past their due date.
    Exit 0 when there is no drift, 1 when there are findings, 2 when the store cannot be read.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from charter.clock import SystemClock
    from charter.drift import drift_in_store

    try:
        _, sessions = _database()
        with sessions() as session:
            drift = drift_in_store(session, SystemClock().now())
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        click.echo(f"charter: cannot read the store: {reason}", err=True)
        sys.exit(USAGE)
    if as_json:
        click.echo(json.dumps(drift.to_json(), indent=2))
    else:
        _print(drift)
    sys.exit(FINDINGS if drift.findings else OK)


def _print(drift) -> None:
    found = len(drift.findings)
    heading = f'Charter "{drift.charter}" version {drift.version}, as of {drift.as_of:%Y-%m-%d %H:%M} UTC: '
    click.echo(heading + (f"{found} finding{'' if found == 1 else 's'}" if found else "no drift"))
    if found:
        _table(drift.findings)
    if drift.not_checked:
        click.echo("Not checked yet:")
    for item in drift.not_checked:
        clauses = f"; clause {', '.join(map(str, item.clauses))}" if item.clauses else ""
        click.echo(f"  {item.check}: {item.description} ({item.issue}{clauses})")


def _table(findings) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE, show_edge=False)
    table.add_column("CHECK", no_wrap=True)
    table.add_column("SUBJECT", no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    table.add_column("CLAUSE", justify="right", no_wrap=True)
    for finding in findings:
        clause = "" if finding.clause is None else str(finding.clause)
        # Text, not markup: names and error messages come from the store and may hold "[...]".
        table.add_row(Text(finding.check), Text(finding.subject), Text(finding.detail), Text(clause))
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 10_000  # piped or redirected: one line a finding, for grep, not wrapped at 80 columns
    console.print(table)
