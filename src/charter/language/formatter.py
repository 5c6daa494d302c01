"""Canonical text for charters and amendments: one spelling per meaning, wrapped at 80 columns.

`parse(format_document(d)) == d` for every document the language can express,
and formatting is idempotent. A tree the text cannot carry (a time window with
neither days nor times, `is` with two values, a revoked group narrowed by
`whose`, ...) raises ValueError rather than being written as something else.
`format_sentence` gives one clause body on one line, for messages and decision
explanations.
"""

from __future__ import annotations

import re

from charter.language import ast
from charter.language.parser import DAYS

WIDTH = 80
_BARE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_ATOM = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^\s"])+')


def format_document(document: ast.Document) -> str:
    if isinstance(document, ast.Charter):
        return format_charter(document)
    return format_amendment(document)


def format_charter(charter: ast.Charter) -> str:
    if not charter.clauses:
        raise _inexpressible("a charter without clauses")
    lines = _comment_lines(charter.comments)
    lines.append(f"Charter {quote(charter.name)}.")
    lines.append(f"  Effective {charter.effective.isoformat()}.")
    if charter.owners:
        lines.append(f"  Owned by {_join(_owner(o) for o in charter.owners)}.")
    if charter.amendment_approvers:
        lines.append(f"  Amendments are approved by {format_quorums(charter.amendment_approvers)}.")
    lines.append("")
    for clause in charter.clauses:
        lines.extend(_comment_lines(clause.comments))
        lines.extend(wrap(f"Clause {clause.number}. ", format_sentence(clause.sentence)))
    lines.extend(_comment_lines(charter.trailing_comments))
    return "\n".join(lines) + "\n"


def format_amendment(amendment: ast.Amendment) -> str:
    if not amendment.changes:
        raise _inexpressible("an amendment without changes")
    lines = _comment_lines(amendment.comments)
    lines.append(f"Amendment {amendment.number} to Charter {quote(amendment.charter_name)}.")
    lines.append(f"  Effective {amendment.effective.isoformat()}.")
    lines.append(f"  Reason {quote(amendment.reason)}.")
    lines.append(f"  Approved by {format_quorums(amendment.approvers)}.")
    lines.append("")
    for change in amendment.changes:
        lines.extend(_comment_lines(change.comments))
        if isinstance(change, ast.StrikeClause):
            lines.append(f"Strike clause {change.number}.")
        elif isinstance(change, ast.ReplaceClause):
            lines.extend(wrap(f"Replace clause {change.number} with: ", format_sentence(change.sentence)))
        else:
            lines.extend(wrap(f"Insert clause {change.number}: ", format_sentence(change.sentence)))
    lines.extend(_comment_lines(amendment.trailing_comments))
    return "\n".join(lines) + "\n"


def wrap(lead: str, text: str, width: int = WIDTH) -> list[str]:
    """`lead + text` broken between words (never inside a quoted string), continuation lines indented."""
    indent = " " * len(lead)
    lines: list[str] = []
    current = lead.rstrip()
    for atom in _keep_together(_ATOM.findall(text)):
        if current.strip() and len(current) + 1 + len(atom) > width and current != lead.rstrip():
            lines.append(current)
            current = indent + atom
        else:
            current = f"{current} {atom}" if current else atom
    lines.append(current)
    return lines


_LEADS_NEXT = frozenset(
    {"group", "user", "service", "partner", "network", "networks", "for", "up", "to", "by", "within", "after", "every"}
)


def _keep_together(atoms: list[str]) -> list[str]:
    """Join an amount to its unit and a kind word to its name, so no line ends on "1" or "group"."""
    joined: list[str] = []
    glue = False
    for atom in atoms:
        if glue:
            joined[-1] += " " + atom
        else:
            joined.append(atom)
        glue = atom.isdigit() or atom in _LEADS_NEXT
    return joined


def _comment_lines(comments: tuple[str, ...]) -> list[str]:
    return [f"# {c}" if c else "#" for c in comments]


# --- sentences ---------------------------------------------------------------------


def format_sentence(sentence: ast.Sentence) -> str:
    """One clause body, canonical, on one line, ending with "."."""
    return _SENTENCES[type(sentence)](sentence) + "."


def _permission(p: ast.Permission) -> str:
    text = f"{format_subject(p.subject)} may {_join(p.actions)} {_resources(p.resources)}"
    return text + _conditions(p.conditions) + _validity(p.validity)


def _prohibition(p: ast.Prohibition) -> str:
    if p.subject.kind is ast.SubjectKind.ANYONE and not p.subject.where:
        text = f"No one may {_join(p.actions)}"
    else:
        text = f"{format_subject(p.subject)} may not {_join(p.actions)}"
    text += f" {_resources(p.resources)}" + _conditions(p.conditions) + _validity(p.validity)
    if p.exemptions:
        text += " except " + " or ".join(_exemption(e) for e in p.exemptions)
    return text


def _exemption(e: ast.Exemption) -> str:
    if e.kind is ast.ExceptionKind.BREAK_GLASS:
        return "by break glass"
    if e.kind is ast.ExceptionKind.APPROVED_REQUEST:
        return "by approved request"
    assert e.subject is not None
    return format_subject(e.subject, lowercase=True)


def _eligibility(e: ast.Eligibility) -> str:
    text = f"{format_subject(e.subject)} may request {_join(e.actions)} on {_resources(e.resources)}"
    text += _conditions(e.conditions) + f" for up to {format_duration(e.max_duration)}"
    if e.reason_required:
        text += ", with a reason"
    if e.approvers:
        text += f", approved by {format_quorums(e.approvers)}"
    return text + _validity(e.validity)


def _break_glass(b: ast.BreakGlass) -> str:
    text = f"{format_subject(b.subject)} may break glass"
    if b.actions:
        text += f" to {_join(b.actions)}"
    text += f" on {_resources(b.resources)}" + _conditions(b.conditions)
    text += f" for up to {format_duration(b.max_duration)}" + _validity(b.validity)
    return text + f"; each use is reviewed by group {quote(b.reviewer_group)} within {format_duration(b.review_within)}"


def _token_lifetime(t: ast.TokenLifetime) -> str:
    word = "ID" if t.token is ast.TokenKind.ID else t.token.value.capitalize()
    return f"{word} tokens expire after {format_duration(t.lifetime)}"


def _rotation(r: ast.Rotation) -> str:
    return f"{r.credential.value.capitalize()} rotate every {format_duration(r.every)}"


def _mfa_requirement(m: ast.MfaRequirement) -> str:
    return f"{format_subject(m.subject)} must use MFA"


def _session_limits(s: ast.SessionLimits) -> str:
    if s.absolute is None and s.idle is None:
        raise _inexpressible("session limits with neither an absolute nor an idle limit")
    parts = []
    if s.absolute is not None:
        parts.append(f"after {format_duration(s.absolute)}")
    if s.idle is not None:
        parts.append(f"after {format_duration(s.idle)} idle")
    return "Sessions end " + ", or ".join(parts)


def _lockout(lock: ast.Lockout) -> str:
    logins = "login" if lock.attempts == 1 else "logins"
    return f"Accounts lock for {format_duration(lock.duration)} after {lock.attempts} failed {logins}"


def _retention(r: ast.Retention) -> str:
    return f"{r.records.value.capitalize()} records are kept for {format_duration(r.keep)}"


def _review(r: ast.MembershipReview) -> str:
    return (
        f"Membership of group {quote(r.group)} is reviewed every {format_duration(r.every)}"
        f" by group {quote(r.reviewer_group)}"
    )


def _escalation(e: ast.Escalation) -> str:
    return f"Requests not decided within {format_duration(e.within)} escalate to group {quote(e.group)}"


def _request_expiry(e: ast.RequestExpiry) -> str:
    return f"Requests not decided within {format_duration(e.within)} expire"


def _offboarding(o: ast.Offboarding) -> str:
    return f"Accounts of people who leave are disabled within {format_duration(o.within)}"


def _recovery(r: ast.Recovery) -> str:
    return f"Lost MFA devices are reset only by {format_quorums(r.approvers)}"


def _revocation(r: ast.Revocation) -> str:
    if r.subject.where or r.subject.kind not in _NAMED:
        raise _inexpressible(f"the revocation of {format_subject(r.subject, lowercase=True)}")
    subject = format_subject(r.subject)  # "Members of group" for a group: revoked is the group itself
    if r.subject.kind is ast.SubjectKind.GROUP:
        subject = f"Group {quote(r.subject.name or '')}"
    return f"{subject} is revoked"


_SENTENCES = {
    ast.Permission: _permission,
    ast.Prohibition: _prohibition,
    ast.Eligibility: _eligibility,
    ast.BreakGlass: _break_glass,
    ast.TokenLifetime: _token_lifetime,
    ast.Rotation: _rotation,
    ast.MfaRequirement: _mfa_requirement,
    ast.SessionLimits: _session_limits,
    ast.Lockout: _lockout,
    ast.Retention: _retention,
    ast.MembershipReview: _review,
    ast.Escalation: _escalation,
    ast.RequestExpiry: _request_expiry,
    ast.Offboarding: _offboarding,
    ast.Recovery: _recovery,
    ast.Revocation: _revocation,
}


# --- parts ---------------------------------------------------------------------------


_NAMED = (ast.SubjectKind.GROUP, ast.SubjectKind.USER, ast.SubjectKind.SERVICE, ast.SubjectKind.PARTNER)


def format_subject(subject: ast.Subject, lowercase: bool = False) -> str:
    kind = subject.kind
    if (kind in _NAMED) != (subject.name is not None):
        raise _inexpressible(f"a subject of kind {kind.value} {'without' if kind in _NAMED else 'with'} a name")
    if kind is ast.SubjectKind.GROUP:
        text = f"Members of group {quote(subject.name or '')}"
    elif kind is ast.SubjectKind.USERS:
        text = "Users"
    elif kind is ast.SubjectKind.ANYONE:
        text = "Anyone authenticated"
    else:
        text = f"{kind.value.capitalize()} {quote(subject.name or '')}"
    if subject.where:
        text += " whose " + " and ".join(_attribute_test(t, bare=True) for t in subject.where)
    return text[0].lower() + text[1:] if lowercase else text


def _owner(subject: ast.Subject) -> str:
    if subject.where or subject.kind not in (ast.SubjectKind.GROUP, ast.SubjectKind.USER):
        raise _inexpressible(f"{format_subject(subject, lowercase=True)} as an owner (owners are groups or users)")
    format_subject(subject)  # refuses a nameless one
    return f"{subject.kind.value} {quote(subject.name or '')}"


def _attribute_test(test: ast.AttributeTest, bare: bool) -> str:
    name = attribute_name(test.attribute, bare)
    if len(test.values) != 1 and (test.comparison is not ast.Comparison.IS_ONE_OF or not test.values):
        raise _inexpressible(f'"{test.comparison.value}" with {len(test.values)} values')
    if test.comparison is ast.Comparison.IS_ONE_OF:
        return f"{name} is one of " + ", ".join(quote(v) for v in test.values)
    return f"{name} {test.comparison.value} {quote(test.values[0])}"


def attribute_name(name: str, bare: bool) -> str:
    return name if bare and _BARE_NAME.match(name) else quote(name)


def format_condition(condition: ast.Condition) -> str:
    match condition:
        case ast.RequireMfa():
            return "with MFA"
        case ast.FromNetworks(networks=networks):
            return ("from network " if len(networks) == 1 else "from networks ") + _join(networks)
        case ast.TimeWindow():
            return _time_window(condition)
        case ast.WithScopes(scopes=scopes):
            return ("with scope " if len(scopes) == 1 else "with scopes ") + _join(quote(s) for s in scopes)
        case ast.ResourceAttribute(test=test):
            return "when the resource's " + _attribute_test(test, bare=False)
        case ast.SubjectAttribute(test=test):
            return "when the subject's " + _attribute_test(test, bare=False)
        case ast.AttributeRelation(resource_attribute=r, subject_attribute=s):
            return f"when the resource's {quote(r)} is the subject's {quote(s)}"
        case ast.Ownership():
            return "they own"
        case ast.SameAttribute(attribute=name):
            return f"of their own {attribute_name(name, bare=True)}"
    raise TypeError(f"not a condition: {condition!r}")


def _time_window(w: ast.TimeWindow) -> str:
    if (w.start is None) != (w.end is None) or (w.start is not None and w.start == w.end):
        raise _inexpressible(f"a time window from {w.start} to {w.end}")
    if not w.days and w.start is None:
        raise _inexpressible("a time window with neither days nor times")
    parts = []
    if w.days == (0, 1, 2, 3, 4):
        parts.append("on weekdays")
    elif w.days == (5, 6):
        parts.append("on weekends")
    elif w.days:
        parts.append("on " + _join(DAYS[d].capitalize() for d in w.days))
    if w.start is not None and w.end is not None:
        parts.append(f"between {w.start:%H:%M} and {w.end:%H:%M} {w.zone}")
    elif w.zone != "UTC":
        parts.append(w.zone)
    return " ".join(parts)


def _conditions(conditions: tuple[ast.Condition, ...]) -> str:
    return (" " + ", ".join(format_condition(c) for c in conditions)) if conditions else ""


def _validity(validity: ast.Validity | None) -> str:
    if validity is None:
        return ""
    if (validity.duration is None) == (validity.until is None):
        raise _inexpressible("a validity with both or neither of a duration and a date")
    if validity.duration is not None:
        return f" for {format_duration(validity.duration)}"
    return f" until {validity.until.isoformat()}"


def format_duration(duration: ast.Duration) -> str:
    unit = duration.unit.value
    return f"{duration.amount} {unit if duration.amount == 1 else unit + 's'}"


def format_quorums(quorums: tuple[ast.Quorum, ...]) -> str:
    if not quorums:
        raise _inexpressible("an empty list of approvers")
    return " and ".join(
        f"{q.count} {'member' if q.count == 1 else 'members'} of group {quote(q.group)}" for q in quorums
    )


def _resources(resources: tuple[str, ...]) -> str:
    return _join(quote(r) for r in resources)


def _join(items) -> str:
    items = list(items)
    if not items:
        raise _inexpressible("an empty list (of actions, resources, networks, owners, days ...)")
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def quote(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"a quoted string cannot hold a line break: {text!r}")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\u201d", "\\\u201d")
    return f'"{escaped}"'


def _inexpressible(what: str) -> ValueError:
    return ValueError(f"the charter language cannot express {what}")
