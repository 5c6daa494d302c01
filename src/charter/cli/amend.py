"""`charter amend ...` and `charter show`: operator commands on the store's amendments and charter history.

Like `charter audit`, they act on the store directly (CHARTER_DATABASE_URL or the data directory);
what they change is recorded in the audit chain as `operator:<login> (cli)`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import click

from charter.cli.audit import _database, operator


@click.group("amend")
def amend_group() -> None:
    """Amendments in the store: their plan, a replay of the decision log against them, and applying those
    whose date has come."""


@amend_group.command("apply")
def apply_command() -> None:
    """Apply every approved amendment whose effective date has come (the server's scheduler does this too).

    Exit 1 when one could not be applied (the previous version stays in force; the reason is printed).
    """
    from charter.admin import Admin
    from charter.engine import Engine

    db, _ = _database()
    results = Admin(Engine(db)).apply_due_amendments(operator())
    if not results:
        click.echo("no approved amendment is due")
    for result in results:
        if result["status"] == "in_force":
            click.echo(f"amendment {result['number']}: in force (revision {result['revision']})")
        else:
            click.echo(f"amendment {result['number']}: NOT applied: {result['error']}")
    sys.exit(1 if any(r["status"] != "in_force" for r in results) else 0)


@amend_group.command("plan")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plan_command(number: int, as_json: bool) -> None:
    """Who gains and who loses what if amendment NUMBER takes effect (computed from the directory)."""
    from charter import amendments
    from charter.directory import repository

    _, sessions = _database()
    with sessions() as session:
        try:
            base = amendments.charter_row(session)
            row = amendments.find(session, base.name, number)
        except amendments.Refused as refused:
            click.echo(f"charter: {refused}", err=True)
            sys.exit(2)
        plan = amendments.plan(session, row, repository.load(session), dt.datetime.now(dt.UTC))
    if as_json:
        click.echo(json.dumps({"number": number, "status": row.status, **plan.to_json()}, indent=2))
        return
    click.echo(f"Amendment {number} ({row.status.replace('_', ' ')}), effective {row.effective.isoformat()}:")
    if plan.changes_nothing:
        click.echo("  changes no one's access")
    for change in plan.changes:
        clauses = ", ".join(map(str, change.clauses))
        click.echo(f"  {change.count:>5}  {change.describe()}  [clause {clauses}]")
        for subject_type, subject in change.subjects[:10]:
            click.echo(f"         {subject_type} {subject}")
        if change.count > 10:
            click.echo(f"         ... and {change.count - 10} more")
    for warning in plan.new_warnings:
        click.echo(f"  new warning: {warning}")
    for warning in plan.resolved_warnings:
        click.echo(f"  resolved warning: {warning}")


@amend_group.command("simulate")
@click.argument("number", type=int)
@click.option(
    "--days", default=30, show_default=True, type=click.IntRange(1, 3660), help="The window: the last N days."
)
@click.option("--examples", default=3, show_default=True, type=click.IntRange(0, 3), help="Examples per group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def simulate_command(number: int, days: int, examples: int, as_json: bool) -> None:
    """Replay the decision log of the last DAYS against amendment NUMBER: every decision that would flip."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from charter import amendments
    from charter.directory import repository

    _, sessions = _database()
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with sessions() as session, Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        try:
            base = amendments.charter_row(session)
            row = amendments.find(session, base.name, number)
        except amendments.Refused as refused:
            click.echo(f"charter: {refused}", err=True)
            sys.exit(2)
        task = bar.add_task("replay", total=None)
        report, since, until = amendments.simulate(
            session,
            row,
            repository.load(session),
            dt.datetime.now(dt.UTC),
            days,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        window = {"from": since.isoformat(), "to": until.isoformat(), "days": days}
        click.echo(json.dumps({"number": number, "status": row.status, "window": window, **report.to_json()}, indent=2))
        return
    click.echo(
        f"Amendment {number}: {report.replayed:,} decisions logged from {since:%Y-%m-%d %H:%M} to "
        f"{until:%Y-%m-%d %H:%M} UTC replayed; {report.flips:,} would flip "
        f"({report.flipped('allow -> deny'):,} allow -> deny, {report.flipped('deny -> allow'):,} deny -> allow)"
    )
    for group in report.ordered():
        click.echo(f"  {group.count:>8,}  {group.direction}: {group.describe()}")
        for example in group.examples[:examples]:
            logged = example.logged
            why = f" ({'; '.join(example.reasons)})" if example.reasons else ""
            click.echo(
                f"            e.g. {logged.time:%Y-%m-%d %H:%M:%S} {logged.subject_type} {logged.subject} "
                f"{logged.action} {logged.resource}{why}"
            )


@click.command("show")
@click.option("--as-of", "as_of", required=True, help="The date (YYYY-MM-DD) whose charter text to print.")
def show_command(as_of: str) -> None:
    """Print the charter in force on a date, from the store, each clause with its origin."""
    from charter import charters
    from charter.language.consolidate import render

    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise click.BadParameter(f"{as_of!r} is not a date as YYYY-MM-DD", param_hint="--as-of") from None
    _, sessions = _database()
    with sessions() as session:
        version = charters.version_in_force(session, day)
    if version is None:
        click.echo(f"charter: no charter was in force on {day.isoformat()}", err=True)
        sys.exit(1)
    click.echo(render(version), nl=False)
