"""OpenID AuthZEN Authorization API 1.0 over the decision engine: translation only, no rules.

Mapping to Charter:

- subject `{"type": "user"|"service"|"partner", "id": ...}`; `properties` are ignored (the directory is the truth);
- action `{"name": ...}`;
- resource `{"type": T, "id": I}` names the resource `T:I` (or just `I` when T is `resource`, or when I
  already starts with `T:`); `properties` are the resource's attributes for this request;
- context `mfa` (bool) or `amr` (a list containing `mfa`, `otp` or `hwk`), `ip`, `time` (RFC 3339),
  `scopes` (a list) or `scope` (space-separated).

A decision's `context` carries the deciding clause, the charter version and the reasons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from charter.policy.decision import Decision
from charter.policy.request import Context, Request
from charter.web.errors import bad_request

SUBJECT_TYPES = frozenset({"user", "service", "partner"})
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "swk", "sms", "fido"})
ENTITY_KEYS = frozenset({"type", "id", "properties"})
ACTION_KEYS = frozenset({"name", "properties"})
EVALUATION_KEYS = frozenset({"subject", "action", "resource", "context"})
SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")


def _object(value: object, field: str) -> Mapping:
    if not isinstance(value, dict):
        raise bad_request(f"{field} must be a JSON object", field)
    return value


def _text(entity: Mapping, key: str, field: str) -> str:
    value = entity.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"{field}.{key} must be a non-empty string", f"{field}.{key}")
    return value


def _only(entity: Mapping, allowed: frozenset[str], field: str) -> None:
    for key in entity:
        if key not in allowed:
            raise bad_request(
                f"{field} has an unknown field {key!r} (expected {', '.join(sorted(allowed))})", f"{field}.{key}"
            )


def resource_name(resource_type: str, resource_id: str) -> str:
    if resource_type == "resource" or resource_id.startswith(resource_type + ":"):
        return resource_id
    return f"{resource_type}:{resource_id}"


def to_request(body: Mapping, field: str = "") -> Request:
    """A Charter request from an AuthZEN evaluation object; raises ApiError(400) naming the bad field."""
    prefix = f"{field}." if field else ""
    _only(body, EVALUATION_KEYS, field or "request")
    subject = _object(body.get("subject"), prefix + "subject")
    action = _object(body.get("action"), prefix + "action")
    resource = _object(body.get("resource"), prefix + "resource")
    _only(subject, ENTITY_KEYS, prefix + "subject")
    _only(action, ACTION_KEYS, prefix + "action")
    _only(resource, ENTITY_KEYS, prefix + "resource")
    subject_type = _text(subject, "type", prefix + "subject")
    subject_id = _text(subject, "id", prefix + "subject")
    name = _text(action, "name", prefix + "action")
    resource_type = _text(resource, "type", prefix + "resource")
    resource_id = _text(resource, "id", prefix + "resource")
    properties = resource.get("properties") or {}
    if not isinstance(properties, dict):
        raise bad_request(f"{prefix}resource.properties must be a JSON object", f"{prefix}resource.properties")
    context = _context(body.get("context"), prefix + "context", properties)
    return Request(subject_id, name, resource_name(resource_type, resource_id), context, subject_type)


def _context(value: object, field: str, resource_properties: Mapping) -> Context:
    if value is None:
        return Context(resource_attributes=resource_properties) if resource_properties else Context()
    context = _object(value, field)
    mfa = context.get("mfa", False)
    if not isinstance(mfa, bool):
        raise bad_request(f"{field}.mfa must be true or false", f"{field}.mfa")
    amr = context.get("amr")
    if amr is not None:
        if not isinstance(amr, list) or not all(isinstance(m, str) for m in amr):
            raise bad_request(f"{field}.amr must be a list of strings", f"{field}.amr")
        mfa = mfa or bool(MFA_METHODS.intersection(amr))
    ip = context.get("ip")
    if ip is not None and not isinstance(ip, str):
        raise bad_request(f"{field}.ip must be a string", f"{field}.ip")
    time = None
    if "time" in context:
        try:
            time = dt.datetime.fromisoformat(str(context["time"]).replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"{field}.time must be an RFC 3339 time", f"{field}.time") from None
        if time.tzinfo is None:
            raise bad_request(f"{field}.time needs a zone offset (such as Z)", f"{field}.time")
    scopes = context.get("scopes")
    if scopes is None and isinstance(context.get("scope"), str):
        scopes = context["scope"].split()
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
        raise bad_request(f"{field}.scopes must be a list of strings", f"{field}.scopes")
    return Context(mfa=mfa, ip=ip, time=time, scopes=frozenset(scopes or ()), resource_attributes=resource_properties)


def decision_json(decision: Decision, revision: int) -> dict:
    context: dict[str, object] = {
        "charter": decision.charter,
        "version": decision.version,
        "clause": decision.clause,
        "basis": decision.basis.value,
        "revision": revision,
    }
    if decision.reasons:
        context["reasons"] = list(decision.reasons)
        context["reason_admin"] = {"en": "; ".join(decision.reasons)}
    if decision.obligations:
        context["obligations"] = list(decision.obligations)
    if decision.eligible is not None:
        context["eligible_clause"] = decision.eligible
    if decision.grant is not None:
        context["grant"] = decision.grant
    return {"decision": decision.allowed, "context": context}


def merged(defaults: Mapping, item: object, index: int) -> Mapping:
    """An `evaluations` item with the request-level defaults filled in (an item's own value wins)."""
    entry = _object(item, f"evaluations[{index}]")
    return {key: entry.get(key, defaults.get(key)) for key in EVALUATION_KEYS if key in entry or key in defaults}


def semantic(options: object) -> str:
    if options is None:
        return "execute_all"
    value = _object(options, "options").get("evaluations_semantic", "execute_all")
    if value not in SEMANTICS:
        raise bad_request(
            f"options.evaluations_semantic must be one of {', '.join(SEMANTICS)}", "options.evaluations_semantic"
        )
    return value
