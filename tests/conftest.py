"""Shared pytest configuration."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import settings

# --- hypothesis profiles (property tests: tests/test_properties.py) ---------------------------
# "charter" is what developers and CI run: sized so the property tests take well under a minute
# on 2 cores, with no deadline (a slow CI machine must not turn into a flaky failure).
# "charter-deep" is for a longer local hunt: CHARTER_HYPOTHESIS_PROFILE=charter-deep pytest ...
settings.register_profile("charter", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("charter-deep", parent=settings.get_profile("charter"), max_examples=2000)
settings.load_profile(os.environ.get("CHARTER_HYPOTHESIS_PROFILE", "charter"))


# --- the data directory ---------------------------------------------------------------------------
# Audit signing keys live in the data directory; tests must never write them into the checkout.


@pytest.fixture(autouse=True, scope="session")
def _data_directory(tmp_path_factory) -> Iterator[None]:
    previous = os.environ.get("CHARTER_DATA_DIR")
    os.environ["CHARTER_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    if previous is None:
        os.environ.pop("CHARTER_DATA_DIR", None)
    else:
        os.environ["CHARTER_DATA_DIR"] = previous


# --- the store on both backends (tests/test_api_admin.py) ---------------------------------------
# `backend` runs a test once on SQLite (a file in tmp_path) and once on a real PostgreSQL (a fresh
# database, dropped afterwards). Nothing is mocked: the API, the engine and the store are the ones
# `charter serve` runs.

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The fixed time every API test runs at: a Monday in 2026, inside the sample charter's first year.
API_TEST_TIME = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Backend:
    name: str  # "sqlite" or "postgresql"
    url: str  # the SQLAlchemy URL of this test's own, empty database


@pytest.fixture(scope="session")
def postgres_maintenance_url() -> str:
    """The URL of a PostgreSQL database to create test databases from; skips (or fails in CI) when unreachable."""
    import psycopg
    from sqlalchemy import make_url

    url = os.environ.get("CHARTER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        psycopg.connect(url, autocommit=True, connect_timeout=3).close()
        return url
    except psycopg.Error as error:
        reason = " ".join(str(error).split())
    message = (
        f"PostgreSQL not reachable at {make_url(url).render_as_string(hide_password=True)} ({reason}); "
        "set CHARTER_TEST_POSTGRES_URL or start it; CI requires it (CHARTER_REQUIRE_POSTGRES=1)"
    )
    if os.environ.get("CHARTER_REQUIRE_POSTGRES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'charter.db'}")
        return
    import psycopg
    from psycopg import sql
    from sqlalchemy import make_url

    maintenance = request.getfixturevalue("postgres_maintenance_url")
    name = f"charter_test_{secrets.token_hex(6)}"
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Backend("postgresql", make_url(maintenance).set(database=name).render_as_string(hide_password=False))
    finally:
        with psycopg.connect(maintenance, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def db(backend: Backend):
    """A SQLAlchemy engine on the test's database."""
    from charter.store.db import make_engine

    engine = make_engine(backend.url)
    yield engine
    engine.dispose()


class Api:
    """A started Charter (sample charter and directory) behind starlette's TestClient, and its admin credential."""

    def __init__(self, http, admin_credential: str, clock):
        self.http = http
        self.admin_credential = admin_credential
        self.clock = clock

    @staticmethod
    def bearer(credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}

    def request(self, method: str, path: str, *, credential: str | None = None, headers=None, **kwargs):
        """A request as the admin, or as `credential` when given ("" sends no Authorization header)."""
        credential = self.admin_credential if credential is None else credential
        sent = {**(self.bearer(credential) if credential else {}), **(headers or {})}
        return self.http.request(method, path, headers=sent, **kwargs)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def put(self, path: str, **kwargs):
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs) -> dict:
        response = self.request(method, path, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def stored_revision(self) -> int:
        """The last revision committed to the store (what any write would move)."""
        return self.ok("GET", "/admin/v1/revision")["stored"]

    def new_credential(self, subject: str, subject_type: str = "user", name: str | None = None) -> str:
        """Create an API client acting as `subject` through the API (as the admin) and return its credential."""
        body = {"name": name or f"{subject} test client", "subject_type": subject_type, "subject": subject}
        return self.ok("POST", "/admin/v1/clients", 201, json=body)["credential"]

    def decide(self, subject: str, action: str, resource: str, subject_type: str = "user", **context) -> dict:
        """An AuthZEN evaluation as the admin client; returns the decision JSON."""
        body: dict = {
            "subject": {"type": subject_type, "id": subject},
            "action": {"name": action},
            "resource": {"type": "resource", "id": resource},
        }
        if context:
            body["context"] = context
        return self.ok("POST", "/access/v1/evaluation", json=body)


@pytest.fixture
def api(db) -> Iterator[Api]:
    """Charter initialised with the sample data and started (lifespan) at API_TEST_TIME; the admin credential."""
    import warnings

    from charter.bootstrap import initialize
    from charter.clock import FixedClock
    from charter.engine import Engine
    from charter.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette would rather its TestClient ran on httpx2
        from starlette.testclient import TestClient

    clock = FixedClock(API_TEST_TIME)
    initialized = initialize(db, clock)
    assert initialized.admin_credential is not None
    with TestClient(create_app(Engine(db, clock=clock))) as http:
        yield Api(http, initialized.admin_credential, clock)


@pytest.fixture
def alice(api: Api) -> str:
    """A credential acting as user "alice" (sre, sre-leads; not an iam-admin), created through the API."""
    return api.new_credential("alice")


@pytest.fixture
def live(db) -> Iterator[tuple]:
    """A started server at API_TEST_TIME, and an httpx client on it as the admin (the `Api` helpers)."""
    import socket

    import httpx

    from charter.bootstrap import initialize
    from charter.clock import FixedClock
    from charter.engine import Engine
    from charter.web.app import create_app
    from live import LiveServer

    clock = FixedClock(API_TEST_TIME)
    initialized = initialize(db, clock)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = Engine(db, clock=clock)
    engine.issuer = f"http://127.0.0.1:{port}"  # tokens name the server they came from (OpenID Connect)
    with LiveServer(create_app(engine), port) as server, httpx.Client(base_url=server.url) as http:
        http.app = server.server.config.app  # type: ignore[attr-defined]  # as Api expects of a TestClient
        yield server, Api(http, initialized.admin_credential, clock)


@pytest.fixture
def servers(tmp_path):
    """`charter serve` processes a test starts (tests/test_servers.py's `Servers`), each ended in teardown."""
    from test_servers import Servers

    pool = Servers(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()
