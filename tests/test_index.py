"""The pattern index finds exactly the rules a scan of every rule would: no more, no fewer.

Seeded and random over small alphabets, so that prefixes of many lengths, ending in the
same and in different characters, exact patterns, "*", and buckets naming one group, several
groups, identities and everyone all occur.
"""

from __future__ import annotations

import random

from charter.directory.model import load_directory
from charter.language import consolidate, parse_charter
from charter.language.patterns import matches
from charter.policy.index import PatternIndex
from charter.policy.snapshot import compile_snapshot

GROUPS = [f"g{k}" for k in range(4)]
USERS = {f"u{i}": {"groups": sorted(random.Random(i).sample(GROUPS, i % 3))} for i in range(6)}
SUBJECTS = [
    *(f'Members of group "{g}"' for g in GROUPS),
    *(f'User "{u}"' for u in USERS),
    "Users",
    "Anyone authenticated",
]


def word(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("ab/:") for _ in range(size))


def pattern(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        return "*"
    if roll < 0.7:
        return word(rng, rng.randrange(0, 5)) + "*"
    return word(rng, rng.randrange(1, 5))


def names(selector, principal) -> bool:
    if selector.kind == "group":
        return selector.group in principal.groups
    if selector.kind == "identity":
        return selector.key == principal.key
    return True  # "users" and "anyone" are filed for everyone; the engine tests the kind after


def test_candidates_are_exactly_the_matching_rules():
    rng = random.Random(7)
    directory = load_directory({"users": USERS, "groups": GROUPS})
    for _ in range(40):
        clauses = []
        for number in range(1, rng.randrange(2, 30)):
            patterns = sorted({pattern(rng) for _ in range(rng.randrange(1, 3))})
            quoted = " and ".join(f'"{p}"' for p in patterns)
            clauses.append(f"Clause {number}. {rng.choice(SUBJECTS)} may read {quoted}.")
        text = 'Charter "Index".\n  Effective 2026-01-01.\n\n' + "\n".join(clauses) + "\n"
        snapshot = compile_snapshot(consolidate(parse_charter(text), [], None), directory)
        index = snapshot.permits["read"]
        rules = snapshot.rules
        for principal in snapshot.principals["user"].values():
            for _ in range(30):
                resource = word(rng, rng.randrange(0, 7))
                found = sorted(rule.clause for rule in index.candidates(principal, resource))
                expected = sorted(
                    rule.clause
                    for rule in rules
                    for p in rule.resources
                    if matches(p, resource) and names(rule.selector, principal)
                )
                assert found == expected, (text, principal, resource)


def test_a_bucket_keeps_every_group_it_is_given():
    text = (
        'Charter "Index".\n  Effective 2026-01-01.\n\n'
        'Clause 1. Members of group "g0" may read "a/*".\n'
        'Clause 2. Members of group "g0" may read "a/*".\n'
        'Clause 3. Members of group "g1" may read "a/*".\n'
        'Clause 4. User "u1" may read "a/*".\n'
        'Clause 5. Users may read "a/*".\n'
        'Clause 6. Members of group "g2" may read "a/*".\n'
    )
    directory = load_directory(
        {"users": {"u0": {"groups": ["g0"]}, "u1": {"groups": ["g1", "g2"]}, "u2": {}}, "groups": GROUPS}
    )
    snapshot = compile_snapshot(consolidate(parse_charter(text), [], None), directory)
    index: PatternIndex = snapshot.permits["read"]
    users = snapshot.principals["user"]
    assert sorted(r.clause for r in index.candidates(users["u0"], "a/x")) == [1, 2, 5]
    assert sorted(r.clause for r in index.candidates(users["u1"], "a/x")) == [3, 4, 5, 6]
    assert sorted(r.clause for r in index.candidates(users["u2"], "a/x")) == [5]
    assert index.candidates(users["u1"], "b/x") == []
