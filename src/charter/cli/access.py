"""`charter request`, `approve`, `deny`, `revoke`, `break-glass`, `requests`: just-in-time access through a
running server, as you (`cli.remote`: CHARTER_URL, CHARTER_CREDENTIAL)."""

from __future__ import annotations

import click

from charter.cli import remote


def _request_line(view: dict) -> str:
    subject = f"{view['subject']['type']}:{view['subject']['id']}"
    hours = view["duration_seconds"] / 3600
    grant = f", grant {view['grant']}" if view.get("grant") else ""
    return (
        f"request {view['id']}: {view['status']} -- {subject} {view['action']} {view['resource']} for {hours:g}h "
        f"under clause {view['clause']} ({view['tally']}){grant}"
    )


@click.command("request")
@click.argument("action")
@click.argument("resource")
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long: 8h, 90m, 1d.")
@click.option("--reason", help="Why (required where the clause says so).")
@click.option("--start", "starts", metavar="TIME", help="A later start (ISO 8601 with a zone).")
def request_command(action: str, resource: str, duration: str, reason: str | None, starts: str | None) -> None:
    """Ask for ACTION on RESOURCE for a while, under the charter's eligibility clauses."""
    body = {"action": action, "resource": resource, "duration": duration, "reason": reason, "starts": starts}
    click.echo(_request_line(remote.call("POST", "/access/v1/requests", json={k: v for k, v in body.items() if v})))


@click.command("requests")
@click.option("--status", type=click.Choice(["pending", "approved", "denied", "expired", "cancelled"]))
def requests_command(status: str | None) -> None:
    """Your requests and those you may decide."""
    answer = remote.call("GET", "/access/v1/requests", params={"status": status} if status else None)
    for view in answer["items"]:
        click.echo(_request_line(view))


def _verdict(verdict: str):
    @click.command(verdict)
    @click.argument("request_id")
    @click.option("--comment", help="Kept with your verdict.")
    def command(request_id: str, comment: str | None) -> None:
        answer = remote.call("POST", f"/access/v1/requests/{request_id}/{verdict}", json={"comment": comment})
        click.echo(_request_line(answer))

    command.help = f"{verdict.capitalize()} access request REQUEST_ID as yourself."
    return command


approve_command = _verdict("approve")
deny_command = _verdict("deny")


@click.command("revoke")
@click.argument("grant_id")
def revoke_command(grant_id: str) -> None:
    """End grant GRANT_ID at once (its holder, an approver of its request, or an admin)."""
    answer = remote.call("DELETE", f"/access/v1/grants/{grant_id}")
    click.echo(f"grant {answer['id']}: revoked at {answer['revoked_at']}")


@click.command("break-glass")
@click.argument("action")
@click.argument("resource")
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long: at most the clause's limit.")
@click.option("--reason", required=True, help="Why: recorded, alerted and reviewed.")
def break_glass_command(action: str, resource: str, duration: str, reason: str) -> None:
    """Take ACTION on RESOURCE at once under a break-glass clause: loudly audited, alerted, reviewed."""
    body = {"action": action, "resource": resource, "duration": duration, "reason": reason}
    answer = remote.call("POST", "/access/v1/break-glass", json=body)
    grant, review = answer["grant"], answer["review"]
    click.echo(f"BREAK GLASS: grant {grant['id']} until {grant['ends']}; review {review['id']} due {review['due']}")


COMMANDS = (request_command, requests_command, approve_command, deny_command, revoke_command, break_glass_command)
