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
