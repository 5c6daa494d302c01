"""`charter amend ...`, `charter expectations ...` and `charter show`: amendments, policy tests and history.

The steps a person takes under the charter (propose, approve, reject, withdraw, store expectation files)
go through a running server as that person (`cli.remote`: CHARTER_URL, CHARTER_CREDENTIAL), so the
charter authorises and audits them like any request. Reading (plan, simulate) goes through the server
when CHARTER_URL is set, else to the store directly; operator commands (apply, show) act on the store
directly (CHARTER_DATABASE_URL or the data directory), recorded in the audit chain as
`operator:<login> (cli)`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import click

from charter.cli import remote
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
    """Who gains and who loses what if amendment NUMBER takes effect (computed from the directory), and
    how the charter's expectation files fare against the version it would make."""
    plan = remote.call("GET", f"/admin/v1/amendments/{number}/plan") if remote.configured() else _local_plan(number)
    if as_json:
        click.echo(json.dumps(plan, indent=2))
        return
    click.echo(f"Amendment {number} ({plan['status'].replace('_', ' ')}):")
    if not plan["changes"]:
        click.echo("  changes no one's access")
    for change in plan["changes"]:
        clauses = ", ".join(map(str, change["clauses"]))
        click.echo(f"  {change['count']:>5}  {change['summary']}  [clause {clauses}]")
        for subject in change["subjects"][:10]:
            click.echo(f"         {subject['type']} {subject['id']}")
        if change["count"] > 10:
            click.echo(f"         ... and {change['count'] - 10} more")
    for warning in plan["new_warnings"]:
        click.echo(f"  new warning: {warning}")
    for warning in plan["resolved_warnings"]:
        click.echo(f"  resolved warning: {warning}")
    tests = plan["expectations"]
    click.echo(f"  expectations: {tests['total'] - tests['failed']} of {tests['total']} pass")
    for failure in tests["failures"]:
        click.echo(f"    FAIL {failure['file']}:{failure['line']}: {failure['expectation']} -- {failure['got']}")


def _local_plan(number: int) -> dict:
    from charter import amendments
    from charter.directory import repository

    _, sessions = _database()
    now = dt.datetime.now(dt.UTC)
    with sessions() as session:
        try:
            row = amendments.find(session, amendments.charter_row(session).name, number)
        except amendments.Refused as refused:
            click.echo(f"charter: {refused}", err=True)
            sys.exit(2)
        directory = repository.load(session)
        plan = amendments.plan(session, row, directory, now)
        tests = amendments.gate(session, row, directory, now)
        return {"number": number, "status": row.status, **plan.to_json(), "expectations": tests.to_json()}


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


# --- through the server, as a person ---------------------------------------------------------------


def _canary_options(function):
    options = [
        click.option("--canary-group", help="Take effect first for the members of this group."),
        click.option("--canary-percent", type=click.FloatRange(0, 100, min_open=True), help="... or this share."),
        click.option("--canary-margin", type=float, help="Deny-rate rise (percentage points) that withdraws it."),
        click.option("--canary-hours", type=int, help="Hours without trouble before everyone follows."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _canary(group, percent, margin, hours) -> dict | None:
    if group is None and percent is None:
        if margin is not None or hours is not None:
            raise click.UsageError("--canary-margin and --canary-hours need --canary-group or --canary-percent")
        return None
    plan = {"group": group} if group is not None else {"percent": percent}
    if margin is not None:
        plan["margin"] = margin
    if hours is not None:
        plan["promote_after_hours"] = hours
    return plan


def _expectation_updates(files: tuple[str, ...], deleted: tuple[str, ...]) -> dict | None:
    from pathlib import Path

    updates: dict[str, str | None] = {Path(path).name: _read(path) for path in files}
    updates.update({name: None for name in deleted})
    return updates or None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise click.UsageError(f"cannot read {path}: {error.strerror}") from None


def _summary(view: dict) -> None:
    click.echo(f"amendment {view['number']}: {view['status'].replace('_', ' ')} ({view['tally']['summary']})")
    if view.get("canary"):
        click.echo(f"  canary: {view['canary']['summary']}")
    for warning in view.get("warnings", []):
        click.echo(f"  warning: {warning}")


@amend_group.command("propose")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--draft", is_flag=True, help="Store it as a draft (propose it later with `charter amend submit`).")
@click.option("--expect", "expect_files", multiple=True, metavar="FILE", help="An expectation file it updates.")
@click.option("--delete-expect", "deleted", multiple=True, metavar="NAME", help="An expectation file it deletes.")
@_canary_options
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer.")
def propose_command(file, draft, expect_files, deleted, canary_group, canary_percent, canary_margin, canary_hours,
                    as_json):  # fmt: skip
    """Propose the amendment in FILE (through the server, as you)."""
    body: dict = {"text": _read(file), "draft": draft}
    updates = _expectation_updates(expect_files, deleted)
    if updates:
        body["expectations"] = updates
    canary = _canary(canary_group, canary_percent, canary_margin, canary_hours)
    if canary:
        body["canary"] = canary
    view = remote.call("POST", "/admin/v1/amendments", json=body)
    click.echo(json.dumps(view, indent=2)) if as_json else _summary(view)


@amend_group.command("submit")
@click.argument("number", type=int)
def submit_command(number: int) -> None:
    """Propose draft NUMBER (checked again)."""
    _summary(remote.call("POST", f"/admin/v1/amendments/{number}/propose"))


@amend_group.command("approve")
@click.argument("number", type=int)
@click.option("--comment", help="Kept with your verdict.")
def approve_command(number: int, comment: str | None) -> None:
    """Approve amendment NUMBER as yourself (counted for your groups the amendment names)."""
    _summary(remote.call("POST", f"/admin/v1/amendments/{number}/approve", json={"comment": comment}))


@amend_group.command("reject")
@click.argument("number", type=int)
@click.option("--comment", help="Kept with your verdict.")
def reject_command(number: int, comment: str | None) -> None:
    """Reject amendment NUMBER (one rejection ends it)."""
    _summary(remote.call("POST", f"/admin/v1/amendments/{number}/reject", json={"comment": comment}))


@amend_group.command("withdraw")
@click.argument("number", type=int)
def withdraw_command(number: int) -> None:
    """Withdraw amendment NUMBER while it is pending (or in canary)."""
    answer = remote.call("POST", f"/admin/v1/amendments/{number}/withdraw")
    click.echo(f"amendment {answer['number']}: {answer['status']}")


@amend_group.command("rollback")
@click.option("--to-version", "to_version", type=click.IntRange(0), required=True, help="The version to restore.")
@click.option("--effective", metavar="DATE", help="When it takes effect (YYYY-MM-DD; default tomorrow).")
@click.option("--reason", required=True, help="Why: kept in the amendment's Reason line.")
def rollback_command(to_version: int, effective: str | None, reason: str) -> None:
    """Propose a new amendment restoring the clauses of an earlier version (then planned and approved
    like any other)."""
    body: dict = {"to_version": to_version, "reason": reason}
    if effective is not None:
        body["effective"] = effective
    view = remote.call("POST", "/admin/v1/amendments/rollback", json=body)
    _summary(view)
    click.echo(view["text"], nl=False)


@amend_group.command("list")
def list_command() -> None:
    """Every amendment to the charter, with its status and quorum."""
    for view in remote.call("GET", "/admin/v1/amendments")["items"]:
        click.echo(
            f"{view['number']:>4}  {view['status'].replace('_', ' '):<10} effective {view['effective']}  "
            f"{view['tally']['summary']}  {view['reason'] or ''}"
        )


@click.group("expectations")
def expectations_group() -> None:
    """The expectation files kept with the charter in the server: every amendment must pass them (or
    update them) before an approval counts."""


@expectations_group.command("put")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="The name to keep it under (default: the file's name).")
def expectations_put(file: str, name: str | None) -> None:
    """Store FILE (it must pass against the version in force)."""
    from pathlib import Path

    name = name or Path(file).name
    remote.call(
        "PUT", f"/admin/v1/charter/expectations/{name}", content=_read(file), headers={"Content-Type": "text/plain"}
    )
    click.echo(f"stored {name}")


@expectations_group.command("list")
def expectations_list() -> None:
    for item in remote.call("GET", "/admin/v1/charter/expectations")["items"]:
        click.echo(item["name"])


@expectations_group.command("delete")
@click.argument("name")
def expectations_delete(name: str) -> None:
    remote.call("DELETE", f"/admin/v1/charter/expectations/{name}")
    click.echo(f"deleted {name}")
