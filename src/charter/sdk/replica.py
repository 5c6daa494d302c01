"""A local replica of the decision data: decide in process, in microseconds, without a network hop.

    replica = LocalReplica("https://charter.example", "chr_...")    # fetches and compiles, then polls
    replica.evaluate("user", "alice", "read", "db:prod/orders")       # a charter.policy Decision
    replica.verify(access_token)                                     # VerifiedToken, or InvalidToken

The replica fetches `GET /access/v1/snapshot` (charter.replication: the charter and amendment texts in
force, the directory, the active grants, the revoked token ids, the revision) and Charter's JWKS, and
compiles them with the server's own code (`charter.policy.compile_snapshot`, `charter.oidc.verify`), so it
decides exactly as the server would at that revision. A thread asks `GET /admin/v1/revision` every
`poll_interval` seconds (0.25 by default) and fetches again when the stored revision has moved or the day
has changed; `observe(revision)` (a `Charter-Revision` header seen elsewhere) wakes it at once. Listeners
(`on_change`) hear each new revision: enforcement caches drop their entries there.

Freshness: `fresh` is False when no poll has succeeded for `max_staleness` seconds; enforcement points
then deny (charter.enforce.gate). The caller's credential needs `read` on `charter:<name>/snapshot`.
An amendment in canary is not replicated: the replica decides by the version in force for everyone.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

import httpx

from charter.client import CharterClient, CharterError
from charter.clock import Clock, SystemClock
from charter.directory.model import load_directory
from charter.language import ast
from charter.language.consolidate import Consolidated, consolidate
from charter.language.parser import parse_amendment, parse_charter
from charter.oidc.verify import InvalidToken, PublishedKeys, TokenVerifier, VerifiedToken
from charter.policy.decision import Decision
from charter.policy.grants import Grant, GrantKind
from charter.policy.request import Context, Request
from charter.policy.snapshot import Snapshot, compile_snapshot

log = logging.getLogger("charter.sdk")
FORMAT = 1
JWKS_PATH = "/oauth/jwks"


class ReplicaError(Exception):
    """The replica could not be built (Charter unreachable, refused, or sent what it cannot read)."""


def compile_document(document: dict, clock: Clock) -> Snapshot:
    """The snapshot a `GET /access/v1/snapshot` document describes, as the server compiles it."""
    if document.get("format") != FORMAT:
        raise ReplicaError(f"snapshot format {document.get('format')!r} is not {FORMAT}: upgrade the SDK")
    today = clock.now().astimezone(dt.UTC).date()
    version = _version(document.get("charter"), document.get("amendments") or [], today)
    directory = load_directory(document.get("directory") or {}, "the replicated directory")
    grants = [_grant(g) for g in document.get("grants") or ()]
    return compile_snapshot(version, directory, grants, clock, int(document["revision"]))


def _version(text: str | None, amendments: list[str], today: dt.date) -> Consolidated:
    if text is None:
        return Consolidated(ast.Charter("(no charter in effect)", today), None, 0, (), (), ())
    charter = parse_charter(text, "the replicated charter")
    parsed = [parse_amendment(a, f"replicated amendment {i + 1}") for i, a in enumerate(amendments)]
    return consolidate(charter, parsed, today)


def _grant(data: dict) -> Grant:
    return Grant(
        str(data["id"]),
        GrantKind(data["kind"]),
        str(data["subject_type"]),
        str(data["subject"]),
        frozenset(data.get("actions") or ()),
        str(data["resource"]),
        dt.datetime.fromisoformat(data["starts"]),
        dt.datetime.fromisoformat(data["ends"]),
        int(data["clause"]),
    )


class LocalReplica:
    """The server's decision data, compiled in this process and kept at the server's revision."""

    def __init__(
        self,
        base_url: str,
        credential: str,
        *,
        clock: Clock | None = None,
        poll_interval: float = 0.25,
        max_staleness: float = 5.0,
        audience: str | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        start: bool = True,
    ):
        self.client = CharterClient(base_url, credential, timeout, retries=1, transport=transport)
        self.clock = clock or SystemClock()
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self.audience = audience
        self.snapshot: Snapshot
        self.tokens: TokenVerifier
        self.canary: int | None = None
        self.fetches = 0
        self.last_error: str | None = None
        self.refetch_interval = 5.0
        self._keys_at = float("-inf")
        self._keys_lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []
        self._checked_at = time.monotonic()
        self._built_on: dt.date | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fetch()
        if start:
            self.start()

    # --- deciding -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self.snapshot.revision

    @property
    def fresh(self) -> bool:
        """Charter answered within `max_staleness` seconds: the replica may be trusted to decide."""
        return time.monotonic() - self._checked_at <= self.max_staleness

    def evaluate(
        self,
        subject_type: str,
        subject: str,
        action: str,
        resource: str,
        *,
        mfa: bool = False,
        ip: str | None = None,
        scopes: frozenset[str] = frozenset(),
        resource_attributes: dict | None = None,
    ) -> Decision:
        """The decision the server would make at this replica's revision (no I/O)."""
        context = Context(mfa=mfa, ip=ip, scopes=scopes, resource_attributes=resource_attributes or {})
        return self.snapshot.evaluate(Request(subject, action, resource, context, subject_type))

    def verify(self, token: str) -> VerifiedToken:
        """An access token verified as the server does: keys, issuer, audience, expiry, revocation, subject.

        A key id the replica has not seen makes it fetch the JWKS again, at most once per `refetch_interval`
        seconds (a rotation is picked up; a flood of forged key ids costs one fetch per interval)."""
        try:
            return self.tokens.verify(token, self.clock.now())
        except InvalidToken as error:
            if error.reason != "unknown key" or not self._refetch_keys():
                raise
        return self.tokens.verify(token, self.clock.now())

    def _refetch_keys(self) -> bool:
        with self._keys_lock:
            if time.monotonic() - self._keys_at < self.refetch_interval:
                return False
            self._keys_at = time.monotonic()
            try:
                jwks = self.client.admin("GET", JWKS_PATH)
            except CharterError:
                return False
            old = self.tokens
            self.tokens = TokenVerifier(
                PublishedKeys(jwks), old.issuer, old.revoked, self.audience, subjects=old.subjects
            )
            return True

    def on_change(self, listener: Callable[[int], None]) -> None:
        """Call `listener(revision)` after each new snapshot is in place."""
        self._listeners.append(listener)

    def observe(self, revision: int) -> None:
        """A revision seen elsewhere (a `Charter-Revision` header): refresh at once if it is newer."""
        if revision > self.snapshot.revision:
            self._wake.set()

    # --- keeping fresh ------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Fetch again if the store's revision (or the day) has moved; True when a new snapshot is in place."""
        stored = int(self.client.revision()["stored"])
        self._checked_at = time.monotonic()
        today = self.clock.now().astimezone(dt.UTC).date()
        if stored == self.snapshot.revision and today == self._built_on:
            return False
        self._fetch()
        return True

    def _fetch(self) -> None:
        try:
            document = self.client.snapshot_document()
            issuer = str(document.get("issuer") or self.client.base_url).rstrip("/")
            jwks = self.client.admin("GET", JWKS_PATH)
        except CharterError as error:
            raise ReplicaError(f"could not fetch the snapshot from Charter: {error}") from None
        snapshot = compile_document(document, self.clock)
        tokens = TokenVerifier(
            PublishedKeys(jwks), issuer, document.get("revoked_tokens") or (), self.audience, subjects=snapshot
        )
        with self._keys_lock:  # never interleaved with a key refetch, which would bring back old revocations
            self.snapshot, self.tokens = snapshot, tokens
        self.canary = document.get("canary")
        self._built_on = self.clock.now().astimezone(dt.UTC).date()
        self._checked_at = time.monotonic()
        self.fetches += 1
        for listener in self._listeners:
            listener(snapshot.revision)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-replica", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
                self.last_error = None
            except Exception as error:  # keep the last snapshot; `fresh` turns False in time
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("replica refresh failed at revision %s: %s", self.snapshot.revision, self.last_error)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.close()

    def __enter__(self) -> LocalReplica:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["InvalidToken", "LocalReplica", "ReplicaError", "VerifiedToken", "compile_document"]
