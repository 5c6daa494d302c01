"""`charter keys ...`: the token signing keys (charter.oidc.keys): list them, rotate at once.

Operator commands on the store directly (CHARTER_DATABASE_URL or the data directory's SQLite file), as
`charter audit rotate-key` is. A forced rotation is recorded in the audit chain as `operator:<login> (cli)`;
running servers load the new key with the revision it makes.
"""

from __future__ import annotations

import datetime as dt
import json

import click


@click.group("keys")
def keys_group() -> None:
    """Token signing keys: list them, rotate now (the schedule is the charter's `Signing keys rotate every ...`)."""


def _engine():
    from charter.engine import Engine
    from charter.store.db import make_engine, upgrade

    db = make_engine()
    upgrade(db)
    engine = Engine(db, listen=False)
    engine.rebuild()  # the charter in force (its rotation period and token lifetimes) and the key ring
    return engine


@keys_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also keys no longer published.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(show_all: bool, as_json: bool) -> None:
    """Each key: its id, when it signs from, when it retires, until when it is published (JWKS)."""
    from sqlalchemy import select

    from charter.audit.store import aware as _aware
    from charter.store.models import SigningKeyRow

    engine = _engine()
    now = engine.clock.now().astimezone(dt.UTC)
    signing = engine.keyring.signing_kid(now) if engine.keyring is not None else None
    with engine.sessions() as session:
        rows = session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at)).all()
    listed = []
    for row in rows:
        signs_from, retires, until = _aware(row.created_at), _aware(row.retires_at), _aware(row.publish_until)
        if until <= now and not show_all:
            continue
        state = (
            "signing"
            if row.kid == signing
            else "next"
            if signs_from > now
            else "retired, published"
            if until > now
            else "unpublished"
        )
        listed.append(
            {
                "kid": row.kid,
                "alg": row.alg,
                "signs_from": signs_from.isoformat(),
                "retires_at": retires.isoformat(),
                "publish_until": until.isoformat(),
                "state": state,
            }
        )
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        click.echo("no signing keys (one is made when Charter first signs a token)")
    for key in listed:
        click.echo(
            f"{key['kid']}  {key['state']:<18}  signs from {key['signs_from']}  retires {key['retires_at']}"
            f"  published until {key['publish_until']}"
        )


@keys_group.command("rotate")
def rotate_command() -> None:
    """Retire the signing key now and sign with a new one (a suspected compromise); the old one stays published
    until every token it signed has expired."""
    from charter.cli.audit import operator
    from charter.oidc.rotation import rotate_now

    engine = _engine()
    kid = rotate_now(engine, operator())
    click.echo(f"signing key {kid} signs from now; older keys retired and published until their tokens expire")
