"""`charter audit who-had-access`: the directory, charter and grants of a past instant, rebuilt from the records.

On SQLite and on PostgreSQL. The store starts from the sample (`charter init` on 2026-06-01 10:00 UTC);
changes are made through `Admin`, as the API makes them, with the clock moved between them:

- day 1: user "zed" joins "sre"; group "dbas" (nested in "sre") is created with user "yan" in it; user
  "mia" (in "sre" and "admins", who must use MFA) is created; "dave" gets a grant to read db:prod/orders
  until day 5; "bob" a break-glass grant around midnight.
- day 3: zed leaves "sre"; dave's grant is revoked; "dbas" is deleted, then "yan"; alice's attempt to
  remove bob from "sre" is refused (and so changes nothing).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from charter.admin import Admin, Forbidden
from charter.audit import history, store
from charter.clients import Caller
from charter.clock import FixedClock

pytestmark = pytest.mark.usefixtures("backend")

RESOURCE = "db:prod/orders"
DAY1 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # the store is initialised (API_TEST_TIME in conftest)
DAY2 = dt.datetime(2026, 6, 2, tzinfo=dt.UTC)
DAY3 = dt.datetime(2026, 6, 3, 9, 0, tzinfo=dt.UTC)
DAY4 = dt.datetime(2026, 6, 4, tzinfo=dt.UTC)
ADMIN = Caller("test", "user", "admin")
ALICE = Caller("test-alice", "user", "alice")


@pytest.fixture
def history_store(db):
    """The store after the story in the module docstring; returns (engine, dave's grant id)."""
    from charter.bootstrap import initialize
    from charter.engine import Engine

    clock = FixedClock(DAY1)
    initialize(db, clock)
    engine = Engine(db, clock=clock)
    engine.rebuild()
    admin = Admin(engine)

    clock.set(DAY1 + dt.timedelta(minutes=5))
    admin.put_identity(ADMIN, "users", "zed", {"groups": ["sre"]})
    admin.put_group(ADMIN, "dbas", {"parents": ["sre"], "owner": "alice"})
    admin.put_identity(ADMIN, "users", "yan", {"groups": []})
    admin.add_member(ADMIN, "dbas", "users", "yan")
    admin.put_identity(ADMIN, "users", "mia", {"groups": ["sre", "admins"]})
    grant = admin.create_grant(
        ADMIN,
        {
            "subject_type": "user",
            "subject": "dave",
            "actions": ["read"],
            "resource": RESOURCE,
            "clause": 3,
            "starts": DAY1 + dt.timedelta(hours=1),
            "ends": DAY1 + dt.timedelta(days=4),
        },
    ).result["id"]
    admin.create_grant(
        ADMIN,
        {
            "subject_type": "user",
            "subject": "bob",
            "kind": "break glass",
            "resource": "db:prod/*",
            "clause": 5,
            "starts": DAY2 - dt.timedelta(minutes=30),
            "ends": DAY2 + dt.timedelta(minutes=30),
        },
    )

    clock.set(DAY3)
    admin.remove_member(ADMIN, "sre", "users", "zed")
    admin.revoke_grant(ADMIN, grant)
    admin.delete_group(ADMIN, "dbas")
    admin.delete_identity(ADMIN, "users", "yan")
    with pytest.raises(Forbidden):
        admin.remove_member(ALICE, "sre", "users", "bob")
    yield engine, grant
    engine.stop()


def rows(answer: history.Answer) -> dict[tuple[str, bool], history.Access]:
    return {(a.subject, a.mfa_only): a for a in answer.access}


def ask(engine, at: dt.datetime) -> history.Answer:
    with engine.sessions() as session:
        return history.who_had_access(session, RESOURCE, at)


def test_a_member_removed_on_day_3_had_access_on_day_2_only(history_store):
    engine, _ = history_store
    day2, day4 = rows(ask(engine, DAY2)), rows(ask(engine, DAY4))

    zed = day2[("zed", False)]
    assert (zed.subject_type, zed.actions, zed.clauses, zed.basis) == ("user", ("read", "write"), (1,), ("permission",))
    assert ("zed", False) not in day4 and ("zed", True) not in day4
    # Those the story never touched keep their access, and the refused removal of bob changed nothing.
    for name in ("alice", "bob"):
        assert day4[(name, False)].actions == ("read", "write")


def test_a_revoked_grant_shows_only_while_it_was_active(history_store):
    engine, grant = history_store
    before_it = rows(ask(engine, DAY1 + dt.timedelta(minutes=30)))
    during = rows(ask(engine, DAY2))
    after_revocation = rows(ask(engine, DAY4))

    assert ("dave", False) not in before_it
    dave = during[("dave", False)]
    assert (dave.actions, dave.clauses, dave.basis, dave.grants) == (("read",), (3,), ("grant",), (grant,))
    assert ("dave", False) not in after_revocation


def test_a_group_and_a_user_deleted_later_are_restored_for_an_earlier_date(history_store):
    engine, _ = history_store
    yan = rows(ask(engine, DAY2))[("yan", False)]
    assert (yan.actions, yan.clauses) == (("read", "write"), (1,))  # through dbas, nested in sre
    assert ("yan", False) not in rows(ask(engine, DAY4))

    with engine.sessions() as session:
        then, undone = history.directory_at(session, DAY2)
    assert then.groups["dbas"].groups == ("sre",) and then.groups["dbas"].owner == "alice"
    assert then.users["yan"].groups == ("dbas",)
    assert then.users["zed"].groups == ("sre",)
    assert undone == 3  # day 3: zed removed, dbas and yan deleted (not the revocation, nor the refusal)


def test_mfa_and_break_glass_are_shown_apart(history_store):
    engine, _ = history_store
    day2 = rows(ask(engine, DAY2))
    mia = day2[("mia", True)]  # in "admins", who must use MFA (clause 10)
    assert ("mia", False) not in day2
    assert (mia.actions, mia.clauses, mia.basis) == (("read", "write"), (1,), ("permission",))
    bob = day2[("bob", False)]  # a break-glass grant without `to ...` covers every action
    assert bob.actions == ("delete", "manage", "read", "write")
    assert (bob.clauses, bob.basis) == ((1, 5), ("break glass", "permission"))
    assert rows(ask(engine, DAY4))[("bob", False)].actions == ("read", "write")


def test_the_directory_before_init_and_before_a_pruned_cut_cannot_be_rebuilt(history_store):
    engine, _ = history_store
    with pytest.raises(history.Unanswerable, match="nothing was recorded before 2026-06-01T10:00:00Z"):
        ask(engine, DAY1 - dt.timedelta(days=1))
    # The answer at the very start is the sample itself: zed did not exist yet.
    assert ("zed", False) not in rows(ask(engine, DAY1))

    engine.audit.checkpoint(engine.sessions)  # signs the head (day 3); prune everything before day 4
    with engine.sessions.begin() as session:
        assert store.prune(session, store.AUDIT, DAY4) is not None
    with pytest.raises(history.Unanswerable, match="were pruned"):
        ask(engine, DAY2)
    assert ("zed", False) not in rows(ask(engine, DAY4))


def test_the_cli_from_a_real_process(history_store, backend):
    env = {**os.environ, "CHARTER_DATABASE_URL": backend.url}
    command = [sys.executable, "-m", "charter", "audit", "who-had-access", RESOURCE]

    done = subprocess.run([*command, "--at", "2026-06-02"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert 'Who had access to "db:prod/orders" at 2026-06-02T00:00:00Z' in done.stdout
    table = {line.split()[1]: line.split() for line in done.stdout.splitlines()[3:]}
    assert table["zed"] == ["user", "zed", "read,", "write", "1", "permission"]
    assert table["mia"][-3:] == ["only", "with", "MFA"]

    done = subprocess.run([*command, "--at", "2026-05-01"], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert "nothing was recorded before 2026-06-01T10:00:00Z" in done.stderr


def test_the_cli_answers_in_json_and_wants_a_zone(history_store, backend):
    from click.testing import CliRunner

    from charter.cli.main import cli

    def run(*args: str):
        return CliRunner().invoke(
            cli, ["audit", "who-had-access", RESOURCE, *args], env={"CHARTER_DATABASE_URL": backend.url}
        )

    result = run("--at", "2026-06-04T02:00:00+02:00", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["at"] == "2026-06-04T00:00:00Z"
    assert answer["charter"] == {"name": "Acme Production Access", "version": 0}
    assert "zed" not in [a["subject"] for a in answer["access"]]
    assert {"subject_type": "user", "subject": "alice", "actions": ["read", "write"], "clauses": [1]}.items() <= (
        next(a for a in answer["access"] if a["subject"] == "alice").items()
    )

    result = run("--at", "2026-06-02T10:00")
    assert result.exit_code == 2
    assert "has no zone" in result.output
