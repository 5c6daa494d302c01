"""Charter's own access tokens presented to its API: as the caller, and as the subject of an AuthZEN decision.

- `Authorization: Bearer <access token>`: a person signed in through OpenID Connect calls the admin and
  access APIs as themselves (`caller_from_token`); the charter authorises them like any caller.
- `"subject": {"type": "token", "id": "<access token>"}` in an AuthZEN evaluation (or in `evaluations`'
  defaults and items): the decision is asked for the token's subject, with `mfa` from its `amr` and the
  scopes it carries; whatever the PEP put in `context.mfa`, `context.amr` or `context.scopes` is replaced
  (`resolve`).

Verification is `engine.tokens` (charter.oidc.verify): memory only. A valid token costs no store access; a
refused one is audited (`token.refused`, target the subject the token claims, never the token), written
off the event loop. The decision log is given the question as decided (the verified subject and context),
never the token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import anyio
import orjson
from starlette.background import BackgroundTask
from starlette.responses import Response

from charter.audit.trail import REQUEST_ID
from charter.clients import Caller
from charter.metrics import DECISIONS
from charter.oidc.verify import InvalidToken, VerifiedToken, claimed
from charter.policy.decision import Basis, Decision
from charter.web import authzen
from charter.web.errors import ApiError, bad_request

TOKEN = "token"  # the AuthZEN subject type of a subject given by an access token
REFUSED_SUBJECT = {"type": TOKEN, "id": "refused"}  # what the decision log is told of a refused token's subject
ANONYMOUS = "anonymous (bearer token)"


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith("chr_")


# --- the caller ------------------------------------------------------------------------------------


class TokenRefused(ApiError):
    """A 401 for a bearer access token that does not verify; its answer audits the refusal once sent."""

    def __init__(self, engine, token: str, error: InvalidToken):
        super().__init__(
            401,
            "unauthorized",
            f"the access token is not valid: {error.reason}",
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{error.reason}"'},
        )
        self.audit = _refusal(engine, token, error, ANONYMOUS, "api")

    def response(self) -> Response:
        response = super().response()
        response.background = BackgroundTask(self.audit)  # in a worker thread, after the answer is sent
        return response


def caller_from_token(engine, token: str) -> Caller:
    """The caller an access token speaks for; raises TokenRefused (a 401) when it does not verify."""
    try:
        verified = engine.tokens.verify(token, engine.clock.now())
    except InvalidToken as error:
        raise TokenRefused(engine, token, error) from None
    return Caller(verified.client_id, verified.subject_type, verified.subject, verified.mfa)


# --- the AuthZEN subject ---------------------------------------------------------------------------


def mentions_token(raw: bytes, body: Mapping) -> bool:
    """Whether an AuthZEN body gives a subject by token. The byte search keeps the decision hot path as it was:
    bodies without the word pay one memchr-speed scan."""
    if b'"token"' not in raw:
        return False
    if _is_token(body.get("subject")):
        return True
    items = body.get("evaluations")
    return isinstance(items, list) and any(type(item) is dict and _is_token(item.get("subject")) for item in items)


def _is_token(subject: object) -> bool:
    return type(subject) is dict and subject.get("type") == TOKEN


class Resolver:
    """Resolves the token subjects of one request: each token verified once, each refusal audited once."""

    def __init__(self, engine, caller: Caller):
        self.engine = engine
        self.caller = caller
        self.now = engine.clock.now()
        self._seen: dict[tuple[str, str | None], VerifiedToken | InvalidToken] = {}
        self.refusals: list[Callable[[], None]] = []

    def resolve(self, evaluation: Mapping, field: str) -> tuple[Mapping, InvalidToken | None]:
        """The evaluation as it is decided: the token's subject, its mfa and scopes; or a refusal."""
        subject = evaluation.get("subject")
        if not _is_token(subject):
            return evaluation, None
        assert isinstance(subject, dict)
        token = subject.get("id")
        prefix = f"{field}." if field else ""
        if not isinstance(token, str) or not token:
            raise bad_request(f"{prefix}subject.id must be the access token", f"{prefix}subject.id")
        properties = subject.get("properties")
        audience = properties.get("audience") if isinstance(properties, dict) else None
        if audience is not None and not isinstance(audience, str):
            raise bad_request(
                f"{prefix}subject.properties.audience must be a string", f"{prefix}subject.properties.audience"
            )
        key = (token, audience)
        outcome = self._seen.get(key)
        if outcome is None:
            try:
                outcome = self.engine.tokens.verify(token, self.now, audience)
            except InvalidToken as error:
                outcome = error
                self.refusals.append(_refusal(self.engine, token, error, self.caller.describe(), "authzen"))
            self._seen[key] = outcome
        if isinstance(outcome, InvalidToken):
            return {**evaluation, "subject": REFUSED_SUBJECT}, outcome
        context = evaluation.get("context")
        if context is None:
            context = {}
        elif isinstance(context, dict):
            context = {key: value for key, value in context.items() if key not in ("mfa", "amr", "scope", "scopes")}
        else:
            return evaluation, None  # not an object: to_request answers the 400 naming it
        context["mfa"] = outcome.mfa
        if outcome.scope:
            context["scopes"] = list(outcome.scope)
        return {
            **evaluation,
            "subject": {"type": outcome.subject_type, "id": outcome.subject},
            "context": context,
        }, None

    async def audit(self) -> None:
        for write in self.refusals:
            await anyio.to_thread.run_sync(write)


def refused_decision(snapshot, error: InvalidToken) -> Decision:
    return Decision(False, Basis.SUBJECT, snapshot.charter, snapshot.version.version, reasons=(_reason(error),))


def _reason(error: InvalidToken) -> str:
    return f"invalid token: {error.reason}"


async def evaluate(engine, record, caller: Caller, body: Mapping, many: bool) -> Response:
    """`/access/v1/evaluation` (many=False) or `/access/v1/evaluations` for a body with a token subject."""
    resolver = Resolver(engine, caller)
    snapshot = engine.snapshot
    items = authzen.evaluation_items(body) if many else None
    if items is None:
        asked = {key: body[key] for key in authzen.EVALUATION_KEYS if key in body}
        evaluations = [resolver.resolve(asked, "")]
    else:
        defaults = {key: body[key] for key in authzen.EVALUATION_KEYS if key in body}
        semantic = authzen.semantic(body.get("options"))
        evaluations = [
            resolver.resolve(authzen.merged(defaults, item, i), f"evaluations[{i}]") for i, item in enumerate(items)
        ]
    results, logged, keep = [], [], False
    for i, (evaluation, refused) in enumerate(evaluations):
        if refused is None:
            decision = DECISIONS.evaluate(
                snapshot, authzen.to_request(evaluation, f"evaluations[{i}]" if items else "")
            )
        else:
            authzen.to_request(evaluation, f"evaluations[{i}]" if items else "")  # the other fields must be sound
            decision = refused_decision(snapshot, refused)
        keep = keep or not decision.allowed or decision.grant is not None
        results.append(authzen.decision_json(decision, snapshot.revision))
        logged.append(evaluation)
        if items is not None and (
            (semantic == "deny_on_first_deny" and not decision.allowed)
            or (semantic == "permit_on_first_permit" and decision.allowed)
        ):
            break
    await resolver.audit()
    if items is None:
        answer, question = orjson.dumps(results[0]), orjson.dumps(logged[0])
    else:
        answer = orjson.dumps({"evaluations": results})
        question = orjson.dumps({"evaluations": [dict(e) for e in logged]})
    if record is not None:
        record(question, answer, len(results), keep, caller.client_id, REQUEST_ID.get())
    return Response(answer, media_type="application/json")


# --- auditing refusals -----------------------------------------------------------------------------


def _refusal(engine, token: str, error: InvalidToken, actor: str, presented_to: str) -> Callable[[], None]:
    """The audit write for a refused token, to run off the event loop: target the subject it claims (or its
    id), details what it claims about itself, never the token."""
    said = claimed(token)
    if "sub" in said:
        target = f"{said.get('subject_type', 'user')}:{said['sub']}"
    else:
        target = f"token:{said.get('jti', 'unreadable')}"
    details = {"reason": error.reason, "message": str(error), "presented_to": presented_to, "claimed": said}
    request_id = REQUEST_ID.get()

    def write() -> None:
        token_ = REQUEST_ID.set(request_id)
        try:
            engine.audit.record_alone(engine.sessions, actor, "token.refused", target, "denied", details=details)
        finally:
            REQUEST_ID.reset(token_)

    return write
