"""Every example in docs/language.md parses.

A ```charter block is a whole document (a charter or an amendment); a ```clause
block is one clause, parsed inside a minimal charter. Each example is its own
test, named by the line of the doc where its block starts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from charter.language import ast
from charter.language.parser import parse, parse_charter

DOC = Path(__file__).parent.parent / "docs" / "language.md"
HEADER = 'Charter "Docs".\n  Effective 2026-01-01.\n\n'
MINIMUM_EXAMPLES = 40
_FENCE = re.compile(r"^```(\w*)\s*$")


def examples(text: str) -> list[tuple[str, int, str]]:
    """(kind, line of the opening fence, body) for each ```charter and ```clause block."""
    found = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        kind, start, body = opening.group(1), index + 1, []
        index += 1
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise AssertionError(f"docs/language.md:{start}: code block is never closed")
        index += 1
        if kind in ("charter", "clause"):
            found.append((kind, start, "\n".join(body) + "\n"))
    return found


EXAMPLES = examples(DOC.read_text(encoding="utf-8"))


def test_the_doc_keeps_its_examples():
    assert len(EXAMPLES) >= MINIMUM_EXAMPLES, (
        f"docs/language.md has {len(EXAMPLES)} charter/clause examples; it should keep at least {MINIMUM_EXAMPLES}"
    )


@pytest.mark.parametrize(
    ("kind", "body"),
    [pytest.param(kind, body, id=f"language.md:{line}-{kind}") for kind, line, body in EXAMPLES],
)
def test_example_parses(kind: str, body: str):
    if kind == "charter":
        document = parse(body, "docs/language.md")
        assert isinstance(document, ast.Charter | ast.Amendment)
        return
    assert body.startswith("Clause "), "a clause example starts with its number: Clause N."
    charter = parse_charter(HEADER + body, "docs/language.md")
    assert len(charter.clauses) == 1, "a clause example holds exactly one clause"
