"""Splits charter text into tokens: words, quoted strings, numbers, dates, times, networks, punctuation.

Comments (`#` to the end of a line) are kept apart, with their line numbers, so
the parser can attach them to the clause that follows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from enum import Enum

from charter.language.ast import Span, TimeUnit
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
  | (?P<string>["\u201c](?:[^"\u201d\\\r\n]|\\[^\r\n])*["\u201d])
  | (?P<open_string>["\u201c])
  | (?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2}(?![\w-]))
  | (?P<ipv4>[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:/[0-9]{1,2})?(?![\w/]))
  | (?P<ipv6>(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.[0-9]{1,3}){3})?(?:/[0-9]{1,3})?(?![\w:/]))
  | (?P<time>[0-9]{1,2}:[0-9]{2}(?![\w:]))
  | (?P<number>[0-9]+(?![\w/-]|\.[0-9]|:[0-9]))
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
            text = found.group()[1:].rstrip("\r")  # a CRLF line's "\r" is no part of the comment
            comments.append(Comment(line, text[1:] if text.startswith(" ") else text))
        elif group == "open_string":
            raise CharterError(
                [
                    Diagnostic(
                        Severity.ERROR,
                        'unterminated string: expected a closing quote (") before the end of the line',
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
                text = text[1:-1]
                if "\\" in text:  # most strings have no escape: skip the regex substitution
                    text = _ESCAPE.sub(r"\1", text)
            elif group == "word":
                text = text.replace("\u2019", "'")
            tokens.append(Token(_KINDS[group], text, Span(pos, end, line, column)))
        pos = end
    tokens.append(Token(Kind.END, "", Span(size, size, line, size - line_start + 1)))
    return tokens, comments


def _lex_error(source: str, source_name: str, pos: int, line: int, column: int) -> CharterError:
    char = source[pos]
    hint = None
    if char.isdigit():
        run = re.match(r"[\w.:/-]*[\w/]", source[pos:])  # not the "." or ":" that ends a sentence
        assert run is not None
        text = run.group()
        message, hint = _bad_number(text)
        span = Span(pos, pos + len(text), line, column)
    else:
        message = f'unexpected character "{char}": expected a word, a quoted string, a number or ". , ; :"'
        if char in "'`\u2018":
            hint = 'put names and resource patterns in double quotes ("), such as "db:prod/*"'
        elif char == "*":
            hint = 'a "*" belongs inside a quoted resource pattern, such as "db:prod/*"'
        span = Span(pos, pos + 1, line, column)
    return CharterError(
        [Diagnostic(Severity.ERROR, message, span, source_name, hint=hint, code="lex.bad-character")], source
    )


_UNIT_WORDS = frozenset(u.value for u in TimeUnit) | frozenset(u.value + "s" for u in TimeUnit)


def _bad_number(text: str) -> tuple[str, str | None]:
    """The message and hint for a run that starts with a digit but is no number, date, time or network."""
    if re.fullmatch(r"\d+-\d+-\d+", text):
        year, month, day = text.split("-")
        hint = None
        if len(year) == 4 and len(month) <= 2 and len(day) <= 2:  # int() refuses thousands of digits
            padded = f"{year}-{int(month):02d}-{int(day):02d}"
            with contextlib.suppress(ValueError):
                dt.date.fromisoformat(padded)
                hint = f"did you mean {padded}?"
        return f'"{text}" is not a date: expected YYYY-MM-DD, such as 2026-12-01', hint
    if ":" in text and "/" not in text and text.count(":") <= 2:
        hint = f"did you mean {text[:5]}?" if re.fullmatch(r"\d\d:\d\d:\d\d", text) else None
        return f'"{text}" is not a time of day: expected HH:MM, such as 08:00', hint
    if "/" in text or text.count(".") >= 2 or ":" in text:
        return f'"{text}" is not a network address range: expected one such as 10.0.0.0/8 or 2001:db8::/32', None
    if re.fullmatch(r"\d+\.\d+", text):
        return (
            f'"{text}" is not a whole number: numbers in a charter are whole',
            "use a smaller unit instead of a fraction, such as 90 minutes for 1.5 hours",
        )
    digits = text.translate(str.maketrans("OoIl", "0011"))
    if digits.isdigit():
        return f'"{text}" is not a number: expected digits only', f"did you mean {digits}?"
    split = re.fullmatch(r"(\d+)([A-Za-z]+)", text)
    if split and split.group(2).lower() in _UNIT_WORDS:
        return (
            f'"{text}" is not a number: expected a space between the number and the unit',
            f'did you mean "{split.group(1)} {split.group(2)}"?',
        )
    return f'"{text}" is not a number or a word: numbers are digits only and words start with a letter', None
