"""Writes the amendment that rolls a charter back to an earlier version. Pure: no I/O.

Every version stays readable and none is erased: a roll back is a new amendment whose changes make the
clauses in force say what an earlier version's said, and lapse when they lapsed; it is then planned,
approved and applied like any other. Two rules of the language shape it:

* a struck number is never reused (`consolidate`), so a clause of the earlier version whose number has
  been struck since comes back under a new number (after the highest ever used), unless a clause in
  force already says the same thing and is kept for it;
* `for D` counts from when the clause takes effect, which for a restored clause would be the roll
  back's date: it is written as `until DATE` instead, the day it lapsed or will lapse in that version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from charter.language import ast
from charter.language.consolidate import Consolidated, ConsolidatedClause, OriginKind
from charter.language.formatter import format_amendment, format_duration

NEVER = None  # a clause without `for` or `until` never lapses
BEYOND_THE_CALENDAR = dt.datetime.max.replace(tzinfo=dt.UTC)  # `for D` ending after 9999-12-31


class NothingToRollBack(ValueError):
    """The clauses in force already act as the earlier version's do."""


@dataclass(frozen=True, slots=True)
class Rollback:
    """The amendment, its canonical text, the amendments it undoes, and where restored clauses now live.

    `renumbered` maps a clause number of the earlier version to its number after the roll back, for
    those that could not come back under their own number.
    """

    amendment: ast.Amendment
    text: str
    undone: tuple[int, ...]
    renumbered: Mapping[int, int]


def write_rollback(
    current: Consolidated,
    target: Consolidated,
    number: int,
    effective: dt.date,
    reason: str,
    approvers: Sequence[ast.Quorum],
) -> Rollback:
    """Amendment `number` making the clauses of `current` act as those of `target` (NothingToRollBack if they do)."""
    if current.name != target.name:
        raise ValueError(f'version {target.version} is of Charter "{target.name}", not "{current.name}"')
    changes, renumbered = _changes(current, target)
    if not changes:
        if target.version == current.version:
            raise NothingToRollBack(f"version {target.version} is the version in force: nothing to roll back")
        raise NothingToRollBack(
            f"version {target.version} has the same clauses as version {current.version} in force: nothing to roll back"
        )
    undone = undone_amendments(current, target)
    amendment = ast.Amendment(
        number=number,
        charter_name=current.name,
        effective=effective,
        reason=reason,
        approvers=tuple(approvers),
        changes=tuple(sorted(changes, key=lambda change: change.number)),
        comments=(f"Rolls back to version {target.version}: undoes {_amendments(undone)}.",),
    )
    return Rollback(amendment, format_amendment(amendment), undone, renumbered)


def undone_amendments(current: Consolidated, target: Consolidated) -> tuple[int, ...]:
    """The numbers of the amendments in force in `current` but not in `target`."""
    kept = {a.number for a in target.applied}
    return tuple(sorted(a.number for a in current.applied if a.number not in kept))


def approvers_for(current: Consolidated, target: Consolidated) -> tuple[ast.Quorum, ...]:
    """Who must approve rolling `current` back to `target`.

    At least what the charter's `Amendments are approved by` line requires (the checker holds every
    amendment to it), and every group that approved an amendment being undone, as many of it as that
    amendment asked for: undoing a change never takes less assent than making it did. When that names
    no one, 1 member of each group owning the charter. ValueError if the charter names no group at all.
    """
    undone = set(undone_amendments(current, target))
    asked: dict[str, int] = {}
    for quorum in current.charter.amendment_approvers:  # the checker holds each line of it on its own
        asked[quorum.group] = max(asked.get(quorum.group, 0), quorum.count)
    for amendment in current.applied:
        if amendment.number in undone:
            for group, count in _per_group(amendment.approvers).items():
                asked[group] = max(asked.get(group, 0), count)
    if not asked:
        asked = {o.name: 1 for o in current.charter.owners if o.kind is ast.SubjectKind.GROUP and o.name}
    if not asked:
        raise ValueError(
            f'Charter "{current.name}" names no group to approve amendments (no "Amendments are approved by" '
            "line, no owner group) and the roll back undoes no amendment that names one"
        )
    return tuple(ast.Quorum(count, group) for group, count in asked.items())


def in_effect(clause: ConsolidatedClause) -> tuple[ast.Sentence, dt.datetime | None]:
    """What a clause says, apart from its `for`/`until`, and when it lapses: clauses that act alike from now
    on (whenever they took effect) have equal keys."""
    validity = getattr(clause.sentence, "validity", None)
    if validity is None:
        return clause.sentence, NEVER
    return replace(clause.sentence, validity=None), _lapses(validity, clause.origin.effective)


# --- the changes -------------------------------------------------------------------------------------


def _changes(current: Consolidated, target: Consolidated) -> tuple[list[ast.Change], dict[int, int]]:
    now = {c.number: c for c in current.clauses}
    then = {c.number: c for c in target.clauses}
    struck_now = {s.number: s for s in current.struck}
    extra = {n: c for n, c in now.items() if n not in then}  # struck, unless kept for a clause of `then`
    highest = max([*now, *struck_now, *then, *(s.number for s in target.struck)], default=0)
    changes: list[ast.Change] = []
    renumbered: dict[int, int] = {}
    for number, old in sorted(then.items()):
        if number in now:
            if in_effect(now[number]) != in_effect(old):
                sentence, notes = _restored(old, target.version)
                changes.append(ast.ReplaceClause(number, sentence, (f"{_as_in(old, target)}.", *notes)))
        elif number in struck_now:
            kept = next((c for c in extra.values() if in_effect(c) == in_effect(old)), None)
            if kept is not None:
                del extra[kept.number]
                renumbered[number] = kept.number
                continue
            highest += 1
            renumbered[number] = highest
            sentence, notes = _restored(old, target.version)
            why = f"struck by amendment {struck_now[number].amendment}, and struck numbers are not reused"
            changes.append(ast.InsertClause(highest, sentence, (f"{_as_in(old, target)}, {why}.", *notes)))
        else:
            sentence, notes = _restored(old, target.version)
            changes.append(ast.InsertClause(number, sentence, (f"{_as_in(old, target)}.", *notes)))
    for number, clause in extra.items():
        changes.append(ast.StrikeClause(number, (f"Not in version {target.version}: {_origin(clause)}.",)))
    return changes, renumbered


def _restored(clause: ConsolidatedClause, version: int) -> tuple[ast.Sentence, tuple[str, ...]]:
    """The sentence to write for `clause` of `version`, and the notes saying why it differs from its text.

    `for D` would count from the roll back's date, granting (or forbidding) for longer than the version
    did: it becomes `until` the day the clause lapses. When D is not whole days that day is rounded
    towards less access: down for what grants, up for a prohibition."""
    sentence = clause.sentence
    validity = getattr(sentence, "validity", None)
    if validity is None or validity.duration is None:
        return sentence, clause.comments
    ends = _lapses(validity, clause.origin.effective)
    if ends == BEYOND_THE_CALENDAR:  # counted from any later day it ends after the calendar too
        return sentence, clause.comments
    until = ends.date()
    rounded = ends != _midnight(until)
    if rounded and isinstance(sentence, ast.Prohibition):
        until += dt.timedelta(days=1)
    note = (
        f'"for {format_duration(validity.duration)}" from {clause.origin.effective.isoformat()} is written '
        f'"until {until.isoformat()}"'
        + (" (rounded to a whole day, towards less access)" if rounded else "")
        + f": the clause lapses as it does in version {version}."
    )
    return replace(sentence, validity=ast.Validity(until=until)), (note, *clause.comments)


def _lapses(validity: ast.Validity, effective: dt.date) -> dt.datetime:
    """The moment a `for`/`until` clause that took effect on `effective` stops applying (as the engine counts)."""
    if validity.until is not None:
        return _midnight(validity.until)
    assert validity.duration is not None
    try:
        return _midnight(effective) + validity.duration.timedelta
    except OverflowError:
        return BEYOND_THE_CALENDAR


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


# --- the words ---------------------------------------------------------------------------------------


def _as_in(clause: ConsolidatedClause, version: Consolidated) -> str:
    return f"Clause {clause.number} of version {version.version} ({_origin(clause)})"


def _origin(clause: ConsolidatedClause) -> str:
    if clause.origin.kind is OriginKind.ORIGINAL:
        return "the original text"
    return f"{clause.origin.kind.value} by amendment {clause.origin.amendment}"


def _amendments(numbers: Iterable[int]) -> str:
    listed = [str(n) for n in numbers]
    if not listed:
        return "no amendment"
    if len(listed) == 1:
        return f"amendment {listed[0]}"
    return "amendments " + ", ".join(listed[:-1]) + " and " + listed[-1]


def _per_group(quorums: Iterable[ast.Quorum]) -> dict[str, int]:
    """How many approvers of each group an `Approved by` line asks for (a group named twice counts twice)."""
    counts: dict[str, int] = {}
    for quorum in quorums:
        counts[quorum.group] = counts.get(quorum.group, 0) + quorum.count
    return counts
