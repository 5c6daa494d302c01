"""Splits charter text into tokens: words, quoted strings, numbers, dates, times, networks, punctuation.

Comments (`#` to the end of a line) are kept apart, with their line numbers, so
the parser can attach them to the clause that follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from charter.language.ast import Span
from charter.language.errors import CharterError, Diagnostic, Severity


class Kind(Enum):
    WORD = "word"
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    TIME = "time"
    NETWORK = "network"
    PUNCT = "punctuation"
    END = "end of text"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # as written (for strings: the decoded value)
    span: Span

    @property
    def lower(self) -> str:
        return self.text.lower()

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is Kind.END:
            return "the end of the text"
        if self.kind is Kind.STRING:
            return f'"{self.text}"'
        if self.kind is Kind.PUNCT:
            return f'"{self.text}"'
        return f'"{self.text}"'


@dataclass(frozen=True, slots=True)
class Comment:
    line: int
    text: str  # without the leading "#" and one space


# Order matters: dates before numbers, networks before times and words.
_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>["\u201c](?:[^"\u201d\\\n]|\\.)*["\u201d])
  | (?P<open_string>["\u201c])
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w-]))
  | (?P<ipv4>\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?![\w/]))
  | (?P<ipv6>(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:/\d{1,3})?(?![\w:/]))
  | (?P<time>\d{1,2}:\d{2}(?![\w:]))
  | (?P<number>\d+(?![\w/-]|\.\d|:\d))
  | (?P<word>[A-Za-z][A-Za-z0-9_+\-]*(?:['\u2019][A-Za-z]+)?(?:/[A-Za-z0-9_+\-]+)*)
  | (?P<punct>[.,;:])
    """,
    re.VERBOSE,
)

_KINDS = {
    "string": Kind.STRING,
    "date": Kind.DATE,
    "ipv4": Kind.NETWORK,
    "ipv6": Kind.NETWORK,
    "time": Kind.TIME,
    "number": Kind.NUMBER,
    "word": Kind.WORD,
    "punct": Kind.PUNCT,
}

_ESCAPE = re.compile(r"\\(.)")


def tokenize(source: str, source_name: str = "<text>") -> tuple[list[Token], list[Comment]]:
    """All tokens of `source` ending with an END token, and its comments; raises CharterError on a bad character."""
    tokens: list[Token] = []
    comments: list[Comment] = []
    line, line_start, pos, size = 1, 0, 0, len(source)
    match = _TOKEN.match
    while pos < size:
        found = match(source, pos)
        column = pos - line_start + 1
        if found is None:
            raise _lex_error(source, source_name, pos, line, column)
        group = found.lastgroup
        end = found.end()
        if group == "newline":
            line, line_start = line + 1, end
        elif group == "comment":
            text = found.group()[1:]
            comments.append(Comment(line, text[1:] if text.startswith(" ") else text))
        elif group == "open_string":
            raise CharterError(
                [
                    Diagnostic(
                        Severity.ERROR,
                        "unterminated string: expected a closing quote (\") before the end of the line",
                        Span(pos, pos + 1, line, column),
                        source_name,
                        code="lex.unterminated-string",
                    )
                ],
                source,
            )
        elif group != "space":
            text = found.group()
            if group == "string":
                text = _ESCAPE.sub(r"\1", text[1:-1])
            elif group == "word":
                text = text.replace("\u2019", "'")
            tokens.append(Token(_KINDS[group], text, Span(pos, end, line, column)))
        pos = end
    tokens.append(Token(Kind.END, "", Span(size, size, line, size - line_start + 1)))
    return tokens, comments


def _lex_error(source: str, source_name: str, pos: int, line: int, column: int) -> CharterError:
    char = source[pos]
    if char.isdigit():
        run = re.match(r"[\w.:/-]+", source[pos:])
        assert run is not None
        text = run.group()
        message = (
            f'"{text}" is not a number, date (YYYY-MM-DD), time (HH:MM) or network (such as 10.0.0.0/8)'
        )
        span = Span(pos, pos + len(text), line, column)
    else:
        message = f'unexpected character "{char}": expected a word, a quoted string, a number or ". , ; :"'
        span = Span(pos, pos + 1, line, column)
    return CharterError(
        [Diagnostic(Severity.ERROR, message, span, source_name, code="lex.bad-character")], source
    )
