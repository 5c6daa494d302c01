"""The decision path of every enforcement point: an HTTP request in, allow or the refusal to answer out.

    gate = Gate(routes, replica, reporter=...)
    outcome = gate.check("GET", "/todos/7", authorization_header, client_ip)
    outcome.allowed, outcome.status (200, 400, 401, 403 or 503), outcome.body(), outcome.identity_headers()

In order: the path is refused if unsafe (400); the route and method give the action and resource (none:
403, deny by default); a public route is allowed with no token; Charter must have answered the replica
recently (else 503: an enforcement point that cannot see revocations denies); the bearer token must be a
valid Charter access token (else 401 with the reason); then the replica decides, through the decision
cache, with the token's MFA and scopes and the client's address, and resource attributes from
`attributes(match)` when given. Any exception on the way is a 503 deny. Each decision made (401s and 503s
included) is handed to the reporter for the decision log; tokens are never logged or reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from charter.enforce.cache import DecisionCache
from charter.enforce.routes import Match, RouteMap, unsafe_path
from charter.oidc.verify import InvalidToken, VerifiedToken
from charter.policy.decision import Basis, Decision
from charter.policy.request import Context, Request

log = logging.getLogger("charter.enforce")
Attributes = Callable[[Match], Mapping[str, object] | None]
IDENTITY_HEADERS = (
    "x-charter-subject",
    "x-charter-subject-type",
    "x-charter-client",
    "x-charter-mfa",
    "x-charter-clause",
    "x-charter-revision",
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the gate decided about one request."""

    allowed: bool
    status: int  # 200 to go on; otherwise the status to answer with
    reason: str
    match: Match | None = None
    token: VerifiedToken | None = None
    decision: Decision | None = None
    revision: int = -1

    @property
    def clause(self) -> int | None:
        return self.decision.clause if self.decision is not None else None

    def body(self) -> bytes:
        """The refusal as JSON: error code, message, and the deciding clause and reasons when there was one."""
        error = {400: "bad_request", 401: "unauthorized", 403: "forbidden"}.get(self.status, "unavailable")
        answer: dict[str, object] = {"error": error, "message": self.reason}
        if self.decision is not None:
            answer["clause"] = self.decision.clause
            answer["basis"] = self.decision.basis.value
            answer["reasons"] = list(self.decision.reasons)
            answer["charter"] = self.decision.charter
            answer["version"] = self.decision.version
            if self.decision.eligible is not None:
                answer["eligible_clause"] = self.decision.eligible
        if self.revision >= 0:
            answer["revision"] = self.revision
        return orjson.dumps(answer)

    def identity_headers(self) -> list[tuple[bytes, bytes]]:
        """For the upstream: who the caller is and what decided (the proxy removes any such header sent in)."""
        token, decision = self.token, self.decision
        if token is None:
            return []
        headers = [
            (b"x-charter-subject", token.subject.encode()),
            (b"x-charter-subject-type", token.subject_type.encode()),
            (b"x-charter-client", token.client_id.encode()),
            (b"x-charter-mfa", b"true" if token.mfa else b"false"),
            (b"x-charter-revision", str(self.revision).encode()),
        ]
        if decision is not None and decision.clause is not None:
            headers.append((b"x-charter-clause", str(decision.clause).encode()))
        return headers


class Gate:
    """Routes + a local replica (+ a decision cache and a reporter): the enforcement decision, in memory."""

    def __init__(self, routes: RouteMap, replica, *, cache: DecisionCache | None = None, reporter=None):
        self.routes = routes
        self.replica = replica  # charter.sdk.replica.LocalReplica (or anything with its shape)
        self.cache = cache if cache is not None else DecisionCache()
        self.reporter = reporter  # charter.enforce.reporter.Reporter, or None
        replica.on_change(self.cache.observe)
        self.cache.observe(replica.revision)

    def check(
        self,
        method: str,
        path: str,
        authorization: str | None,
        client_ip: str | None = None,
        *,
        raw_path: bytes | None = None,
        attributes: Attributes | None = None,
        request_id: str | None = None,
    ) -> Outcome:
        try:
            outcome = self._check(method, path, authorization, client_ip, raw_path, attributes)
        except Exception as error:  # deny on anything unexpected, and say so without details
            log.exception("enforcement failed, denying: %s", type(error).__name__)
            outcome = Outcome(False, 503, "the enforcement point failed: denied")
        reporter = self.reporter
        if reporter is not None and outcome.match is not None and not outcome.match.route.public:
            reporter.report(outcome, client_ip, request_id)
        return outcome

    def _check(self, method, path, authorization, client_ip, raw_path, attributes) -> Outcome:
        unsafe = unsafe_path(path, raw_path)
        if unsafe is not None:
            return Outcome(False, 400, f"refused: {unsafe}")
        match = self.routes.match(method, path)
        if match is None:
            return Outcome(False, 403, f"no route is declared for {path}: denied by default")
        if match.route.public:
            return Outcome(True, 200, "a public route", match)
        if match.action is None:
            return Outcome(False, 403, f"{method} is not declared for {match.route.path}: denied by default", match)
        replica = self.replica
        if not replica.fresh:
            return Outcome(False, 503, "Charter has not been reachable: denied until it is", match)
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return Outcome(False, 401, "a Charter access token is required (Authorization: Bearer)", match)
        try:
            token = replica.verify(credential)
        except InvalidToken as error:
            return Outcome(False, 401, f"invalid token: {error.reason}", match)
        snapshot = replica.snapshot  # one snapshot for the whole decision
        decision = self._decide(snapshot, token, match, client_ip, attributes)
        if decision.allowed:
            return Outcome(True, 200, "allowed", match, token, decision, snapshot.revision)
        return Outcome(False, 403, _denial(decision), match, token, decision, snapshot.revision)

    def _decide(self, snapshot, token: VerifiedToken, match: Match, client_ip, attributes) -> Decision:
        given = attributes(match) if attributes is not None else None
        cache = self.cache
        cache.observe(snapshot.revision)
        key = None
        now = snapshot.clock.now().timestamp()
        if not given:
            key = (token.subject_type, token.subject, match.action, match.resource, token.mfa, token.scope, client_ip)
            cached = cache.get(key, now)
            if cached is not None:
                return cached
        context = Context(mfa=token.mfa, ip=client_ip, scopes=frozenset(token.scope), resource_attributes=given or {})
        decision = snapshot.evaluate(Request(token.subject, match.action, match.resource, context, token.subject_type))
        if key is not None:
            cache.put(key, decision, snapshot.revision, now)
        return decision


def _denial(decision: Decision) -> str:
    """The 403's message: `denied by clause 4: <reasons>`, `denied by default: <reasons>`, `denied: <reasons>`."""
    if decision.clause is not None:
        head = f"denied by clause {decision.clause}"
    else:
        head = "denied by default" if decision.basis is Basis.DEFAULT else "denied"
    reasons = "; ".join(decision.reasons)
    return f"{head}: {reasons}" if reasons else head
