"""Drift: where live state disagrees with the obligations of the charter in force.

The checks on plain data first (the sample charter, a sample-like directory, grants and clients made up
here), then drift built for real through the admin API on both backends, read back through
GET /admin/v1/drift and `charter drift`.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from charter.bootstrap import sample
from charter.directory.model import load_directory
from charter.language.consolidate import consolidate
from charter.language.parser import parse_amendment, parse_charter
from charter.policy.drift import CHECKS, AmendmentState, LiveClient, find_drift
from charter.policy.grants import Grant, GrantKind

ADMIN = "/admin/v1"
NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
SAMPLE = parse_charter(sample("charter.charter"), "sample charter")
AMENDMENT_1 = sample("amendment-1.amendment")


def _version(*amendments: str, as_of: dt.date | None = None):
    return consolidate(SAMPLE, [parse_amendment(text, "amendment") for text in amendments], as_of or NOW.date())


def _directory(**sections):
    """The sample directory with some sections' entries added or replaced."""
    data = yaml.safe_load(sample("directory.yaml"))
    for section, entries in sections.items():
        data.setdefault(section, {}).update(entries)
    return load_directory(data)


def _grant(subject="dave", clause=3, kind=GrantKind.REQUEST, actions=("write",), resource="db:staging/*", **kw):
    ends = kw.pop("ends", NOW + dt.timedelta(hours=8))
    subject_type = kw.pop("subject_type", "user")
    grant_id = kw.pop("id", f"g-{subject}-{clause}")
    return Grant(grant_id, kind, subject_type, subject, frozenset(actions), resource, NOW, ends, clause)


def _client(subject, subject_type="user", days_old=0, name=None):
    created = NOW - dt.timedelta(days=days_old)
    return LiveClient(f"c-{subject}-{days_old}", name or f"{subject} client", subject_type, subject, created)


def _drift(
    version=None, directory=None, grants=(), clients=(), amendments=(), now=NOW, mfa_enrolled=("erin",), issued=()
):
    """Drift of the sample (whose one admin, erin, has a factor unless `mfa_enrolled` says otherwise)."""
    version, directory = version or _version(), directory or _directory()
    return find_drift(version, directory, grants, clients, amendments, now, (), mfa_enrolled, issued)


def _found(drift, check=None) -> list[tuple[str, str, int | None]]:
    return [(f.check, f.subject, f.clause) for f in drift.findings if check is None or f.check == check]


def _detail(drift, check: str, subject: str) -> str:
    (detail,) = [f.detail for f in drift.findings if (f.check, f.subject) == (check, subject)]
    return detail


# --- the checks, on plain data -----------------------------------------------------------------------


def test_the_sample_has_no_drift_and_every_obligation_is_checked():
    drift = _drift(grants=[_grant()], clients=[_client("admin"), _client("billing-api", "service", days_old=30)])
    assert drift.findings == ()
    assert (drift.charter, drift.version, drift.as_of) == ("Acme Production Access", 0, NOW)
    assert drift.not_checked == ()
    assert all(description for description, _ in CHECKS.values())


def test_members_of_a_revoked_group_directly_or_through_nesting_are_found_under_the_revoking_clause():
    directory = _directory(
        groups={"old-ops": {"groups": ["legacy-admins"]}, "old-night-ops": {"groups": ["old-ops"]}},
        users={"bob": {"groups": ["sre", "legacy-admins"]}, "carol": {"groups": ["support", "old-night-ops"]}},
        services={"cron": {"owner": "alice", "groups": ["old-ops"]}},
    )
    drift = _drift(directory=directory)
    assert _found(drift) == [
        ("revoked-group-member", "service:cron", 15),
        ("revoked-group-member", "user:bob", 15),
        ("revoked-group-member", "user:carol", 15),
    ]
    assert _detail(drift, "revoked-group-member", "user:bob") == (
        'member of group "legacy-admins", which clause 15 revokes'
    )
    assert 'through group "old-night-ops"' in _detail(drift, "revoked-group-member", "user:carol")
    # Once an amendment strikes the revocation, the same members are no longer drift.
    december = dt.datetime(2026, 12, 16, tzinfo=dt.UTC)
    assert _found(_drift(_version(AMENDMENT_1, as_of=december.date()), directory, now=december)) == []


SMALL = """Charter "Small".
  Effective 2026-01-01.

Clause 1. Members of group "contractors" may request write on "db:staging/*" for up to 8 hours.
Clause 2. User "mallory" is revoked.
Clause 3. Service "old-batch" is revoked.
Clause 4. Partner "globex" is revoked.
"""


def test_a_revoked_identity_still_active_or_holding_a_client_or_grant_is_found():
    version = consolidate(parse_charter(SMALL, "small"), (), NOW.date())
    directory = load_directory(
        {
            "users": {"mallory": {}, "alice": {}},
            "groups": ["contractors"],
            "services": {"old-batch": {"owner": "alice", "state": "disabled"}},
            "partners": {"globex": {"owner": "alice", "state": "left"}},
        }
    )
    grant = _grant("old-batch", clause=1, subject_type="service")
    drift = _drift(version, directory, grants=[grant], clients=[_client("mallory")])
    assert _found(drift, "revoked-identity-active") == [("revoked-identity-active", "user:mallory", 2)]
    assert _found(drift, "revoked-identity-access") == [
        ("revoked-identity-access", "service:old-batch", 3),
        ("revoked-identity-access", "user:mallory", 2),
    ]
    assert _detail(drift, "revoked-identity-access", "user:mallory") == (
        'holds API client "mallory client" (c-mallory-0), though clause 2 revokes it'
    )
    assert 'request grant g-old-batch-1 (write on "db:staging/*"' in _detail(
        drift, "revoked-identity-access", "service:old-batch"
    )
    # The disabled service holding a grant is also access held by an inactive identity (no offboarding clause).
    assert _found(drift, "inactive-identity-access") == [("inactive-identity-access", "service:old-batch", None)]


def test_services_and_partners_need_an_owner_who_is_an_active_user():
    directory = _directory(
        users={"frank": {"groups": ["finance-team"], "state": "left"}},
        services={
            "orphan": {},
            "ghost-owned": {"owner": "zed"},
            "left-owned": {"owner": "frank"},
            "service-owned": {"owner": "billing-api"},
            "retired": {"state": "disabled"},  # acts for no one: not drift
        },
        partners={"globex": {}},
    )
    drift = _drift(directory=directory)
    assert _found(drift) == [
        ("no-owner", "partner:globex", None),
        ("no-owner", "service:ghost-owned", None),
        ("no-owner", "service:left-owned", None),
        ("no-owner", "service:orphan", None),
        ("no-owner", "service:service-owned", None),
    ]
    assert _detail(drift, "no-owner", "service:orphan") == "has no owner"
    assert _detail(drift, "no-owner", "service:ghost-owned") == 'its owner "zed" is not a user in the directory'
    assert _detail(drift, "no-owner", "service:left-owned") == 'its owner "frank" has left'
    assert _detail(drift, "no-owner", "service:service-owned") == (
        'its owner "billing-api" is not a user in the directory'
    )


def test_a_service_credential_older_than_the_rotation_clause_is_found():
    clients = [
        _client("billing-api", "service", days_old=91, name="billing"),
        _client("billing-api", "service", days_old=90),  # exactly 90 days: due now, not overdue
        _client("admin", "user", days_old=400),  # a person's credential: the clause is about services
    ]
    drift = _drift(clients=clients)
    assert _found(drift) == [("rotation-overdue", "service:billing-api", 9)]
    assert _detail(drift, "rotation-overdue", "service:billing-api") == (
        'API client "billing" (c-billing-api-91) was created 2026-03-02, 91 days ago; '
        "service credentials rotate every 90 days"
    )
    # A charter without a rotation clause asks for no rotation.
    small = consolidate(parse_charter(SMALL, "small"), (), NOW.date())
    unrotated = _drift(small, load_directory({"services": {"billing-api": {}}}), clients=clients)
    assert _found(unrotated, "rotation-overdue") == []


def test_clients_and_live_grants_of_disabled_departed_or_missing_identities_are_found():
    directory = _directory(
        users={"dave": {"groups": ["contractors"], "state": "disabled"}, "frank": {"state": "left"}},
        partners={"acme-logistics": {"owner": "erin", "state": "disabled"}},
    )
    grants = [
        _grant("dave"),
        _grant("frank", id="g-frank"),
        _grant("dave", id="g-ended", ends=NOW - dt.timedelta(minutes=1)),  # ended: holds nothing
    ]
    clients = [_client("dave"), _client("ghost"), _client("acme-logistics", "partner")]
    drift = _drift(directory=directory, grants=grants, clients=clients)
    assert _found(drift) == [
        ("inactive-identity-access", "partner:acme-logistics", None),
        ("inactive-identity-access", "user:dave", 17),  # Accounts of people who leave are disabled within 1 hour
        ("inactive-identity-access", "user:dave", 17),
        ("inactive-identity-access", "user:frank", 17),
        ("inactive-identity-access", "user:ghost", 17),
    ]
    details = [f.detail for f in drift.findings]
    assert 'is disabled, yet holds API client "dave client" (c-dave-0)' in details
    assert any(d.startswith("has left, yet holds request grant g-frank") for d in details)
    assert 'is not in the directory, yet holds API client "ghost client" (c-ghost-0)' in details
    assert not any("g-ended" in d for d in details)


AMENDMENT_2 = """Amendment 1 to Charter "Acme Production Access".
  Effective 2026-03-01.
  Reason "Contractors get standing access; no more break glass; a legacy request clause".
  Approved by 1 member of group "security".

Replace clause 3 with: Members of group "contractors" may write "db:staging/*".
Strike clause 5.
Insert clause 21: Members of group "legacy-admins" may request read on "db:legacy/*" for up to 1 hour.
Insert clause 22: Members of group "sre" may request read on "db:audit/*" for up to 1 hour until 2026-05-01.
"""


def test_a_grant_whose_clause_no_longer_allows_it_outlives_its_authority():
    grants = [
        _grant("dave", clause=3),  # clause 3 is now a standing permission
        _grant("bob", clause=5, kind=GrantKind.BREAK_GLASS, actions=(), resource="db:prod/*"),  # struck
        _grant("alice", clause=21, actions=("read",), resource="db:legacy/x"),  # its group is revoked
        _grant("erin", clause=22, actions=("read",), resource="db:audit/*"),  # lapsed on 2026-05-01
        _grant("carol", clause=99),  # no such clause
    ]
    drift = _drift(_version(AMENDMENT_2), grants=grants)
    assert _found(drift) == [
        ("grant-without-authority", "user:alice", 21),
        ("grant-without-authority", "user:bob", 5),
        ("grant-without-authority", "user:carol", 99),
        ("grant-without-authority", "user:dave", 3),
        ("grant-without-authority", "user:erin", 22),
    ]
    assert _detail(drift, "grant-without-authority", "user:dave").endswith(
        "is under clause 3, which is now a permission (replaced by amendment 1), not a request clause"
    )
    assert _detail(drift, "grant-without-authority", "user:bob").endswith("under clause 5, which amendment 1 struck")
    assert _detail(drift, "grant-without-authority", "user:alice").endswith(
        'whose group "legacy-admins" clause 15 revokes'
    )
    assert _detail(drift, "grant-without-authority", "user:erin").endswith("which lapsed on 2026-05-01")
    assert _detail(drift, "grant-without-authority", "user:carol").endswith("which the charter in force does not have")


def test_a_grant_beyond_its_clauses_resources_or_actions_is_found_and_one_within_them_is_not():
    grants = [
        _grant("dave", resource="db:staging/orders"),  # within "db:staging/*"
        _grant("bob", clause=5, kind=GrantKind.BREAK_GLASS, actions=(), resource="db:prod/orders"),
        _grant("carol", resource="db:prod/*"),
        _grant("erin", actions=("write", "delete")),
        _grant("frank", actions=()),  # every action: a request clause names its actions
        _grant("grace", kind=GrantKind.BREAK_GLASS),  # a break-glass grant under a request clause
    ]
    drift = _drift(grants=grants)
    assert _found(drift) == [
        ("grant-without-authority", "user:carol", 3),
        ("grant-without-authority", "user:erin", 3),
        ("grant-without-authority", "user:frank", 3),
        ("grant-without-authority", "user:grace", 3),
    ]
    assert _detail(drift, "grant-without-authority", "user:carol").endswith('which does not cover "db:prod/*"')
    assert _detail(drift, "grant-without-authority", "user:erin").endswith("which does not allow delete")
    assert _detail(drift, "grant-without-authority", "user:frank").endswith("which does not allow every action")
    assert _detail(drift, "grant-without-authority", "user:grace").endswith(
        "which is now a request clause, not a break-glass clause"
    )


def test_an_approved_amendment_past_its_date_but_not_in_force_is_found_with_why():
    today = NOW.date()
    amendments = [
        AmendmentState(1, "in_force", today - dt.timedelta(days=30)),
        AmendmentState(2, "scheduled", today, "cannot strike clause 15: the charter has no such clause"),
        AmendmentState(3, "approved", today - dt.timedelta(days=1)),
        AmendmentState(4, "scheduled", today + dt.timedelta(days=1)),  # not due yet
        AmendmentState(5, "proposed", today - dt.timedelta(days=3)),  # not approved: nothing is due
    ]
    drift = _drift(amendments=amendments)
    assert _found(drift) == [("amendment-overdue", "amendment:2", None), ("amendment-overdue", "amendment:3", None)]
    assert _detail(drift, "amendment-overdue", "amendment:2") == (
        "scheduled, effective 2026-06-01, not in force: cannot strike clause 15: the charter has no such clause"
    )
    assert _detail(drift, "amendment-overdue", "amendment:3").startswith(
        "approved, effective 2026-05-31, not in force: not applied yet"
    )


def test_findings_are_sorted_by_check_then_subject():
    directory = _directory(
        users={"zoe": {"groups": ["legacy-admins"], "state": "disabled"}, "amy": {"groups": ["legacy-admins"]}},
        services={"orphan": {}},
    )
    drift = _drift(directory=directory, clients=[_client("zoe"), _client("billing-api", "service", days_old=100)])
    keys = [(f.check, f.subject) for f in drift.findings]
    assert keys == sorted(keys)
    assert [check for check, _ in keys] == [
        "inactive-identity-access",
        "no-owner",
        "revoked-group-member",
        "revoked-group-member",
        "rotation-overdue",
    ]
    assert drift.to_json()["total"] == 5


def test_users_the_charter_requires_mfa_of_without_a_confirmed_factor_are_found_under_the_clause():
    directory = _directory(
        users={
            "ivan": {"groups": ["admins"]},  # an admin with no factor
            "judy": {"groups": ["admins"], "state": "disabled"},  # cannot sign in: not drift
            "kim": {"groups": ["eng-leads"]},
        },
        groups={"eng-leads": {"groups": ["admins"]}},  # kim is an admin through nesting
    )
    drift = _drift(directory=directory)
    assert _found(drift, "admin-without-mfa") == [
        ("admin-without-mfa", "user:ivan", 10),
        ("admin-without-mfa", "user:kim", 10),
    ]
    assert "clause 10 requires MFA" in _detail(drift, "admin-without-mfa", "user:ivan")
    # erin too, once her factor is not confirmed; and no one when the charter requires MFA of no one.
    assert ("admin-without-mfa", "user:erin", 10) in _found(_drift(mfa_enrolled=()))
    without = _version(
        'Amendment 1 to Charter "Acme Production Access".\n  Effective 2026-03-01.\n'
        '  Reason "no MFA".\n  Approved by 1 member of group "security".\n\nStrike clause 10.\n'
    )
    assert _found(_drift(version=without, directory=directory, mfa_enrolled=()), "admin-without-mfa") == []


# --- drift built through the API, on both backends ---------------------------------------------------


@pytest.fixture
def api(api, db, monkeypatch):
    """The sample store, with a confirmed factor for its one admin (erin), so that it has no drift. These tests
    move the clock by months for other checks: nobody signs in, so inactivity is judged after 1,000 days here
    (the inactivity test sets its own threshold)."""
    enrol_factor(db, "erin")
    monkeypatch.setenv("CHARTER_INACTIVE_DAYS", "1000")
    return api


def enrol_factor(db, user: str) -> None:
    from charter.store.db import sessions
    from charter.store.models import MfaFactorRow

    with sessions(db).begin() as session:
        session.add(MfaFactorRow(user=user, sealed_secret="-", created_at=NOW, confirmed_at=NOW, last_step=None))


def test_an_admin_without_a_factor_in_the_store_is_drift(api, db):
    from charter.store.db import sessions
    from charter.store.models import MfaFactorRow

    with sessions(db).begin() as session:
        session.delete(session.get(MfaFactorRow, "erin"))
    report = api.ok("GET", f"{ADMIN}/drift")
    assert _by_check(report) == {"admin-without-mfa": [("user:erin", 10)]}


def _member(api, name: str, groups: list[str]) -> str:
    api.ok("PUT", f"{ADMIN}/users/{name}", json={"groups": groups})
    return api.new_credential(name)


def _by_check(report: dict) -> dict[str, list[tuple[str, int | None]]]:
    found: dict[str, list[tuple[str, int | None]]] = {}
    for finding in report["findings"]:
        found.setdefault(finding["check"], []).append((finding["subject"], finding["clause"]))
    return found


def _make_drift(api) -> None:
    """bob in the revoked group, carol in a group nested in it, and a service nobody owns."""
    api.ok("PUT", f"{ADMIN}/groups/old-ops", json={"parents": ["legacy-admins"]})
    api.ok("PUT", f"{ADMIN}/groups/legacy-admins/members/users/bob")
    api.ok("PUT", f"{ADMIN}/groups/old-ops/members/users/carol")
    api.ok("PUT", f"{ADMIN}/services/batch-runner", json={})


def test_a_clean_store_has_no_drift(api):
    report = api.ok("GET", f"{ADMIN}/drift")
    assert (report["charter"], report["version"], report["total"], report["findings"]) == (
        "Acme Production Access",
        0,
        0,
        [],
    )
    assert report["as_of"] == "2026-06-01T10:00:00+00:00"
    assert report["not_checked"] == []


def test_drift_made_through_the_api_is_reported_with_the_clause_it_breaks(api):
    _make_drift(api)
    api.new_credential("billing-api", "service", name="billing key")
    grant = {
        "subject_type": "user",
        "subject": "dave",
        "actions": ["write"],
        "resource": "db:staging/*",
        "ends": (api.clock.now() + dt.timedelta(days=365)).isoformat(),
        "clause": 3,
    }
    api.ok("POST", f"{ADMIN}/grants", 201, json=grant)
    api.new_credential("dave")
    api.ok("PUT", f"{ADMIN}/users/dave", json={"state": "disabled"})  # offboarding revokes his grant, not his client

    report = api.ok("GET", f"{ADMIN}/drift")
    assert _by_check(report) == {
        "inactive-identity-access": [("user:dave", 17)],
        "no-owner": [("service:batch-runner", None)],
        "revoked-group-member": [("user:bob", 15), ("user:carol", 15)],
    }
    assert report["total"] == 4
    details = {f["detail"] for f in report["findings"]}
    assert 'member of group "legacy-admins" through group "old-ops", which clause 15 revokes' in details
    assert 'is disabled, yet holds API client "dave test client"' in " ".join(details)

    # 91 days on, the service credential is past clause 9's rotation (dave's grant runs a year).
    api.clock.advance(dt.timedelta(days=91))
    later = api.ok("GET", f"{ADMIN}/drift")
    assert _by_check(later)["rotation-overdue"] == [("service:billing-api", 9)]
    (rotation,) = [f for f in later["findings"] if f["check"] == "rotation-overdue"]
    assert rotation["detail"].startswith('API client "billing key"') and "91 days ago" in rotation["detail"]

    # Cleaning up clears it: out of the revoked group, an owner, a new service credential, no credential for dave.
    api.ok("DELETE", f"{ADMIN}/groups/legacy-admins/members/users/bob")
    api.ok("DELETE", f"{ADMIN}/groups/old-ops")
    api.ok("PUT", f"{ADMIN}/services/batch-runner", json={"owner": "alice"})
    for client in api.ok("GET", f"{ADMIN}/clients")["items"]:
        if client["subject"] in ("billing-api", "dave"):
            api.ok("DELETE", f"{ADMIN}/clients/{client['id']}")
    api.new_credential("billing-api", "service", name="billing key 2")
    assert api.ok("GET", f"{ADMIN}/drift")["findings"] == []


def test_a_grant_outlives_its_clause_when_the_charter_is_replaced(api):
    body = {
        "subject_type": "user",
        "subject": "dave",
        "actions": ["write"],
        "resource": "db:staging/*",
        "ends": (api.clock.now() + dt.timedelta(hours=8)).isoformat(),
        "clause": 3,
    }
    grant = api.ok("POST", f"{ADMIN}/grants", 201, json=body)
    narrower = sample("charter.charter").replace(
        'may request write on "db:staging/*"', 'may request write on "db:staging/reports/*"'
    )
    api.ok("PUT", f"{ADMIN}/charter", content=narrower)
    (finding,) = api.ok("GET", f"{ADMIN}/drift")["findings"]
    assert (finding["check"], finding["subject"], finding["clause"]) == ("grant-without-authority", "user:dave", 3)
    assert finding["detail"] == (
        f'request grant {grant["id"]} (write on "db:staging/*" until 2026-06-01 18:00 UTC) is under clause 3, '
        'which does not cover "db:staging/*"'
    )


def test_an_approved_amendment_that_could_not_be_applied_is_reported_with_the_reason(api):
    api.ok("POST", f"{ADMIN}/amendments", 201, content=AMENDMENT_1)  # effective 2026-12-15; strikes clause 15
    for who, groups in (("sam", ["security"]), ("lee", ["eng-leads"])):
        api.ok("POST", f"{ADMIN}/amendments/1/approve", credential=_member(api, who, groups))
    # Then the charter is replaced by a text without clause 15: the amendment can no longer apply.
    without_15 = "\n".join(line for line in sample("charter.charter").splitlines() if not line.startswith("Clause 15."))
    api.ok("PUT", f"{ADMIN}/charter", content=without_15 + "\n")
    assert api.ok("GET", f"{ADMIN}/drift")["findings"] == []  # not due yet

    api.clock.set(dt.datetime(2026, 12, 16, 9, 0, tzinfo=dt.UTC))
    (result,) = api.http.app.state.admin.apply_due_amendments("scheduler")
    assert result["status"] == "failed"
    (finding,) = api.ok("GET", f"{ADMIN}/drift")["findings"]
    assert (finding["check"], finding["subject"], finding["clause"]) == ("amendment-overdue", "amendment:1", None)
    assert finding["detail"].startswith("scheduled, effective 2026-12-15, not in force: ")
    assert "cannot strike clause 15" in finding["detail"]


def test_drift_is_read_by_those_who_may_read_the_charter_only(api, alice):
    auditor = _member(api, "audrey", ["auditors"])  # clause 20: auditors may read "charter:*"
    assert api.get(f"{ADMIN}/drift", credential=auditor).status_code == 200
    refused = api.get(f"{ADMIN}/drift", credential=alice)  # sre: no clause lets her read the charter
    assert refused.status_code == 403
    body = refused.json()
    assert body["error"] == "forbidden"
    assert body["details"][0]["resource"] == "charter:Acme Production Access"
    assert api.get(f"{ADMIN}/drift", credential="").status_code == 401


def test_the_cli_prints_the_findings_and_exits_1_and_0_once_clean(api, backend):
    from click.testing import CliRunner

    from charter.cli.main import cli

    env = {"CHARTER_DATABASE_URL": backend.url}
    clean = CliRunner().invoke(cli, ["drift"], env=env)
    assert clean.exit_code == 0, clean.output
    assert "no drift" in clean.output
    assert "Not checked yet" not in clean.output  # every obligation of the charter is checked

    _make_drift(api)
    found = CliRunner().invoke(cli, ["drift"], env=env)
    assert found.exit_code == 1, found.output
    assert "3 findings" in found.output
    lines = [" ".join(line.split()) for line in found.output.splitlines()]
    assert 'revoked-group-member user:bob member of group "legacy-admins", which clause 15 revokes 15' in lines
    assert "no-owner service:batch-runner has no owner" in lines

    as_json = CliRunner().invoke(cli, ["drift", "--json"], env=env)
    assert as_json.exit_code == 1, as_json.output
    report = json.loads(as_json.output)
    assert [(f["check"], f["subject"], f["clause"]) for f in report["findings"]] == [
        ("no-owner", "service:batch-runner", None),
        ("revoked-group-member", "user:bob", 15),
        ("revoked-group-member", "user:carol", 15),
    ]
    assert report["total"] == 3


def test_the_cli_exits_2_when_the_store_cannot_be_read():
    from click.testing import CliRunner

    from charter.cli.main import cli

    env = {"CHARTER_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}
    result = CliRunner().invoke(cli, ["drift"], env=env)
    assert result.exit_code == 2, result.output
    assert "cannot read the store" in result.output


# --- review-overdue (the review tasks themselves are tests/test_reviews.py's) -------------------------


def test_an_open_review_task_past_its_due_date_is_found_under_its_clause_and_one_on_time_is_not():
    from charter.policy.drift import OpenReview

    day = dt.timedelta(days=1)
    late = OpenReview("t1", "membership", 14, "sre-leads", "group:contractors", NOW - 15 * day, NOW - day)
    on_time = OpenReview("t2", "break glass", 5, "security", "g-1", NOW - day, NOW)  # due now: not yet late
    late_glass = OpenReview("t3", "break glass", 5, "security", "g-2", NOW - 2 * day, NOW - day)
    drift = find_drift(_version(), _directory(), (), (), (), NOW, [late, on_time, late_glass], {"erin"})
    assert _found(drift) == [("review-overdue", "review:t1", 14), ("review-overdue", "review:t3", 5)]
    assert _detail(drift, "review-overdue", "review:t1") == (
        'the membership review of group "contractors", by group "sre-leads", was due 2026-05-31 10:00 UTC '
        "and is not done"
    )
    assert "break-glass grant g-2" in _detail(drift, "review-overdue", "review:t3")


def test_people_who_have_not_signed_in_for_90_days_are_reported_until_they_do(api, db, monkeypatch):
    from charter.auth import sessions as browser_sessions
    from charter.store.db import sessions

    monkeypatch.setenv("CHARTER_INACTIVE_DAYS", "90")

    assert "inactive-account" not in _by_check(api.ok("GET", f"{ADMIN}/drift"))  # the accounts are new
    api.clock.advance(dt.timedelta(days=91))
    with sessions(db).begin() as session:  # alice signs in; nobody else does
        browser_sessions.start(session, "alice", ["pwd"], api.clock.now(), None, None)
    stale = dict(_by_check(api.ok("GET", f"{ADMIN}/drift"))["inactive-account"])
    assert "user:alice" not in stale and "user:bob" in stale and stale["user:bob"] is None
    api.ok("PUT", "/admin/v1/users/bob", json={"state": "disabled", "groups": ["sre"]})  # the remedy
    assert "user:bob" not in dict(_by_check(api.ok("GET", f"{ADMIN}/drift"))["inactive-account"])
