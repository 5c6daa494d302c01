"""Hypothesis fuzzing of the two languages Charter reads from callers: the charter language (any text parses
or raises CharterError, nothing else; the structured fuzzing is tests/test_properties.py) and the SCIM filter
(a filter from a caller is parsed, used to look a name up and matched against users and groups: anything
but a SCIM error, the caller's 400, is a bug that would be a 500)."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given
from hypothesis import strategies as st
from scim2_models import SCIMException

from charter.language.errors import CharterError
from charter.language.parser import parse_amendment
from charter.scim import GROUP_SCHEMA, USER, USER_SCHEMA, ScimError, _name_lookup, search_request
from test_properties import HEADER, assert_parses_or_explains


@given(st.text(max_size=300))
@example("Clause 1.")
@example(HEADER + "Clause 1. Members of group")
def test_any_text_parses_or_raises_charter_error(text):
    assert_parses_or_explains(text)
    assert_parses_or_explains(HEADER + text)


@given(st.text(max_size=300))
@example('Amendment 1 to "x".\n  Effective 2026-12-01.\n\nReplace clause 1 with:')
def test_any_amendment_text_parses_or_raises_charter_error(text):
    try:
        parse_amendment(text)
    except CharterError as error:
        assert error.diagnostics


ATTRIBUTES = (
    "userName",
    "displayName",
    "name.givenName",
    "name.familyName",
    "active",
    "emails",
    "emails.value",
    'emails[type eq "work"].value',
    "emails[value",
    "groups.display",
    "meta.lastModified",
    "meta.created",
    "members.value",
    "title",
    "externalId",
    "id",
    f"{USER_SCHEMA}:userName",
    f"{GROUP_SCHEMA}:displayName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "unknown.attr",
    "x" * 300,
)
OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "EQ", "Pr")
VALUES = (
    '"alice"',
    '"ALICE"',
    '""',
    '"a\\"b"',
    '"é漢"',
    "1",
    "-1.5e300",
    "1e999",
    "true",
    "false",
    "null",
    '"2026-01-01T00:00:00Z"',
    '"not a date"',
    '"\\u0000"',
)
GLUE = ("and", "or", "not", "(", ")", "[", "]", " ", '"', "\\", "\x00", "\u2028")
TOKEN = st.sampled_from((*ATTRIBUTES, *OPERATORS, *VALUES, *GLUE))
FILTERS = st.one_of(
    st.lists(TOKEN, max_size=14).map(" ".join),
    st.tuples(st.sampled_from(ATTRIBUTES), st.sampled_from(OPERATORS), st.sampled_from(VALUES)).map(" ".join),
    st.text(max_size=80),
)


def _users() -> list:
    made = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    plain = {
        "schemas": [USER_SCHEMA],
        "id": "1",
        "userName": "alice",
        "displayName": "Alice",
        "active": True,
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
        "meta": {"resourceType": "User", "created": made.isoformat(), "lastModified": made.isoformat()},
    }
    bare = {"schemas": [USER_SCHEMA], "id": "2", "userName": "bob"}
    return [USER.model_validate(plain), USER.model_validate(bare)]


USERS = _users()


@given(FILTERS, st.sampled_from(("Users", "Groups")), st.sampled_from((None, "userName", "meta.created", "nope")))
@example('userName eq "alice" and emails[type eq "work"].value co "example"', "Users", None)
@example("not (active pr) or title gt 1e999", "Users", "userName")
@example('emails[value eq "x"', "Users", None)
@example('userName eq "\\u0000"', "Users", None)
def test_a_scim_filter_is_refused_with_a_scim_error_or_used_without_failing(text, kind, sort_by):
    params = {"filter": text, **({"sortBy": sort_by} if sort_by else {})}
    try:
        request = search_request(kind, params)
        if request.filter is None:
            return
        _name_lookup(request.filter.ast, kind)
        matched = [user for user in USERS if request.filter.match(user)]
        request.sort(matched)
    except (ScimError, SCIMException):
        pass  # the caller's 400: invalidFilter, invalidValue, ...


def test_the_fuzzed_path_does_match_a_sound_filter():
    """The fuzz test above would pass vacuously if every filter were refused: a sound one selects alice."""
    request = search_request("Users", {"filter": 'userName eq "ALICE" and emails[type eq "work"].value co "example"'})
    assert [user.user_name for user in USERS if request.filter.match(user)] == ["alice"]
    assert _name_lookup(request.filter.ast, "Users") == "ALICE"
