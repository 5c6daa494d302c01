"""First run: create the schema, load the sample charter (with its expectation file) and directory, mint the
admin credential.

Idempotent: on a store that already holds a charter it only brings the schema
up to date and returns no credential.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources

import yaml
from sqlalchemy import Engine

from charter import charters, clients, expectation_files
from charter.audit import store as audit_store
from charter.audit.trail import AuditTrail
from charter.clock import Clock, SystemClock
from charter.directory import repository
from charter.store.db import bump_revision, sessions, upgrade

ADMIN_USER = "admin"
ACTOR = "charter init"  # who the audit trail says did the first run's changes
SAMPLE_EXPECTATIONS = "sample.expect"  # the policy tests kept with the sample charter


@dataclass(frozen=True, slots=True)
class Initialized:
    created: bool  # False when the store already held a charter
    admin_credential: str | None  # shown once, when created


def sample(name: str) -> str:
    return resources.files("charter.samples").joinpath(name).read_text(encoding="utf-8")


def initialize(db: Engine, clock: Clock | None = None) -> Initialized:
    upgrade(db)
    clock = clock or SystemClock()
    trail = AuditTrail(clock)
    now = clock.now().astimezone(dt.UTC)
    with sessions(db).begin() as session:
        # Take the revision row's lock before looking, so two servers starting at once cannot both load the sample.
        revision = bump_revision(session)
        if charters.latest(session) is not None:
            session.rollback()
            return Initialized(False, None)
        document = yaml.safe_load(sample("directory.yaml"))
        repository.import_directory(session, document, now, "sample directory")
        directory = repository.load(session)
        uploaded = charters.upload(
            session, sample("charter.charter"), directory, ACTOR, now, revision, "sample charter"
        )
        expectation_files.save(session, uploaded.row.name, SAMPLE_EXPECTATIONS, sample("charter.expect"), ACTOR, now)
        client, credential = clients.create(session, "initial admin", "user", ADMIN_USER, ACTOR, now)
        trail.write(
            session,
            audit_store.AUDIT,
            [
                trail.entry(
                    ACTOR, "directory.import", "directory:*", details={"after": document, "revision": revision}
                ),
                trail.entry(
                    ACTOR,
                    "charter.upload",
                    f"charter:{uploaded.row.name}",
                    details={"sha256": uploaded.row.sha256, "name": uploaded.row.name, "revision": revision},
                ),
                trail.entry(
                    ACTOR,
                    "expectations.put",
                    f"charter:{uploaded.row.name}/expectations/{SAMPLE_EXPECTATIONS}",
                    details={"file": SAMPLE_EXPECTATIONS, "replaced": False, "revision": revision},
                ),
                trail.entry(
                    ACTOR,
                    "client.create",
                    f"clients:user/{ADMIN_USER}",
                    details={"after": {"id": client.id, "name": client.name, "subject": ADMIN_USER}},
                ),
            ],
        )
    return Initialized(True, credential)
