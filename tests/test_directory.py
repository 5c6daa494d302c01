"""Directory files load into plain data; a bad entry is refused with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.directory.model import IdentityKind, LifecycleState, load_directory
from charter.documents import load_directory_file
from charter.language.errors import CharterError

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_example_directory():
    directory = load_directory_file(str(EXAMPLES / "acme-directory.yaml"))
    alice = directory.users["alice"]
    assert alice.kind is IdentityKind.USER
    assert alice.groups == ("sre", "sre-leads")
    assert alice.attributes["department"] == "engineering"
    assert directory.groups["sre"].groups == ("engineering",)
    assert directory.services["billing-api"].owner == "alice"
    assert "acme-logistics" in directory.names().partners


def test_list_shorthand_attribute_values_and_state():
    directory = load_directory(
        {
            "groups": ["a", "b"],
            "users": {"u": {"groups": "a", "attributes": {"tags": ["x", 1], "mfa": True}, "state": "left"}},
        }
    )
    user = directory.users["u"]
    assert user.groups == ("a",)
    assert user.attributes == {"tags": ("x", "1"), "mfa": "true"}
    assert user.state is LifecycleState.LEFT


@pytest.mark.parametrize(
    ("data", "message", "hint"),
    [
        ({"user": {}}, "user: unknown section", 'did you mean "users"?'),
        ({"users": {"u": {"group": ["a"]}}}, "users.u.group: unknown field", 'did you mean "groups"?'),
        (
            {"groups": ["sre"], "users": {"u": {"groups": ["sr"]}}},
            'users.u.groups: unknown group "sr"',
            'did you mean "sre"?',
        ),
        ({"users": {"u": {"state": "gone"}}}, 'users.u.state: expected active, disabled or left, found "gone"', None),
        (
            {"users": {"u": {"attributes": {"a": {"b": 1}}}}},
            "users.u.attributes.a: expected a text value or a list of them, found a mapping",
            None,
        ),
        (
            {"groups": {"a": {"groups": ["b"]}, "b": {"groups": ["a"]}}},
            "groups.a.groups: groups are nested in a cycle: a -> b -> a",
            None,
        ),
        ([1, 2], "(top): expected a mapping with users, groups, services, partners, resources, found a list", None),
    ],
)
def test_bad_directories_name_the_entry(data, message, hint):
    with pytest.raises(CharterError) as caught:
        load_directory(data, "d.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.message, diagnostic.hint, diagnostic.source_name) == (message, hint, "d.yaml")
