"""Diagnostics: what went wrong, where (file, line, column), what was expected, and a suggestion.

`CharterError` is the one exception the language raises for bad input. It holds
every diagnostic found, so a user can fix a document in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from charter.language.ast import NO_SPAN, Span


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a document. `clause` is set when the finding belongs to a numbered clause."""

    severity: Severity
    message: str
    span: Span = NO_SPAN
    source_name: str = "<text>"
    hint: str | None = None
    clause: int | None = None
    code: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def headline(self) -> str:
        where = self.source_name
        if self.span.line:
            where = f"{where}:{self.span.line}:{self.span.column}"
        clause = f" (clause {self.clause})" if self.clause is not None else ""
        return f"{where}: {self.severity.value}{clause}: {self.message}"

    def render(self, source: str | None = None) -> str:
        """The headline, then the offending line with a caret under the span, then the hint."""
        lines = [self.headline()]
        if source is not None and self.span.line:
            lines.extend(_excerpt(source, self.span))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def _excerpt(source: str, span: Span) -> list[str]:
    text_lines = source.split("\n")  # as the lexer counts lines: "\x0c" or "\u2028" ends none
    if not 0 < span.line <= len(text_lines):
        return []
    line = text_lines[span.line - 1].rstrip("\r").expandtabs(1)
    line_start = span.start - (span.column - 1)
    line_end = line_start + len(line)
    width = max(1, min(span.end, line_end) - span.start)
    gutter = f"{span.line} | "
    return [
        f"  {gutter}{line}",
        "  " + " " * (len(gutter) + span.column - 1) + "^" * width,
    ]


class CharterError(Exception):
    """A document could not be read, or could not be applied. Nothing was changed."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source: str | None = None):
        self.diagnostics = tuple(diagnostics)
        self.source = source
        super().__init__(self.render())

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The known name closest to `word`, if one is close enough to be a likely typo."""
    pool = sorted(set(candidates))
    if not pool or word in pool:
        return None
    by_lower = {c.lower(): c for c in pool}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.7)
    if found:
        return by_lower[found[0]]
    swapped = [c for c in by_lower if _one_swap(word.lower(), c)]
    return by_lower[swapped[0]] if swapped else None


def _one_swap(a: str, b: str) -> bool:
    """Whether `a` is `b` with two adjacent letters swapped ("mya" for "may"), a typo difflib rates low."""
    if len(a) != len(b) or len(a) < 2:
        return False
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]


def did_you_mean(word: str, candidates: Iterable[str], quote: bool = True) -> str | None:
    """A `did you mean "x"?` hint, or None when nothing is close."""
    best = suggest(word, candidates)
    if best is None:
        return None
    return f'did you mean "{best}"?' if quote else f"did you mean {best}?"
