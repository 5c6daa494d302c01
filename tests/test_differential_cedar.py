"""Differential test: Charter's decision engine against Cedar (cedarpy) on the subset both can express.

Hypothesis generates a directory (users with groups and a department; groups
nested in groups without cycles), a charter of permissions and prohibitions
(subjects, `whose` tests, actions, literal and `prefix*` resource patterns,
`with MFA`, tests of the resource's "env", `except` exemptions) and a fixed
number of requests. tests/cedar_translate.py writes the same case as charter
text and as Cedar; both decide every request, and the answers must agree.

The semantics both sides must share: deny by default; a prohibition beats any
permission, except for the subjects its `except` names; every condition of a
clause must hold; `"p*"` matches names that start with p; group membership is
transitive through nesting.

CI compares at least MIN_CASES requests (EXAMPLES examples of REQUESTS_PER_CASE
requests each); a deeper hypothesis profile deepens it.
"""

from __future__ import annotations

import json

import cedarpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cedar_translate as ct
from charter.directory.model import load_directory
from charter.language import consolidate, parse_charter
from charter.policy.decision import Basis
from charter.policy.request import Context
from charter.policy.request import Request as CharterRequest
from charter.policy.snapshot import compile_snapshot

REQUESTS_PER_CASE = 20
MIN_CASES = 5_000
EXAMPLES = 300  # x REQUESTS_PER_CASE = 6,000 requests

# --- names: few of them (so clauses, directories and requests meet), some awkward ---------------

GROUPS = ("sre", "ops", "dba", "eng", "sup-port", 'q"uote', "back\\slash", "caf\u00e9", "\u201dcurly")
USERS = ("alice", "bob", "carol", "dave", 'e"ve', "fr\\ank", "g\u00fcnter")
# The charter's values are never empty (the language rejects ""); the directory's and the requests' may be.
DEPARTMENTS = ("finance", "eng", "sales", 'r"d')
ENVS = ("prod", "dev", "staging", 'p"rod')
ACTIONS = ("read", "write", "delete", "approve")
# Resource names are built from these; none holds `*` or whitespace (a pattern's only `*` is its last).
STEMS = ("db:", "db:prod/", "db:prod/orders", "db:staging/", "tickets/", "t", 'a"b/', "c\\d/", "\u00e9t\u00e9:", "x")
TAILS = ("", "1", "orders", "/x", "s", "\\", '"')

# --- strategies ---------------------------------------------------------------------------------
# Every strategy is built once, here: building strategies while drawing (st.sampled_from(a_list_drawn_earlier))
# makes hypothesis re-validate them on every draw, which costs more than both engines together.

_BOOL = st.booleans()
_INDEX = [st.integers(0, n - 1) if n else st.nothing() for n in range(16)]


def pick(draw, items):
    """One of `items` (a non-empty sequence)."""
    return items[draw(_INDEX[len(items)])]


def some(draw, items, at_most: int) -> tuple:
    """Up to `at_most` distinct items, in their order."""
    return tuple([item for item in items if draw(_BOOL)][:at_most])


def shuffled(draw, items) -> list:
    """`items` in a drawn order (Fisher-Yates; shrinks towards the given order)."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = draw(_INDEX[i + 1])
        out[i], out[j] = out[j], out[i]
    return out


def attribute_test_of(draw, values: tuple[str, ...]) -> ct.Test:
    comparison = pick(draw, ("is", "is not", "is one of"))
    if comparison == "is one of":
        return ct.Test(comparison, some(draw, values, 3) or (pick(draw, values),))
    return ct.Test(comparison, (pick(draw, values),))


def whose_of(draw) -> tuple[ct.Test, ...]:
    return tuple(attribute_test_of(draw, DEPARTMENTS) for _ in range(pick(draw, (0, 0, 1, 2))))


def name_of(draw) -> str:
    return pick(draw, STEMS) + pick(draw, TAILS)


def pattern_of(draw) -> str:
    kind = pick(draw, ("literal", "prefix", "stem", "all"))
    if kind == "literal":
        return name_of(draw)
    if kind == "prefix":
        return name_of(draw) + "*"
    return pick(draw, STEMS) + "*" if kind == "stem" else "*"


def env_of(draw) -> str | None:
    return None if draw(_BOOL) else pick(draw, (*ENVS, ""))


def directory_of(draw) -> tuple[tuple[ct.Group, ...], tuple[ct.User, ...]]:
    """Groups in a random order, each nested only in groups after it (so no cycles); users in 0-3 groups."""
    group_ids = shuffled(draw, some(draw, GROUPS, 6))
    groups = tuple(ct.Group(gid, some(draw, group_ids[i + 1 :], 2)) for i, gid in enumerate(group_ids))
    user_ids = some(draw, USERS, 5) or (pick(draw, USERS),)
    users = tuple(
        ct.User(uid, some(draw, group_ids, 3), None if draw(_BOOL) else pick(draw, (*DEPARTMENTS, "")))
        for uid in user_ids
    )
    return groups, users


def name_from(draw, pools: tuple[tuple[str, ...], ...]) -> str:
    """A name from the first pool (the directory's) three times in four, else from the last."""
    return pick(draw, pools[0] if len(pools) == 1 or pick(draw, (True, True, True, False)) else pools[-1])


def subject_of(draw, group_names: tuple[tuple[str, ...], ...], user_names: tuple[tuple[str, ...], ...]) -> ct.Subject:
    kind = pick(draw, ("group", "user", "users", "anyone"))
    name = name_from(draw, group_names) if kind == "group" else name_from(draw, user_names) if kind == "user" else None
    return ct.Subject(kind, name, whose_of(draw))


def clause_of(draw, group_names: tuple[tuple[str, ...], ...], user_names: tuple[tuple[str, ...], ...]) -> ct.Clause:
    prohibition = pick(draw, (True, False, False))  # a third are prohibitions
    subject = subject_of(draw, group_names, user_names)
    actions = some(draw, ACTIONS, 3) or (pick(draw, ACTIONS),)
    resources = tuple(dict.fromkeys(pattern_of(draw) for _ in range(pick(draw, (1, 1, 2)))))
    mfa = draw(_BOOL)
    env = tuple(attribute_test_of(draw, ENVS) for _ in range(pick(draw, (0, 0, 1, 2))))
    excepted: tuple[ct.Subject, ...] = ()
    if prohibition:
        excepted = tuple(subject_of(draw, group_names, user_names) for _ in range(pick(draw, (0, 1, 2))))
    modifiers = int(mfa) + len(env) + (1 if excepted else 0)
    order = shuffled(draw, range(modifiers))
    style = ct.Style(
        anyone=pick(draw, ("Anyone authenticated", "Everyone", "No one")),
        quoted_attribute=draw(_BOOL),
        action_joiner=pick(draw, (" and ", ", and ", ", ")) if len(actions) > 1 else " and ",
        modifier_order=tuple(order),
        modifier_joiner=pick(draw, (", ", " and ", " ")),
        exemption_joiner=pick(draw, (" or ", ", ", " and ")),
    )
    return ct.Clause(prohibition, subject, actions, resources, mfa, env, excepted, style)


def request_of(draw, charter: tuple[ct.Clause, ...], user_ids: tuple[str, ...]) -> ct.Request:
    """Most requests aim at one clause (one of its actions, patterns and env values), so that clauses match."""
    user, mfa = pick(draw, user_ids), draw(_BOOL)
    if pick(draw, (False, True, True, True)):
        clause = pick(draw, charter)
        action = pick(draw, clause.actions)
        resource = pick(draw, clause.resources)
        if resource.endswith("*"):
            resource = resource[:-1] + pick(draw, TAILS)
        tested = sorted({v for t in clause.env for v in t.values})
        env = pick(draw, tested) if tested and draw(_BOOL) else env_of(draw)
        return ct.Request(user, action, resource, mfa, env)
    return ct.Request(user, pick(draw, ACTIONS), name_of(draw), mfa, env_of(draw))


@st.composite
def cases(draw) -> ct.Case:
    groups, users = directory_of(draw)
    # The charter mostly names the directory's groups and users, now and then others.
    group_ids = tuple(g.id for g in groups)
    user_ids = tuple(u.id for u in users)
    group_names = (group_ids, GROUPS) if group_ids else (GROUPS,)
    user_names = (user_ids, (*USERS, "zoe"))
    charter = tuple(clause_of(draw, group_names, user_names) for _ in range(pick(draw, range(1, 9))))
    requests = tuple(request_of(draw, charter, user_ids) for _ in range(REQUESTS_PER_CASE))
    return ct.Case(charter, users, groups, requests)


# --- the comparison -----------------------------------------------------------------------------

TALLY = {"compared": 0, "allowed": 0, "forbidden": 0}


def charter_decisions(case: ct.Case) -> list:
    version = consolidate(parse_charter(charter_text := ct.charter_text(case)), [], None)
    assert len(version.clauses) == len(case.clauses), charter_text
    snapshot = compile_snapshot(version, load_directory(ct.directory_data(case)))
    return [
        snapshot.evaluate(
            CharterRequest(
                r.user,
                r.action,
                r.resource,
                Context(mfa=r.mfa, resource_attributes={} if r.env is None else {"env": r.env}),
            )
        )
        for r in case.requests
    ]


def cedar_decisions(case: ct.Case) -> list:
    policies = cedarpy.PolicySet.from_str(ct.cedar_policies(case))
    entities = cedarpy.Entities.from_json_str(ct.cedar_entities(case))
    return cedarpy.is_authorized_batch(ct.cedar_requests(case), policies, entities)


def _clause_of(policy_id: str) -> str:
    """Cedar names the policies of a set policy0, policy1, ...: policy N is clause N + 1."""
    return f"clause {int(policy_id[6:]) + 1}" if policy_id.startswith("policy") else policy_id


def report(case: ct.Case, i: int, ours, theirs) -> str:
    """Everything needed to reproduce a disagreement about request i of a case."""
    request = case.requests[i]
    deciders = ", ".join(map(_clause_of, theirs.diagnostics.reasons)) or "nothing"
    return "\n".join(
        [
            "Charter and Cedar disagree.",
            f"request: {request}",
            f"charter: {ours}",
            f"cedar:   {theirs.decision.value} (by {deciders}; errors {theirs.diagnostics.errors})",
            f"cedar request: {json.dumps(ct.cedar_requests(case)[i], ensure_ascii=False)}",
            "--- charter ---",
            ct.charter_text(case),
            "--- directory ---",
            json.dumps(ct.directory_data(case), indent=2, ensure_ascii=False),
            "--- cedar policies ---",
            ct.cedar_policies(case),
            "--- cedar entities ---",
            ct.cedar_entities(case),
        ]
    )


def check_case(case: ct.Case) -> None:
    ours = charter_decisions(case)
    theirs = cedar_decisions(case)
    assert len(ours) == len(theirs) == len(case.requests)
    for i, (mine, cedar) in enumerate(zip(ours, theirs, strict=True)):
        assert not cedar.diagnostics.errors, report(case, i, mine, cedar)
        assert mine.allowed == (cedar.decision == cedarpy.Decision.Allow), report(case, i, mine, cedar)
        TALLY["compared"] += 1
        TALLY["allowed"] += mine.allowed
        TALLY["forbidden"] += mine.basis is Basis.PROHIBITION


@settings(
    max_examples=max(EXAMPLES, settings.default.max_examples),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    report_multiple_bugs=False,  # one disagreement, shrunk, is enough to act on
)
@given(cases())
def agrees_with_cedar(case: ct.Case) -> None:
    check_case(case)


def test_charter_agrees_with_cedar():
    for key in TALLY:
        TALLY[key] = 0
    agrees_with_cedar()
    compared = TALLY["compared"]
    assert compared >= MIN_CASES, f"only {compared} requests compared"
    # Not vacuous: both answers, and prohibitions deciding, are common.
    # Floors against a vacuous pass, well below the usual rates (~15% allowed, ~7% forbidden),
    # which vary with hypothesis's draws.
    assert TALLY["allowed"] >= compared // 50, TALLY
    assert compared - TALLY["allowed"] >= compared // 20, TALLY
    assert TALLY["forbidden"] >= compared // 100, TALLY


# --- the translation itself, on cases worked by hand -----------------------------------------------

HAND = ct.Case(
    clauses=(
        ct.Clause(False, ct.Subject("group", "eng"), ("read", "write"), ("db:prod/*",)),
        ct.Clause(
            True,
            ct.Subject("anyone"),
            ("write",),
            ('db:prod/a"b*',),
            env=(ct.Test("is", ("prod",)),),
            exemptions=(ct.Subject("group", "dba"),),
            style=ct.Style(anyone="No one"),
        ),
        ct.Clause(False, ct.Subject("users", whose=(ct.Test("is", ("finance",)),)), ("read",), ("*",), mfa=True),
    ),
    groups=(ct.Group("sre", ("eng",)), ct.Group("eng"), ct.Group("dba")),
    users=(ct.User("alice", ("sre",)), ct.User("bob", ("dba", "sre")), ct.User("carol", (), "finance")),
    requests=(
        ct.Request("alice", "read", "db:prod/x"),  # allowed through sre -> eng
        ct.Request("alice", "write", 'db:prod/a"bc', env="prod"),  # forbidden by clause 2
        ct.Request("alice", "write", 'db:prod/a"bc', env="dev"),  # clause 2's condition fails: allowed
        ct.Request("bob", "write", 'db:prod/a"bc', env="prod"),  # exempt as a dba: allowed
        ct.Request("carol", "read", "anything", mfa=True),  # clause 3
        ct.Request("carol", "read", "anything"),  # no MFA: denied
        ct.Request("carol", "write", "db:prod/x"),  # nothing allows it
        ct.Request("alice", "read", "db:prod/*x"),  # a "*" in a name is just a character
    ),
)
HAND_EXPECTED = [True, False, True, True, True, False, False, True]


def test_translation_of_a_hand_worked_case():
    text = ct.charter_text(HAND)
    assert (
        'Clause 2. No one may write "db:prod/a\\"b*" when the resource\'s env is "prod", except members of group "dba".'
    ) in text
    policies = ct.cedar_policies(HAND)
    assert 'resource.name like "db:prod/a\\"b*"' in policies
    assert 'unless { (principal in Group::"dba") }' in policies
    assert [d.allowed for d in charter_decisions(HAND)] == HAND_EXPECTED
    assert [d.decision == cedarpy.Decision.Allow for d in cedar_decisions(HAND)] == HAND_EXPECTED


def test_cedar_like_patterns_escape_a_literal_star():
    assert ct.cedar_pattern("a*b*") == 'resource.name like "a\\*b*"'
    assert ct.cedar_pattern("a*b") == 'resource.name == "a*b"'
    assert ct.cedar_pattern("*") == 'resource.name like "*"'
    assert ct.cedar_string('q"\\\n') == '"q\\"\\\\\\u{a}"'
    # Cedar itself reads `\*` as a literal star: "a*b*" matches "a*bc" but not "axbc".
    case = ct.Case(
        clauses=(ct.Clause(False, ct.Subject("anyone"), ("read",), ("a*b*",)),),
        users=(ct.User("u"),),
        groups=(),
        requests=(ct.Request("u", "read", "a*bc"), ct.Request("u", "read", "axbc")),
    )
    assert [r.decision for r in cedar_decisions(case)] == [cedarpy.Decision.Allow, cedarpy.Decision.Deny]
