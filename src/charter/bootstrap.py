"""First run: create the schema, load the sample charter and directory, and mint the admin credential.

Idempotent: on a store that already holds a charter it only brings the schema
up to date and returns no credential.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources

import yaml
from sqlalchemy import Engine

from charter import charters, clients
from charter.clock import Clock, SystemClock
from charter.directory import repository
from charter.store.db import bump_revision, sessions, upgrade

ADMIN_USER = "admin"


@dataclass(frozen=True, slots=True)
class Initialized:
    created: bool  # False when the store already held a charter
    admin_credential: str | None  # shown once, when created


def sample(name: str) -> str:
    return resources.files("charter.samples").joinpath(name).read_text(encoding="utf-8")


def initialize(db: Engine, clock: Clock | None = None) -> Initialized:
    upgrade(db)
    now = (clock or SystemClock()).now().astimezone(dt.UTC)
    with sessions(db).begin() as session:
        # Take the revision row's lock before looking, so two servers starting at once cannot both load the sample.
        revision = bump_revision(session)
        if charters.latest(session) is not None:
            session.rollback()
            return Initialized(False, None)
        repository.import_directory(session, yaml.safe_load(sample("directory.yaml")), now, "sample directory")
        directory = repository.load(session)
        charters.upload(session, sample("charter.charter"), directory, "charter init", now, revision, "sample charter")
        _, credential = clients.create(session, "initial admin", "user", ADMIN_USER, "charter init", now)
    return Initialized(True, credential)
