"""`charter user set-password` and `charter mfa-reset request|approve|list` (docs/authentication.md).

`set-password` acts through the server as you when CHARTER_URL is set (authorised as `manage` on
`directory:users/<name>`, audited), else on the store directly like `charter init` (an operator with the
database; audited as the local operator). Either way the user must choose their own password at the next
sign-in. The MFA reset commands always go through the server, as you (`cli.remote`).
"""

from __future__ import annotations

import getpass
import sys

import click

from charter.cli import remote


@click.group("user")
def user_group() -> None:
    """Users' sign-in credentials."""


@user_group.command("set-password")
@click.argument("name")
def set_password_command(name: str) -> None:
    """Set NAME's password (asked twice, not shown); NAME must change it at the next sign-in."""
    password = click.prompt("New password", hide_input=True, confirmation_prompt="Again")
    if remote.configured():
        remote.call("PUT", f"/admin/v1/users/{name}/password", json={"password": password})
    else:
        _set_locally(name, password)
    click.echo(f"password of {name} set; {name} must change it at the next sign-in")


def _set_locally(name: str, password: str) -> None:
    from charter.auth import passwords
    from charter.directory import repository
    from charter.engine import Engine
    from charter.store.db import bump_revision, make_engine, upgrade

    engine = Engine(make_engine())
    upgrade(engine.db)
    try:
        passwords.check_policy(password, name)
    except passwords.WeakPassword as weak:
        click.echo(f"charter: {weak}", err=True)
        sys.exit(1)
    now = engine.clock.now()
    with engine.sessions.begin() as session:
        if repository.find_identity(session, "user", name) is None:
            click.echo(f'charter: no user "{name}" in the directory', err=True)
            sys.exit(1)
        revision = bump_revision(session)
        passwords.set_password(session, name, password, now, must_change=True)
        actor = f"local operator ({getpass.getuser()}, charter user set-password)"
        engine.audit.record(
            session, actor, "directory.user.password", f"directory:users/{name}", "ok", None,
            {"user": name, "must_change": True, "revision": revision},
        )  # fmt: skip


def _reset_line(view: dict) -> str:
    return (
        f"reset {view['id']}: {view['status']} -- factor of {view['user']}, asked by {view['requested_by']} "
        f"under clause {view['clause']} ({view['tally']}): {view['reason']}"
    )


@click.group("mfa-reset")
def mfa_reset_group() -> None:
    """Reset a lost MFA factor, as the charter's recovery clause allows (through the server, as you)."""


@mfa_reset_group.command("request")
@click.argument("user")
@click.option("--reason", required=True, help="How the factor was lost and how you checked who is asking.")
def request_command(user: str, reason: str) -> None:
    """Ask for USER's factor to be reset (your request counts as the first approval)."""
    click.echo(_reset_line(remote.call("POST", "/auth/v1/mfa-resets", json={"user": user, "reason": reason})))


@mfa_reset_group.command("approve")
@click.argument("reset_id")
def approve_command(reset_id: str) -> None:
    """Approve reset RESET_ID; the approval that meets the quorum removes the factor and ends its sessions."""
    click.echo(_reset_line(remote.call("POST", f"/auth/v1/mfa-resets/{reset_id}/approve")))


@mfa_reset_group.command("list")
@click.option("--status", type=click.Choice(["pending", "done", "cancelled"]))
def list_command(status: str | None) -> None:
    """Resets you asked for, approved, are the subject of, or may approve."""
    answer = remote.call("GET", "/auth/v1/mfa-resets", params={"status": status} if status else None)
    for view in answer["items"]:
        click.echo(_reset_line(view))
