"""Exporting and searching the audit chains, on SQLite and PostgreSQL.

Export: the jsonl lines re-verify with `charter.audit.chain` away from the store, a time window keeps
exactly the records written in it (even when times and sequence numbers disagree), and OCSF events are
consistent. Search: `GET /admin/v1/audit/{chain}` is authorised like every admin read, refusals included.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator

import pytest

from charter.audit import export, store
from charter.audit.chain import GENESIS, Break, Entry, Record, verify
from charter.audit.signing import Keyring
from charter.audit.trail import AuditTrail
from charter.clock import FixedClock
from charter.store.db import make_engine, sessions, upgrade

pytestmark = pytest.mark.usefixtures("backend")

T0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
ADMIN = "/admin/v1"


def as_record(line: dict) -> Record:
    """A jsonl line back into the chain's own types, as someone verifying an export offline would."""
    entry = Entry(
        time=dt.datetime.fromisoformat(line["time"]),
        actor=line["actor"],
        action=line["action"],
        target=line["target"],
        outcome=line["outcome"],
        charter_version=line["charter_version"],
        clause=line["clause"],
        request_id=line["request_id"],
        details=line["details"],
    )
    return Record(line["seq"], entry, line["prev_hash"], line["hash"])


def exported(db, chains=store.CHAINS, format="jsonl", since=None, until=None, batch=store.READ_BATCH) -> list[dict]:
    with sessions(db)() as session:
        return [json.loads(line) for line in export.lines(session, chains, format, since, until, batch)]


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- a store with a history: changes and decisions over three hours --------------------------------


@pytest.fixture
def history(db) -> Iterator[object]:
    """Initialised at T0; one hour later a user is created and decisions asked; then a group member added
    and decisions; then the user deleted. The server is stopped, so the decision log is written out."""
    from charter.bootstrap import initialize
    from charter.engine import Engine
    from charter.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    clock = FixedClock(T0)
    credential = initialize(db, clock).admin_credential
    bearer = {"Authorization": f"Bearer {credential}"}

    def decide(http, subject: str, action: str, resource: str) -> None:
        body = {
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": "resource", "id": resource},
        }
        assert http.post("/access/v1/evaluation", json=body, headers=bearer).status_code == 200

    with TestClient(create_app(Engine(db, clock=clock))) as http:
        clock.set(T0 + HOUR)
        assert http.put(f"{ADMIN}/users/zed", json={"groups": ["sre"]}, headers=bearer).status_code == 200
        decide(http, "zed", "read", "db:prod/orders")
        clock.set(T0 + HOUR + MINUTE)  # decisions at one instant may be written in either order
        decide(http, "mallory", "delete", "db:prod/orders")
        clock.set(T0 + 2 * HOUR)
        assert http.put(f"{ADMIN}/groups/support/members/users/zed", headers=bearer).status_code == 200
        decide(http, "alice", "write", "db:prod/orders")
        clock.set(T0 + 3 * HOUR)
        assert http.delete(f"{ADMIN}/users/zed", headers=bearer).status_code == 200
        decide(http, "zed", "read", "db:prod/orders")
    yield db


def test_a_jsonl_export_holds_every_record_in_order_and_reverifies_offline(history):
    lines = exported(history)
    assert [line["chain"] for line in lines] == sorted(line["chain"] for line in lines)  # audit, then decisions
    for chain in store.CHAINS:
        mine = [line for line in lines if line["chain"] == chain]
        assert [line["seq"] for line in mine] == list(range(1, len(mine) + 1))
        assert set(mine[0]) == {
            "chain",
            "seq",
            "time",
            "actor",
            "action",
            "target",
            "outcome",
            "charter_version",
            "clause",
            "request_id",
            "details",
            "prev_hash",
            "hash",
        }
        assert verify(as_record(line) for line in mine) is None
    audit = [(line["action"], line["target"]) for line in lines if line["chain"] == "audit"]
    assert audit[-3:] == [
        ("directory.user.put", "directory:users/zed"),
        ("directory.group.member.add", "directory:groups/support"),
        ("directory.user.delete", "directory:users/zed"),
    ]
    decisions = [line for line in lines if line["chain"] == "decisions"]
    assert [(d["actor"], d["action"], d["outcome"]) for d in decisions] == [
        ("user:zed", "read", "allow"),
        ("user:mallory", "delete", "deny"),
        ("user:alice", "write", "allow"),
        ("user:zed", "read", "deny"),
    ]
    assert decisions[0]["time"] == "2026-06-01T11:00:00.000000Z"
    assert decisions[0]["details"]["basis"] == "permission" and decisions[0]["clause"] == 1

    tampered = [as_record(line) for line in lines if line["chain"] == "audit"]
    tampered[2] = dataclasses.replace(tampered[2], entry=dataclasses.replace(tampered[2].entry, outcome="denied"))
    finding = verify(tampered)
    assert finding is not None and (finding.seq, finding.kind) == (3, Break.ALTERED)


def test_since_and_until_keep_the_records_written_in_between(history):
    everything = exported(history)
    window = exported(history, since=T0 + HOUR, until=T0 + 3 * HOUR)
    assert window == [
        line
        for line in everything
        if T0 + HOUR <= dt.datetime.fromisoformat(line["time"]) < T0 + 3 * HOUR  # since inclusive, until exclusive
    ]
    assert {line["chain"] for line in window} == {"audit", "decisions"}
    assert [line["action"] for line in window if line["chain"] == "audit"] == [
        "directory.user.put",
        "directory.group.member.add",
    ]
    for chain in store.CHAINS:  # a window re-verifies from the record before its first
        mine = [as_record(line) for line in window if line["chain"] == chain]
        assert verify(mine, anchor=(mine[0].seq - 1, mine[0].prev_hash)) is None
    assert exported(history, since=T0 + 3 * HOUR) == [
        line for line in everything if dt.datetime.fromisoformat(line["time"]) >= T0 + 3 * HOUR
    ]
    assert exported(history, until=T0) == []
    assert exported(history, chains=["decisions"], since=T0 + 2 * HOUR, until=T0 + 2 * HOUR + HOUR / 2) == [
        line for line in everything if line["chain"] == "decisions" and line["actor"] == "user:alice"
    ]
    with sessions(history)() as session:
        assert export.count_between(session, store.CHAINS, T0 + HOUR, T0 + 3 * HOUR) == len(window)


def test_ocsf_events_are_consistent_and_keep_the_record(history):
    events = exported(history, format="ocsf")
    assert len(events) == len(exported(history))
    for event in events:
        record = event["unmapped"]
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["category_uid"] == event["class_uid"] // 1000
        assert event["time"] == ms(dt.datetime.fromisoformat(record["time"]))
        assert event["severity_id"] == 1
        assert event["metadata"]["product"] == {"name": "Charter", "vendor_name": "Charter"}
        assert event["metadata"]["version"].startswith("1.")
        assert event["status_id"] in (1, 2) and event["status"] in ("Success", "Failure")
        assert event["actor"]["user"]["uid"]
        assert {"seq", "hash", "prev_hash", "clause", "charter_version"} <= set(record)
    for chain in store.CHAINS:  # nothing is lost: the OCSF export re-verifies too
        assert verify(as_record(e["unmapped"]) for e in events if e["unmapped"]["chain"] == chain) is None

    by_action = {(e["unmapped"]["chain"], e["unmapped"]["action"], e["unmapped"]["target"]): e for e in events}
    created = by_action[("audit", "directory.user.put", "directory:users/zed")]
    assert (created["class_uid"], created["activity_id"], created["type_uid"]) == (3001, 1, 300101)
    assert created["user"] == {"name": "zed", "uid": "user:zed", "type": "user"}
    assert created["actor"]["user"] == {"name": "admin", "uid": "user:admin", "type": "user"}
    assert created["actor"]["app_uid"]
    deleted = by_action[("audit", "directory.user.delete", "directory:users/zed")]
    assert (deleted["class_uid"], deleted["activity_id"]) == (3001, 6)
    added = by_action[("audit", "directory.group.member.add", "directory:groups/support")]
    assert (added["class_uid"], added["activity_id"], added["type_name"]) == (3006, 3, "Group Management: Add User")
    assert added["group"]["name"] == "support" and added["user"]["uid"] == "user:zed"
    upload = by_action[("audit", "charter.upload", "charter:Acme Production Access")]
    assert (upload["class_uid"], upload["entity"]["uid"]) == (3004, "charter:Acme Production Access")

    decisions = [e for e in events if e["unmapped"]["chain"] == "decisions"]
    assert {e["class_uid"] for e in decisions} == {6003}
    assert [(e["activity_name"], e["action_id"], e["status"]) for e in decisions] == [
        ("Read", 1, "Success"),
        ("Delete", 2, "Failure"),
        ("Update", 1, "Success"),
        ("Read", 2, "Failure"),
    ]
    allowed = decisions[0]
    assert allowed["time"] == ms(T0 + HOUR)
    assert allowed["resources"] == [{"uid": "db:prod/orders", "name": "db:prod/orders", "type": "db"}]
    assert allowed["policy"] == {"uid": "1", "name": "clause 1", "version": "0"}
    assert allowed["metadata"]["profiles"] == ["security_control"]


def test_a_window_is_exact_when_times_and_sequence_numbers_disagree(backend, tmp_path):
    """Concurrent writers and the decision log's batches can write a later record with an earlier time."""
    db = make_engine(backend.url)
    upgrade(db)
    trail = AuditTrail(FixedClock(T0), Keyring(tmp_path / "keys"), checkpoint_every=0)
    hours = [0, 3, 1, 2, 5, 4, 2, 6]  # the time of records 1..8, in hours after T0
    with sessions(db).begin() as session:
        entries = [Entry(T0 + h * HOUR, "user:t", "read", f"x/{i}", "ok") for i, h in enumerate(hours, 1)]
        trail.write(session, "audit", entries)
    for since, until in [(1, 3), (2, 5), (0, 1), (3, 7), (6, 9)]:
        window = exported(db, ["audit"], since=T0 + since * HOUR, until=T0 + until * HOUR, batch=2)
        expected = [i for i, h in enumerate(hours, 1) if since <= h < until]
        assert [line["seq"] for line in window] == expected, (since, until)
    with sessions(db)() as session:
        assert store.time_span(session, "audit", T0 + 2 * HOUR, T0 + 3 * HOUR) == (4, 7, 2)
        assert store.time_span(session, "audit", T0 + 9 * HOUR) == (0, 0, 0)
    db.dispose()


def test_charter_audit_export_from_a_real_process(history, backend, tmp_path):
    env = {**os.environ, "CHARTER_DATABASE_URL": backend.url}
    target = tmp_path / "audit.jsonl"
    window = ["--since", "2026-06-01T11:00:00Z", "--until", "2026-06-01T14:00+02:00"]  # 11:00 to 12:00 UTC
    done = subprocess.run(
        [sys.executable, "-m", "charter", "audit", "export", "--chain", "audit", *window, "--output", str(target)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "exporting" in done.stderr and "1/1" in done.stderr  # the progress bar, on standard error
    assert "1 record(s) written" in done.stderr
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines == exported(history, ["audit"], since=T0 + HOUR, until=T0 + HOUR + HOUR)

    done = subprocess.run(
        [sys.executable, "-m", "charter", "audit", "export", "--format", "ocsf", "--since", "2026-06-01"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar when the output is standard output
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events == exported(history, format="ocsf")

    done = subprocess.run(
        [sys.executable, "-m", "charter", "audit", "export", "--since", "2026-06-01T10:00"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert "--since" in done.stderr and "no zone" in done.stderr


# --- the search API ------------------------------------------------------------------------------------


def search(api, chain: str = "audit", credential: str | None = None, **params):
    return api.request("GET", f"{ADMIN}/audit/{chain}", credential=credential, params=params)


@pytest.fixture
def auditor(api) -> str:
    """A credential acting as user "audra", a member of group "auditors" (clause 20: may read audit:*)."""
    api.ok("PUT", f"{ADMIN}/users/audra", json={"groups": ["auditors"]})
    return api.new_credential("audra")


def test_an_auditor_searches_the_audit_chain_newest_first(api, auditor):
    answer = search(api, credential=auditor)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["limit"], body["offset"]) == (100, 0)
    items = body["items"]
    assert body["total"] == len(items) >= 5
    assert [item["seq"] for item in items] == sorted((item["seq"] for item in items), reverse=True)
    newest = items[0]
    assert (newest["action"], newest["target"], newest["outcome"]) == ("client.create", "clients:user/audra", "ok")
    assert newest["chain"] == "audit" and newest["time"] == "2026-06-01T10:00:00.000000Z"
    assert verify(reversed([as_record(item) for item in items])) is None  # the whole chain: it re-verifies


def test_a_caller_without_rights_is_refused_and_the_refusal_is_recorded(api, alice, auditor):
    refused = search(api, "decisions", credential=alice)
    assert refused.status_code == 403, refused.text
    assert refused.json()["details"][0]["resource"] == "audit:decisions"
    [record] = search(api, credential=auditor, target="audit:decisions", outcome="denied").json()["items"]
    assert record["actor"].startswith("user:alice (client ")
    assert (record["action"], record["outcome"], record["details"]["asked"]) == ("read", "denied", "read")
    assert record["request_id"] == refused.headers["x-request-id"]
    assert search(api, credential="").status_code == 401


def test_filters_and_paging(api, auditor):
    api.clock.set(T0 + HOUR)
    api.ok("PUT", f"{ADMIN}/users/zed", json={}, headers={"X-Request-ID": "make-zed"})
    api.ok("PUT", f"{ADMIN}/users/zoe", json={})
    api.clock.set(T0 + 2 * HOUR)
    api.ok("PUT", f"{ADMIN}/groups/support/members/users/zed")
    api.ok("DELETE", f"{ADMIN}/users/zoe")

    def actions(**params) -> list[str]:
        answer = search(api, credential=auditor, **params)
        assert answer.status_code == 200, answer.text
        return [(item["action"], item["target"]) for item in answer.json()["items"]]

    assert actions(since="2026-06-01T11:00:00Z", until="2026-06-01T12:00:00Z") == [
        ("directory.user.put", "directory:users/zoe"),
        ("directory.user.put", "directory:users/zed"),
    ]
    assert actions(since="2026-06-01T13:00:00+01:00") == [  # the same instant as 12:00 UTC
        ("directory.user.delete", "directory:users/zoe"),
        ("directory.group.member.add", "directory:groups/support"),
    ]
    assert actions(target="directory:users/z*") == [
        ("directory.user.delete", "directory:users/zoe"),
        ("directory.user.put", "directory:users/zoe"),
        ("directory.user.put", "directory:users/zed"),
    ]
    assert actions(target="directory:users/zed") == [("directory.user.put", "directory:users/zed")]
    assert actions(target="directory:users/%") == []  # a prefix is a prefix, not a LIKE pattern
    assert actions(action="directory.group.*") == [("directory.group.member.add", "directory:groups/support")]
    assert actions(request_id="make-zed") == [("directory.user.put", "directory:users/zed")]
    assert actions(actor="user:admin*", action="directory.user.delete") == [
        ("directory.user.delete", "directory:users/zoe")
    ]
    assert actions(outcome="denied") == []

    everything = search(api, credential=auditor).json()
    page = search(api, credential=auditor, limit=2, offset=1).json()
    assert (page["total"], page["limit"], page["offset"]) == (everything["total"], 2, 1)
    assert page["items"] == everything["items"][1:3]


def test_the_decisions_chain_is_searched_once_written(api, auditor):
    api.decide("alice", "read", "db:prod/orders")
    api.clock.advance(MINUTE)
    api.decide("mallory", "delete", "db:prod/orders")
    deadline = time.monotonic() + 10
    while api.http.app.state.decision_log.written < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    body = search(api, "decisions", credential=auditor).json()
    assert [(i["actor"], i["outcome"]) for i in body["items"]] == [("user:mallory", "deny"), ("user:alice", "allow")]
    assert [i["actor"] for i in search(api, "decisions", credential=auditor, outcome="allow").json()["items"]] == [
        "user:alice"
    ]


def test_a_bad_chain_is_404_and_a_bad_filter_400_naming_it(api, auditor):
    missing = search(api, "nonsense", credential=auditor)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    for field, value in [("since", "yesterday"), ("until", "2026-06-01T10:00"), ("since", "2026-13-01")]:
        bad = search(api, credential=auditor, **{field: value})
        assert bad.status_code == 400, bad.text
        body = bad.json()
        assert body["error"] == "invalid_request"
        assert body["details"][0]["field"] == field and body["message"].startswith(f"{field}: ")
    assert search(api, credential=auditor, limit=0).status_code == 400


def test_the_search_route_is_documented(api):
    operation = api.http.app.openapi()["paths"]["/admin/v1/audit/{chain}"]["get"]
    assert operation["tags"] == ["audit"]
    assert {p["name"] for p in operation["parameters"]} >= {"chain", "since", "until", "target", "limit", "offset"}


def test_search_and_export_share_the_record_shape(api, auditor, db):
    newest = search(api, credential=auditor, limit=1).json()["items"][0]
    assert exported(db, ["audit"])[-1] == newest
    assert exported(db, ["audit"])[0]["prev_hash"] == GENESIS
