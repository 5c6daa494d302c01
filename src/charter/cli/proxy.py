"""`charter proxy`: the identity-aware reverse proxy (charter.enforce.proxy) in front of an upstream service.

    CHARTER_URL=https://charter.example CHARTER_CREDENTIAL=chr_... \\
      charter proxy --upstream http://127.0.0.1:9000 --routes routes.yaml --port 8443

It keeps a local replica of Charter's decision data (the credential needs `read` on
`charter:<name>/snapshot`) and posts its decisions to Charter's decision log (`manage` on
`audit:decisions`). With `--login-client`, browsers without a token sign in with Charter (authorization
code + PKCE) and keep a session cookie (charter.enforce.browser). Exit 2 on a usage error (a bad mapping
file, Charter unreachable at start).
"""

from __future__ import annotations

import sys

import click

from charter.cli.remote import CREDENTIAL, URL


@click.command("proxy")
@click.option("--upstream", required=True, help="The service to protect, e.g. http://127.0.0.1:9000.")
@click.option("--routes", "routes_path", required=True, help="The route mapping file (YAML or JSON).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--charter-url", envvar=URL, required=True, help=f"Charter's address (or {URL}).")
@click.option("--credential", envvar=CREDENTIAL, required=True, help=f"The proxy's API credential (or {CREDENTIAL}).")
@click.option("--audience", default=None, help="The audience tokens must name (default: the issuer).")
@click.option("--forward-token", is_flag=True, help="Pass the caller's Authorization header to the upstream.")
@click.option(
    "--login-client",
    default=None,
    help="Sign browsers in as this public OAuth client (its redirect URI: "
    "PUBLIC_URL/_charter/callback); CHARTER_PROXY_SECRET signs the sign-in cookie.",
)
@click.option("--public-url", default=None, help="The proxy's address as browsers see it (default: http://HOST:PORT).")
@click.option("--poll-interval", default=0.25, show_default=True, type=float, help="Seconds between revision checks.")
@click.option("--no-log", is_flag=True, help="Do not send decisions to Charter's decision log.")
def proxy_command(
    upstream: str,
    routes_path: str,
    host: str,
    port: int,
    charter_url: str,
    credential: str,
    audience: str | None,
    forward_token: bool,
    login_client: str | None,
    public_url: str | None,
    poll_interval: float,
    no_log: bool,
) -> None:
    """Verify each caller's Charter access token, decide from a local replica, forward what is allowed."""
    import uvicorn

    from charter.client import CharterClient
    from charter.enforce.gate import Gate
    from charter.enforce.proxy import Proxy
    from charter.enforce.reporter import Reporter
    from charter.enforce.routes import MappingError, RouteMap
    from charter.sdk.replica import LocalReplica, ReplicaError

    try:
        routes = RouteMap.load(routes_path)
    except (OSError, MappingError) as error:
        click.echo(f"charter proxy: {error}", err=True)
        sys.exit(2)
    try:
        replica = LocalReplica(
            charter_url,
            credential,
            audience=audience,
            poll_interval=poll_interval,
            max_staleness=max(5.0, 4 * poll_interval),
        )
    except ReplicaError as error:
        click.echo(f"charter proxy: {error}", err=True)
        sys.exit(2)
    reporter = None if no_log else Reporter(CharterClient(charter_url, credential))
    gate = Gate(routes, replica, reporter=reporter)
    login = None
    if login_client:
        import os
        import secrets

        from charter.enforce.browser import BrowserLogin

        secret = os.environ.get("CHARTER_PROXY_SECRET", "").encode() or secrets.token_bytes(32)
        login = BrowserLogin(charter_url, login_client, public_url or f"http://{host}:{port}", secret)
    described = f"{len(routes.routes)} routes, revision {replica.revision}"
    click.echo(f"Proxy:    http://{host}:{port} -> {upstream} ({described})")
    try:
        uvicorn.run(
            Proxy(gate, upstream, forward_token=forward_token, freeze_gc=True, login=login),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # the client's address is what connects: X-Forwarded-For is never believed
            http="httptools",
            loop="uvloop",
        )
    finally:
        if reporter is not None:
            reporter.close()
        replica.close()
