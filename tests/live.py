"""A running Charter for end-to-end tests (the `live` fixture of conftest.py): the real app under uvicorn on a loopback port, in a thread, so
that its clock is a test clock the test can move. The CLI and httpx talk to it over HTTP."""

from __future__ import annotations

import threading
import time

import uvicorn


class LiveServer:
    def __init__(self, app, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="charter-test-server", daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
