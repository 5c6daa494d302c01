"""Browsers at the proxy: sign in with Charter (OpenID Connect, authorization code + PKCE), then a cookie.

A request with no `Authorization` header and no session, for a page (`GET`, `Accept: text/html`), is
redirected to Charter's `/oauth/authorize` as the proxy's public OAuth client, with a PKCE S256
challenge, a `state` and a `nonce`. What the callback needs back (the state, the verifier, the path to
return to, an expiry) rides in a short-lived cookie signed with HMAC-SHA256 under the proxy's secret,
so the proxy keeps no session state and can run as several processes. At `/_charter/callback` the
state is compared in constant time, the code is exchanged at `/oauth/token` with the verifier, and the
access token is kept in an HttpOnly, SameSite=Lax cookie (Secure on https) for its lifetime; the gate
verifies it on every request exactly like a bearer token. When it expires the next page view signs in
again (Charter's own session usually makes that a pair of redirects). Only local paths are returned to.

SameSite=Lax keeps the cookie off cross-site POSTs; an upstream that takes state-changing requests from
browsers should still use its own CSRF defence.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qs, urlencode

import httpx
import orjson

LOGIN_COOKIE = "charter_proxy_login"
SESSION_COOKIE = "charter_proxy_session"
CALLBACK = "/_charter/callback"
LOGIN_TTL = 600  # seconds a sign-in may take


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BrowserLogin:
    def __init__(
        self,
        charter_url: str,
        client_id: str,
        public_url: str,
        secret: bytes,
        *,
        scope: str = "openid",
        timeout: float = 10.0,
    ):
        self.charter_url = charter_url.rstrip("/")
        self.client_id = client_id
        self.public_url = public_url.rstrip("/")
        self.redirect_uri = self.public_url + CALLBACK
        self.secret = secret
        self.scope = scope
        self.timeout = timeout
        self.secure = self.public_url.startswith("https://")

    # --- on each request ---------------------------------------------------------------------

    @staticmethod
    def wants_page(scope) -> bool:
        """A browser asking for a page: GET with text/html acceptable."""
        if scope["method"] != "GET":
            return False
        accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
        return b"text/html" in accept

    @staticmethod
    def without_our_cookies(value: bytes) -> bytes | None:
        """A Cookie header without the proxy's own cookies (the session holds a token), None if nothing is left."""
        kept = [
            part.strip()
            for part in value.decode("latin-1").split(";")
            if part.strip() and not part.strip().startswith(("charter_proxy_session=", "charter_proxy_login="))
        ]
        return "; ".join(kept).encode("latin-1") if kept else None

    @staticmethod
    def session_token(scope) -> str | None:
        """The access token kept in the session cookie, if any."""
        for key, value in scope["headers"]:
            if key == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    name, _, content = part.strip().partition("=")
                    if name == SESSION_COOKIE and content:
                        return content
        return None

    def start(self, scope) -> tuple[str, str]:
        """(the authorization URL to redirect to, the login cookie to set) for this request."""
        verifier = secrets.token_urlsafe(48)
        state = secrets.token_urlsafe(24)
        path = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            path += b"?" + scope["query_string"]
        expires = int(time.time()) + LOGIN_TTL
        carried = {"state": state, "verifier": verifier, "to": path.decode("latin-1"), "exp": expires}
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
        cookie = self._cookie(LOGIN_COOKIE, self._sign(carried), LOGIN_TTL, path=CALLBACK)
        return f"{self.charter_url}/oauth/authorize?{urlencode(query)}", cookie

    async def callback(self, scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The answer to `/_charter/callback`: a redirect with the session cookie, or 400 saying why not."""
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        carried = self._carried(scope)
        if carried is None:
            return _text(400, "the sign-in expired or was not started here: try again")
        if "error" in query:
            return _text(403, f"sign-in refused: {query['error'][:100]}")
        if not hmac.compare_digest(query.get("state", ""), carried["state"]) or not query.get("code"):
            return _text(400, "the sign-in's state does not match: try again")
        token, lifetime = await self._exchange(query["code"], carried["verifier"])
        if token is None:
            return _text(400, "Charter did not give a token for this sign-in: try again")
        to = carried["to"] if carried["to"].startswith("/") and not carried["to"].startswith("//") else "/"
        headers = [
            (b"location", to.encode("latin-1")),
            (b"set-cookie", self._cookie(SESSION_COOKIE, token, lifetime).encode()),
            (b"set-cookie", self._cookie(LOGIN_COOKIE, "", 0, path=CALLBACK).encode()),
            (b"cache-control", b"no-store"),
        ]
        return 303, headers, b""

    # --- helpers -------------------------------------------------------------------------------

    async def _exchange(self, code: str, verifier: str) -> tuple[str | None, int]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(f"{self.charter_url}/oauth/token", data=form)
        except httpx.HTTPError:
            return None, 0
        if response.status_code != 200:
            return None, 0
        answer = response.json()
        return answer.get("access_token"), int(answer.get("expires_in", 300))

    def _sign(self, value: dict) -> str:
        payload = _b64(orjson.dumps(value))
        mac = _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())
        return f"{payload}.{mac}"

    def _carried(self, scope) -> dict | None:
        text = None
        for key, value in scope["headers"]:
            if key == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    name, _, content = part.strip().partition("=")
                    if name == LOGIN_COOKIE:
                        text = content
        if not text or "." not in text:
            return None
        payload, mac = text.rsplit(".", 1)
        expected = _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            carried = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(carried, dict) or carried.get("exp", 0) < time.time():
            return None
        return carried

    def _cookie(self, name: str, value: str, max_age: int, path: str = "/") -> str:
        cookie = f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax"
        return cookie + "; Secure" if self.secure else cookie


def _text(status: int, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = message.encode()
    return status, [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")], body
