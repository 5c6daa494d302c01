"""Property tests for the charter language (strategies: tests/strategies.py).

* Round trip: for every generated document, `parse(format_document(doc)) == doc`, and
  formatting what was parsed gives the same text again (formatting is idempotent); the
  same for every sentence and condition type on its own, wrapped and on one line; with
  CRLF line endings; and for networks written in any notation Python accepts.
* The formatter never writes a tree the text cannot carry as something else: it either
  round-trips or refuses with ValueError.
* Robustness: however a valid document is mangled, `parse` either returns a document
  or raises `CharterError`, never anything else; every diagnostic points at a real place
  in the text (its line and column agree with its offset, and the excerpt shows that
  line) and says something; and whatever the parser accepts round-trips too.

The example counts scale with the hypothesis profile loaded in conftest.py.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

import strategies as s
from charter.language import ast
from charter.language.errors import CharterError
from charter.language.formatter import format_document, format_sentence
from charter.language.parser import parse

EXAMPLES = Path(__file__).parent.parent / "examples"
EXAMPLE_TEXTS = sorted(path.read_text() for pattern in ("*.charter", "*.amendment") for path in EXAMPLES.glob(pattern))
HEADER = 'Charter "T".\n  Effective 2026-01-01.\n\n'


def scaled(factor: float) -> settings:
    """The profile's example count times `factor` (so a deeper profile deepens every test)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


def assert_round_trips(document: ast.Document) -> str:
    text = format_document(document)
    parsed = parse(text)
    assert parsed == document, text
    assert format_document(parsed) == text
    return text


# --- the strategies cover the language -----------------------------------------------------------


def test_strategies_cover_every_sentence_condition_and_change():
    assert set(s.SENTENCES) == set(get_args(ast.Sentence))
    assert set(s.CONDITIONS) == set(get_args(ast.Condition))
    assert set(s.CHANGES) == set(get_args(ast.Change))


def test_the_examples_are_valid():
    assert len(EXAMPLE_TEXTS) >= 2
    for text in EXAMPLE_TEXTS:
        assert_round_trips(parse(text))


# --- round trip ---------------------------------------------------------------------------------


@scaled(2)
@given(s.documents)
def test_format_then_parse_gives_the_document_back(document):
    assert_round_trips(document)


@pytest.mark.parametrize("kind", list(s.SENTENCES), ids=lambda kind: kind.__name__)
@scaled(0.5)
@given(data=st.data())
def test_every_sentence_round_trips_wrapped_and_on_one_line(kind, data):
    sentence = data.draw(s.SENTENCES[kind])
    assert_round_trips(s.charter_with(sentence))
    one_line = format_sentence(sentence)
    assert "\n" not in one_line
    assert parse(HEADER + "Clause 1. " + one_line).clauses[0].sentence == sentence


@pytest.mark.parametrize("kind", list(s.CONDITIONS), ids=lambda kind: kind.__name__)
@scaled(0.5)
@given(data=st.data())
def test_every_condition_round_trips_alone_and_in_company(kind, data):
    condition = data.draw(s.CONDITIONS[kind])
    others = data.draw(st.lists(s.conditions, max_size=2))
    position = data.draw(st.integers(0, len(others)))
    assert_round_trips(s.charter_with(s.permission_with(condition)))
    assert_round_trips(s.charter_with(s.permission_with(*others[:position], condition, *others[position:])))


@pytest.mark.parametrize("varied", list(s.LOOSE_DOCUMENTS))
@scaled(0.2)
@given(data=st.data())
def test_the_formatter_refuses_what_the_language_cannot_say(varied, data):
    document = data.draw(s.LOOSE_DOCUMENTS[varied])
    try:
        text = format_document(document)
    except ValueError as refusal:
        event("refused")
        assert "cannot express" in str(refusal)
    else:
        event("written")
        assert parse(text) == document, text


def _network_spellings(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    prefix = f"/{network.prefixlen}"
    spellings = [str(network), network.network_address.exploded + prefix]
    if isinstance(network, ipaddress.IPv6Network):
        spellings.append(network.network_address.compressed.upper() + prefix)
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            spellings.append(f"::ffff:{mapped}{prefix}")  # the IPv4-mapped form Python 3.13 prints
    return spellings


@scaled(0.5)
@given(s.networks.map(ipaddress.ip_network))
def test_networks_in_any_notation_parse_to_the_canonical_form(network):
    for spelling in _network_spellings(network):
        text = HEADER + f'Clause 1. Users may read "x" from network {spelling}.\n'
        assert parse(text).clauses[0].sentence.conditions == (ast.FromNetworks((str(network),)),), spelling


@scaled(0.3)
@given(s.documents)
def test_windows_line_endings_read_the_same(document):
    text = format_document(document)
    assert parse(text.replace("\n", "\r\n")) == document


# --- mutation fuzzing ------------------------------------------------------------------------------

# Words and marks the grammar uses, and values that are nearly right.
_WORDS = """
    Charter Amendment Effective Owned by Amendments are approved Reason Approved to Clause Replace Insert Strike
    clause with No one may not must use request break glass on for up until a reason member members of group
    user users service partner anyone authenticated everyone whose is and or except approved each reviewed
    within MFA from network networks weekdays weekends Monday Sundays through between UTC Europe/Paris Japan
    when the resource's subject's they own their Access Refresh ID tokens expire after Service credentials
    Signing keys rotate every Sessions end idle Accounts lock failed logins people who leave disabled Audit
    Decision records kept Membership Requests decided escalate Lost devices reset only Group revoked hour hours
    days months two
    08:00 24:00 99:99 10.0.0.0/8 10.0.0.1/8 300.1.1.1/8 1.2.3.4/33 ::/0 ::1/129 ::ffff:1.2.3.4/128
    2026-12-01 2026-02-30 2026-13-01 0000-01-01 2026-1-1 0 1 1.5 3days
"""
KEYWORDS = (
    *_WORDS.split(),
    *('""', '" "', '"*"', '"a*b"', '"x y"', '"\\"', "\u201cx\u201d"),
    *(".", ",", ";", ":", "#", '"', "\u201c", "\u201d", "'", "\u2019", "*", "\n", "\r", "\t", "\u2028", "\x0c"),
)
NUMBERS = ("0", "00", "1", "7", "12", "255", "99999999999999999999", "9" * 5000, "\u0663", "\uff11", "\u00b2")

_PIECE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\s+|[A-Za-z][\w\'/+-]*|\d[\w.:/-]*|.', re.DOTALL)


def _pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


def _pick(data: st.DataObject, size: int) -> int:
    return data.draw(st.integers(0, max(0, size - 1)))


def _delete_piece(data, text):
    pieces = _pieces(text)
    if not pieces:
        return text
    del pieces[_pick(data, len(pieces))]
    return "".join(pieces)


def _duplicate_piece(data, text):
    pieces = _pieces(text)
    if not pieces:
        return text
    i = _pick(data, len(pieces))
    pieces.insert(i, pieces[i] + " ")
    return "".join(pieces)


def _swap_pieces(data, text):
    pieces = [p for p in _pieces(text) if not p.isspace()]
    if len(pieces) >= 2:
        i = _pick(data, len(pieces) - 1)
        pieces[i], pieces[i + 1] = pieces[i + 1], pieces[i]
    return " ".join(pieces)


def _replace_piece(data, text):
    pieces = _pieces(text)
    if not pieces:
        return text
    pieces[_pick(data, len(pieces))] = data.draw(st.sampled_from(KEYWORDS))
    return "".join(pieces)


def _insert_keyword(data, text):
    pieces = _pieces(text)
    pieces.insert(_pick(data, len(pieces) + 1), f" {data.draw(st.sampled_from(KEYWORDS))} ")
    return "".join(pieces)


def _delete_chars(data, text):
    i = _pick(data, len(text))
    return text[:i] + text[i + data.draw(st.integers(1, 3)) :]


def _insert_char(data, text):
    i = _pick(data, len(text) + 1)
    char = data.draw(st.one_of(st.sampled_from((*s.AWKWARD, "\n", "\r")), st.characters(blacklist_categories=("Cs",))))
    return text[:i] + char + text[i:]


def _truncate(data, text):
    return text[: _pick(data, len(text) + 1)]


def _change_case(data, text):
    change = data.draw(st.sampled_from([str.upper, str.lower, str.swapcase, str.title, str.capitalize]))
    if data.draw(st.booleans()):
        return change(text)
    pieces = _pieces(text) or [""]
    i = _pick(data, len(pieces))
    pieces[i] = change(pieces[i])
    return "".join(pieces)


def _replace_number(data, text):
    digits = [m.start() for m in re.finditer(r"\d", text)]
    if not digits:
        return text
    i = digits[_pick(data, len(digits))]
    if data.draw(st.booleans()):
        return text[:i] + data.draw(st.sampled_from("0123456789")) + text[i + 1 :]
    run = re.match(r"\d+", text[i:])
    assert run is not None
    return text[:i] + data.draw(st.sampled_from(NUMBERS)) + text[i + run.end() :]


def _splice(data, text):
    """Copy a slice of the text somewhere else: a clause into the header, a phrase into another clause."""
    a, b = sorted(data.draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=2)))
    at = _pick(data, len(text) + 1)
    return text[:at] + text[a:b] + text[at:]


MUTATIONS = (
    _delete_piece,
    _duplicate_piece,
    _swap_pieces,
    _replace_piece,
    _insert_keyword,
    _delete_chars,
    _insert_char,
    _truncate,
    _change_case,
    _replace_number,
    _splice,
)

valid_texts = st.one_of(st.sampled_from(EXAMPLE_TEXTS), s.documents.map(format_document))


def _line_and_column(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def assert_parses_or_explains(text: str) -> None:
    """`parse` returns a document that round-trips, or raises CharterError whose diagnostics make sense."""
    try:
        document = parse(text, "fuzz.charter")
    except CharterError as error:
        event(f"CharterError {error.first.code or 'parse'}")
        assert error.diagnostics, "a CharterError with no diagnostics"
        for diagnostic in error.diagnostics:
            span = diagnostic.span
            assert diagnostic.message.strip(), diagnostic
            assert span.line >= 1, diagnostic
            assert 0 <= span.start <= span.end <= len(text), diagnostic
            assert (span.line, span.column) == _line_and_column(text, span.start), diagnostic
            rendered = diagnostic.render(text)
            assert diagnostic.message in rendered
            source_line = text.split("\n")[span.line - 1].rstrip("\r").expandtabs(1)
            assert f"{span.line} | {source_line}" in rendered, rendered
    else:
        event("parsed")
        assert_round_trips(document)


@scaled(5)
@given(valid_texts, st.data())
@example("", None)
@example("Charter", None)
@example('Charter "x".\n  Effective 2026-12-01.\n\nClause ' + "9" * 5000 + ". Audit records are kept for 1 day.", None)
@example(HEADER + 'Clause 1. Users may read "x" from network 1.2.3.4/\u0663.', None)
@example(HEADER + 'Clause 1. Users may read "x" from network 1.2.3.4/0\u0663.', None)
@example('Charter "x".\n  Effective 2026-\u0661\u0662-01.\n\nClause 1. Audit records are kept for 1 day.', None)
@example('Charter "x".\n  Effective 2026-' + "1" * 5000 + "-1.", None)
@example(HEADER + 'Clause 1. Users may read "a\rb".', None)
@example(HEADER + '# a\x0cb\nClause 1. Users may read "a".\nClause 2. Users may rea "a".', None)
def test_mutated_documents_parse_or_raise_charter_error(text, data):
    if data is not None:
        for _ in range(data.draw(st.integers(1, 4), label="mutations")):
            mutation = data.draw(st.sampled_from(MUTATIONS))
            text = mutation(data, text)
    assert_parses_or_explains(text)


@scaled(1)
@given(st.lists(st.sampled_from((*KEYWORDS, *NUMBERS[:-3], "Clause 1.", "\n")), max_size=40).map(" ".join))
def test_keyword_soup_parses_or_raises_charter_error(text):
    assert_parses_or_explains(HEADER + text)
