"""The part of the charter language that Cedar can express, as a small model written out two ways.

Used by tests/test_differential_cedar.py. A `Case` (a charter, a directory and
requests) is rendered as charter text and a directory mapping for Charter, and
as a Cedar policy set, entities and requests for cedarpy. The translation works
from this model, not from Charter's parser, so a misparse shows up as a
disagreement too.

The subset: permissions and prohibitions; subjects `Members of group "g"`,
`User "u"`, `Users`, `Anyone authenticated` / `Everyone` (and `No one` in
prohibitions), each optionally narrowed by `whose department is ...`; actions;
resource patterns (literals, or prefixes ending in `*`); the conditions
`with MFA` and `when the resource's "env" is / is not / is one of ...`; and
prohibition exemptions naming any of those subjects.

The Cedar side:

* entities: `User` (attribute `department` when set; parents: its groups),
  `Group` (parents: the groups it is nested in), and one `Resource` per request
  (attributes `name`, and `env` when the request gives one), so that two requests
  for the same name with different `env` values do not clash;
* context: `{"mfa": bool}`;
* a permission is a `permit`, a prohibition a `forbid` whose exemptions become
  `unless { ... }`; a pattern `"p*"` is `resource.name like "p*"` with every `*`
  of `p` escaped, a literal is `resource.name == "..."`.

Attribute tests follow Charter's semantics for a missing attribute: `is` and
`is one of` fail, `is not` holds (nothing is not "prod").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Test:
    """`<attribute> is "v"`, `is not "v"` or `is one of "a", "b"`."""

    comparison: str  # "is" | "is not" | "is one of"
    values: tuple[str, ...]


@dataclass(frozen=True)
class Subject:
    kind: str  # "group" | "user" | "users" | "anyone"
    name: str | None = None
    whose: tuple[Test, ...] = ()  # tests on the subject's department


@dataclass(frozen=True)
class Style:
    """How a clause is written; none of it changes what it means."""

    anyone: str = "Anyone authenticated"  # or "Everyone"; "No one" for prohibitions
    quoted_attribute: bool = False  # `"department"` / `"env"` rather than the bare word
    action_joiner: str = " and "  # between the last two actions
    modifier_order: tuple[int, ...] = ()  # permutation of the modifiers (conditions, then the except phrase)
    modifier_joiner: str = ", "  # ", " | " and " | " "
    exemption_joiner: str = " or "  # " or " | ", " | " and "


@dataclass(frozen=True)
class Clause:
    prohibition: bool
    subject: Subject
    actions: tuple[str, ...]
    resources: tuple[str, ...]  # "name" or "prefix*"
    mfa: bool = False
    env: tuple[Test, ...] = ()
    exemptions: tuple[Subject, ...] = ()  # prohibitions only
    style: Style = Style()


@dataclass(frozen=True)
class User:
    id: str
    groups: tuple[str, ...] = ()
    department: str | None = None


@dataclass(frozen=True)
class Group:
    id: str
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Request:
    user: str
    action: str
    resource: str
    mfa: bool = False
    env: str | None = None


@dataclass(frozen=True)
class Case:
    clauses: tuple[Clause, ...]
    users: tuple[User, ...]
    groups: tuple[Group, ...]
    requests: tuple[Request, ...]


# --- charter text -------------------------------------------------------------------------


def charter_string(value: str) -> str:
    """A charter-language quoted string: backslash-escape the characters that would end it."""
    escaped = "".join("\\" + c if c in '"\\\u201d' else c for c in value)
    return f'"{escaped}"'


def _test_text(attribute: str, test: Test) -> str:
    values = test.values
    if test.comparison == "is one of":
        written = ", ".join(charter_string(v) for v in values[:-1])
        written = f"{written} or {charter_string(values[-1])}" if written else charter_string(values[-1])
        return f"{attribute} is one of {written}"
    return f"{attribute} {test.comparison} {charter_string(values[0])}"


def _whose_text(subject: Subject, style: Style) -> str:
    if not subject.whose:
        return ""
    attribute = '"department"' if style.quoted_attribute else "department"
    return " whose " + " and ".join(_test_text(attribute, t) for t in subject.whose)


def _subject_text(subject: Subject, style: Style, capital: bool = True) -> str:
    if subject.kind == "group":
        text = f"Members of group {charter_string(subject.name or '')}"
    elif subject.kind == "user":
        text = f"User {charter_string(subject.name or '')}"
    elif subject.kind == "users":
        text = "Users"
    else:
        text = style.anyone if style.anyone != "No one" else "Anyone authenticated"
    text += _whose_text(subject, style)
    return text if capital else text[0].lower() + text[1:]


def _join(items: list[str], last: str) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + last + items[-1]


def clause_text(number: int, clause: Clause) -> str:
    style = clause.style
    subject = clause.subject
    if clause.prohibition and subject.kind == "anyone" and not subject.whose and style.anyone == "No one":
        head = "No one may"
    else:
        head = _subject_text(subject, style) + (" may not" if clause.prohibition else " may")
    actions = _join(list(clause.actions), style.action_joiner)
    resources = _join([charter_string(r) for r in clause.resources], " and ")
    modifiers = []
    if clause.mfa:
        modifiers.append("with MFA")
    env = '"env"' if style.quoted_attribute else "env"
    modifiers += [f"when the resource's {_test_text(env, t)}" for t in clause.env]
    if clause.exemptions:
        named = [_subject_text(e, style, capital=False) for e in clause.exemptions]
        modifiers.append("except " + style.exemption_joiner.join(named))
    order = style.modifier_order
    if sorted(order) != list(range(len(modifiers))):
        order = tuple(range(len(modifiers)))
    tail = style.modifier_joiner.join(modifiers[i] for i in order)
    return f"Clause {number}. {head} {actions} {resources}{' ' + tail if tail else ''}."


def charter_text(case: Case) -> str:
    lines = ['Charter "Differential".', "  Effective 2026-01-01.", ""]
    lines += [clause_text(n, c) for n, c in enumerate(case.clauses, start=1)]
    return "\n".join(lines) + "\n"


def directory_data(case: Case) -> dict:
    """The mapping `charter.directory.model.load_directory` reads."""
    users = {}
    for user in case.users:
        entry: dict = {"groups": list(user.groups)}
        if user.department is not None:
            entry["attributes"] = {"department": user.department}
        users[user.id] = entry
    groups = {group.id: {"groups": list(group.parents)} for group in case.groups}
    return {"users": users, "groups": groups}


# --- Cedar ----------------------------------------------------------------------------------


def cedar_string(value: str, like: bool = False) -> str:
    """A Cedar string literal; in a `like` pattern a literal `*` must be escaped too."""
    out = []
    for c in value:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "*" and like:
            out.append("\\*")
        elif c.isprintable():
            out.append(c)
        else:
            out.append(f"\\u{{{ord(c):x}}}")
    return '"' + "".join(out) + '"'


def cedar_pattern(pattern: str) -> str:
    if pattern.endswith("*"):
        return f'resource.name like {cedar_string(pattern[:-1], like=True)[:-1]}*"'
    return f"resource.name == {cedar_string(pattern)}"


def _cedar_test(path: str, attribute: str, test: Test) -> str:
    has = f"{path} has {attribute}"
    value = f"{path}.{attribute}"
    if test.comparison == "is":
        return f"({has} && {value} == {cedar_string(test.values[0])})"
    if test.comparison == "is not":
        return f"!({has} && {value} == {cedar_string(test.values[0])})"
    listed = ", ".join(cedar_string(v) for v in test.values)
    return f"({has} && [{listed}].contains({value}))"


def _cedar_subject_scope(subject: Subject) -> str:
    if subject.kind == "group":
        return f"principal in Group::{cedar_string(subject.name or '')}"
    if subject.kind == "user":
        return f"principal == User::{cedar_string(subject.name or '')}"
    if subject.kind == "users":
        return "principal is User"
    return "principal"


def _cedar_subject_test(subject: Subject) -> str:
    """The whole subject as one boolean expression (for `unless`)."""
    scope = _cedar_subject_scope(subject)
    parts = [scope] if scope != "principal" else ["true"]
    parts += [_cedar_test("principal", "department", t) for t in subject.whose]
    return "(" + " && ".join(parts) + ")"


def cedar_policy(number: int, clause: Clause) -> str:
    effect = "forbid" if clause.prohibition else "permit"
    actions = ", ".join(f"Action::{cedar_string(a)}" for a in clause.actions)
    conditions = ["(" + " || ".join(cedar_pattern(p) for p in clause.resources) + ")"]
    conditions += [_cedar_test("principal", "department", t) for t in clause.subject.whose]
    if clause.mfa:
        conditions.append("context.mfa")
    conditions += [_cedar_test("resource", "env", t) for t in clause.env]
    text = (
        f'@id("clause {number}")\n'
        f"{effect} ({_cedar_subject_scope(clause.subject)}, action in [{actions}], resource)\n"
        f"when {{ {' && '.join(conditions)} }}"
    )
    if clause.exemptions:
        text += "\nunless { " + " || ".join(_cedar_subject_test(e) for e in clause.exemptions) + " }"
    return text + ";"


def cedar_policies(case: Case) -> str:
    return "\n\n".join(cedar_policy(n, c) for n, c in enumerate(case.clauses, start=1)) + "\n"


def _uid(type_: str, id_: str) -> dict:
    return {"type": type_, "id": id_}


def cedar_entities(case: Case) -> str:
    entities = []
    for user in case.users:
        attrs = {} if user.department is None else {"department": user.department}
        parents = [_uid("Group", g) for g in user.groups]
        entities.append({"uid": _uid("User", user.id), "attrs": attrs, "parents": parents})
    for group in case.groups:
        parents = [_uid("Group", g) for g in group.parents]
        entities.append({"uid": _uid("Group", group.id), "attrs": {}, "parents": parents})
    for i, request in enumerate(case.requests):
        attrs = {"name": request.resource}
        if request.env is not None:
            attrs["env"] = request.env
        entities.append({"uid": _uid("Resource", f"r{i}"), "attrs": attrs, "parents": []})
    return json.dumps(entities, ensure_ascii=False)


def cedar_requests(case: Case) -> list[dict]:
    return [
        {
            "principal": _uid("User", request.user),
            "action": _uid("Action", request.action),
            "resource": _uid("Resource", f"r{i}"),
            "context": {"mfa": request.mfa},
        }
        for i, request in enumerate(case.requests)
    ]
