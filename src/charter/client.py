"""The Python SDK: ask Charter for decisions over HTTP, and verify Charter's access tokens in process.

    client = CharterClient("https://charter.example", "chr_...")
    client.evaluate("user", "alice", "read", "db:prod/orders").allowed
    client.evaluate_token(access_token, "read", "db:prod/orders")      # the subject is the token's

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

__all__ = ["CharterClient", "CharterError", "Decision", "InvalidToken", "LocalTokenVerifier", "VerifiedToken"]

DISCOVERY = "/.well-known/openid-configuration"
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


class CharterClient:
    """Decisions from a Charter server, as the API client whose credential (`chr_...`) is given."""

    def __init__(
        self, base_url: str, credential: str, timeout: float = 5.0, *, transport: httpx.BaseTransport | None = None
    ):
        self.base_url = base_url.rstrip("/")
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

    def _evaluate(self, subject: dict, action: str, resource: str, context: dict | None) -> Decision:
        body: dict = {"subject": subject, "action": {"name": action}, "resource": {"type": "resource", "id": resource}}
        if context:
            body["context"] = context
        answer = self._post("/access/v1/evaluation", body)
        return Decision(bool(answer["decision"]), answer.get("context") or {})

    def _post(self, path: str, body: dict) -> dict:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as error:
            raise CharterError(0, "unreachable", str(error)) from None
        if response.status_code != 200:
            try:
                error = response.json()
            except ValueError:
                error = {}
            raise CharterError(response.status_code, error.get("error", "error"), error.get("message", response.text))
        return response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CharterClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
