"""The application uvicorn serves: `charter.web.server:app` (a factory, one per worker process)."""

from __future__ import annotations

from charter.engine import Engine
from charter.store.db import make_engine, upgrade
from charter.web.app import create_app


def app():
    db = make_engine()
    upgrade(db)
    return create_app(Engine(db))
