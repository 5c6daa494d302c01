"""`charter review ...`: access reviews through a running server, as the person reviewing.

Every command is a request to `/access/v1/reviews` (`cli.remote`: CHARTER_URL, CHARTER_CREDENTIAL), so the
charter decides who may review and every verdict is audited as that person. Exit 1 when the server refuses
(its message printed), 2 when it cannot be reached. docs/reviews.md describes reviews.
"""

from __future__ import annotations

import json

import click

from charter.cli import remote

REVIEWS = "/access/v1/reviews"
SUBJECT_TYPES = ("user", "service", "partner")


@click.group("review")
def review_group() -> None:
    """Access reviews: membership campaigns and uses of break glass the charter has reviewed."""


@review_group.command("list")
@click.option("--mine", is_flag=True, help="Only the tasks whose reviewer group you are in.")
@click.option("--overdue", is_flag=True, help="Only open tasks past their due date.")
@click.option("--all", "everything", is_flag=True, help="Done ones too (by default only open tasks).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, as the API answers.")
def list_command(mine: bool, overdue: bool, everything: bool, as_json: bool) -> None:
    """Review tasks by due date: all of them if you may read the charter, else those you review."""
    params: dict[str, str | int] = {"limit": 1000}
    if overdue:
        params["status"] = "overdue"
    elif not everything:
        params["status"] = "open"
    if mine:
        params["mine"] = "true"
    answer = remote.call("GET", REVIEWS, params=params)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    if not answer["items"]:
        click.echo("no review tasks")
    for task in answer["items"]:
        _line(task)


@review_group.command("keep")
@click.argument("task")
@click.argument("member")
@click.option("--comment", help="Why (kept with the verdict).")
def keep_command(task: str, member: str, comment: str | None) -> None:
    """Keep MEMBER (user:dave, or dave for a user) in the group under review in TASK."""
    _verdict(task, member, "keep", comment)


@review_group.command("revoke")
@click.argument("task")
@click.argument("member")
@click.option("--comment", help="Why (kept with the verdict).")
def revoke_command(task: str, member: str, comment: str | None) -> None:
    """Revoke MEMBER's membership of the group under review in TASK, at once (user:dave, or dave)."""
    _verdict(task, member, "revoke", comment)


@review_group.command("complete")
@click.argument("task")
@click.option("--outcome", type=click.Choice(["ok", "misuse"]), required=True, help="Was the break glass justified?")
@click.option("--comment", help="What you found.")
def complete_command(task: str, outcome: str, comment: str | None) -> None:
    """Complete the review of a use of break glass (not your own)."""
    done = remote.call("POST", f"{REVIEWS}/{task}/complete", json={"outcome": outcome, "comment": comment})
    click.echo(f"review {task}: done, {outcome} (revision {done['revision']})")


def _verdict(task: str, member: str, verdict: str, comment: str | None) -> None:
    member_type, member_id = _member(member)
    body = {"verdict": verdict, "comment": comment}
    done = remote.call("POST", f"{REVIEWS}/{task}/members/{member_type}/{member_id}", json=body)
    removed = done["details"]["verdicts"][f"{member_type}:{member_id}"].get("removed_from")
    how = f", removed from group {', '.join(removed)}" if removed else ""
    left = len(done.get("pending", []))
    state = "done" if done["status"] == "done" else f"{left} member{'' if left == 1 else 's'} left"
    click.echo(f"review {task}: {verdict} {member_type}:{member_id}{how}; {state} (revision {done['revision']})")


def _member(text: str) -> tuple[str, str]:
    """`user:dave` or `dave` (a user)."""
    member_type, colon, member_id = text.partition(":")
    if not colon:
        return "user", text
    if member_type not in SUBJECT_TYPES or not member_id:
        raise click.BadParameter(f"expected TYPE:ID with TYPE one of {', '.join(SUBJECT_TYPES)}, or a user's id")
    return member_type, member_id


def _line(task: dict) -> None:
    state = "OVERDUE" if task["overdue"] else task["status"]
    what = task["subject"] if task["kind"] == "membership" else f"grant {task['subject']}"
    waiting = f", {len(task['pending'])} to review" if task.get("pending") else ""
    who = task["details"].get("subject")
    used_by = f" used by {who}" if task["kind"] == "break glass" and who else ""
    click.echo(
        f"{task['id']}  {state:<7}  due {task['due'][:16].replace('T', ' ')}  {task['kind']} review of {what}"
        f"{used_by} by group {task['reviewer_group']} (clause {task['clause']}){waiting}"
    )
    for member in task["details"].get("members", ()) if task["status"] == "open" else ():
        key = f"{member['type']}:{member['id']}"
        verdict = task["details"].get("verdicts", {}).get(key, {}).get("verdict", "to review")
        through = ", ".join(member["through"])
        click.echo(f"    {key:<24} {verdict:<10} (through {through})")
