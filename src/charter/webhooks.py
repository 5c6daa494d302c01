"""Webhook subscriptions: create, list, disable, and read their deliveries, each authorised by the charter.

Authorised through `admin.Admin` like every administrative action, on one resource for all webhooks:
`charter:<charter name>/webhooks` (`manage` to create and disable, `read` to list them and their deliveries),
so whoever administers the charter administers where its events go (the sample's clause 19 and 20: iam-admins
manage, auditors read). The signing secret is made here and shown once, in the answer to its creation; it is
never listed, logged or written to the audit chain. Sending is `charter.webhook_delivery`'s job.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select, update

from charter.admin import Admin, Conflict, Done, Invalid, NotFound, Page
from charter.clients import Caller
from charter.store.models import EventRow, WebhookDeliveryRow, WebhookRow

ALL_EVENTS = "*"
MAX_URL = 2048  # the column's width
MAX_EVENT_TYPES = 50
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")  # "request.created", "break_glass.used"
MAX_EVENT_TYPE = 64  # events.type's width


def resource(charter_name: str) -> str:
    return f"charter:{charter_name}/webhooks"


class Webhooks:
    def __init__(self, admin: Admin):
        self.admin = admin

    def _resource(self) -> str:
        return resource(self.admin.engine.snapshot.charter)

    def create(self, caller: Caller, url: str, events: Sequence[str]) -> Done:
        """A new webhook for `events` (types, or ["*"] for all); the result carries its secret, once."""
        url = checked_url(url)
        events = checked_event_types(events)
        secret = secrets.token_urlsafe(32)
        with self.admin.change(caller, self._resource(), "webhook.create") as change:
            row = WebhookRow(
                id=secrets.token_hex(8),
                url=url,
                secret=secret,
                events=events,
                created_by=caller.describe(),
                created_at=self.admin.now(),
                disabled_at=None,
            )
            change.session.add(row)
            change.details["after"] = webhook_view(row)  # never the secret
        return Done(change.revision, {**webhook_view(row), "secret": secret})

    def list(self, caller: Caller, page: Page | None = None) -> dict:
        """Every webhook, disabled ones too, oldest first; never their secrets."""
        page = page or Page()
        with self.admin.read(caller, self._resource()) as session:
            total, rows = page.of(session, select(WebhookRow).order_by(WebhookRow.created_at, WebhookRow.id))
            return page.view(total, [webhook_view(row) for row in rows])

    def disable(self, caller: Caller, webhook_id: str) -> Done:
        """Stop sending to a webhook: nothing new is queued for it and what is still pending is dropped
        (marked failed), so a receiver that was removed hears nothing more. Kept, with its deliveries, as record."""
        with self.admin.change(caller, self._resource(), "webhook.disable") as change:
            row = change.session.get(WebhookRow, webhook_id)
            if row is None:
                raise NotFound(f'no webhook "{webhook_id}"')
            if row.disabled_at is not None:
                raise Conflict(f'webhook "{webhook_id}" was already disabled')
            row.disabled_at = self.admin.now()
            dropped = change.session.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.webhook_id == webhook_id, WebhookDeliveryRow.status == "pending")
                .values(status="failed", last_error="the webhook was disabled")
                .execution_options(synchronize_session=False)
            ).rowcount
            change.details.update({"id": webhook_id, "url": row.url, "pending_dropped": dropped})
        return Done(change.revision, webhook_view(row))

    def deliveries(self, caller: Caller, webhook_id: str, page: Page | None = None) -> dict:
        """One webhook's deliveries, newest first, each with its event's type and how its attempts went."""
        page = page or Page()
        with self.admin.read(caller, self._resource()) as session:
            if session.get(WebhookRow, webhook_id) is None:
                raise NotFound(f'no webhook "{webhook_id}"')
            query = (
                select(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.webhook_id == webhook_id)
                .order_by(WebhookDeliveryRow.id.desc())
            )
            total, rows = page.of(session, query)
            events = select(EventRow.id, EventRow.type).where(EventRow.id.in_([row.event_id for row in rows]))
            types = {event_id: type_ for event_id, type_ in session.execute(events)}
            return page.view(total, [delivery_view(row, types.get(row.event_id)) for row in rows])


def checked_url(url: str) -> str:
    """An absolute http(s) URL with a host. Credentials in the URL are refused: they would be listed and
    audited; a receiver authenticates Charter by the signature instead."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL or any(c.isspace() for c in url):
        raise Invalid("url", f"expected an http or https URL of at most {MAX_URL} characters, without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError as error:
        raise Invalid("url", f"not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("url", f"expected an http or https URL with a host, found {url!r}")
    if parts.username is not None or parts.password is not None:
        raise Invalid("url", "credentials in the URL are not accepted: verify the Charter-Signature header instead")
    if parts.fragment:
        raise Invalid("url", "a fragment (#...) is never sent: leave it out")
    return url


def checked_event_types(events: Sequence[str]) -> list[str]:
    """Event types in the order given, once each; ["*"] means every type, now and to come."""
    if isinstance(events, str) or not events:
        raise Invalid("events", 'expected a list of event types, or ["*"] for all')
    if len(events) > MAX_EVENT_TYPES:
        raise Invalid("events", f"expected at most {MAX_EVENT_TYPES} event types")
    for i, event in enumerate(events):
        if event != ALL_EVENTS and not (
            isinstance(event, str) and len(event) <= MAX_EVENT_TYPE and EVENT_TYPE.fullmatch(event)
        ):
            raise Invalid(f"events[{i}]", f'expected an event type such as "request.created", or "*", found {event!r}')
    if ALL_EVENTS in events:
        return [ALL_EVENTS]
    return list(dict.fromkeys(events))


def webhook_view(row: WebhookRow) -> dict:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.events,
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
        "disabled_at": _iso(row.disabled_at),
    }


def delivery_view(row: WebhookDeliveryRow, event_type: str | None) -> dict:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt": _iso(row.next_attempt) if row.status == "pending" else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "delivered_at": _iso(row.delivered_at),
    }


def _iso(moment: dt.datetime | None) -> str | None:
    """SQLite hands back naive datetimes; the store writes UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
