"""Folds amendments into a charter: the text in force on a date, each clause with its origin.

Like a consolidated statute: amendments apply in number order on their
effective dates; a struck clause keeps its number (it is never reused), and
every clause says whether it is original, or was inserted or replaced by which
amendment. Consolidation is all-or-nothing: any bad change raises CharterError
and nothing is returned.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from charter.language import ast
from charter.language.errors import CharterError, Diagnostic, Severity, did_you_mean


class OriginKind(Enum):
    ORIGINAL = "original"
    INSERTED = "inserted"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the text of a clause in force comes from, and since when it applies."""

    kind: OriginKind
    amendment: int | None
    effective: dt.date

    def describe(self) -> str:
        if self.kind is OriginKind.ORIGINAL:
            return f"original text, in force since {self.effective.isoformat()}"
        return f"{self.kind.value} by amendment {self.amendment}, in force since {self.effective.isoformat()}"


@dataclass(frozen=True, slots=True)
class ConsolidatedClause:
    number: int
    sentence: ast.Sentence
    origin: Origin
    comments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StruckClause:
    number: int
    amendment: int
    effective: dt.date


@dataclass(frozen=True, slots=True)
class Consolidated:
    """A charter version: the original with every amendment in force on `as_of` folded in.

    `version` is the number of the last amendment applied (0 for the original text).
    """

    charter: ast.Charter
    as_of: dt.date | None
    version: int
    applied: tuple[ast.Amendment, ...]
    clauses: tuple[ConsolidatedClause, ...]
    struck: tuple[StruckClause, ...]

    @property
    def name(self) -> str:
        return self.charter.name

    def clause(self, number: int) -> ConsolidatedClause | None:
        for clause in self.clauses:
            if clause.number == number:
                return clause
        return None

    def as_charter(self) -> ast.Charter:
        """The text in force as a plain charter document (origins become comments)."""
        return replace(
            self.charter,
            clauses=tuple(ast.Clause(c.number, c.sentence, c.comments) for c in self.clauses),
        )


def consolidate(
    charter: ast.Charter,
    amendments: Sequence[ast.Amendment] = (),
    as_of: dt.date | None = None,
    source_names: Mapping[int, str] | None = None,
    charter_source: str = "<charter>",
) -> Consolidated:
    """The charter as amended by every amendment effective on or before `as_of` (all of them if None)."""
    names = source_names or {}
    errors = _order_errors(charter, amendments, names)
    if as_of is not None and as_of < charter.effective:
        errors.append(
            Diagnostic(
                Severity.ERROR,
                f'Charter "{charter.name}" is not in force on {as_of.isoformat()}: '
                f"it takes effect on {charter.effective.isoformat()}",
                charter.span,
                charter_source,
                code="consolidate.not-in-force",
            )
        )
    first_at: dict[int, ast.Clause] = {}
    for clause in charter.clauses:  # two clauses under one number: the later must not silently replace the earlier
        if clause.number in first_at:
            errors.append(
                Diagnostic(
                    Severity.ERROR,
                    f"clause {clause.number} is numbered twice (first at line {first_at[clause.number].span.line})",
                    clause.span,
                    charter_source,
                    clause=clause.number,
                    code="consolidate.duplicate-clause",
                )
            )
        first_at.setdefault(clause.number, clause)
    if errors:
        raise CharterError(errors)

    in_force = {
        c.number: ConsolidatedClause(
            c.number, c.sentence, Origin(OriginKind.ORIGINAL, None, charter.effective), c.comments
        )
        for c in charter.clauses
    }
    struck: dict[int, StruckClause] = {}
    applied = []
    for amendment in sorted(amendments, key=lambda a: a.number):
        if as_of is not None and amendment.effective > as_of:
            continue
        errors.extend(_apply(amendment, in_force, struck, names.get(amendment.number, f"amendment {amendment.number}")))
        applied.append(amendment)
    if errors:
        raise CharterError(errors)
    return Consolidated(
        charter=charter,
        as_of=as_of,
        version=applied[-1].number if applied else 0,
        applied=tuple(applied),
        clauses=tuple(in_force[n] for n in sorted(in_force)),
        struck=tuple(struck[n] for n in sorted(struck)),
    )


def _order_errors(
    charter: ast.Charter, amendments: Sequence[ast.Amendment], names: Mapping[int, str]
) -> list[Diagnostic]:
    errors = []
    seen: dict[int, ast.Amendment] = {}
    for amendment in amendments:
        source = names.get(amendment.number, f"amendment {amendment.number}")
        if amendment.charter_name != charter.name:
            errors.append(
                Diagnostic(
                    Severity.ERROR,
                    f'amendment {amendment.number} amends Charter "{amendment.charter_name}", not "{charter.name}"',
                    amendment.span,
                    source,
                    hint=did_you_mean(amendment.charter_name, [charter.name]),
                    code="consolidate.wrong-charter",
                )
            )
        if amendment.number in seen:
            errors.append(
                Diagnostic(
                    Severity.ERROR,
                    f"there are two amendments numbered {amendment.number}",
                    amendment.span,
                    source,
                    code="consolidate.duplicate-amendment",
                )
            )
        seen[amendment.number] = amendment
        if amendment.effective < charter.effective:
            errors.append(
                Diagnostic(
                    Severity.ERROR,
                    f"amendment {amendment.number} takes effect on {amendment.effective.isoformat()}, "
                    f"before the charter itself ({charter.effective.isoformat()})",
                    amendment.span,
                    source,
                    code="consolidate.before-charter",
                )
            )
    ordered = sorted(seen.values(), key=lambda a: a.number)
    for earlier, later in itertools.pairwise(ordered):
        if later.effective < earlier.effective:
            errors.append(
                Diagnostic(
                    Severity.ERROR,
                    f"amendment {later.number} takes effect on {later.effective.isoformat()}, before amendment "
                    f"{earlier.number} ({earlier.effective.isoformat()}): amendments take effect in number order",
                    later.span,
                    names.get(later.number, f"amendment {later.number}"),
                    code="consolidate.out-of-order",
                )
            )
    return errors


def _apply(
    amendment: ast.Amendment,
    in_force: dict[int, ConsolidatedClause],
    struck: dict[int, StruckClause],
    source: str,
) -> list[Diagnostic]:
    errors = []
    touched: set[int] = set()

    def error(change: ast.Change, message: str, code: str, hint: str | None = None) -> None:
        errors.append(
            Diagnostic(Severity.ERROR, message, change.span, source, hint=hint, clause=change.number, code=code)
        )

    for change in amendment.changes:
        number = change.number
        if number in touched:
            error(change, f"amendment {amendment.number} changes clause {number} twice", "amend.twice")
            continue
        touched.add(number)
        if isinstance(change, ast.InsertClause):
            if number in in_force:
                error(
                    change,
                    f"cannot insert clause {number}: the charter already has a clause {number}",
                    "amend.insert-exists",
                    hint=f'to change it, write "Replace clause {number} with: ..."; to add a clause, insert clause '
                    f"{max([*in_force, *struck]) + 1}",
                )
            elif number in struck:
                error(
                    change,
                    f"clause {number} was struck by amendment {struck[number].amendment}; "
                    "struck numbers are not reused",
                    "amend.insert-struck",
                    hint=f"insert it as clause {max([*in_force, *struck]) + 1}",
                )
            else:
                origin = Origin(OriginKind.INSERTED, amendment.number, amendment.effective)
                in_force[number] = ConsolidatedClause(number, change.sentence, origin, change.comments)
            continue
        if number not in in_force:
            why = (
                f"it was struck by amendment {struck[number].amendment}"
                if number in struck
                else "the charter has no such clause"
            )
            verb = "replace" if isinstance(change, ast.ReplaceClause) else "strike"
            nearest = _nearest(number, in_force)
            error(
                change,
                f"cannot {verb} clause {number}: {why}",
                f"amend.{verb}-missing",
                hint=f"did you mean clause {nearest}?" if nearest is not None and number not in struck else None,
            )
        elif isinstance(change, ast.ReplaceClause):
            origin = Origin(OriginKind.REPLACED, amendment.number, amendment.effective)
            in_force[number] = ConsolidatedClause(number, change.sentence, origin, change.comments)
        else:
            del in_force[number]
            struck[number] = StruckClause(number, amendment.number, amendment.effective)
    return errors


def _nearest(number: int, in_force: Mapping[int, object]) -> int | None:
    """A clause number one keystroke away (a digit dropped, doubled or off by one), if any."""
    text = str(number)
    candidates = sorted(in_force, key=lambda n: (abs(n - number), n))
    for n in candidates:
        other = str(n)
        if abs(n - number) == 1 or other in (text[:-1], text[1:]) or text in (other[:-1], other[1:]):
            return n
    return None


def render(version: Consolidated) -> str:
    """The text in force as a valid charter, each clause's origin written as a comment above it."""
    from charter.language.formatter import format_charter

    lines = [f'Consolidated text of Charter "{version.name}", version {version.version}.']
    if version.as_of is not None:
        lines[0] = lines[0][:-1] + f", as of {version.as_of.isoformat()}."
    applied = ", ".join(f"amendment {a.number} ({a.effective.isoformat()})" for a in version.applied)
    lines.append(
        f"In force: the charter of {version.charter.effective.isoformat()}" + (f", {applied}." if applied else ".")
    )
    pending = list(version.struck)

    def struck_note(s: StruckClause) -> str:
        return f"Clause {s.number}: struck by amendment {s.amendment}, in force since {s.effective.isoformat()}."

    clauses = []
    for clause in version.clauses:
        notes = [struck_note(s) for s in pending if s.number < clause.number]
        pending = [s for s in pending if s.number > clause.number]
        if clause.origin.kind is not OriginKind.ORIGINAL:
            notes.append(f"Clause {clause.number}: {clause.origin.describe()}.")
        clauses.append(ast.Clause(clause.number, clause.sentence, (*notes, *clause.comments)))
    trailing = tuple(struck_note(s) for s in pending)
    document = replace(
        version.charter,
        comments=(*lines, *version.charter.comments),
        clauses=tuple(clauses),
        trailing_comments=(*trailing, *version.charter.trailing_comments),
    )
    return format_charter(document)


def to_json(version: Consolidated) -> dict:
    """The version as plain JSON-ready data: clauses with their text and origin, struck clauses."""
    from charter.language.formatter import format_sentence

    return {
        "charter": version.name,
        "as_of": version.as_of.isoformat() if version.as_of else None,
        "version": version.version,
        "effective": version.charter.effective.isoformat(),
        "amendments": [{"number": a.number, "effective": a.effective.isoformat()} for a in version.applied],
        "clauses": [
            {
                "number": c.number,
                "text": format_sentence(c.sentence),
                "origin": {
                    "kind": c.origin.kind.value,
                    "amendment": c.origin.amendment,
                    "effective": c.origin.effective.isoformat(),
                },
            }
            for c in version.clauses
        ],
        "struck": [
            {"number": s.number, "amendment": s.amendment, "effective": s.effective.isoformat()} for s in version.struck
        ],
    }
