"""`charter oauth-client create|list|rotate-secret|revoke`: OAuth clients through a running server, as you
(`cli.remote`: CHARTER_URL, CHARTER_CREDENTIAL). Secrets are printed once, when made."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from charter.cli import remote

BASE = "/admin/v1/oauth-clients"


@click.group("oauth-client")
def oauth_client_group() -> None:
    """Register OAuth clients (applications and services) and rotate their secrets."""


@oauth_client_group.command("create")
@click.argument("name")
@click.option("--public", is_flag=True, help="No secret (browser or native app): PKCE with S256 is required.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="An exact redirect URI (repeatable).")
@click.option("--service", help="A service client: client credentials acting as this service.")
@click.option("--scope", "scopes", help="Space-separated scopes it may ask for.")
@click.option("--audience", help="The API its access tokens are for (default: the issuer).")
def create_command(name, public, redirect_uris, service, scopes, audience) -> None:
    """Register NAME; print its client id and (once) its secret."""
    body: dict = {"name": name, "type": "public" if public else "confidential", "redirect_uris": list(redirect_uris)}
    if service:
        body["service"], body["grant_types"] = service, ["client_credentials"]
    if scopes is not None:
        body["scopes"] = scopes
    if audience:
        body["audience"] = audience
    answer = remote.call("POST", BASE, json=body)
    click.echo(f"client {answer['client_id']} ({answer['type']}) registered: {answer['name']}")
    if answer.get("client_secret"):
        click.echo(f"client secret (shown once): {answer['client_secret']}")


@oauth_client_group.command("list")
def list_command() -> None:
    """The registered clients (never their secrets)."""
    answer = remote.call("GET", BASE, params={"limit": 1000})
    table = Table("client id", "name", "type", "acts as / redirects", "grants", "secret since", "revoked")
    for item in answer["items"]:
        where = f"service:{item['service']}" if item["service"] else " ".join(item["redirect_uris"])
        since = (item["secret_created_at"] or "")[:10]
        table.add_row(
            item["client_id"],
            item["name"],
            item["type"],
            where,
            ", ".join(item["grant_types"]),
            since,
            "yes" if item["revoked"] else "",
        )
    Console(width=200).print(table)


@oauth_client_group.command("rotate-secret")
@click.argument("client_id")
def rotate_command(client_id: str) -> None:
    """A new secret for CLIENT_ID (printed once); the old one keeps working for 24 hours."""
    answer = remote.call("POST", f"{BASE}/{client_id}/secret")
    click.echo(f"client secret (shown once): {answer['client_secret']}")
    click.echo(f"the previous secret works until {answer['previous_secret_expires_at']}")


@oauth_client_group.command("revoke")
@click.argument("client_id")
def revoke_command(client_id: str) -> None:
    """Revoke CLIENT_ID at once, with every refresh token it holds."""
    remote.call("DELETE", f"{BASE}/{client_id}")
    click.echo(f"client {client_id}: revoked")
