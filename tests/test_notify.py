"""Notifications on both backends: webhooks (signed, retried with backoff, recorded) and the event stream.

Receivers are real HTTP servers on loopback ports; time is the test clock, moved by the test, and the
deliverer's rounds are called directly (`run_once`), so nothing sleeps but the HTTP exchanges themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import func, select

from charter import event_stream
from charter.bootstrap import initialize
from charter.clock import FixedClock
from charter.engine import Engine
from charter.notify import publish
from charter.store.db import make_engine
from charter.store.models import WebhookDeliveryRow, WebhookRow
from charter.web.app import create_app
from charter.webhook_delivery import MAX_ATTEMPTS, WebhookDeliverer, verify_signature
from conftest import API_TEST_TIME, Api
from test_amendment_e2e import LiveServer

ADMIN = "/admin/v1"


# --- a webhook receiver ------------------------------------------------------------------------------


class Receiver:
    """An HTTP server on a loopback port that records every request and answers 500 to the first
    `failures`, then 200."""

    def __init__(self, failures: int = 0, delay: float = 0.0):
        self.failures = failures
        self.delay = delay
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status = 500 if len(receiver.requests) <= receiver.failures else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- helpers -----------------------------------------------------------------------------------------


def quiet(api: Api) -> WebhookDeliverer:
    """The app's deliverer with its thread stopped: the test runs its rounds."""
    deliverer = api.http.app.state.deliverer
    deliverer.stop()
    return deliverer


def new_webhook(api: Api, url: str, events: list[str] | None = None) -> dict:
    return api.ok("POST", f"{ADMIN}/webhooks", 201, json={"url": url, "events": events or ["*"]})


def publish_event(api: Api, type_: str = "request.created", **payload) -> int:
    """Publish as a service would: in a store transaction of its own."""
    engine = api.http.app.state.engine
    with engine.sessions() as session, session.begin():
        return publish(session, type_, payload or {"request": "r1"}, api.clock.now()).id


def deliveries(api: Api, webhook_id: str) -> list[dict]:
    return api.ok("GET", f"{ADMIN}/webhooks/{webhook_id}/deliveries")["items"]


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """What a receiver computes (docs/notifications.md), written independently of charter's code."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


# --- webhooks ------------------------------------------------------------------------------------------


def test_a_published_event_reaches_the_receiver_signed(api, receiver):
    deliverer = quiet(api)
    hook = new_webhook(api, receiver.url, ["request.created", "grant.revoked"])
    assert hook["events"] == ["request.created", "grant.revoked"] and len(hook["secret"]) >= 43
    event_id = publish_event(api, "request.created", request="r1", subject="user:carol")
    publish_event(api, "review.opened")  # not subscribed to: nothing queued

    [outcome] = deliverer.run_once()
    assert (outcome.status, outcome.attempts, outcome.last_status) == ("delivered", 1, 200)
    [sent] = receiver.requests
    assert sent["path"] == "/hook"
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["charter-event"] == "request.created"
    assert headers["charter-delivery"] == str(outcome.delivery_id)
    assert json.loads(sent["body"]) == {
        "id": event_id,
        "type": "request.created",
        "at": API_TEST_TIME.isoformat(),
        "payload": {"request": "r1", "subject": "user:carol"},
    }

    # The signature verifies with the secret, at the time it says; a changed body or another secret does not.
    fields = dict(item.split("=", 1) for item in headers["charter-signature"].split(","))
    assert fields["t"] == str(int(API_TEST_TIME.timestamp()))
    assert hmac.compare_digest(fields["v1"], expected_signature(hook["secret"], fields["t"], sent["body"]))
    tampered = sent["body"].replace(b"carol", b"mallory")
    assert fields["v1"] != expected_signature(hook["secret"], fields["t"], tampered)
    now = api.clock.now()
    assert verify_signature(hook["secret"], headers["charter-signature"], sent["body"], now)
    assert not verify_signature(hook["secret"], headers["charter-signature"], tampered, now)
    assert not verify_signature("another secret", headers["charter-signature"], sent["body"], now)
    assert not verify_signature(hook["secret"], headers["charter-signature"], sent["body"], now + dt.timedelta(hours=1))

    [delivery] = deliveries(api, hook["id"])
    assert delivery == {
        "id": outcome.delivery_id,
        "event_id": event_id,
        "event_type": "request.created",
        "status": "delivered",
        "attempts": 1,
        "next_attempt": None,
        "last_status": 200,
        "last_error": None,
        "delivered_at": API_TEST_TIME.isoformat(),
    }
    assert deliverer.run_once() == []  # delivered once, never again


def test_failures_are_retried_with_growing_backoff_and_recorded(api):
    deliverer = quiet(api)
    with Receiver(failures=3) as receiver:
        hook = new_webhook(api, receiver.url)
        publish_event(api)
        delays = []
        for attempt in (1, 2, 3):
            [outcome] = deliverer.run_once()
            assert (outcome.status, outcome.attempts, outcome.last_status) == ("pending", attempt, 500)
            [delivery] = deliveries(api, hook["id"])
            assert (delivery["attempts"], delivery["last_status"]) == (attempt, 500)
            assert delivery["last_error"] == "HTTP 500 Internal Server Error"
            due = dt.datetime.fromisoformat(delivery["next_attempt"])
            delays.append((due - api.clock.now()).total_seconds())
            api.clock.set(due - dt.timedelta(seconds=1))
            assert deliverer.run_once() == []  # not yet due
            api.clock.set(due)
        [outcome] = deliverer.run_once()
        assert (outcome.status, outcome.attempts, outcome.last_status) == ("delivered", 4, 200)
        assert len(receiver.requests) == 4
    # 10 s, 20 s, 40 s, each with up to 10% jitter: every wait longer than the one before.
    for delay, base in zip(delays, (10, 20, 40), strict=True):
        assert base <= delay <= base * 1.1
    [delivery] = deliveries(api, hook["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == ("delivered", 4, 200)
    assert delivery["last_error"] is None and delivery["delivered_at"] == api.clock.now().isoformat()


def test_after_the_last_attempt_a_delivery_is_failed(api, caplog):
    deliverer = quiet(api)
    hook = new_webhook(api, f"http://127.0.0.1:{free_port()}/nobody-listens")
    publish_event(api)
    with caplog.at_level(logging.WARNING, logger="charter.webhooks"):
        for attempt in range(1, MAX_ATTEMPTS + 1):
            [outcome] = deliverer.run_once()
            assert outcome.attempts == attempt and outcome.last_status is None
            assert outcome.last_error.startswith("ConnectError")
            assert outcome.status == ("failed" if attempt == MAX_ATTEMPTS else "pending")
            if outcome.status == "pending":
                api.clock.set(dt.datetime.fromisoformat(deliveries(api, hook["id"])[0]["next_attempt"]))
    api.clock.advance(dt.timedelta(days=1))
    assert deliverer.run_once() == []  # failed is final
    [delivery] = deliveries(api, hook["id"])
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt"]) == ("failed", MAX_ATTEMPTS, None)
    [error] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert f"failed for good after {MAX_ATTEMPTS} attempts" in error.getMessage()
    assert hook["secret"] not in caplog.text


def test_a_disabled_webhook_gets_nothing_new(api, receiver):
    deliverer = quiet(api)
    hook = new_webhook(api, receiver.url)
    publish_event(api)  # queued before it is disabled: dropped with it
    disabled = api.ok("DELETE", f"{ADMIN}/webhooks/{hook['id']}")
    assert disabled["disabled_at"] == API_TEST_TIME.isoformat()
    publish_event(api)  # after: not even queued
    assert deliverer.run_once() == []
    assert receiver.requests == []
    [dropped] = deliveries(api, hook["id"])
    assert (dropped["status"], dropped["attempts"], dropped["last_error"]) == ("failed", 0, "the webhook was disabled")
    assert api.request("DELETE", f"{ADMIN}/webhooks/{hook['id']}").status_code == 409
    assert api.request("DELETE", f"{ADMIN}/webhooks/nope").status_code == 404
    [listed] = api.ok("GET", f"{ADMIN}/webhooks")["items"]
    assert listed["disabled_at"] == API_TEST_TIME.isoformat()


def test_an_event_queued_while_its_webhook_was_disabled_is_not_sent(api, receiver):
    """Publishing and disabling at once can leave a pending delivery behind a disabled webhook."""
    deliverer = quiet(api)
    hook = new_webhook(api, receiver.url)
    publish_event(api)
    with api.http.app.state.engine.sessions() as session, session.begin():
        session.get(WebhookRow, hook["id"]).disabled_at = api.clock.now()
    [outcome] = deliverer.run_once()
    assert (outcome.status, outcome.attempts, outcome.last_error) == ("failed", 0, "the webhook was disabled")
    assert receiver.requests == []


def test_the_secret_is_shown_only_when_the_webhook_is_created(api, receiver):
    hook = new_webhook(api, receiver.url, ["break_glass.used"])
    secret = hook["secret"]
    listing = api.get(f"{ADMIN}/webhooks")
    assert listing.status_code == 200 and secret not in listing.text
    [listed] = listing.json()["items"]
    assert "secret" not in listed
    assert listed == {k: v for k, v in hook.items() if k not in ("secret", "revision")}
    audit = api.get(f"{ADMIN}/audit/audit", params={"action": "webhook.*"})
    [record] = audit.json()["items"]
    assert record["action"] == "webhook.create" and record["target"] == "charter:Acme Production Access/webhooks"
    assert record["details"]["after"]["url"] == receiver.url
    assert secret not in audit.text
    assert secret not in api.get(f"{ADMIN}/webhooks/{hook['id']}/deliveries").text


def test_who_may_manage_and_read_webhooks(api, alice, receiver):
    api.ok("PUT", f"{ADMIN}/users/audrey", json={"groups": ["auditors"]})
    audrey = api.new_credential("audrey")
    hook = new_webhook(api, receiver.url)
    body = {"url": receiver.url, "events": ["*"]}
    for credential in (alice, audrey):  # only iam-admins manage them (clause 19)
        refused = api.request("POST", f"{ADMIN}/webhooks", credential=credential, json=body)
        assert refused.status_code == 403
        assert refused.json()["details"][0]["resource"] == "charter:Acme Production Access/webhooks"
        assert api.request("DELETE", f"{ADMIN}/webhooks/{hook['id']}", credential=credential).status_code == 403
    assert api.request("GET", f"{ADMIN}/webhooks", credential=alice).status_code == 403
    assert api.ok("GET", f"{ADMIN}/webhooks", credential=audrey)["total"] == 1  # auditors read (clause 20)
    assert api.ok("GET", f"{ADMIN}/webhooks/{hook['id']}/deliveries", credential=audrey)["items"] == []
    assert api.request("POST", f"{ADMIN}/webhooks", credential="", json=body).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "https:///no-host", "events": ["*"]}, "url"),
        ({"url": "https://user:pw@example.com/x", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": "https://example.com/x", "events": []}, "events"),
        ({"url": "https://example.com/x", "events": ["Request Created"]}, "events[0]"),
        ({"url": "https://example.com/x", "events": "*"}, "events"),
        ({"url": "https://example.com/x", "events": ["*"], "secret": "mine"}, "secret"),
    ],
)
def test_a_webhook_needs_an_http_url_and_event_types(api, body, field):
    refused = api.request("POST", f"{ADMIN}/webhooks", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["details"][0]["field"] == field
    assert api.ok("GET", f"{ADMIN}/webhooks")["total"] == 0


def test_two_deliverers_deliver_each_delivery_exactly_once(db, backend):
    """Two servers (two engines, two connection pools, two threads) on one database share the queue."""
    clock = FixedClock(API_TEST_TIME)
    initialize(db, clock)
    with Receiver(delay=0.002) as receiver:
        with Engine(db, clock=clock).sessions() as session, session.begin():
            session.add(
                WebhookRow(
                    id="h1",
                    url=receiver.url,
                    secret="s",
                    events=["*"],
                    created_by="test",
                    created_at=clock.now(),
                    disabled_at=None,
                )
            )
            for i in range(120):
                publish(session, "request.created", {"n": i}, clock.now())
        second_db = make_engine(backend.url)
        deliverers = [WebhookDeliverer(Engine(pool, clock=clock), batch=10) for pool in (db, second_db)]
        errors: list[BaseException] = []

        def drain(deliverer: WebhookDeliverer) -> None:
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and (deliverer.run_once() or pending(deliverer) > 0):
                    pass
            except BaseException as error:  # reported by the test thread
                errors.append(error)

        threads = [threading.Thread(target=drain, args=(d,)) for d in deliverers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        second_db.dispose()
    assert not errors, errors
    sent = sorted(int(request["headers"]["Charter-Delivery"]) for request in receiver.requests)
    with Engine(db, clock=clock).sessions() as session:
        ids = sorted(session.scalars(select(WebhookDeliveryRow.id)))
        statuses = set(session.scalars(select(WebhookDeliveryRow.status)))
    assert len(ids) == 120 and sent == ids  # every one, and none twice
    assert statuses == {"delivered"}


def pending(deliverer: WebhookDeliverer) -> int:
    with deliverer.engine.sessions() as session:
        query = select(func.count()).select_from(WebhookDeliveryRow).where(WebhookDeliveryRow.status == "pending")
        return int(session.scalar(query) or 0)


# --- the event stream -------------------------------------------------------------------------------------


def read_frames(text: str) -> list[dict]:
    """The events of a text/event-stream body (comments left out)."""
    frames = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            frames.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return frames


def test_the_event_stream_resumes_after_the_last_event_id_in_order(api, alice):
    ids = [publish_event(api, f"review.{kind}", n=n) for n, kind in enumerate(("opened", "overdue") * 3)]
    stream = api.get("/access/v1/events", params={"once": "1"}, headers={"Last-Event-ID": str(ids[1])})
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    frames = read_frames(stream.text)
    assert [f["id"] for f in frames] == ids[2:]
    assert [f["event"] for f in frames] == ["review.opened", "review.overdue"] * 2
    assert frames[0]["data"] == {
        "id": ids[2],
        "type": "review.opened",
        "at": API_TEST_TIME.isoformat(),
        "payload": {"n": 2},
    }
    by_query = read_frames(api.get("/access/v1/events", params={"once": "true", "after": ids[3]}).text)
    assert [f["id"] for f in by_query] == ids[4:]
    header_wins = api.get("/access/v1/events?once=1&after=0", headers={"Last-Event-ID": str(ids[4])})
    assert [f["id"] for f in read_frames(header_wins.text)] == ids[5:]
    assert read_frames(api.get("/access/v1/events?once=1").text) == []  # no starting point: only new events
    assert api.get("/access/v1/events?once=1", headers={"Last-Event-ID": "x"}).status_code == 400

    api.ok("PUT", f"{ADMIN}/users/audrey", json={"groups": ["auditors"]})
    audrey = api.new_credential("audrey")
    assert len(read_frames(api.get("/access/v1/events?once=1&after=0", credential=audrey).text)) == 6
    refused = api.get("/access/v1/events?once=1", credential=alice)
    assert refused.status_code == 403
    assert refused.json()["details"][0]["resource"] == "charter:Acme Production Access/events"
    assert api.get("/access/v1/events?once=1", credential="").status_code == 401


def test_the_event_stream_sends_events_as_they_happen(db, monkeypatch):
    """A real server and a real streaming read: an event published after connecting arrives; keep-alives
    come while nothing happens; the server lets go of a stream when its client hangs up, and ends it when
    its credential is revoked."""
    monkeypatch.setattr(event_stream, "POLL_INTERVAL", 0.1)
    monkeypatch.setattr(event_stream, "KEEP_ALIVE", 0.3)
    clock = FixedClock(API_TEST_TIME)
    initialized = initialize(db, clock)
    engine = Engine(db, clock=clock)
    with LiveServer(create_app(engine), free_port()) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        app = server.server.config.app
        admin = {"Authorization": f"Bearer {initialized.admin_credential}"}
        before = publish_in(engine, clock, "grant.revoked", grant="g0")  # before connecting: not sent
        with http.stream("GET", "/access/v1/events", headers=admin) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            published = publish_in(engine, clock, "break_glass.used", grant="g1")
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection
            received = read_until(lines, lambda seen: ": keep-alive" in after(seen, f"id: {published}"))
            assert app.state.open_event_streams == 1
        event = received.index(f"id: {published}")
        assert received[event + 1] == "event: break_glass.used"
        assert json.loads(received[event + 2].removeprefix("data: "))["payload"] == {"grant": "g1"}
        assert f"id: {before}" not in received
        wait_until(lambda: app.state.open_event_streams == 0, "the stream outlived its client")

        body = {"name": "console", "subject_type": "user", "subject": "admin"}
        console = http.post(f"{ADMIN}/clients", headers=admin, json=body).json()
        with http.stream("GET", "/access/v1/events", headers=Api.bearer(console["credential"])) as response:
            lines = response.iter_lines()
            read_until(lines, lambda seen: ": keep-alive" in seen)
            assert http.delete(f"{ADMIN}/clients/{console['id']}", headers=admin).status_code == 200
            list(lines)  # the server ends the stream (else this times out)
        wait_until(lambda: app.state.open_event_streams == 0, "the stream outlived its credential")


def read_until(lines: Iterator[str], done) -> list[str]:
    received: list[str] = []
    deadline = time.monotonic() + 10
    while not done(received):
        assert time.monotonic() < deadline, received
        received.append(next(lines))
    return received


def after(lines: list[str], line: str) -> list[str]:
    return lines[lines.index(line) + 1 :] if line in lines else []


def wait_until(condition, message: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def publish_in(engine: Engine, clock: FixedClock, type_: str, **payload) -> int:
    with engine.sessions() as session, session.begin():
        return publish(session, type_, payload, clock.now()).id
