"""The Acme amendment 4 end to end, through the CLI and the HTTP API of a running server, on both backends.

The server is Charter's own app under uvicorn on a loopback port (in a thread, so that its clock is a test
clock the test can move); the CLI talks to it over HTTP as each person (CHARTER_URL, CHARTER_CREDENTIAL),
and reads the store directly for `charter show --as-of`. In the sample store the Acme amendment 4 is
amendment 1 (`charter/samples/amendment-1.amendment`).
"""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from charter.audit import store
from charter.bootstrap import sample
from charter.cli.main import cli
from live import LiveServer

ADMIN = "/admin/v1"


def as_person(server: LiveServer, credential: str, *args: str):
    """The CLI, acting through the server as the holder of `credential`."""
    env = {"CHARTER_URL": server.url, "CHARTER_CREDENTIAL": credential}
    return CliRunner().invoke(cli, list(args), env=env)


def test_acme_amendment_4_through_the_cli_and_the_api(live, backend, tmp_path):
    server, api = live
    for who, groups in (("sam", ["security"]), ("lee", ["eng-leads"])):
        api.ok("PUT", f"{ADMIN}/users/{who}", json={"groups": groups})
    erin, sam, lee, alice = (api.new_credential(who) for who in ("erin", "sam", "lee", "alice"))
    text = tmp_path / "acme-amendment-4.amendment"
    text.write_text(sample("amendment-1.amendment"))

    # Propose, as erin (the charter is owned by group "security"): through the CLI.
    proposed = as_person(server, erin, "amend", "propose", str(text))
    assert proposed.exit_code == 0, proposed.output
    assert proposed.output.startswith("amendment 1: proposed (waiting for 1 more of group")

    # The plan, as an approver reads it: exactly two changes, to the subjects the issue names; striking
    # clause 15 changes no one. (Alice, neither an approver nor a reader of the charter, may not read it.)
    assert as_person(server, alice, "amend", "plan", "1").exit_code == 1
    table = as_person(server, sam, "amend", "plan", "1")
    assert table.exit_code == 0, table.output
    assert "loosened: read on tickets/*: no longer on weekdays between 08:00 and 18:00 UTC  [clause 2]" in table.output
    assert 'gains read on api:shipments/* (with scope "shipments.read")  [clause 21]' in table.output
    assert "expectations: 10 of 10 pass" in table.output
    plan = json.loads(as_person(server, lee, "amend", "plan", "1", "--json").output)
    assert {(c["summary"], tuple(f"{s['type']}:{s['id']}" for s in c["subjects"])) for c in plan["changes"]} == {
        ("loosened: read on tickets/*: no longer on weekdays between 08:00 and 18:00 UTC", ("user:carol",)),
        ('gains read on api:shipments/* (with scope "shipments.read")', ("partner:acme-logistics",)),
    }
    assert plan == api.ok("GET", f"{ADMIN}/amendments/1/plan")  # the CLI shows what the API answers

    # Approvals: the proposer and someone outside the approving groups are refused, then sam and lee.
    self_approval = as_person(server, erin, "amend", "approve", "1")
    assert self_approval.exit_code == 1 and "erin proposed amendment 1 and cannot approve" in self_approval.output
    wrong_group = as_person(server, alice, "amend", "approve", "1")
    assert wrong_group.exit_code == 1 and "alice is not a member of a group that approves" in wrong_group.output
    first = as_person(server, sam, "amend", "approve", "1", "--comment", "security is fine with it")
    assert first.output.strip() == 'amendment 1: proposed (waiting for 1 more of group "eng-leads")'
    second = api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=lee)  # the API directly, same path
    assert second["status"] == "scheduled"
    assert [v["person"] for v in second["verdicts"]] == ["sam", "lee"]

    saturday = {"mfa": True, "time": "2026-12-19T10:00:00Z"}
    shipments = {"subject_type": "partner", "scopes": ["shipments.read"]}
    assert api.decide("carol", "read", "tickets/1", **saturday)["decision"] is False
    assert api.decide("acme-logistics", "read", "api:shipments/7", **shipments)["decision"] is False

    # 2026-12-15 by the test clock: the server's scheduler applies it; every decision follows.
    api.clock.set(dt.datetime(2026, 12, 14, 23, 59, tzinfo=dt.UTC))
    assert api.http.app.state.scheduler.run_once() == []
    api.clock.set(dt.datetime(2026, 12, 15, 0, 0, 1, tzinfo=dt.UTC))
    [applied] = api.http.app.state.scheduler.run_once()
    assert applied["status"] == "in_force"
    assert api.http.app.state.engine.wait_for(applied["revision"], 5)
    assert api.decide("carol", "read", "tickets/1", **saturday)["decision"] is True
    assert api.decide("acme-logistics", "read", "api:shipments/7", **shipments)["decision"] is True
    assert api.decide("carol", "read", "tickets/1", time="2026-12-16T10:00:00Z")["decision"] is False  # MFA still
    listing = as_person(server, api.admin_credential, "amend", "list")
    assert listing.output.split()[:2] == ["1", "in"]

    # History: the text in force on 2026-12-14 is still the old one; the versions are kept as rows.
    store_env = {"CHARTER_DATABASE_URL": backend.url}
    old = CliRunner().invoke(cli, ["show", "--as-of", "2026-12-14"], env=store_env)
    new = CliRunner().invoke(cli, ["show", "--as-of", "2026-12-16"], env=store_env)
    old_text, new_text = (" ".join(result.output.split()) for result in (old, new))  # as read, not as wrapped
    assert old.exit_code == 0 and "version 0" in old_text
    assert "on weekdays between 08:00 and 18:00 UTC" in old_text and "api:shipments" not in old_text
    assert 'Clause 15. Group "legacy-admins" is revoked.' in old_text
    assert "version 1" in new_text and "on weekdays between 08:00" not in new_text and "api:shipments/*" in new_text
    versions = api.ok("GET", f"{ADMIN}/charter/versions")["items"]
    assert [(v["version"], v["amendment"]) for v in versions] == [(0, None), (1, 1)]
    on_the_day = CliRunner().invoke(cli, ["show", "--as-of", "2026-12-15"], env=store_env).output
    assert api.ok("GET", f"{ADMIN}/charter/versions/1")["text"] == on_the_day  # kept exactly as made

    # A roll back is a new amendment (number 2) restoring version 0's clauses, with its own plan and quorum.
    rollback = as_person(server, erin, "amend", "rollback", "--to-version", "0", "--reason", "Back to weekdays")
    assert rollback.exit_code == 0, rollback.output
    assert rollback.output.startswith("amendment 2: proposed")
    assert "Replace clause 2 with:" in rollback.output and "Strike clause 21." in rollback.output
    back = {c["summary"] for c in api.ok("GET", f"{ADMIN}/amendments/2/plan")["changes"]}
    assert 'loses read on api:shipments/* (with scope "shipments.read")' in back

    # Every step is in the audit chain, refusals included, each with its actor.
    with api.http.app.state.engine.sessions() as session:
        steps = [
            (r.entry.actor.split(" ")[0], r.entry.action, r.entry.outcome)
            for r in store.records(session, "audit")
            if r.entry.action.startswith("amendment.")
        ]
    assert steps == [
        ("user:erin", "amendment.propose", "ok"),
        ("user:erin", "amendment.approve", "denied"),
        ("user:alice", "amendment.approve", "denied"),
        ("user:sam", "amendment.approve", "ok"),
        ("user:lee", "amendment.approve", "ok"),
        ("charter", "amendment.apply", "ok"),
        ("user:erin", "amendment.propose", "ok"),
    ]


def test_the_cli_says_what_is_missing_when_it_has_no_server():
    result = CliRunner().invoke(cli, ["amend", "approve", "1"], env={"CHARTER_URL": "", "CHARTER_CREDENTIAL": ""})
    assert result.exit_code == 2
    assert "set CHARTER_URL" in result.output and "CHARTER_CREDENTIAL" in result.output
