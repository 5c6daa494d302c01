"""OpenID AuthZEN Authorization API 1.0 over the decision engine: translation only, no rules.

Mapping to Charter:

- subject `{"type": "user"|"service"|"partner", "id": ...}`; `properties` are ignored (the directory is the truth);
- action `{"name": ...}`;
- resource `{"type": T, "id": I}` names the resource `T:I` (or just `I` when T is `resource`, or when I
  already starts with `T:`); `properties` are the resource's attributes for this request;
- context `mfa` (bool) or `amr` (a list with any of `policy.request.MFA_METHODS`), `ip`, `time` (RFC 3339),
  `scopes` (a list) or `scope` (space-separated).

Unknown fields are ignored, as the specification requires of receivers (§ JSON Serialization);
a missing or mistyped required field is a 400 naming it. A decision's `context` carries the deciding
clause, the charter version and the reasons. The shapes are written down in docs/authzen.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from charter.policy.decision import Decision
from charter.policy.request import MFA_METHODS, Context, Request
from charter.web.errors import bad_request

SUBJECT_TYPES = frozenset({"user", "service", "partner"})
EVALUATION_KEYS = ("subject", "action", "resource", "context")
SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")


def json_object(value: object, field: str) -> Mapping:
    if not isinstance(value, dict):
        raise bad_request(f"{field} must be a JSON object", field)
    return value


def text(entity: Mapping, key: str, field: str) -> str:
    value = entity.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"{field}.{key} must be a non-empty string", f"{field}.{key}")
    return value


def resource_name(resource_type: str, resource_id: str) -> str:
    if resource_type == "resource" or resource_id.startswith(resource_type + ":"):
        return resource_id
    return f"{resource_type}:{resource_id}"


def resource_id(resource_type: str, name: str) -> str | None:
    """The AuthZEN id of the resource `name` as a resource of `resource_type`; None when it is not of that type.

    The inverse of `resource_name`: `db:prod/orders` is `{"type": "db", "id": "prod/orders"}`, and any name
    is `{"type": "resource", "id": name}`.
    """
    if resource_type == "resource":
        return name
    prefix = resource_type + ":"
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def resource_properties(resource: Mapping, field: str) -> Mapping:
    properties = resource.get("properties")
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise bad_request(f"{field}.properties must be a JSON object", f"{field}.properties")
    return properties


def to_request(body: Mapping, field: str = "") -> Request:
    """A Charter request from an AuthZEN evaluation object; raises ApiError(400) naming the bad field."""
    # The hot path: a well-formed evaluation (nearly every one) is checked in one go, without building the
    # field names; anything else goes on to the checks below, which name the field at fault.
    subject, action, resource = body.get("subject"), body.get("action"), body.get("resource")
    if type(subject) is dict and type(action) is dict and type(resource) is dict and "properties" not in resource:
        subject_type, subject_id, name = subject.get("type"), subject.get("id"), action.get("name")
        resource_type, resource_id_ = resource.get("type"), resource.get("id")
        if (
            type(subject_type) is str
            and type(subject_id) is str
            and type(name) is str
            and type(resource_type) is str
            and type(resource_id_) is str
            and subject_type
            and subject_id
            and name
            and resource_type
            and resource_id_
        ):
            context = context_of(body.get("context"), f"{field}.context" if field else "context", {})
            return Request(subject_id, name, resource_name(resource_type, resource_id_), context, subject_type)
    prefix = f"{field}." if field else ""
    subject = json_object(body.get("subject"), prefix + "subject")
    action = json_object(body.get("action"), prefix + "action")
    resource = json_object(body.get("resource"), prefix + "resource")
    subject_type = text(subject, "type", prefix + "subject")
    subject_id = text(subject, "id", prefix + "subject")
    name = text(action, "name", prefix + "action")
    resource_type = text(resource, "type", prefix + "resource")
    resource_id_ = text(resource, "id", prefix + "resource")
    properties = resource_properties(resource, prefix + "resource")
    context = context_of(body.get("context"), prefix + "context", properties)
    return Request(subject_id, name, resource_name(resource_type, resource_id_), context, subject_type)


def context_of(value: object, field: str, resource_properties: Mapping) -> Context:
    """A Charter context from an AuthZEN `context` object, with the resource's `properties` as its attributes."""
    if value is None:
        return Context(resource_attributes=resource_properties) if resource_properties else Context()
    context = json_object(value, field)
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
        "reasons": list(decision.reasons),
    }
    if decision.reasons:
        context["reason_admin"] = {"en": "; ".join(decision.reasons)}
    if decision.obligations:
        context["obligations"] = list(decision.obligations)
    if decision.eligible is not None:
        context["eligible_clause"] = decision.eligible
    if decision.grant is not None:
        context["grant"] = decision.grant
    return {"decision": decision.allowed, "context": context}


def evaluation_items(body: Mapping) -> list | None:
    """The `evaluations` array; None when it is absent or empty (then the request is one evaluation)."""
    items = body.get("evaluations")
    if items is None:
        return None
    if not isinstance(items, list):
        raise bad_request("evaluations must be a JSON array", "evaluations")
    return items or None


def merged(defaults: Mapping, item: object, index: int) -> Mapping:
    """An `evaluations` item with the request-level defaults filled in (an item's own value wins)."""
    if not defaults and type(item) is dict:
        return item  # nothing to fill in (to_request reads only EVALUATION_KEYS)
    entry = json_object(item, f"evaluations[{index}]")
    return {key: entry.get(key, defaults.get(key)) for key in EVALUATION_KEYS if key in entry or key in defaults}


def semantic(options: object) -> str:
    if options is None:
        return "execute_all"
    value = json_object(options, "options").get("evaluations_semantic", "execute_all")
    if value not in SEMANTICS:
        raise bad_request(
            f"options.evaluations_semantic must be one of {', '.join(SEMANTICS)}", "options.evaluations_semantic"
        )
    return value
