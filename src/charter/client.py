"""The Python SDK: ask Charter for decisions over HTTP, and verify Charter's access tokens in process.

    client = CharterClient("https://charter.example", "chr_...")
    client.evaluate("user", "alice", "read", "db:prod/orders").allowed
    client.evaluate_token(access_token, "read", "db:prod/orders")      # the subject is the token's
    client.evaluate_many([Ask("user", "alice", "read", "db:prod/orders"), ...])   # one round trip
    client.search_resources("user", "alice", "read", "db")            # AuthZEN search
    client.admin("PUT", "/admin/v1/groups/sre/members/users/bob")     # any admin call, errors raised

    replica = LocalReplica("https://charter.example", "chr_...")     # charter.sdk.replica: decide in process
    replica.evaluate("user", "alice", "read", "db:prod/orders")        # microseconds, no network hop

Timeouts apply to every call (`timeout`, seconds). Safe calls (GETs and decisions, which change nothing)
are retried `retries` times after a connection failure or a 502/503/504, with a short growing pause;
admin writes are never retried (the caller decides whether a lost answer means a lost write).

    verifier = LocalTokenVerifier("https://charter.example")           # keys from the discovery document
    token = verifier.verify(access_token)                              # VerifiedToken, or InvalidToken
    token.subject, token.mfa

Local verification is charter.oidc.verify, the code the server runs: ES256 only, the key by `kid` from
Charter's JWKS (fetched once, fetched again on an unknown kid at most every `refetch_interval` seconds,
so a rotation is picked up and a flood of forged kids costs no more than one fetch per interval),
issuer, audience, expiry, and a cache of tokens already verified. It does not see revocations: a token
revoked before it expires verifies locally until then. Where that matters, ask the server
(`evaluate_token`), which honours them at once.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field

import httpx

from charter.oidc.verify import InvalidToken, PublishedKeys, TokenVerifier, VerifiedToken

__all__ = [
    "Ask",
    "CharterClient",
    "CharterError",
    "Decision",
    "InvalidToken",
    "LocalTokenVerifier",
    "VerifiedToken",
]

DISCOVERY = "/.well-known/openid-configuration"
RETRY_STATUSES = frozenset({502, 503, 504})
SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
JWKS_PATH = "/oauth/jwks"


class CharterError(Exception):
    """Charter answered with an error (`status`, `code` as in the API's error body) or could not be reached."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    context: dict = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return list(self.context.get("reasons", ()))

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class Ask:
    """One question of a batch (`CharterClient.evaluate_many`)."""

    subject_type: str
    subject: str
    action: str
    resource: str
    context: dict | None = None


class CharterClient:
    """Decisions from a Charter server, as the API client whose credential (`chr_...`) is given."""

    def __init__(
        self,
        base_url: str,
        credential: str,
        timeout: float = 5.0,
        *,
        retries: int = 2,
        backoff: float = 0.1,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {credential}"},
            timeout=timeout,
            transport=transport,
        )

    def evaluate(
        self, subject_type: str, subject: str, action: str, resource: str, context: dict | None = None
    ) -> Decision:
        """May `subject` do `action` on `resource` (a Charter resource name, such as "db:prod/orders")?"""
        return self._evaluate({"type": subject_type, "id": subject}, action, resource, context)

    def evaluate_token(self, token: str, action: str, resource: str, context: dict | None = None) -> Decision:
        """The same question for the subject of an access token, which the server verifies (revocations
        included): MFA and scopes are the token's, whatever `context` says. An invalid token is a deny whose
        reason says why (`invalid token: expired`)."""
        return self._evaluate({"type": "token", "id": token}, action, resource, context)

    def evaluate_many(self, asks: list[Ask], semantic: str = "execute_all") -> list[Decision]:
        """Several questions in one round trip (AuthZEN `evaluations`); with `deny_on_first_deny` or
        `permit_on_first_permit` the answer stops at the first such decision, as the server's does."""
        if semantic not in SEMANTICS:
            raise ValueError(f"semantic must be one of {', '.join(SEMANTICS)}")
        items = [_evaluation({"type": a.subject_type, "id": a.subject}, a.action, a.resource, a.context) for a in asks]
        body = {"evaluations": items, "options": {"evaluations_semantic": semantic}}
        answer = self._call("POST", "/access/v1/evaluations", body, safe=True)
        return [Decision(bool(e["decision"]), e.get("context") or {}) for e in answer.get("evaluations", ())]

    def search_subjects(self, subject_type: str, action: str, resource: str, context: dict | None = None) -> list[str]:
        """The ids of the identities of `subject_type` allowed `action` on `resource` (AuthZEN subject search)."""
        body = {"subject": {"type": subject_type}, "action": {"name": action}}
        body["resource"] = {"type": "resource", "id": resource}
        return [r["id"] for r in self._search("subject", body, context)]

    def search_resources(
        self, subject_type: str, subject: str, action: str, resource_type: str, context: dict | None = None
    ) -> list[str]:
        """The resources of `resource_type` the directory knows that the subject may `action` (their ids)."""
        body = {"subject": {"type": subject_type, "id": subject}, "action": {"name": action}}
        body["resource"] = {"type": resource_type}
        return [r["id"] for r in self._search("resource", body, context)]

    def search_actions(self, subject_type: str, subject: str, resource: str, context: dict | None = None) -> list[str]:
        """The actions the charter names that the subject may do on `resource`."""
        body = {"subject": {"type": subject_type, "id": subject}, "resource": {"type": "resource", "id": resource}}
        return [r["name"] for r in self._search("action", body, context)]

    def admin(
        self, method: str, path: str, body: dict | None = None, *, text: str | None = None, content: bytes | None = None
    ) -> dict:
        """Any admin or access API call (`/admin/v1/...`, `/access/v1/...`) as this client: the JSON answer, or
        CharterError with the API's error code. `text` sends a text body (a charter), `content` JSON already
        encoded. GETs are retried like decisions; writes are not."""
        kind = "application/json"
        if text is not None:
            content, kind = text.encode(), "text/plain; charset=utf-8"
        safe = method.upper() == "GET"
        return self._call(method.upper(), path, body, safe=safe, content=content, content_type=kind)

    def revision(self) -> dict:
        """`{"revision", "stored", "charter", "version"}`: the server's snapshot revision and the store's."""
        return self.admin("GET", "/admin/v1/revision")

    def snapshot_document(self) -> dict:
        """What a local replica compiles (`GET /access/v1/snapshot`, charter.replication)."""
        return self.admin("GET", "/access/v1/snapshot")

    def _search(self, kind: str, body: dict, context: dict | None) -> list[dict]:
        if context:
            body["context"] = context
        results: list[dict] = []
        token = ""
        while True:
            answer = self._call("POST", f"/access/v1/search/{kind}", {**body, "page": {"token": token}}, safe=True)
            results.extend(answer.get("results", ()))
            token = (answer.get("page") or {}).get("next_token") or ""
            if not token:
                return results

    def _evaluate(self, subject: dict, action: str, resource: str, context: dict | None) -> Decision:
        answer = self._call("POST", "/access/v1/evaluation", _evaluation(subject, action, resource, context), safe=True)
        return Decision(bool(answer["decision"]), answer.get("context") or {})

    def _post(self, path: str, body: dict) -> dict:
        return self._call("POST", path, body, safe=True)

    def _call(
        self,
        method: str,
        path: str,
        body: dict | None,
        *,
        safe: bool,
        content: bytes | None = None,
        content_type: str = "application/json",
    ) -> dict:
        attempts = 1 + (self.retries if safe else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                if content is not None:
                    headers = {"Content-Type": content_type}
                    response = self._http.request(method, path, content=content, headers=headers)
                else:
                    response = self._http.request(method, path, json=body)
            except httpx.HTTPError as error:
                if last:
                    raise CharterError(0, "unreachable", str(error)) from None
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return _answer(response)
            time.sleep(self.backoff * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CharterClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _evaluation(subject: dict, action: str, resource: str, context: dict | None) -> dict:
    body: dict = {"subject": subject, "action": {"name": action}, "resource": {"type": "resource", "id": resource}}
    if context:
        body["context"] = context
    return body


def _answer(response: httpx.Response) -> dict:
    if response.status_code >= 300:
        try:
            error = response.json()
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        raise CharterError(response.status_code, error.get("error", "error"), error.get("message", response.text))
    if not response.content:
        return {}
    return response.json()


class LocalTokenVerifier:
    """Verifies Charter's access tokens in this process, with Charter's published keys.

    `base_url` is Charter's issuer: the JWKS address and the issuer are read from its discovery document,
    unless `jwks_url` (and `issuer`) are given. `audience` defaults to the issuer.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        refetch_interval: float = 30.0,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        clock=None,
    ):
        if base_url is None and (jwks_url is None or issuer is None):
            raise ValueError("give base_url, or both jwks_url and issuer")
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self.issuer = (issuer or base_url or "").rstrip("/")
        self.jwks_url = jwks_url
        if self.jwks_url is None:
            document = self._get(f"{self.issuer}{DISCOVERY}")
            self.issuer = str(document.get("issuer", self.issuer)).rstrip("/")
            self.jwks_url = str(document.get("jwks_uri") or f"{self.issuer}{JWKS_PATH}")
        self.audience = audience or self.issuer
        self.refetch_interval = refetch_interval
        self.clock = clock
        self.fetches = 0
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()  # one refetch at a time; verification itself takes no lock
        self._verifier = self._fetch()

    def verify(self, token: str, audience: str | None = None) -> VerifiedToken:
        """The token's verified contents, or InvalidToken (`reason`: algorithm, unknown key, signature, issuer,
        audience, expired, ...)."""
        now = self.clock.now() if self.clock is not None else dt.datetime.now(dt.UTC)
        try:
            return self._verifier.verify(token, now, audience)
        except InvalidToken as error:
            if error.reason != "unknown key" or not self._refetch():
                raise
        return self._verifier.verify(token, now, audience)  # a key published since the last fetch

    def _refetch(self) -> bool:
        """Fetch the keys again unless that was done within `refetch_interval`; True when it was done now."""
        with self._lock:
            if time.monotonic() - self._fetched_at < self.refetch_interval:
                return False
            self._verifier = self._fetch()
            return True

    def _fetch(self) -> TokenVerifier:
        assert self.jwks_url is not None
        self._fetched_at = time.monotonic()
        self.fetches += 1
        return TokenVerifier(PublishedKeys(self._get(self.jwks_url)), self.issuer, audience=self.audience)

    def _get(self, url: str) -> dict:
        try:
            response = self._http.get(url)
            response.raise_for_status()
            return response.json()
        except httpx.HTTPStatusError as error:
            raise CharterError(error.response.status_code, "http_error", str(error)) from None
        except httpx.HTTPError as error:
            raise CharterError(0, "unreachable", str(error)) from None

    def close(self) -> None:
        self._http.close()


def __getattr__(name: str):
    if name == "LocalReplica":  # charter.sdk.replica imports this module: import it lazily
        from charter.sdk.replica import LocalReplica

        return LocalReplica
    raise AttributeError(name)
