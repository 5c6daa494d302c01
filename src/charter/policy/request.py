"""What a decision is asked about: a subject, an action, a resource and the request's context."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType

_EMPTY: Mapping[str, object] = MappingProxyType({})
# Authentication method references (RFC 8176) that count as a second factor, in a token's or a context's `amr`.
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "swk", "sms", "fido"})


class Context:
    """Facts about the request itself: MFA, source address, time, token scopes, resource attributes.

    `time` overrides the snapshot's clock for this request (to ask "would this be allowed at T?").
    `resource_attributes` add to (and override) what the directory holds about the resource.
    """

    __slots__ = ("ip", "mfa", "resource_attributes", "scopes", "time")

    def __init__(
        self,
        mfa: bool = False,
        ip: str | None = None,
        time: dt.datetime | None = None,
        scopes: frozenset[str] = frozenset(),
        resource_attributes: Mapping[str, object] = _EMPTY,
    ):
        if time is not None and time.tzinfo is None:
            raise ValueError("Context.time must be timezone-aware")
        self.mfa = mfa
        self.ip = ip
        self.time = time
        self.scopes = scopes
        self.resource_attributes = resource_attributes

    def __repr__(self) -> str:
        return (
            f"Context(mfa={self.mfa!r}, ip={self.ip!r}, time={self.time!r}, scopes={set(self.scopes)!r}, "
            f"resource_attributes={dict(self.resource_attributes)!r})"
        )


NO_CONTEXT = Context()


class Request:
    """One question for the engine.

    `subject_type` is "user", "service" or "partner"; `subject` a directory id; `resource` a name like "db:prod/orders".
    """

    __slots__ = ("action", "context", "resource", "subject", "subject_type")

    def __init__(
        self, subject: str, action: str, resource: str, context: Context = NO_CONTEXT, subject_type: str = "user"
    ):
        self.subject_type = subject_type
        self.subject = subject
        self.action = action
        self.resource = resource
        self.context = context

    def __repr__(self) -> str:
        return f"Request({self.subject_type}:{self.subject} {self.action} {self.resource!r})"

    def describe(self) -> str:
        return f'{self.subject_type} "{self.subject}" {self.action} "{self.resource}"'
