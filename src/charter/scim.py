"""SCIM 2.0 (RFC 7643, RFC 7644) over the directory: Users and Groups as the charter's identities and groups.

The schemas, the filter language, sorting, `attributes`/`excludedAttributes`, PATCH and the error
messages are scim2-models'; this module maps its resources to the directory and back, and writes
through `Admin` (so every change is authorised by the charter, audited, and bumps the revision).

Mapping (docs/scim.md):

- a User is an identity of kind `user`: `id` and `userName` are its name (the name the charter and the
  `directory:users/<name>` resources use, so it cannot be renamed); `active` is its state (`active`, or
  `disabled`; a `left` user stays `left` while inactive); `displayName` is its display name;
- the enterprise extension's department, manager (its value), organization, division, costCenter and
  employeeNumber are the flat identity attributes `department`, `manager`, `organization`, `division`,
  `cost_center` and `employee_number`, which charter conditions (`Users whose department is ...`) read;
- every other SCIM attribute (name, emails, externalId, phone numbers, ...) is kept as one JSON text in
  the identity attribute `scim`; the first (or primary) email is also the attribute `email`;
- a Group is a directory group: `id` and `displayName` are its name; `members` are its direct user
  members (type `User`) and the groups nested in it (type `Group`). Services and partners that are
  members are not SCIM resources: they are neither shown nor touched.

Authorisation: the SCIM action is `provision` on `directory:users/<name>` and `directory:groups/<name>`;
`manage` (for writes) and `read` (for reads) allow as well, so directory administrators can use SCIM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    Error,
    ETag,
    Filter,
    Group,
    InvalidValueException,
    ListResponse,
    Meta,
    MutabilityException,
    NotFoundException,
    Patch,
    PatchOp,
    PreconditionFailedException,
    ResourceType,
    ResponseParameters,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    UniquenessException,
    User,
)
from scim2_models.path.expressions import CompareOperator, Comparison, FilterNode, LogicalExpr, LogicalOperator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from charter.admin import Admin, Change, Invalid, _group_audit_view, _reject_cycle
from charter.clients import Caller
from charter.directory import repository
from charter.policy.decision import Decision
from charter.policy.request import Request
from charter.store.models import GroupNestingRow, GroupRow, IdentityRow, MembershipRow

USER = User[EnterpriseUser]
USER_SCHEMA = str(User.__schema__)
GROUP_SCHEMA = str(Group.__schema__)
ENTERPRISE_SCHEMA = str(EnterpriseUser.__schema__)
MAX_RESULTS = 1000  # the most resources one list answers (announced as filter.maxResults)
DEFAULT_COUNT = 100  # resources in a page when the client gives no count
SCIM_ATTRIBUTE = "scim"  # the identity/group attribute holding the other SCIM attributes, as JSON text
# enterprise extension attribute -> identity attribute (conditions read these)
ENTERPRISE_ATTRIBUTES = {
    "department": "department",
    "organization": "organization",
    "division": "division",
    "cost_center": "cost_center",
    "employee_number": "employee_number",
}
MANAGED_USER_ATTRIBUTES = (*ENTERPRISE_ATTRIBUTES.values(), "manager", "email", SCIM_ATTRIBUTE)
# core attributes that live in the row's columns, or are computed, not in the `scim` JSON
_USER_COLUMNS = ("schemas", "id", "meta", "userName", "active", "displayName", "groups", ENTERPRISE_SCHEMA)
_GROUP_COLUMNS = ("schemas", "id", "meta", "displayName", "members")

CONFIG = ServiceProviderConfig(
    documentation_uri="https://charter.example/docs/scim",
    patch=Patch(supported=True),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=MAX_RESULTS),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=True),
    etag=ETag(supported=True),
    authentication_schemes=[
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="Bearer credential",
            description="An API client credential (chr_...) or a Charter access token, "
            "acting as an identity the charter allows to provision the directory",
            primary=True,
        )
    ],
)
PROVIDER = ScimProvider(
    models=[User, EnterpriseUser, Group],
    resource_types=[ResourceType.from_resource(USER), ResourceType.from_resource(Group)],
    config=CONFIG,
)


class ProvisioningAdmin(Admin):
    """Admin whose rights checks accept the charter's `provision` action as well.

    A write (`manage`) or a read (`read`) is allowed when the charter allows that action or `provision` on
    the resource; a refusal is audited (by Admin) as a refused `provision`, which is what a SCIM caller asks.
    """

    def authorize(self, caller: Caller, action: str, resource: str, operation: str | None = None) -> Decision:
        if action in ("manage", "read"):
            decision = self.engine.snapshot.evaluate(
                Request(caller.subject, action, resource, caller.context, caller.subject_type)
            )
            if decision.allowed:
                return decision
            action = "provision"
        return super().authorize(caller, action, resource, operation)


# --- ETags ----------------------------------------------------------------------------------------


def etag_of(resource: Any) -> str:
    """A weak ETag: a hash of the resource as served (without its meta), so any change moves it."""
    body = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    body.pop("meta", None)
    return 'W/"' + hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:20] + '"'


def check_if_match(if_match: str | None, resource: Any) -> None:
    """RFC 7644 §3.14: with If-Match, the change applies only to the version named (412 otherwise)."""
    if if_match is None:
        return
    wanted = {_opaque(tag) for tag in if_match.split(",") if tag.strip()}
    if "*" in wanted:
        return
    if _opaque(resource.meta.version) not in wanted:
        raise PreconditionFailedException(detail=f"the resource is at version {resource.meta.version}")


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


# --- the service ----------------------------------------------------------------------------------


class Scim:
    """SCIM operations over the directory, as a caller; `base` is the service's URL (`.../scim/v2`)."""

    def __init__(self, admin: ProvisioningAdmin):
        self.admin = admin

    @property
    def sessions(self) -> Callable[[], Session]:
        return self.admin.engine.sessions

    # --- reads ---------------------------------------------------------------------------------

    def get(self, caller: Caller, base: str, kind: str, rid: str) -> Any:
        self.admin.authorize(caller, "read", _resource(kind, rid))
        with self.sessions() as session:
            return self._load(session, base, kind, rid)

    def search(self, caller: Caller, base: str, kind: str, request: SearchRequest) -> ListResponse:
        """One page of the resources the filter selects, sorted; filters are evaluated over the directory's rows,
        except that `userName eq` (`displayName eq` for groups) is looked up by name first."""
        self.admin.authorize(caller, "read", _resource(kind, "*"))
        with self.sessions() as session:
            name = _name_lookup(request.filter.ast if request.filter else None, kind)
            resources = self._all(session, base, kind, name)
        if request.filter is not None:
            resources = [each for each in resources if request.filter.match(each)]
        resources = request.sort(resources)
        start = request.start_index_0 or 0
        count = min(DEFAULT_COUNT if request.count is None else request.count, MAX_RESULTS)
        page = resources[start : start + count]
        model = USER if kind == "Users" else Group
        return ListResponse[model](  # type: ignore[valid-type]
            total_results=len(resources), start_index=start + 1, items_per_page=len(page), resources=page
        )

    def _load(self, session: Session, base: str, kind: str, rid: str) -> Any:
        if kind == "Users":
            row = repository.find_identity(session, "user", rid)
            if row is None:
                raise NotFoundException(detail=f'no User "{rid}"')
            return _user(row, repository.group_names_of(session, [row.id])[row.id], base)
        group = repository.find_group(session, rid)
        if group is None:
            raise NotFoundException(detail=f'no Group "{rid}"')
        return _group(session, group, base)

    def _all(self, session: Session, base: str, kind: str, name: str | None) -> list:
        if kind == "Users":
            query = select(IdentityRow).where(IdentityRow.kind == "user")
            rows = _by_name(session, query, IdentityRow.name, name)
            groups = repository.group_names_of(session, [row.id for row in rows])
            return [_user(row, groups[row.id], base) for row in rows]
        rows = _by_name(session, select(GroupRow), GroupRow.name, name)
        return [_group(session, row, base) for row in rows]

    # --- writes --------------------------------------------------------------------------------

    def create(self, caller: Caller, base: str, kind: str, payload: Mapping) -> Any:
        model = USER if kind == "Users" else Group
        resource = _validate(model, _lenient(payload, base), Context.RESOURCE_CREATION_REQUEST)
        name = resource.user_name if kind == "Users" else resource.display_name
        if not name:
            raise InvalidValueException(detail="userName is required" if kind == "Users" else "displayName is required")
        with self._writing(caller, kind, name) as change:
            taken = _by_name(change.session, *_name_query(kind), name)
            if taken:
                noun = "userName" if kind == "Users" else "displayName"
                raise UniquenessException(detail=f'{noun} "{name}" is already taken (by "{taken[0].name}")')
            self._write(change, kind, name, resource)
            written = self._load(change.session, base, kind, name)
        return written

    def replace(self, caller: Caller, base: str, kind: str, rid: str, payload: Mapping, if_match: str | None) -> Any:
        model = USER if kind == "Users" else Group
        resource = _validate(model, _lenient(payload, base), Context.RESOURCE_REPLACEMENT_REQUEST)
        return self._change(caller, base, kind, rid, if_match, lambda current: _replacing(kind, current, resource))

    def patch(self, caller: Caller, base: str, kind: str, rid: str, payload: Mapping, if_match: str | None) -> Any:
        model = USER if kind == "Users" else Group
        operations = _validate(PatchOp[model], _lenient(payload, base), Context.RESOURCE_PATCH_REQUEST)  # type: ignore[valid-type]

        def apply(current: Any) -> Any:
            patched = current.model_copy(deep=True)
            with PROVIDER:
                operations.patch(patched)
            return patched

        return self._change(caller, base, kind, rid, if_match, apply)

    def delete(self, caller: Caller, base: str, kind: str, rid: str, if_match: str | None) -> None:
        operation = "directory.user.delete" if kind == "Users" else "directory.group.delete"
        with self._writing(caller, kind, rid, operation) as change:
            check_if_match(if_match, self._load(change.session, base, kind, rid))
            if kind == "Users":
                self.admin.remove_identity(change, "user", rid)
            else:
                self.admin.remove_group(change, rid)

    def _change(self, caller: Caller, base: str, kind: str, rid: str, if_match: str | None, change) -> Any:
        """Replace `rid` with what `change` makes of its current version, if If-Match (when given) names it.

        Read, check, apply and write happen in one transaction, after the revision lock that serialises
        writers: two PATCHes with the same If-Match cannot both win, and two without it cannot lose either's
        change (each applies to what the other left)."""
        with self._writing(caller, kind, rid) as writing:
            current = self._load(writing.session, base, kind, rid)
            check_if_match(if_match, current)
            wanted = change(current)
            name = wanted.user_name if kind == "Users" else wanted.display_name
            if name != rid:
                noun = "userName" if kind == "Users" else "displayName"
                raise MutabilityException(
                    detail=f"{noun} names the identity in the charter and cannot change ({rid!r})"
                )
            self._write(writing, kind, rid, wanted)
            written = self._load(writing.session, base, kind, rid)
        return written

    def _writing(self, caller: Caller, kind: str, name: str, operation: str | None = None):
        """One audited directory change, authorised as `manage` (which provisioning callers hold as `provision`)."""
        operation = operation or ("directory.user.put" if kind == "Users" else "directory.group.put")
        return self.admin.change(caller, _resource(kind, name), operation)

    def _write(self, change: Change, kind: str, name: str, resource: Any) -> None:
        if kind == "Users":
            row = repository.find_identity(change.session, "user", name)
            self.admin.write_identity(change, "user", name, _user_fields(resource, row))
        else:
            _write_group(change, name, resource, self.admin.now())


def _write_group(change: Change, name: str, resource: Group, now: dt.datetime) -> None:
    """Create or replace a group and its SCIM members (users, nested groups)."""
    session = change.session
    row = repository.find_group(session, name)
    change.details["before"] = None if row is None else _group_audit_view(session, row, with_members=True)
    if row is None:
        row = GroupRow(name=name, owner=None, attributes={}, created_at=now)
        session.add(row)
    attributes = {k: v for k, v in (row.attributes or {}).items() if k != SCIM_ATTRIBUTE}
    extra = _extra(resource, _GROUP_COLUMNS)
    if extra:
        attributes[SCIM_ATTRIBUTE] = orjson.dumps(extra).decode()
    row.attributes = attributes
    row.updated_at = now
    session.flush()
    _set_members(session, row, resource.members or [])
    session.flush()
    change.details["after"] = _group_audit_view(session, row, with_members=True)


# --- directory rows -> resources --------------------------------------------------------------------


def _resource(kind: str, rid: str) -> str:
    return f"directory:{'users' if kind == 'Users' else 'groups'}/{rid}"


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _stored(attributes: Mapping) -> dict:
    text = attributes.get(SCIM_ATTRIBUTE)
    if not isinstance(text, str):
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _meta(resource: Any, kind: str, row: Any, base: str, rid: str) -> Any:
    resource.meta = Meta(
        resource_type=kind,
        created=_aware(row.created_at),
        last_modified=_aware(row.updated_at),
        location=f"{base}/{kind}s/{rid}",
    )
    resource.meta.version = etag_of(resource)
    return resource


def _user(row: IdentityRow, groups: list[str], base: str) -> Any:
    attributes = dict(row.attributes or {})
    data: dict[str, Any] = {k: v for k, v in _stored(attributes).items() if k not in _USER_COLUMNS}
    if "emails" not in data and isinstance(attributes.get("email"), str):
        data["emails"] = [{"value": attributes["email"], "primary": True}]
    data.update(
        schemas=[USER_SCHEMA],
        id=row.name,
        userName=row.name,
        active=row.state == "active",
        groups=[{"value": g, "$ref": f"{base}/Groups/{g}", "display": g, "type": "direct"} for g in groups],
    )
    if row.display_name:
        data["displayName"] = row.display_name
    enterprise = {
        _camel(scim): attributes[flat]
        for scim, flat in ENTERPRISE_ATTRIBUTES.items()
        if isinstance(attributes.get(flat), str)
    }
    if isinstance(attributes.get("manager"), str):
        manager = attributes["manager"]
        enterprise["manager"] = {"value": manager, "$ref": f"{base}/Users/{manager}"}
    if enterprise:
        data["schemas"].append(ENTERPRISE_SCHEMA)
        data[ENTERPRISE_SCHEMA] = enterprise
    try:
        resource = USER.model_validate(data)
    except ValidationError:  # something stored that SCIM cannot carry: serve the columns alone
        resource = USER.model_validate({k: v for k, v in data.items() if k not in _stored(attributes)})
    return _meta(resource, "User", row, base, row.name)


def _group(session: Session, row: GroupRow, base: str) -> Group:
    users = session.scalars(
        select(IdentityRow.name)
        .join(MembershipRow, MembershipRow.identity_id == IdentityRow.id)
        .where(MembershipRow.group_id == row.id, IdentityRow.kind == "user")
        .order_by(IdentityRow.name)
    )
    children = session.scalars(
        select(GroupRow.name)
        .join(GroupNestingRow, GroupNestingRow.child_id == GroupRow.id)
        .where(GroupNestingRow.parent_id == row.id)
        .order_by(GroupRow.name)
    )
    members = [{"value": n, "$ref": f"{base}/Users/{n}", "type": "User", "display": n} for n in users]
    members += [{"value": n, "$ref": f"{base}/Groups/{n}", "type": "Group", "display": n} for n in children]
    data = {k: v for k, v in _stored(row.attributes or {}).items() if k not in _GROUP_COLUMNS}
    data.update(schemas=[GROUP_SCHEMA], id=row.name, displayName=row.name, members=members)
    try:
        resource = Group.model_validate(data)
    except ValidationError:
        resource = Group.model_validate({k: v for k, v in data.items() if k in _GROUP_COLUMNS})
    return _meta(resource, "Group", row, base, row.name)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


# --- resources -> directory rows ------------------------------------------------------------------


def _extra(resource: Any, columns: tuple[str, ...]) -> dict:
    """The SCIM attributes a row has no column for (the `scim` JSON)."""
    body = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return {k: v for k, v in body.items() if k not in columns}


def _user_fields(resource: Any, row: IdentityRow | None) -> dict:
    """Admin.put_identity's fields for a user: other attributes, owner and groups of the identity stay."""
    attributes = {
        k: v for k, v in ((row.attributes if row else None) or {}).items() if k not in MANAGED_USER_ATTRIBUTES
    }
    extra = _extra(resource, _USER_COLUMNS)
    if extra:
        attributes[SCIM_ATTRIBUTE] = orjson.dumps(extra).decode()
    emails = resource.emails or []
    email = next((e for e in emails if e.primary), emails[0] if emails else None)
    if email is not None and email.value:
        attributes["email"] = str(email.value)
    enterprise = resource[EnterpriseUser]
    if enterprise is not None:
        for scim, flat in ENTERPRISE_ATTRIBUTES.items():
            value = getattr(enterprise, scim)
            if value:
                attributes[flat] = str(value)
        if enterprise.manager is not None and enterprise.manager.value:
            attributes["manager"] = enterprise.manager.value
    current = row.state if row else "active"
    if resource.active is None:
        state = current
    elif resource.active:
        state = "active"
    else:
        state = "left" if current == "left" else "disabled"
    return {
        "state": state,
        "owner": row.owner if row else None,
        "display_name": resource.display_name,
        "attributes": attributes,
    }


def _replacing(kind: str, current: Any, wanted: Any) -> Any:
    """A PUT's resource: what was sent, with the read-only attributes (id, meta, groups) of the current one."""
    wanted = wanted.model_copy()
    wanted.id, wanted.meta = current.id, current.meta
    if kind == "Users":
        if wanted.user_name and wanted.user_name.casefold() == current.user_name.casefold():
            wanted.user_name = current.user_name  # a case-insensitive attribute: the stored spelling stays
        if wanted.active is None:
            wanted.active = current.active
    elif wanted.display_name and wanted.display_name.casefold() == current.display_name.casefold():
        wanted.display_name = current.display_name
    return wanted


def _set_members(session: Session, group: GroupRow, members: list) -> None:
    """Make the group's direct user members and child groups these (other identity kinds are left as they are)."""
    values = [str(member.value or "") for member in members]
    named_users = _ids_by_name(session, select(IdentityRow).where(IdentityRow.kind == "user"), IdentityRow, values)
    named_groups = _ids_by_name(session, select(GroupRow), GroupRow, values)
    users: set[int] = set()
    children: set[int] = set()
    for i, member in enumerate(members):
        value, kind = values[i], (str(member.type) if member.type else None)
        if not value:
            raise Invalid(f"members[{i}].value", "a member needs a value")
        if kind != "Group" and value in named_users:
            users.add(named_users[value])
        elif kind != "User" and value in named_groups:
            children.add(named_groups[value])
        else:
            raise InvalidValueException(detail=f'members[{i}]: no {kind or "User or Group"} "{value}"')
    current_users = {
        m.identity_id: m
        for m in session.scalars(
            select(MembershipRow)
            .join(IdentityRow, IdentityRow.id == MembershipRow.identity_id)
            .where(MembershipRow.group_id == group.id, IdentityRow.kind == "user")
        )
    }
    for identity_id, membership in current_users.items():
        if identity_id not in users:
            session.delete(membership)
    for identity_id in users - current_users.keys():
        session.add(MembershipRow(identity_id=identity_id, group_id=group.id))
    current_children = {
        n.child_id: n for n in session.scalars(select(GroupNestingRow).where(GroupNestingRow.parent_id == group.id))
    }
    for child_id, nesting in current_children.items():
        if child_id not in children:
            session.delete(nesting)
    added = children - current_children.keys()
    for child_id in added:
        session.add(GroupNestingRow(child_id=child_id, parent_id=group.id))
    session.flush()
    for child_id in added:
        _reject_cycle(session, session.get(GroupRow, child_id))  # type: ignore[arg-type]


def _ids_by_name(session: Session, query, model, names: list[str]) -> dict[str, int]:
    """The ids of the rows `query` selects among `names` (looked up in batches, not one query per member)."""
    found: dict[str, int] = {}
    wanted = sorted(set(filter(None, names)))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = session.execute(query.with_only_columns(model.name, model.id).where(model.name.in_(chunk)))
        found.update((name, ident) for name, ident in rows)
    return found


# --- requests ---------------------------------------------------------------------------------------


def search_request(kind: str, params: Mapping[str, Any]) -> SearchRequest:
    """A SearchRequest from query parameters or a POST .search body (a bad filter is a 400 invalidFilter)."""
    model = USER if kind == "Users" else Group
    body = dict(params)
    for key in ("startIndex", "count"):
        if isinstance(body.get(key), str):
            try:
                body[key] = int(body[key])
            except ValueError:
                raise InvalidValueException(detail=f"{key} must be an integer") from None
    body.setdefault("schemas", ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"])
    return _validate(SearchRequest[model], body, Context.SEARCH_REQUEST)  # type: ignore[valid-type]


def response_parameters(kind: str, params: Mapping[str, Any]) -> ResponseParameters | None:
    wanted = {k: params[k] for k in ("attributes", "excludedAttributes") if params.get(k)}
    if not wanted:
        return None
    model = USER if kind == "Users" else Group
    return _validate(ResponseParameters[model], wanted, None)  # type: ignore[valid-type]


def _validate(model: Any, payload: Mapping, context: Context | None) -> Any:
    try:
        if context is None:
            return model.model_validate(payload)
        return model.model_validate(payload, scim_ctx=context)
    except ValidationError as error:
        raise ScimError(_first_error(error)) from None


class ScimError(Exception):
    """A SCIM Error message to answer with."""

    def __init__(self, error: Any):
        super().__init__(error.detail)
        self.error = error


def _first_error(error: ValidationError) -> Error:
    return Error.from_validation_errors(error)[0]


def _lenient(payload: Mapping, base: str) -> dict:
    """Accept what identity providers send that scim2-models reads strictly: a manager without `$ref`."""
    payload = dict(payload)
    enterprise = payload.get(ENTERPRISE_SCHEMA)
    if isinstance(enterprise, dict):
        manager = enterprise.get("manager")
        if isinstance(manager, str):
            manager = {"value": manager}
        if isinstance(manager, dict) and manager.get("value") and not manager.get("$ref"):
            enterprise = {**enterprise, "manager": {**manager, "$ref": f"{base}/Users/{manager['value']}"}}
            payload[ENTERPRISE_SCHEMA] = enterprise
    return payload


# --- finding by name ------------------------------------------------------------------------------


def _name_query(kind: str) -> tuple:
    if kind == "Users":
        return select(IdentityRow).where(IdentityRow.kind == "user"), IdentityRow.name
    return select(GroupRow), GroupRow.name


def _by_name(session: Session, query, column, name: str | None) -> list:
    """All rows, or those whose name is `name` case-insensitively (by the lower(name) index of migration 0007),
    the exact spelling first."""
    if name is None:
        return list(session.scalars(query.order_by(column)))
    # sorted here, not in SQL: an ORDER BY name leads SQLite to walk the (kind, name) index instead of
    # looking lower(name) up in its own index, a scan of every row
    rows = session.scalars(query.where(func.lower(column) == name.lower()))
    return sorted(rows, key=lambda row: (row.name != name, row.name))


def _name_lookup(node: FilterNode | None, kind: str) -> str | None:
    """The name a filter requires (`userName eq "x"`, alone or and-ed with others), to look it up directly."""
    attribute = "username" if kind == "Users" else "displayname"
    schema = USER_SCHEMA if kind == "Users" else GROUP_SCHEMA
    if isinstance(node, Comparison):
        path = node.attr_path
        if (
            node.op == CompareOperator.eq
            and path.attr.lower() == attribute
            and path.sub_attr is None
            and (path.uri is None or path.uri.lower() == schema.lower())
            and isinstance(node.value, str)
        ):
            return node.value
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        for term in node.terms:
            if (found := _name_lookup(term, kind)) is not None:
                return found
    return None
