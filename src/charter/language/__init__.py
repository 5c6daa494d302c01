"""The charter language: parse, check, format and consolidate charters and amendments. Pure: no I/O.

Layers, each usable alone: `lexer` -> `parser` (-> `ast`) -> `checker`, `formatter`, `consolidate`.
"""

from charter.language.ast import Amendment, Charter, Document
from charter.language.checker import CheckResult, KnownNames, check
from charter.language.consolidate import Consolidated, consolidate
from charter.language.errors import CharterError, Diagnostic, Severity
from charter.language.formatter import format_document, format_sentence
from charter.language.parser import parse, parse_amendment, parse_charter

__all__ = [
    "Amendment",
    "Charter",
    "CharterError",
    "CheckResult",
    "Consolidated",
    "Diagnostic",
    "Document",
    "KnownNames",
    "Severity",
    "check",
    "consolidate",
    "format_document",
    "format_sentence",
    "parse",
    "parse_amendment",
    "parse_charter",
]
