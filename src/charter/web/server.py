"""The application uvicorn serves: `charter.web.server:app` (a factory, one per worker process).

Two environment knobs for the refresh of the snapshot (tests use them to measure each path alone):
`CHARTER_DISABLE_LISTEN=1` keeps a server on PostgreSQL from LISTENing for revision
notifications, so it sees other servers' changes by polling alone (as when notifications
are lost, e.g. behind a transaction pooler); `CHARTER_POLL_INTERVAL` is the polling period
in seconds (default 0.5).
"""

from __future__ import annotations

import os

from charter.engine import Engine
from charter.store.db import make_engine, upgrade
from charter.web.app import create_app


def app():
    db = make_engine()
    upgrade(db)
    listen = os.environ.get("CHARTER_DISABLE_LISTEN", "").strip().lower() not in ("1", "true", "yes")
    engine = Engine(db, poll_interval=_poll_interval(), listen=listen)
    return create_app(engine, freeze_gc=True, decision_writer="process")


def _poll_interval() -> float:
    text = os.environ.get("CHARTER_POLL_INTERVAL", "").strip()
    try:
        seconds = float(text) if text else 0.5
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise SystemExit(f"CHARTER_POLL_INTERVAL must be a number of seconds above 0, found {text!r}")
    return seconds
