"""The CLI as a client of a running Charter: where (CHARTER_URL) and as whom (CHARTER_CREDENTIAL, an API
client's bearer credential).

Steps that a person takes under the charter (proposing or approving an amendment, storing expectation
files) go through the HTTP API this way, so that they are authorised and audited exactly as any other
request, as that person. Exit codes: 1 when the server refuses (its message printed), 2 when it cannot
be reached or the environment is incomplete.
"""

from __future__ import annotations

import os
import sys

import click
import httpx

URL = "CHARTER_URL"
CREDENTIAL = "CHARTER_CREDENTIAL"
TIMEOUT = 120.0  # seconds: a plan or a simulation over a large log takes a while


def configured() -> bool:
    return bool(os.environ.get(URL, "").strip())


def call(method: str, path: str, **kwargs) -> dict:
    """One request to the API; the JSON answer, or exit with the server's message."""
    base = os.environ.get(URL, "").strip().rstrip("/")
    credential = os.environ.get(CREDENTIAL, "").strip()
    if not base or not credential:
        click.echo(
            f"charter: set {URL} (e.g. http://127.0.0.1:8080) and {CREDENTIAL} (an API client's credential, "
            "acting as you) to do this through the server",
            err=True,
        )
        sys.exit(2)
    headers = {"Authorization": f"Bearer {credential}", **kwargs.pop("headers", {})}
    try:
        response = httpx.request(method, base + path, headers=headers, timeout=TIMEOUT, **kwargs)
    except httpx.HTTPError as error:
        click.echo(f"charter: cannot reach {base}: {error}", err=True)
        sys.exit(2)
    if response.is_success:
        return response.json()
    try:
        problem = response.json()
        message = problem.get("message") or problem.get("error") or response.text
        details = [_detail(d) for d in problem.get("details") or [] if isinstance(d, dict)]
    except ValueError:
        message, details = response.text, []
    click.echo(f"charter: {response.status_code}: {message}", err=True)
    for detail in filter(None, details):
        click.echo(f"  {detail}", err=True)
    sys.exit(2 if response.status_code == 401 else 1)


def _detail(detail: dict) -> str:
    where = f"line {detail['line']}, column {detail['column']}: " if detail.get("line") else ""
    return where + str(detail.get("message", ""))
