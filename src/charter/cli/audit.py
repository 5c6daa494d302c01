"""`charter audit ...`: verify the chains, export, who had access, prune, rotate the signing key.

These are operator commands: they act on the store directly (CHARTER_DATABASE_URL or the data
directory's SQLite file), as `charter db upgrade` does. Commands that change something (prune,
rotate-key, checkpoint) record themselves in the audit chain as `operator:<login> (cli)`.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import click

from charter.audit import store

OK, FINDINGS, USAGE = 0, 1, 2


@click.group("audit")
def audit_group() -> None:
    """The audit trail and decision log: verify, export, who had access, retention, signing keys."""


def _database():
    from charter.store.db import make_engine, sessions, upgrade

    engine = make_engine()
    upgrade(engine)
    return engine, sessions(engine)


def operator() -> str:
    try:
        login = getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        login = "unknown"
    return f"operator:{login} (cli)"


def _chains(chain: str) -> tuple[str, ...]:
    return store.CHAINS if chain == "all" else (chain,)


CHAIN_OPTION = click.option(
    "--chain", type=click.Choice(["all", *store.CHAINS]), default="all", show_default=True, help="Which chain."
)


@audit_group.command("verify")
@CHAIN_OPTION
@click.option(
    "--pin",
    "pin_file",
    metavar="FILE",
    help="Trust only the signing keys listed in FILE (lines `<key id> <public key hex>`, as `audit keys` prints).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify_command(chain: str, pin_file: str | None, as_json: bool) -> None:
    """Walk the chains and their signed checkpoints; name the first record altered, removed, inserted or reordered.

    Exit 0 when every chain holds, 1 when one is broken.
    """
    trusted = _read_pins(pin_file) if pin_file else None
    _, sessions = _database()
    reports = []
    with sessions() as session:
        for name in _chains(chain):
            reports.append(store.verify_chain(session, name, trusted))
    if as_json:
        click.echo(json.dumps([_report_json(r) for r in reports], indent=2))
    else:
        for report in reports:
            click.echo(_report_line(report))
    sys.exit(OK if all(r.intact for r in reports) else FINDINGS)


def _report_line(report: store.Report) -> str:
    span = f"records {report.first}..{report.head}" if report.head >= report.first else "no records"
    signed = f"signed through {report.signed_through}" if report.signed_through else "no checkpoint yet"
    head = f"{report.chain}: {span} ({report.records} read, {report.checkpoints} checkpoints, {signed})"
    if report.finding is None:
        return f"{head}: intact"
    return f"{head}: BROKEN at {report.finding}"


def _report_json(report: store.Report) -> dict:
    finding = report.finding
    return {
        "chain": report.chain,
        "intact": report.intact,
        "first": report.first,
        "head": report.head,
        "records": report.records,
        "checkpoints": report.checkpoints,
        "signed_through": report.signed_through,
        "finding": None
        if finding is None
        else {"seq": finding.seq, "kind": finding.kind.value, "detail": finding.detail},
    }


def _read_pins(path: str) -> dict[str, bytes]:
    pins = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise click.UsageError(f"cannot read {path}: {error.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        try:
            pins[parts[0]] = bytes.fromhex(parts[1])
        except (IndexError, ValueError):
            raise click.UsageError(f"{path}:{number}: expected `<key id> <public key hex>`") from None
    return pins


@audit_group.command("keys")
def keys_command() -> None:
    """The checkpoint signing keys the store knows (pin them with `verify --pin`)."""
    from sqlalchemy import select

    from charter.store.models import AuditKeyRow

    _, sessions = _database()
    with sessions() as session:
        for row in session.scalars(select(AuditKeyRow).order_by(AuditKeyRow.created_at)):
            retired = f"retired {store.aware(row.retired_at).isoformat()}" if row.retired_at else "active"
            click.echo(f"{row.key_id} {bytes(row.public_key).hex()}  # {retired}")


@audit_group.command("rotate-key")
def rotate_key_command() -> None:
    """Sign the chains' heads with the current key, then switch to a new one (the old public key is kept)."""
    from charter.audit.trail import AuditTrail

    _, sessions = _database()
    new, old = AuditTrail().rotate_key(sessions, operator())
    click.echo(f"signing key {new} is active" + (f"; {old} retired" if old else ""))


@audit_group.command("checkpoint")
def checkpoint_command() -> None:
    """Sign the head of each chain now."""
    from charter.audit.trail import AuditTrail

    _, sessions = _database()
    for chain, seq in AuditTrail().checkpoint(sessions).items():
        click.echo(f"{chain}: " + (f"signed through record {seq}" if seq else "already signed (or empty)"))


@audit_group.command("prune")
def prune_command() -> None:
    """Delete records older than the charter's retention clauses allow (at a signed checkpoint)."""
    import datetime as dt

    from charter import charters
    from charter.audit.retention import prune_expired, retention_periods
    from charter.audit.trail import AuditTrail

    _, sessions = _database()
    trail = AuditTrail()
    with sessions() as session:
        version = charters.version_in_force(session, trail.now().date())
    if version is None:
        click.echo("no charter in force: nothing to prune")
        return
    periods = retention_periods(version)
    if not periods:
        click.echo(f'"{version.name}" has no retention clause: records are kept forever')
        return
    trail.checkpoint(sessions)
    for chain, through in prune_expired(sessions, trail, version, operator()).items():
        keep, clause = periods[chain]
        days = keep / dt.timedelta(days=1)
        what = f"pruned through record {through}" if through else "nothing old enough at a checkpoint"
        click.echo(f"{chain}: kept for {days:g} days (clause {clause}): {what}")


@audit_group.command("who-had-access")
@click.argument("resource")
@click.option(
    "--at",
    "at_text",
    required=True,
    metavar="WHEN",
    help="The instant asked about: an ISO 8601 time with a zone (2026-06-02T14:30:00Z), "
    "or a date (2026-06-02), which means 00:00 UTC at the start of that day.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def who_had_access_command(resource: str, at_text: str, as_json: bool) -> None:
    """Who had access to RESOURCE at a past instant, under which clause, and on what basis.

    The directory of then is rebuilt by undoing, newest first, the directory changes the audit
    chain records after that instant; the charter is the one in force then, the grants those active
    then. Each action the charter (or an active grant) names is asked of the engine as a request made
    at that instant without MFA, from no network address and with no token scopes; a separate row
    ("only with MFA") shows what MFA would have added. Exit 2 when the records cannot answer (the
    instant is before the first record, or its records were pruned).
    """
    from charter.audit import history

    at = _instant_option(at_text)
    _, sessions = _database()
    with sessions() as session:
        try:
            answer = history.who_had_access(session, resource, at)
        except history.Unanswerable as error:
            click.echo(f"charter: {error}", err=True)
            sys.exit(USAGE)
    if as_json:
        click.echo(json.dumps(answer.to_json(), indent=2))
        return
    click.echo(f'Who had access to "{answer.resource}" at {history.instant(answer.at)}')
    click.echo(
        f'Charter "{answer.charter}" version {answer.version}; directory rebuilt by undoing '
        f"{answer.undone} later change(s); {answer.grants} grant(s) active then."
    )
    if not answer.access:
        click.echo("No one.")
        return
    header = ("TYPE", "SUBJECT", "ACTIONS", "CLAUSES", "BASIS", "MFA")
    rows = [
        (
            a.subject_type,
            a.subject,
            ", ".join(a.actions),
            ", ".join(map(str, a.clauses)),
            ", ".join(a.basis) + (f" ({', '.join(a.grants)})" if a.grants else ""),
            "only with MFA" if a.mfa_only else "",
        )
        for a in answer.access
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _instant_option(text: str):
    """`--at`: a date (00:00 UTC that day) or an ISO 8601 time with a zone."""
    import datetime as dt

    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date (2026-06-02) or an ISO 8601 time (2026-06-02T14:30:00Z)", param_hint="--at"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no zone: add Z or an offset such as +02:00", param_hint="--at")
    return moment.astimezone(dt.UTC)


@audit_group.command("export")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["jsonl", "ocsf"]),
    default="jsonl",
    show_default=True,
    help="jsonl: the records as stored, hashes included (they re-verify offline); ocsf: OCSF 1.x events.",
)
@click.option(
    "--since",
    "since_text",
    metavar="WHEN",
    help="Records written at or after WHEN: a date (00:00 UTC that day) or an ISO 8601 time with a zone. "
    "Default: the first record.",
)
@click.option("--until", "until_text", metavar="WHEN", help="Records written before WHEN. Default: no end.")
@CHAIN_OPTION
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE (with a progress bar on standard error) rather than standard output.",
)
def export_command(
    format_: str, since_text: str | None, until_text: str | None, chain: str, output: str | None
) -> None:
    """Export records as JSON Lines, one record a line, each chain in sequence order.

    A jsonl line holds every field the record's hash covers (see docs/audit.md, "Export and search"),
    so the export can be re-verified with `charter.audit.chain` away from the store.
    """
    from charter.audit import export

    since = _export_instant(since_text, "--since")
    until = _export_instant(until_text, "--until")
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("must be after --since", param_hint="--until")
    chains = _chains(chain)
    _, sessions = _database()
    with sessions() as session:
        lines = export.lines(session, chains, format_, since, until)
        if output is None:
            _write_lines(sys.stdout.buffer, lines)
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        total = export.count_between(session, chains, since, until)
        columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with open(output, "wb") as sink, Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task("export", total=total)
            written = _write_lines(sink, lines, lambda n: progress.update(task, completed=n))
    click.echo(f"{written} record(s) written to {output}", err=True)


def _write_lines(sink, lines, progress=None) -> int:
    written = 0
    try:
        for line in lines:
            sink.write(line)
            sink.write(b"\n")
            written += 1
            if progress is not None and written % 1000 == 0:
                progress(written)
        sink.flush()
    except BrokenPipeError:  # `charter audit export | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when exit flushes
        sys.exit(OK)
    if progress is not None:
        progress(written)
    return written


def _export_instant(text: str | None, option: str):
    from charter.audit.export import parse_instant

    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
