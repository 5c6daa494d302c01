"""The events as a server-sent event stream: what a console listens to (`GET /access/v1/events`).

Each event goes out as `id: <event id>`, `event: <type>`, `data: <the JSON webhooks receive>` and a blank
line, in the order the events were recorded. The stream reads the events table every `POLL_INTERVAL` seconds
(one short read in a worker thread: no connection is held between reads), sends the comment `: keep-alive`
after `KEEP_ALIVE` seconds without an event (so that proxies and load balancers keep the connection open,
and a client that went away is noticed), and ends when the client disconnects or is no longer allowed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from charter.store.models import EventRow
from charter.webhook_delivery import event_json

POLL_INTERVAL = 1.0  # seconds between reads of the events table while nothing is new
KEEP_ALIVE = 15.0  # seconds of silence before a keep-alive comment
PAGE = 100  # events read at a time; a full page is followed at once by the next
KEEP_ALIVE_FRAME = b": keep-alive\n\n"


def resource(charter_name: str) -> str:
    """What a listener must be allowed to `read`: the charter's events (clause 19 and 20 of the sample)."""
    return f"charter:{charter_name}/events"


def events_after(sessions: sessionmaker[Session], after: int, limit: int = PAGE) -> list[dict]:
    """Up to `limit` events recorded after event `after`, oldest first."""
    with sessions() as session:
        rows = session.scalars(select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(limit))
        return [event_json(row) for row in rows]


def last_event_id(sessions: sessionmaker[Session]) -> int:
    """The newest event's id (0 when there is none): where a stream asked for no earlier point starts."""
    with sessions() as session:
        return int(session.scalar(select(func.max(EventRow.id))) or 0)


def frame(event: dict) -> bytes:
    # orjson writes no newline, so the JSON is exactly one `data:` line.
    return f"id: {event['id']}\nevent: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n"


async def stream(
    read: Callable[[int], Awaitable[list[dict]]], after: int, allowed: Callable[[], bool], *, once: bool = False
) -> AsyncIterator[bytes]:
    """The frames of every event after `after`, as they are recorded; with `once`, only those already there.

    `read(after)` returns the next page of events; `allowed()` is asked before each read, so a revoked
    credential or a changed charter ends the stream within a poll.
    """
    quiet_since = time.monotonic()
    while allowed():
        events = await read(after)
        for event in events:
            yield frame(event)
            after = event["id"]
        if len(events) >= PAGE:
            continue  # more may be waiting: read on without pausing
        if once:
            return
        if events:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEP_ALIVE:
            yield KEEP_ALIVE_FRAME
            quiet_since = time.monotonic()
        await anyio.sleep(POLL_INTERVAL)
