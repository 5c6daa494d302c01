"""Export and search the audit chains: JSON Lines in Charter's own shape, or OCSF events.

Two formats, one JSON object a line, records in sequence order:

- *jsonl*: each record as stored (`record_json`): chain, seq, time (RFC 3339, UTC, microseconds),
  actor, action, target, outcome, charter_version, clause, request_id, details, prev_hash, hash.
  That is all a record's hash covers, so an export re-verifies offline: rebuild
  `charter.audit.chain.Entry` and `Record` from each line and call `chain.verify` (or hash
  `chain.canonical(seq, entry, prev_hash)` with SHA-256 and compare with `hash`). An export of a
  time window starts after the chain's beginning: anchor it at (first seq - 1, first prev_hash).
- *ocsf*: each record as an OCSF 1.x event (`ocsf_event`, see the class choices there), with the
  whole jsonl record under `unmapped`, so nothing is lost and an OCSF export re-verifies the same way.

Exports stream: `records_between` finds the seq bounds of the time window by the time index
(`store.time_span`), then walks that part of the chain in batches; nothing holds the whole chain.
`search_query` is the admin API's search (`GET /admin/v1/audit/{chain}`): filters, newest first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import orjson
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from charter.audit import store
from charter.audit.chain import Record

FORMATS = ("jsonl", "ocsf")
OCSF_VERSION = "1.4.0"  # Group Management's Create/Delete (1.1.0) without a user (1.4.0); the Security Control profile
PRODUCT = {"name": "Charter", "vendor_name": "Charter"}
FILTERS = ("since", "until", "actor", "action", "target", "outcome", "request_id")


# --- times -------------------------------------------------------------------------------------------


def parse_instant(text: str) -> dt.datetime:
    """A date (00:00 UTC that day) or an ISO 8601 time with a zone, in UTC; ValueError says what is wrong."""
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2026-06-01) or an ISO 8601 time (2026-06-01T10:00:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no zone: add Z or an offset such as +02:00")
    return moment.astimezone(dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    """UTC with microseconds and a Z: the form the chain hashes (`chain.canonical`)."""
    return store.aware(moment).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_ms(moment: dt.datetime) -> int:
    return (store.aware(moment) - EPOCH) // dt.timedelta(milliseconds=1)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- the jsonl shape ------------------------------------------------------------------------------------


def record_json(chain: str, record: Record) -> dict:
    """One record as exported and as the search API answers: every field its hash covers, and the hashes."""
    entry = record.entry
    return {
        "chain": chain,
        "seq": record.seq,
        "time": rfc3339(entry.time),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "charter_version": entry.charter_version,
        "clause": entry.clause,
        "request_id": entry.request_id,
        "details": dict(entry.details),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


# --- OCSF ---------------------------------------------------------------------------------------------------
# Class choices (OCSF 1.x, schema.ocsf.io):
#
# Decisions -> API Activity (6003, category Application Activity) with the Security Control profile.
#   A decision record is a PEP asking whether a subject may do an action on a resource, and the answer.
#   Authorize Session (3003) does not fit: it reports the privileges, groups or roles assigned to a new
#   logon session and requires `user` plus one of those; a decision assigns nothing and has no session.
#   Web Resource Access Activity (6004, Access Grant/Deny) is deprecated in favour of classes carrying the
#   Security Control profile. API Activity is the class for "an identity called an operation on a
#   resource" (CloudTrail's shape): activity_id is the asked action (read, write, delete...), and the
#   profile's action_id/disposition_id (Allowed/Denied, Allowed/Blocked), `policy` (the deciding
#   clause) and `authorizations` carry the decision itself.
# Audit records:
#   changes to users, services and partners          -> Account Change (3001): Create, Enable, Disable, Delete
#   changes to groups and their members               -> Group Management (3006): Create, Delete, Add/Remove User
#   everything else (resources, the charter, grants,
#   API clients, pruning, signing keys, refused reads) -> Entity Management (3004): Create, Read, Update, Delete
#   (all three in category Identity & Access Management). An update OCSF has no activity for (a user's
#   owner changed) is activity 99 Other, named by `activity_name`.

IAM, APPLICATION = (3, "Identity & Access Management"), (6, "Application Activity")
ACCOUNT_CHANGE = (3001, "Account Change", IAM)
ENTITY_MANAGEMENT = (3004, "Entity Management", IAM)
GROUP_MANAGEMENT = (3006, "Group Management", IAM)
API_ACTIVITY = (6003, "API Activity", APPLICATION)
OTHER = 99

ACCOUNT_ACTIVITIES = {1: "Create", 2: "Enable", 5: "Disable", 6: "Delete"}
GROUP_ACTIVITIES = {3: "Add User", 4: "Remove User", 5: "Delete", 6: "Create"}
CRUD_ACTIVITIES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete"}  # API Activity and Entity Management alike
# The action a decision was asked about -> API Activity's CRUD activity.
ASKED = {
    "create": 1,
    "read": 2,
    "get": 2,
    "list": 2,
    "view": 2,
    "write": 3,
    "update": 3,
    "manage": 3,
    "delete": 4,
}
IDENTITY_KINDS = {"users": "user", "services": "service", "partners": "partner"}


def ocsf_event(chain: str, record: Record) -> dict:
    """One record as an OCSF event; `unmapped` holds the whole jsonl record."""
    entry = record.entry
    kind, activity_id, activity_name, event = (_decision_event if chain == store.DECISIONS else _audit_event)(record)
    class_uid, class_name, (category_uid, category_name) = kind
    success = entry.outcome in ("ok", "allow")
    failure = entry.outcome in ("denied", "deny")
    status_id = 1 if success else 2 if failure else OTHER
    head = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "time": epoch_ms(entry.time),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": status_id,
        "status": "Success" if success else "Failure" if failure else "Other",
        "message": f"{entry.actor} {entry.action} {entry.target}: {entry.outcome}",
        "metadata": {
            "version": OCSF_VERSION,
            "product": dict(PRODUCT),
            "uid": f"{chain}:{record.seq}",
            "log_name": chain,
            "original_time": rfc3339(entry.time),
            **({"correlation_uid": entry.request_id} if entry.request_id else {}),
            **({"profiles": ["security_control"]} if chain == store.DECISIONS else {}),
        },
        "actor": _actor(entry.actor, entry.details.get("pep") if chain == store.DECISIONS else None),
    }
    if status_id == OTHER:
        head["status_detail"] = entry.outcome
    return {**head, **event, "unmapped": record_json(chain, record)}


# What the class-specific part of an event is built as: (class, activity_id, activity_name, attributes).
Part = tuple[tuple, int, str, dict]


def _decision_event(record: Record) -> Part:
    entry = record.entry
    details = entry.details
    allowed = entry.outcome == "allow"
    activity_id = ASKED.get(entry.action.lower(), OTHER)
    event: dict = {
        "api": {"operation": entry.action, **({"request": {"uid": entry.request_id}} if entry.request_id else {})},
        "resources": [_resource(entry.target)],
        "action_id": 1 if allowed else 2,
        "action": "Allowed" if allowed else "Denied",
        "disposition_id": 1 if allowed else 2,
        "disposition": "Allowed" if allowed else "Blocked",
        "authorizations": [{"decision": entry.outcome, **_policy(entry.clause, entry.charter_version)}],
        **_policy(entry.clause, entry.charter_version),
    }
    reasons = details.get("reasons")
    if reasons:
        event["status_detail"] = "; ".join(map(str, reasons))  # type: ignore[call-overload]
    context = details.get("context")
    ip = context.get("ip") if isinstance(context, Mapping) else None
    if ip:
        event["src_endpoint"] = {"ip": ip}
    return API_ACTIVITY, activity_id, CRUD_ACTIVITIES.get(activity_id, entry.action), event


def _policy(clause: int | None, version: int | None) -> dict:
    if clause is None:
        return {}
    policy = {"uid": str(clause), "name": f"clause {clause}"}
    if version is not None:
        policy["version"] = str(version)
    return {"policy": policy}


def _audit_event(record: Record) -> Part:
    entry = record.entry
    operation, details = entry.action, entry.details
    scheme, _, path = entry.target.partition(":")
    section, _, name = path.partition("/")
    verb = operation.rsplit(".", 1)[-1]
    if scheme == "directory" and section in IDENTITY_KINDS and operation != "read":
        kind = IDENTITY_KINDS[section]
        activity_id = _account_activity(verb, details)
        user = {"name": name, "uid": f"{kind}:{name}", "type": kind}
        return ACCOUNT_CHANGE, activity_id, ACCOUNT_ACTIVITIES.get(activity_id, verb), {"user": user}
    if scheme == "directory" and section == "groups" and operation != "read":
        activity_id = _group_activity(operation, verb, details)
        event: dict = {"group": {"name": name, "uid": f"group:{name}"}}
        member = details.get("member")
        if isinstance(member, Mapping):
            event["user"] = {"name": member.get("name"), "uid": f"{member.get('kind')}:{member.get('name')}"}
        return GROUP_MANAGEMENT, activity_id, GROUP_ACTIVITIES.get(activity_id, verb), event
    activity_id = _entity_activity(operation, verb, details)
    entity = {"name": path or entry.target, "uid": entry.target, "type": scheme if path else None}
    entity = {key: value for key, value in entity.items() if value is not None}
    return ENTITY_MANAGEMENT, activity_id, CRUD_ACTIVITIES.get(activity_id, verb), {"entity": entity}


def _created(details: Mapping[str, object]) -> bool:
    return "before" in details and details["before"] is None


def _account_activity(verb: str, details: Mapping[str, object]) -> int:
    if verb == "delete":
        return 6
    if verb != "put":
        return OTHER
    if _created(details):
        return 1
    before, after = details.get("before"), details.get("after")
    if isinstance(before, Mapping) and isinstance(after, Mapping) and before.get("state") != after.get("state"):
        return 2 if after.get("state") == "active" else 5
    return OTHER  # another change to the account (owner, attributes, groups): OCSF has no Update here


def _group_activity(operation: str, verb: str, details: Mapping[str, object]) -> int:
    if operation.endswith("member.add"):
        return 3
    if operation.endswith("member.remove"):
        return 4
    if verb == "delete":
        return 5
    if verb == "put" and _created(details):
        return 6
    return OTHER


def _entity_activity(operation: str, verb: str, details: Mapping[str, object]) -> int:
    if verb == "read":
        return 2
    if verb in ("create", "upload") or (verb == "put" and _created(details)):
        return 1
    if verb in ("delete", "prune"):
        return 4
    if verb in ("put", "revoke", "rotate"):
        return 3
    return OTHER


def _actor(actor: str, pep: object = None) -> dict:
    """`user:alice (client 1a2b)` -> the user, and the API client (or `cli`) it acted through."""
    who, _, via = actor.partition(" (")
    kind, _, name = who.partition(":")
    found: dict = {"user": {"name": name or who, "uid": who, **({"type": kind} if name else {})}}
    via = via.rstrip(")")
    if via.startswith("client "):
        found["app_uid"] = via.removeprefix("client ")
    elif via:
        found["app_name"] = via
    if pep is not None and "app_uid" not in found:
        found["app_uid"] = str(pep)
    return found


def _resource(target: str) -> dict:
    scheme, colon, _ = target.partition(":")
    return {"uid": target, "name": target, **({"type": scheme} if colon else {})}


# --- streaming --------------------------------------------------------------------------------------------


def records_between(
    session: Session,
    chain: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    batch: int = store.READ_BATCH,
) -> Iterator[Record]:
    """The chain's records written in [since, until), in sequence order, fetched in batches."""
    first, last, count = store.time_span(session, chain, since, until)
    if not count:
        return
    yield from store.records(session, chain, after=first - 1, until=last, batch=batch, time_from=since, time_to=until)


def count_between(session: Session, chains: Iterable[str], since=None, until=None) -> int:
    return sum(store.time_span(session, chain, since, until)[2] for chain in chains)


def lines(
    session: Session,
    chains: Iterable[str],
    format: str = "jsonl",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    batch: int = store.READ_BATCH,
) -> Iterator[bytes]:
    """The export: one JSON document a line (no newline), chain after chain, each in sequence order."""
    if format not in FORMATS:
        raise ValueError(f"no export format {format!r}: expected {' or '.join(FORMATS)}")
    shape = ocsf_event if format == "ocsf" else record_json
    for chain in chains:
        for record in records_between(session, chain, since, until, batch):
            yield orjson.dumps(shape(chain, record))


# --- search ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """What a search keeps. actor, action and target match exactly, or by prefix when they end in `*`."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: str | None = None
    request_id: str | None = None

    @classmethod
    def parse(cls, values: Mapping[str, str | None]) -> Filters:
        """From query strings; raises BadFilter naming the field at fault."""
        unknown = sorted(set(values) - set(FILTERS))
        if unknown:
            raise BadFilter(unknown[0], f"no such filter: expected {', '.join(FILTERS)}")
        fields: dict[str, object] = {}
        for name, value in values.items():
            if value is None or value == "":
                continue
            if name in ("since", "until"):
                try:
                    fields[name] = parse_instant(value)
                except ValueError as error:
                    raise BadFilter(name, str(error)) from None
            else:
                fields[name] = value
        return cls(**fields)  # type: ignore[arg-type]


class BadFilter(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def search_query(chain: str, filters: Filters) -> Select:
    """The chain's rows that pass `filters`, newest first (page it with LIMIT/OFFSET)."""
    table = store.table_of(chain)
    query = select(table).order_by(table.seq.desc(), table.id.desc())
    query = query.where(*store.during(table, filters.since, filters.until))
    prefixed = ((table.actor, filters.actor), (table.action, filters.action), (table.target, filters.target))
    for column, wanted in prefixed:
        if wanted is None:
            continue
        if wanted.endswith("*"):
            query = query.where(column.startswith(wanted[:-1], autoescape=True))
        else:
            query = query.where(column == wanted)
    if filters.outcome is not None:
        query = query.where(table.outcome == filters.outcome)
    if filters.request_id is not None:
        query = query.where(table.request_id == filters.request_id)
    return query
