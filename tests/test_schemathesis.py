"""Schemathesis over `/openapi.json`: requests generated from every operation's schema (valid and invalid
ones), sent as the admin to a real server (uvicorn on a loopback port, SQLite), must never get a 5xx.

Bounded: CHARTER_SCHEMATHESIS_EXAMPLES examples per operation and mode, valid and invalid (default 25), no shrinking, no example
database; about two minutes on two cores. A failure lists each operation that answered 5xx with a curl
command that reproduces it. CI runs it (it is part of the README's pytest command).
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from conftest import API_TEST_TIME

# The event stream answers 200 and then streams until the client leaves: nothing to wait for here
# (tests/test_notify.py covers it).
STREAMS = {"GET /access/v1/events"}
EXAMPLES = int(os.environ.get("CHARTER_SCHEMATHESIS_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A started server on a fresh SQLite store with the sample data: (url, admin credential, app)."""
    from charter.bootstrap import initialize
    from charter.clock import FixedClock
    from charter.engine import Engine
    from charter.store.db import make_engine
    from charter.web.app import create_app
    from live import LiveServer

    db = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'charter.db'}")
    clock = FixedClock(API_TEST_TIME)
    initialized = initialize(db, clock)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = Engine(db, clock=clock)
    engine.issuer = f"http://127.0.0.1:{port}"
    app = create_app(engine, log_decisions=False)
    with LiveServer(app, port) as server:
        yield server.url, initialized.admin_credential, app
    db.dispose()


def test_no_operation_of_the_openapi_document_answers_a_server_error(served):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import schemathesis
        from schemathesis import GenerationMode

    url, credential, app = served
    schema = schemathesis.openapi.from_dict(app.openapi())
    headers = {"Authorization": f"Bearer {credential}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.label not in STREAMS]
    assert len(operations) > 50, "the OpenAPI document lost its operations"

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            found = _exercise(operation.as_strategy(mode), url, headers)
            failures += [f"{operation.label} ({mode.value}): {f}" for f in found]
    assert not failures, "server errors:\n" + "\n".join(failures)
    alive = app.state.engine.snapshot
    assert alive.revision >= 1  # the server kept answering throughout


def _exercise(cases, url: str, headers: dict) -> list[str]:
    """Send EXAMPLES requests drawn from `cases` (one operation's); up to three that got a 5xx, as curl commands."""
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def exercise(case):
        response = case.call(base_url=url, headers=headers, timeout=30)
        if response.status_code >= 500 and len(found) < 3:
            found.append(f"{response.status_code}: {case.as_curl_command(headers=headers)}")

    with contextlib.suppress(Unsatisfiable):  # negative mode, an operation with nothing to get wrong
        exercise()
    return found
