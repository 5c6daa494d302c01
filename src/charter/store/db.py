"""Connecting to the store: SQLite (one WAL file) by default, PostgreSQL by URL; migrations; the revision.

`CHARTER_DATABASE_URL` selects the database (`postgresql://user@host/db` or
`sqlite:///path/charter.db`); without it Charter uses `charter.db` in the data
directory (`CHARTER_DATA_DIR`, default `./data`), created on first run.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

NOTIFY_CHANNEL = "charter_revision"
MIGRATIONS = Path(__file__).parent / "migrations"


def data_dir() -> Path:
    return Path(os.environ.get("CHARTER_DATA_DIR", "data")).resolve()


def database_url() -> str:
    url = os.environ.get("CHARTER_DATABASE_URL")
    if url:
        return normalize_url(url)
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'charter.db'}"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever the URL's scheme says."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def make_engine(url: str | None = None) -> Engine:
    url = normalize_url(url or database_url())
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # connect_timeout: with the database host away, a request fails (503) in seconds instead of hanging.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a committed change survives a crash (kill -9, power loss)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(session: Session) -> int:
    return int(session.execute(text("SELECT value FROM revision WHERE id = 1")).scalar_one())


def bump_revision(session: Session) -> int:
    """Take the next revision inside the caller's transaction; other servers hear of it on commit.

    The row update also serialises writers, so revisions are committed in order.
    """
    value = int(
        session.execute(text("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")).scalar_one()
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :value)"), {"channel": NOTIFY_CHANNEL, "value": str(value)})
    return value
