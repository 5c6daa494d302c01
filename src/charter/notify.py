"""Notifications: events recorded in the change's own transaction, then sent to webhooks and event streams.

`publish` writes the event and one pending delivery per matching webhook with the change that caused it,
so an event exists exactly when its change was committed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter.store.models import EventRow, WebhookDeliveryRow, WebhookRow


def publish(session: Session, type_: str, payload: dict, now: dt.datetime) -> EventRow:
    """Record event `type_` (e.g. "request.created", "break_glass.used") and queue it for every webhook
    subscribed to it, in the caller's transaction."""
    event = EventRow(type=type_, at=now, payload=payload)
    session.add(event)
    session.flush()
    for hook in session.scalars(select(WebhookRow).where(WebhookRow.disabled_at.is_(None))):
        if "*" in hook.events or type_ in hook.events:
            session.add(
                WebhookDeliveryRow(
                    webhook_id=hook.id, event_id=event.id, status="pending", attempts=0, next_attempt=now
                )
            )
    return event
