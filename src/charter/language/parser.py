"""Recursive-descent parser for charters and amendments (grammar: docs/language.md).

Hand-written rather than generated so that every error can say exactly what
was expected at that point and suggest the nearest known word. On a bad clause
the parser records the error, skips to the next clause and goes on, so one run
reports every syntax error; the document is returned only if there were none.
"""

from __future__ import annotations

import calendar
import datetime as dt
import ipaddress
from collections.abc import Callable
from functools import cache

from charter.language import ast
from charter.language.ast import Span
from charter.language.errors import CharterError, Diagnostic, Severity, did_you_mean
from charter.language.lexer import Comment, Kind, Token, tokenize

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
UNITS = {u.value: u for u in ast.TimeUnit} | {u.value + "s": u for u in ast.TimeUnit}
SUBJECT_STARTS = ("Members", "User", "Users", "Service", "Partner", "Anyone", "Everyone")
OBLIGATION_STARTS = (
    "Access",
    "Refresh",
    "ID",
    "Signing",
    "Sessions",
    "Accounts",
    "Audit",
    "Decision",
    "Membership",
    "Requests",
    "Lost",
)
SENTENCE_STARTS = SUBJECT_STARTS + OBLIGATION_STARTS + ("No", "Group")
CONDITION_WORDS = ("with", "from", "on", "between", "when", "they", "of", "for", "until")
NOT_ACTIONS = frozenset(
    {"on", "with", "from", "for", "until", "when", "except", "between", "and", "or", "not", "to", "request", "break"}
)
MAX_DURATION_SECONDS = 100 * 365 * 86400  # a century: longer "durations" are typos, and overflow date arithmetic
CLAUSE_STARTS = frozenset({"clause", "replace", "insert", "strike"})
EXEMPT_SUBJECTS = ("members", "user", "service", "partner", "users", "anyone", "everyone")  # what may follow "except"
LINE_STARTS = CLAUSE_STARTS | {"effective", "owned", "amendments", "reason", "approved"}
MODIFIER_WORDS = ("with", "from", "on", "between", "when", "they", "for", "until")
CHANGE_SYNONYMS = {
    "delete": "Strike",
    "remove": "Strike",
    "repeal": "Strike",
    "add": "Insert",
    "new": "Insert",
    "change": "Replace",
    "amend": "Replace",
    "modify": "Replace",
    "update": "Replace",
}
NUMBER_WORDS = {
    word: str(n)
    for n, word in enumerate(("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"), 1)
}


class _Failure(Exception):
    """Unwinds to the clause being parsed; carries the diagnostic."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def parse(source: str, source_name: str = "<text>") -> ast.Document:
    """Parse a charter or an amendment. Raises CharterError listing every syntax error."""
    return _Parser(source, source_name).document()


def parse_charter(source: str, source_name: str = "<text>") -> ast.Charter:
    document = parse(source, source_name)
    if not isinstance(document, ast.Charter):
        raise _not_a(document, "charter", source, source_name)
    return document


def parse_amendment(source: str, source_name: str = "<text>") -> ast.Amendment:
    document = parse(source, source_name)
    if not isinstance(document, ast.Amendment):
        raise _not_a(document, "amendment", source, source_name)
    return document


def _not_a(document: ast.Document, wanted: str, source: str, source_name: str) -> CharterError:
    found = "an amendment" if isinstance(document, ast.Amendment) else "a charter"
    return CharterError(
        [
            Diagnostic(
                Severity.ERROR,
                f"expected {wanted}, but this document is {found}",
                document.span,
                source_name,
                code="parse.wrong-document",
            )
        ],
        source,
    )


class _Parser:
    def __init__(self, source: str, source_name: str):
        self.source = source
        self.name = source_name
        self.tokens, comments = tokenize(source, source_name)
        self.comments: list[Comment] = comments
        self.next_comment = 0
        self.pos = 0
        self.clause: int | None = None
        self.errors: list[Diagnostic] = []

    # --- token helpers ----------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        # Hot path (about 50 calls per clause): pos never passes the END token, so only a look-ahead can overrun.
        if not ahead:
            return self.tokens[self.pos]
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else self.tokens[-1]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not Kind.END:
            self.pos += 1
        return token

    def at(self, *words: str, ahead: int = 0) -> bool:
        token = self.peek(ahead) if ahead else self.tokens[self.pos]
        return token.kind is Kind.WORD and token.text.lower() in words

    def at_punct(self, mark: str, ahead: int = 0) -> bool:
        token = self.peek(ahead) if ahead else self.tokens[self.pos]
        return token.kind is Kind.PUNCT and token.text == mark

    def accept(self, *words: str) -> Token | None:
        return self.advance() if self.at(*words) else None

    def accept_punct(self, mark: str) -> Token | None:
        return self.advance() if self.at_punct(mark) else None

    def fail(
        self, message: str, token: Token | None = None, hint: str | None = None, span: Span | None = None
    ) -> _Failure:
        token = token or self.peek()
        return _Failure(
            Diagnostic(
                Severity.ERROR,
                message,
                span or token.span,
                self.name,
                hint=hint,
                clause=self.clause,
                code="parse",
            )
        )

    def expected(
        self, what: str, choices: tuple[str, ...] = (), after: Token | None = None, hint: str | None = None
    ) -> _Failure:
        token = self.peek()
        where = f' after "{after.text}"' if after is not None else ""
        if hint is None and token.kind is Kind.WORD and choices:
            hint = did_you_mean(token.text, choices)
        found, span = token.describe(), None
        if self.missing_at_line_end():
            span = self.after_previous()
            if token.kind is not Kind.END:
                found += f" on line {token.span.line}"
            if hint is None and self.pos and '"."' in what:
                hint = f'add "." after {self.tokens[self.pos - 1].describe()}'
        return self.fail(f"expected {what}{where}, found {found}", token, hint, span)

    def missing_at_line_end(self) -> bool:
        """Whether the text ends, or a new clause or header line starts, where more was expected.

        What is missing then belongs at the end of the previous line, so that is where the caret goes.
        """
        token = self.peek()
        if token.kind is Kind.END:
            return True
        previous = self.tokens[self.pos - 1] if self.pos else token
        if previous.kind is Kind.PUNCT and previous.text == ".":
            return False  # the previous sentence is complete: the new line's first word is what is wrong
        return token.span.line > previous.span.line and token.kind is Kind.WORD and token.lower in LINE_STARTS

    def after_previous(self) -> Span:
        """An empty span just after the last token read: where a missing word or "." belongs."""
        if not self.pos:
            return Span(0, 0, 1, 1)
        previous = self.tokens[self.pos - 1].span
        return Span(previous.end, previous.end, previous.line, previous.column + previous.end - previous.start)

    def expect(self, word: str, what: str | None = None, after: Token | None = None) -> Token:
        if self.at(word.lower()):
            return self.advance()
        hint = None
        if word == "group" and self.peek().kind is Kind.STRING:
            hint = f'did you mean group "{self.peek().text}"?'
        raise self.expected(what or f'"{word}"', (word,), after, hint)

    def expect_punct(self, mark: str, what: str | None = None) -> Token:
        if self.at_punct(mark):
            return self.advance()
        raise self.expected(what or f'"{mark}"')

    def expect_string(self, what: str) -> Token:
        token = self.peek()
        if token.kind is Kind.STRING:
            if not token.text.strip():
                raise self.fail(f"{what} must not be empty", token)
            return self.advance()
        after = self.peek(1)
        one_word = token.kind is Kind.WORD and (
            after.kind is not Kind.WORD or after.lower in ("may", "must", "is", "whose", "within", "every", "and")
        )
        hint = f'did you mean "{token.text}"?' if one_word else None
        raise self.expected(f'{what} in double quotes, such as "{_example(what)}"', hint=hint)

    def expect_end(self, what: str, choices: tuple[str, ...] = ()) -> Token:
        if self.at_punct("."):
            return self.advance()
        if self.missing_at_line_end():
            raise self.expected('"." to end the clause', hint=f'add "." after {self.tokens[self.pos - 1].describe()}')
        if what == "nothing more":
            raise self.expected('"." to end the clause')
        raise self.expected(f'"." to end the clause, or {what}', choices)

    def span_from(self, start: Token) -> Span:
        last = self.tokens[max(self.pos - 1, 0)]
        return Span(start.span.start, last.span.end, start.span.line, start.span.column)

    # --- comments ------------------------------------------------------------------------

    def take_comments(self, through_line: int) -> tuple[str, ...]:
        taken = []
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].line <= through_line:
            taken.append(self.comments[self.next_comment].text)
            self.next_comment += 1
        return tuple(taken)

    def last_line(self) -> int:
        return self.tokens[max(self.pos - 1, 0)].span.line

    # --- documents ------------------------------------------------------------------------

    def document(self) -> ast.Document:
        if self.at("charter"):
            document: ast.Document | None = self.charter()
        elif self.at("amendment"):
            document = self.amendment()
        else:
            raise CharterError(
                [
                    self.expected(
                        '"Charter" or "Amendment" at the start of the document', ("Charter", "Amendment")
                    ).diagnostic
                ],
                self.source,
            )
        if self.errors or document is None:
            raise CharterError(self.errors, self.source)
        return document

    def header_part(self, parse: Callable[[], object]) -> object:
        try:
            return parse()
        except _Failure as failure:
            self.errors.append(failure.diagnostic)
            self.skip_to_next_sentence(header=True)
            return None

    def charter(self) -> ast.Charter | None:
        start = self.advance()
        name_token = self.header_part(lambda: self._charter_title())
        effective: dt.date | None = None
        owners: tuple[ast.Subject, ...] = ()
        approvers: tuple[ast.Quorum, ...] = ()
        seen: dict[str, Token] = {}
        while not self.at("clause") and self.peek().kind is not Kind.END:
            token = self.peek()
            key = token.lower
            if key in seen and key in ("effective", "owned", "amendments"):
                self.errors.append(
                    self.fail(
                        f'the charter already has an "{token.text}" line, on line {seen[key].span.line}',
                        token,
                        hint="keep one of the two lines",
                    ).diagnostic
                )
                self.skip_to_next_sentence(header=True)
                continue
            seen[key] = token
            if key == "effective":
                effective = self.header_part(self._effective_line) or effective  # type: ignore[assignment]
            elif key == "owned":
                owners = self.header_part(self._owners_line) or owners  # type: ignore[assignment]
            elif key == "amendments":
                approvers = self.header_part(self._amendment_approvers_line) or approvers  # type: ignore[assignment]
            else:
                hint = None
                if key in ("replace", "insert", "strike"):
                    hint = f'"{token.text} clause" belongs in an amendment ("Amendment N to Charter ...")'
                elif key in {word.lower() for word in SENTENCE_STARTS}:
                    hint = f'start each clause with its number, as in "Clause 1. {token.text} ..."'
                self.errors.append(
                    self.expected(
                        'a header line ("Effective", "Owned by", "Amendments are approved by") or "Clause 1."',
                        ("Effective", "Owned", "Amendments", "Clause"),
                        hint=hint,
                    ).diagnostic
                )
                self.skip_to_next_sentence(header=True)
        header_comments = self.take_comments(self.last_line())
        if effective is None and not self.errors:
            self.errors.append(
                self.fail(
                    'a charter needs an "Effective" line after its title',
                    start,
                    hint="add a line such as: Effective 2026-12-01.",
                ).diagnostic
            )
        clauses = []
        while self.peek().kind is not Kind.END:
            clause = self.numbered(self._clause)
            if clause is not None:
                clauses.append(clause)
        if not clauses and not self.errors:
            self.errors.append(
                self.fail(
                    'a charter needs at least one clause: expected "Clause 1." and a sentence after the header, '
                    "found the end of the text",
                    span=self.after_previous(),
                ).diagnostic
            )
        trailing = self.take_comments(10**9)
        if self.errors or not isinstance(name_token, Token) or effective is None:
            return None
        return ast.Charter(
            name=name_token.text,
            effective=effective,
            owners=owners,
            amendment_approvers=approvers,
            clauses=tuple(clauses),
            comments=header_comments,
            trailing_comments=trailing,
            span=self.span_from(start),
        )

    def _charter_title(self) -> Token:
        name = self.expect_string("the charter's name")
        self.expect_punct(".", 'a "." after the charter\'s name')
        return name

    def _effective_line(self) -> dt.date:
        self.advance()
        date = self.date()
        self.expect_punct(".", 'a "." after the effective date')
        return date

    def _owners_line(self) -> tuple[ast.Subject, ...]:
        owned = self.advance()
        self.expect("by", after=owned)
        owners = [self.owner()]
        while self.accept("and") or self.accept_punct(","):
            owners.append(self.owner())
        self.expect_punct(".", 'a "." after the owners, or "and" and another owner')
        return tuple(owners)

    def owner(self) -> ast.Subject:
        start = self.peek()
        if self.accept("group"):
            kind = ast.SubjectKind.GROUP
        elif self.accept("user"):
            kind = ast.SubjectKind.USER
        else:
            raise self.expected('an owner: group "name" or user "name"', ("group", "user"))
        name = self.expect_string(f"the {kind.value}'s name")
        return ast.Subject(kind, name.text, span=self.span_from(start))

    def _amendment_approvers_line(self) -> tuple[ast.Quorum, ...]:
        first = self.advance()
        self.expect("are", after=first)
        self.expect("approved")
        by = self.expect("by")
        approvers = self.quorums(after=by)
        self.expect_punct(".", 'a "." after the approvers')
        return approvers

    def amendment(self) -> ast.Amendment | None:
        start = self.advance()
        title = self.header_part(self._amendment_title)
        effective: dt.date | None = None
        reason: str | None = None
        approvers: tuple[ast.Quorum, ...] | None = None
        while not self.at("replace", "insert", "strike") and self.peek().kind is not Kind.END:
            token = self.peek()
            key = token.lower
            already = {"effective": effective, "reason": reason, "approved": approvers}
            if already.get(key) is not None:
                self.errors.append(self.fail(f'the amendment already has a "{token.text}" line', token).diagnostic)
                self.skip_to_next_sentence(header=True)
            elif key == "effective" and effective is None:
                effective = self.header_part(self._effective_line)  # type: ignore[assignment]
            elif key == "reason" and reason is None:
                reason = self.header_part(self._reason_line)  # type: ignore[assignment]
            elif key == "approved" and approvers is None:
                approvers = self.header_part(self._approved_line)  # type: ignore[assignment]
            else:
                hint = None
                if key in CHANGE_SYNONYMS:
                    hint = f'did you mean "{CHANGE_SYNONYMS[key]}"?'
                elif key == "clause":
                    hint = 'an amendment changes clauses: "Insert clause N: ...", "Replace clause N with: ..."'
                self.errors.append(
                    self.expected(
                        'an amendment header line ("Effective", "Reason", "Approved by") '
                        'or a change ("Replace clause", "Insert clause", "Strike clause")',
                        ("Effective", "Reason", "Approved", "Replace", "Insert", "Strike"),
                        hint=hint,
                    ).diagnostic
                )
                self.skip_to_next_sentence(header=True)
        header_comments = self.take_comments(self.last_line())
        for value, line, example in (
            (effective, 'an "Effective"', "Effective 2026-12-15."),
            (reason, 'a "Reason"', 'Reason "Support moves to MFA".'),
            (approvers, 'an "Approved by"', 'Approved by 1 member of group "security".'),
        ):
            if value is None and not self.errors:
                self.errors.append(
                    self.fail(
                        f"an amendment needs {line} line after its title", start, hint=f"add a line such as: {example}"
                    ).diagnostic
                )
        changes = []
        while self.peek().kind is not Kind.END:
            change = self.numbered(self._change)
            if change is not None:
                changes.append(change)
        if not changes and not self.errors:
            self.errors.append(
                self.fail(
                    'an amendment needs at least one change: expected "Replace clause N with: ...", '
                    '"Insert clause N: ..." or "Strike clause N." after the header, found the end of the text',
                    span=self.after_previous(),
                ).diagnostic
            )
        trailing = self.take_comments(10**9)
        if self.errors or not isinstance(title, tuple):
            return None
        number, charter_name = title
        assert effective is not None and reason is not None and approvers is not None
        return ast.Amendment(
            number=number,
            charter_name=charter_name,
            effective=effective,
            reason=reason,
            approvers=approvers,
            changes=tuple(changes),
            comments=header_comments,
            trailing_comments=trailing,
            span=self.span_from(start),
        )

    def _amendment_title(self) -> tuple[int, str]:
        number = self.positive_number("the amendment's number")
        self.expect("to", after=self.tokens[self.pos - 1])
        self.expect("charter", '"Charter" and the name of the charter it amends')
        name = self.expect_string("the name of the charter it amends")
        self.expect_punct(".", 'a "." after the charter\'s name')
        return number, name.text

    def _reason_line(self) -> str:
        self.advance()
        reason = self.expect_string("the reason")
        self.expect_punct(".", 'a "." after the reason')
        return reason.text

    def _approved_line(self) -> tuple[ast.Quorum, ...]:
        approved = self.advance()
        by = self.expect("by", after=approved)
        approvers = self.quorums(after=by)
        self.expect_punct(".", 'a "." after the approvers, or "and" and more approvers')
        return approvers

    def numbered(self, parse: Callable[[], object]) -> object:
        """Parse one clause or change; on failure record the error and skip to the next one."""
        self.clause = None
        try:
            return parse()
        except _Failure as failure:
            self.errors.append(failure.diagnostic)
            self.skip_to_next_sentence(header=False)
            return None
        finally:
            self.clause = None

    def skip_to_next_sentence(self, header: bool) -> None:
        """Error recovery: move past the bad part to where the next clause (or header line) starts."""
        starts = CLAUSE_STARTS | ({"effective", "owned", "amendments", "reason", "approved"} if header else set())
        self.advance()
        while self.peek().kind is not Kind.END:
            token = self.peek()
            previous = self.tokens[self.pos - 1]
            if (
                token.kind is Kind.WORD
                and token.lower in starts
                and ((previous.kind is Kind.PUNCT and previous.text in ".:") or previous.span.line < token.span.line)
            ):
                return
            self.advance()

    def _clause(self) -> ast.Clause:
        start = self.peek()
        if not self.at("clause"):
            raise self.expected('"Clause" and its number, such as "Clause 1."', ("Clause",))
        self.advance()
        number = self.positive_number("the clause number")
        self.clause = number
        self.expect_punct(".", f'a "." after "Clause {number}"')
        leading = self.take_comments(start.span.line - 1)
        sentence = self.sentence()
        trailing = self.take_comments(self.last_line())
        return ast.Clause(number, sentence, leading + trailing, span=self.span_from(start))

    def _change(self) -> ast.Change:
        start = self.peek()
        leading = self.take_comments(start.span.line - 1)
        if self.accept("strike"):
            self.expect("clause", '"clause" and its number')
            number = self.positive_number("the number of the clause to strike")
            self.clause = number
            self.expect_punct(".", 'a "." after the clause number')
            return ast.StrikeClause(number, leading + self.take_comments(self.last_line()), span=self.span_from(start))
        if self.accept("replace"):
            self.expect("clause", '"clause" and its number')
            number = self.positive_number("the number of the clause to replace")
            self.clause = number
            if not self.at("with"):
                raise self.expected(
                    '"with:" and the new text of the clause',
                    ("with",),
                    hint=f'write "Replace clause {number} with: ..."',
                )
            self.advance()
            self.expect_punct(":", '":" after "with"')
            sentence = self.sentence()
            return ast.ReplaceClause(
                number, sentence, leading + self.take_comments(self.last_line()), span=self.span_from(start)
            )
        if self.accept("insert"):
            self.expect("clause", '"clause" and its number')
            number = self.positive_number("the number of the new clause")
            self.clause = number
            if self.at("with") and self.at_punct(":", ahead=1):
                raise self.expected(
                    'a ":" after the number of the new clause',
                    hint=f'write "Insert clause {number}: ..." without "with"',
                )
            self.expect_punct(":", 'a ":" after the number of the new clause')
            sentence = self.sentence()
            return ast.InsertClause(
                number, sentence, leading + self.take_comments(self.last_line()), span=self.span_from(start)
            )
        synonym = CHANGE_SYNONYMS.get(start.lower) if start.kind is Kind.WORD else None
        raise self.expected(
            'a change: "Replace clause N with: ...", "Insert clause N: ..." or "Strike clause N."',
            ("Replace", "Insert", "Strike"),
            hint=f'did you mean "{synonym}"?' if synonym else None,
        )

    # --- sentences --------------------------------------------------------------------------

    def sentence(self) -> ast.Sentence:
        token = self.peek()
        word = token.lower if token.kind is Kind.WORD else ""
        if word == "no" and self.at("one", ahead=1):
            start = self.advance()
            self.advance()
            subject = ast.Subject(ast.SubjectKind.ANYONE, span=self.span_from(start))
            may = self.expect("may", after=self.tokens[self.pos - 1])
            return self.prohibition(start, subject, may)
        if word == "group":
            return self.group_revocation()
        if word in ("access", "refresh", "id"):
            return self.token_lifetime()
        if (word == "service" and self.at("credentials", ahead=1)) or word == "signing":
            return self.rotation()
        if word == "sessions":
            return self.session_limits()
        if word == "accounts":
            return self.accounts()
        if word in ("audit", "decision"):
            return self.retention()
        if word == "membership":
            return self.membership_review()
        if word == "requests":
            return self.undecided_requests()
        if word == "lost":
            return self.recovery()
        if word in ("members", "user", "users", "service", "partner", "anyone", "everyone"):
            return self.subject_sentence()
        raise self.expected(
            'the start of a clause: a subject (Members of group "x", User "x", Users, Service "x", '
            'Partner "x", Anyone authenticated, No one) or an obligation (such as "Access tokens expire after 1 hour")',
            (*SENTENCE_STARTS, "No one"),
        )

    def subject_sentence(self) -> ast.Sentence:
        start = self.peek()
        subject = self.subject()
        verb = self.peek()
        if self.accept("may"):
            if self.accept("not"):
                return self.prohibition(start, subject, verb)
            if self.accept("request"):
                return self.eligibility(start, subject)
            if self.at("break"):
                return self.break_glass(start, subject)
            return self.permission(start, subject, verb)
        if self.accept("must"):
            self.expect("use", '"use MFA"', after=verb)
            self.expect_mfa()
            self.expect_end("nothing more")
            return ast.MfaRequirement(subject, span=self.span_from(start))
        if self.accept("is"):
            named = subject.kind in (ast.SubjectKind.USER, ast.SubjectKind.SERVICE, ast.SubjectKind.PARTNER)
            if not named or subject.where:  # a "whose" narrows who may do something; it names no one to revoke
                written = self.source[subject.span.start : subject.span.end]
                group = subject.kind is ast.SubjectKind.GROUP
                raise self.fail(
                    f"only a named user, service, partner or group can be revoked, found {written}",
                    verb,
                    hint=f'write: Group "{subject.name}" is revoked.' if group else None,
                    span=subject.span,
                )
            self.expect("revoked", after=verb)
            self.expect_end("nothing more")
            return ast.Revocation(subject, span=self.span_from(start))
        raise self.expected('"may", "may not", "must use MFA" or "is revoked" after the subject', ("may", "must", "is"))

    def subject(self) -> ast.Subject:
        start = self.peek()
        if self.accept("members"):
            self.expect("of", after=start)
            self.expect("group", '"group" and its name', after=self.tokens[self.pos - 1])
            name = self.expect_string("the group's name")
            return ast.Subject(ast.SubjectKind.GROUP, name.text, self.whose(), span=self.span_from(start))
        for word, kind in (
            ("user", ast.SubjectKind.USER),
            ("service", ast.SubjectKind.SERVICE),
            ("partner", ast.SubjectKind.PARTNER),
        ):
            if self.accept(word):
                name = self.expect_string(f"the {word}'s name")
                return ast.Subject(kind, name.text, self.whose(), span=self.span_from(start))
        if self.accept("users"):
            return ast.Subject(ast.SubjectKind.USERS, None, self.whose(), span=self.span_from(start))
        if self.accept("anyone"):
            if not self.at("authenticated"):
                raise self.expected(
                    '"authenticated" (Charter has no anonymous subjects)',
                    ("authenticated",),
                    after=start,
                    hint='write "Anyone authenticated"',
                )
            self.advance()
            return ast.Subject(ast.SubjectKind.ANYONE, None, self.whose(), span=self.span_from(start))
        if self.accept("everyone"):
            return ast.Subject(ast.SubjectKind.ANYONE, None, self.whose(), span=self.span_from(start))
        raise self.expected(
            'a subject (Members of group "x", User "x", Users, Service "x", Partner "x", Anyone authenticated)',
            SUBJECT_STARTS,
        )

    def whose(self) -> tuple[ast.AttributeTest, ...]:
        if not self.accept("whose"):
            return ()
        tests = [self.attribute_test()]
        while self.at("and") and self._attribute_test_follows(1):
            self.advance()
            tests.append(self.attribute_test())
        return tuple(tests)

    def _attribute_test_follows(self, ahead: int) -> bool:
        return self.peek(ahead).kind in (Kind.WORD, Kind.STRING) and self.at("is", ahead=ahead + 1)

    def attribute_name(self, what: str = "an attribute name") -> str:
        token = self.peek()
        if token.kind in (Kind.WORD, Kind.STRING) and token.text.strip():
            self.advance()
            return token.text
        raise self.expected(f'{what}, such as department or "cost-center"')

    def attribute_test(self) -> ast.AttributeTest:
        start = self.peek()
        name = self.attribute_name()
        comparison, values = self.comparison()
        return ast.AttributeTest(name, comparison, values, span=self.span_from(start))

    def _value_follows(self) -> bool:
        return self.peek(1).kind is Kind.STRING and not self.at("is", ahead=2)

    def comparison(self) -> tuple[ast.Comparison, tuple[str, ...]]:
        if self.peek().kind is Kind.STRING:
            raise self.expected('"is", "is not" or "is one of"', hint=f'did you mean is "{self.peek().text}"?')
        self.expect("is", '"is", "is not" or "is one of"')
        if self.accept("not"):
            return ast.Comparison.IS_NOT, (self.expect_string("the value").text,)
        if self.at("one") and self.at("of", ahead=1):
            self.advance()
            self.advance()
            values = [self.expect_string("a value").text]
            # a string followed by "is" is the next test's name: whose a is one of "x" and "b" is "y"
            while (self.at_punct(",") or self.at("or", "and")) and self._value_follows():
                self.advance()
                values.append(self.expect_string("a value").text)
            return ast.Comparison.IS_ONE_OF, tuple(values)
        return ast.Comparison.IS, (self.expect_string("the value").text,)

    # --- rules --------------------------------------------------------------------------------

    def actions(self, after: Token) -> tuple[str, ...]:
        actions = [self.action(after)]
        while True:
            if self.at_punct(",") and self.peek(1).kind is Kind.WORD:
                self.advance()
                self.accept("and")
                actions.append(self.action(after))
            elif self.at("and") and self.peek(1).kind is Kind.WORD and self.peek(1).lower not in NOT_ACTIONS:
                self.advance()
                actions.append(self.action(after))
            else:
                return tuple(dict.fromkeys(actions))

    def action(self, after: Token) -> str:
        token = self.peek()
        if token.kind is not Kind.WORD or token.lower in NOT_ACTIONS:
            raise self.expected('an action (such as "read" or "write")', after=after)
        if token.text != token.lower:
            raise self.fail(
                f'actions are lowercase words: expected "{token.lower}", found "{token.text}"',
                token,
                hint=f'did you mean "{token.lower}"?',
            )
        if "/" in token.text or "'" in token.text:
            raise self.fail(f'"{token.text}" is not an action: actions are lowercase words such as "read"', token)
        self.advance()
        return token.text

    def resources(self) -> tuple[str, ...]:
        self.accept("on")
        resources = [self.resource()]
        while (self.at_punct(",") or self.at("and")) and self.peek(1).kind is Kind.STRING:
            self.advance()
            resources.append(self.resource())
        return tuple(dict.fromkeys(resources))

    def resource(self) -> str:
        token = self.peek()
        if token.kind is not Kind.STRING:
            raise self.expected('a resource pattern in double quotes, such as "db:prod/*"')
        pattern = token.text
        if not pattern or any(c.isspace() for c in pattern):
            raise self.fail(f'resource pattern "{pattern}" must be non-empty and contain no spaces', token)
        if "*" in pattern[:-1]:
            raise self.fail(
                f'"*" may only end a resource pattern, as in "db:prod/*"; "{pattern}" has one elsewhere', token
            )
        self.advance()
        return pattern

    def permission(self, start: Token, subject: ast.Subject, may: Token) -> ast.Permission:
        actions = self.actions(after=may)
        resources = self.resources()
        parts = self.modifiers({"condition", "validity"})
        self.expect_end(
            'a condition ("with MFA", "from network", "on", "between", "when", "they own", "of their own") '
            'or "for"/"until"',
            MODIFIER_WORDS,
        )
        return ast.Permission(subject, actions, resources, parts.conditions, parts.validity, span=self.span_from(start))

    def prohibition(self, start: Token, subject: ast.Subject, may: Token) -> ast.Prohibition:
        actions = self.actions(after=may)
        resources = self.resources()
        parts = self.modifiers({"condition", "validity", "except"})
        self.expect_end(
            'a condition ("with MFA", "from network", "on", "when") or "except ..."', (*MODIFIER_WORDS, "except")
        )
        return ast.Prohibition(
            subject, actions, resources, parts.conditions, parts.exemptions, parts.validity, span=self.span_from(start)
        )

    def eligibility(self, start: Token, subject: ast.Subject) -> ast.Eligibility:
        request = self.tokens[self.pos - 1]
        actions = self.actions(after=request)
        if not self.at("on") and self.peek().kind is not Kind.STRING:
            raise self.expected('"on" and a resource pattern')
        resources = self.resources()
        parts = self.modifiers({"condition", "validity", "up to", "reason", "approved"})
        self.expect_end(
            '"for up to ...", ", with a reason", ", approved by ..." or a condition', (*MODIFIER_WORDS, "approved")
        )
        if parts.max_duration is None:
            raise self.missing_max_duration("a request clause", parts, "8 hours")
        return ast.Eligibility(
            subject,
            actions,
            resources,
            parts.max_duration,
            parts.conditions,
            parts.reason,
            parts.approvers,
            parts.validity,
            span=self.span_from(start),
        )

    def break_glass(self, start: Token, subject: ast.Subject) -> ast.BreakGlass:
        brk = self.advance()
        glass = self.expect("glass", after=brk)
        actions: tuple[str, ...] = ()
        if self.accept("to"):
            actions = self.actions(after=self.tokens[self.pos - 1])
        if not self.at("on"):
            raise self.expected('"on" and a resource pattern', after=glass if not actions else None)
        resources = self.resources()
        parts = self.modifiers({"condition", "validity", "up to", "review"})
        self.expect_end(
            '"for up to ...", "; each use is reviewed by group ... within ..." or a condition', MODIFIER_WORDS
        )
        if parts.max_duration is None:
            raise self.missing_max_duration("a break-glass clause", parts, "1 hour")
        if parts.review is None:
            raise self.fail(
                'a break-glass clause needs an after-the-fact review: expected "; each use is reviewed by group ... '
                'within ..." before the "."',
                self.tokens[self.pos - 1],
                hint='add "; each use is reviewed by group "security" within 24 hours" before the "."',
            )
        reviewer, within = parts.review
        return ast.BreakGlass(
            subject,
            actions,
            resources,
            parts.max_duration,
            reviewer,
            within,
            parts.conditions,
            parts.validity,
            span=self.span_from(start),
        )

    def missing_max_duration(self, what: str, parts: _Modifiers, example: str) -> _Failure:
        """The error for a request or break-glass clause without "for up to"; called just after its "."."""
        validity = parts.validity
        if validity is not None and validity.duration is not None:
            written = self.source[validity.span.start : validity.span.end]
            return self.fail(
                f'{what} needs a maximum duration: expected "for up to" and a duration, found "{written}" '
                "(which makes the clause itself lapse)",
                span=validity.span,
                hint=f'did you mean "for up to {written.split(None, 1)[1]}"?',
            )
        return self.fail(
            f'{what} needs a maximum duration: expected "for up to" and a duration before the "."',
            self.tokens[self.pos - 1],
            hint=f'add "for up to {example}" (or another duration) after the resource pattern',
        )

    def modifiers(self, allowed: set[str]) -> _Modifiers:
        """Conditions and other phrases after the resources, in any order, separated by "," or "and"."""
        parts = _Modifiers()
        while True:
            separator = self.peek()
            separated = (self.at_punct(",") or self.at("and")) and self._modifier_starts(1)
            if separated or (self.at_punct(";") and self.at("each", ahead=1)):
                self.advance()
            if not self._modifier_starts(0):
                if separator is not self.peek():
                    raise self.expected("a condition after the separator")
                return parts
            self.modifier(parts, allowed)

    def _modifier_starts(self, ahead: int) -> bool:
        token = self.peek(ahead)
        if token.kind is not Kind.WORD:
            return False
        return token.lower in (
            "with",
            "from",
            "on",
            "between",
            "when",
            "they",
            "for",
            "until",
            "except",
            "approved",
            "each",
        ) or (token.lower == "of" and self.at("their", ahead=ahead + 1))

    def modifier(self, parts: _Modifiers, allowed: set[str]) -> None:
        start = self.peek()
        word = start.lower
        if word == "for" and self.at("up", ahead=1):
            self.require(
                allowed,
                "up to",
                start,
                'it belongs to request and break-glass clauses; use "for 30 days" to make access lapse',
            )
            self.advance()
            self.advance()
            self.expect("to", after=self.tokens[self.pos - 1])
            if parts.max_duration is not None:
                raise self.fail("the clause already has a maximum duration", start)
            parts.max_duration = self.duration()
        elif word in ("for", "until"):
            self.require(allowed, "validity", start, "")
            if parts.validity is not None:
                raise self.fail('the clause already says when it lapses ("for" or "until" once)', start)
            self.advance()
            if word == "for":
                parts.validity = ast.Validity(duration=self.duration(), span=self.span_from(start))
            else:
                parts.validity = ast.Validity(until=self.date(), span=self.span_from(start))
        elif word == "with" and self.at("a", ahead=1):
            self.require(allowed, "reason", start, 'it belongs to request clauses ("may request ...")')
            self.advance()
            self.advance()
            self.expect("reason", '"reason"', after=self.tokens[self.pos - 1])
            parts.reason = True
        elif word == "approved":
            self.require(allowed, "approved", start, 'it belongs to request clauses ("may request ...")')
            approved = self.advance()
            by = self.expect("by", after=approved)
            if parts.approvers:
                raise self.fail("the clause already names its approvers", start)
            parts.approvers = self.quorums(after=by)
        elif word == "except":
            self.require(allowed, "except", start, 'exceptions belong to prohibitions ("No one may ... except ...")')
            self.advance()
            parts.exemptions += self.exemptions()
        elif word == "each":
            self.require(allowed, "review", start, 'it belongs to break-glass clauses ("may break glass on ...")')
            parts.review = self.review()
        else:
            self.require(allowed, "condition", start, "")
            parts.conditions += (self.condition(),)

    def require(self, allowed: set[str], part: str, token: Token, why: str) -> None:
        """Fail, naming the whole phrase and the kind of clause, when `part` does not belong in this rule."""
        if part in allowed:
            return
        last = self.peek({"up to": 2, "reason": 2, "approved": 1, "review": 3}.get(part, 0))
        if last.kind is Kind.END or last.span.line != token.span.line:
            last = token
        phrase = self.source[token.span.start : last.span.end]
        span = Span(token.span.start, last.span.end, token.span.line, token.span.column)
        if "except" in allowed:
            rule = "a prohibition"
        elif "review" in allowed:
            rule = "a break-glass clause"
        elif "reason" in allowed:
            rule = "a request clause"
        else:
            rule = "a permission"
        raise self.fail(f'"{phrase}" cannot appear in {rule}' + (f": {why}" if why else ""), token, span=span)

    def review(self) -> tuple[str, ast.Duration]:
        each = self.advance()
        self.expect("use", after=each)
        self.expect("is")
        self.expect("reviewed")
        self.expect("by")
        self.expect("group", '"group" and the reviewing group\'s name')
        group = self.expect_string("the reviewing group's name")
        self.expect("within", '"within" and a duration, such as "within 24 hours"')
        return group.text, self.duration()

    def exemptions(self) -> tuple[ast.Exemption, ...]:
        found = [self.exemption()]
        while (
            (self.at("or", "and") or self.at_punct(","))
            and self.peek(1).kind is Kind.WORD
            and self.peek(1).lower
            in (
                "by",
                *EXEMPT_SUBJECTS,
            )
        ):
            self.advance()
            found.append(self.exemption())
        return tuple(found)

    def exemption(self) -> ast.Exemption:
        start = self.peek()
        if self.accept("by"):
            if self.accept("break"):
                self.expect("glass", after=self.tokens[self.pos - 1])
                return ast.Exemption(ast.ExceptionKind.BREAK_GLASS, span=self.span_from(start))
            if self.accept("approved"):
                self.expect("request", after=self.tokens[self.pos - 1])
                return ast.Exemption(ast.ExceptionKind.APPROVED_REQUEST, span=self.span_from(start))
            raise self.expected('"break glass" or "approved request"', ("break", "approved"), after=start)
        if self.at(*EXEMPT_SUBJECTS):
            subject = self.subject()
            return ast.Exemption(ast.ExceptionKind.SUBJECT, subject, span=self.span_from(start))
        raise self.expected(
            '"by break glass", "by approved request" or a subject such as members of group "dba"', ("by", "members")
        )

    # --- conditions -------------------------------------------------------------------------------

    def condition(self) -> ast.Condition:
        start = self.peek()
        word = start.lower
        if word == "with":
            self.advance()
            if self.at("mfa"):
                self.expect_mfa()
                return ast.RequireMfa(span=self.span_from(start))
            if self.accept("scope", "scopes"):
                scopes = [self.expect_string("the scope").text]
                while (self.at_punct(",") or self.at("and")) and self.peek(1).kind is Kind.STRING:
                    self.advance()
                    scopes.append(self.expect_string("the scope").text)
                return ast.WithScopes(tuple(scopes), span=self.span_from(start))
            raise self.expected('"MFA", "scope" or "a reason"', ("MFA", "scope", "scopes"), after=start)
        if word == "from":
            self.advance()
            if not self.accept("network", "networks"):
                bare = self.peek().kind is Kind.NETWORK  # "from 10.0.0.0/8"
                raise self.expected(
                    '"network" and an address range (such as "from network 10.0.0.0/8")',
                    ("network", "networks"),
                    after=start,
                    hint=f'did you mean "from network {self.peek().text}"?' if bare else None,
                )
            networks = [self.network()]
            while (self.at_punct(",") or self.at("and", "or")) and self.peek(1).kind is Kind.NETWORK:
                self.advance()
                networks.append(self.network())
            return ast.FromNetworks(tuple(networks), span=self.span_from(start))
        if word in ("on", "between"):
            return self.time_window()
        if word == "when":
            return self.when()
        if word == "they":
            self.advance()
            self.expect("own", '"own"', after=start)
            return ast.Ownership(span=self.span_from(start))
        if word == "of":
            self.advance()
            self.expect("their")
            self.expect("own")
            name = self.attribute_name("the attribute they share with the resource")
            return ast.SameAttribute(name, span=self.span_from(start))
        raise self.expected("a condition")  # pragma: no cover - _modifier_starts guards this

    def expect_mfa(self) -> Token:
        token = self.peek()
        if token.kind is Kind.WORD and token.lower == "mfa":
            return self.advance()
        raise self.expected('"MFA"', ("MFA",))

    def network(self) -> str:
        token = self.peek()
        if token.kind is not Kind.NETWORK:
            raise self.expected("a network address range, such as 10.0.0.0/8 or 2001:db8::/32")
        try:
            network = ipaddress.ip_network(token.text, strict=True)
        except ValueError:
            message, hint = _bad_network(token.text)
            raise self.fail(f"{token.text} is not a valid network: {message}", token, hint) from None
        self.advance()
        return str(network)

    def time_window(self) -> ast.TimeWindow:
        start = self.peek()
        days: tuple[int, ...] = ()
        if self.accept("on"):
            days = self.days()
        begin = end = None
        if self.accept("between"):
            begin = self.time_of_day()
            self.expect("and", '"and" and the end time', after=self.tokens[self.pos - 1])
            end_token = self.peek()
            end = self.time_of_day()
            if end == begin:
                raise self.fail(
                    f"the time window between {begin:%H:%M} and {end:%H:%M} is empty: "
                    f"expected an end time other than {begin:%H:%M}",
                    end_token,
                )
        zone = self.zone(required=False)
        return ast.TimeWindow(days, begin, end, zone or "UTC", span=self.span_from(start))

    def days(self) -> tuple[int, ...]:
        if self.accept("weekdays"):
            return (0, 1, 2, 3, 4)
        if self.accept("weekends"):
            return (5, 6)
        found = [self.day()]
        if self.accept("through"):
            last = self.day()
            if last < found[0]:
                raise self.fail("a day range must run forward from Monday to Sunday", self.tokens[self.pos - 1])
            return tuple(range(found[0], last + 1))
        while (
            (self.at_punct(",") or self.at("and"))
            and self.peek(1).kind is Kind.WORD
            and self.peek(1).lower.rstrip("s") in DAYS
        ):
            self.advance()
            found.append(self.day())
        return tuple(sorted(set(found)))

    def day(self) -> int:
        token = self.peek()
        name = token.lower
        if token.kind is Kind.WORD:
            for candidate in (name, name[:-1] if name.endswith("s") else name):
                if candidate in DAYS:
                    self.advance()
                    return DAYS.index(candidate)
        raise self.expected(
            'a day: "weekdays", "weekends", or a day name such as "Monday"',
            ("weekdays", "weekends", *(d.capitalize() for d in DAYS)),
        )

    def time_of_day(self) -> dt.time:
        token = self.peek()
        if token.kind is not Kind.TIME:
            seconds = token.kind is Kind.NETWORK and len(token.text) == 8 and token.text[2::3] == "::"  # 08:00:00
            hint = f"did you mean {token.text[:5]}?" if seconds else None
            raise self.expected("a time of day such as 08:00", hint=hint)
        hours, minutes = (int(part) for part in token.text.split(":"))
        if hours > 23 or minutes > 59:
            raise self.fail(f"{token.text} is not a time of day: expected HH:MM from 00:00 to 23:59", token)
        self.advance()
        return dt.time(hours, minutes)

    def zone(self, required: bool) -> str | None:
        token = self.peek()
        looks_like_zone = token.kind is Kind.WORD and (
            "/" in token.text or (token.text.isupper() and token.text != "MFA") or token.text in _time_zones()
        )  # the last for IANA names such as Japan or GB-Eire
        if not looks_like_zone:
            if required:
                raise self.expected("a time zone such as UTC or Europe/Paris")
            return None
        if token.text != "UTC" and token.text not in _time_zones():
            hint = did_you_mean(token.text, _time_zones())
            raise self.fail(
                f'unknown time zone "{token.text}": expected UTC or an IANA name such as Europe/Paris', token, hint
            )
        self.advance()
        return token.text

    def when(self) -> ast.Condition:
        start = self.advance()
        self.expect("the", '"the resource\'s" or "the subject\'s"', after=start)
        side = self.peek()
        if not self.at("resource's", "subject's"):
            raise self.expected('"resource\'s" or "subject\'s"', ("resource's", "subject's"))
        self.advance()
        name = self.attribute_name()
        if side.lower == "resource's" and self.at("is") and self.at("the", ahead=1):
            self.advance()
            self.advance()
            self.expect("subject's", '"subject\'s" and an attribute name')
            other = self.attribute_name()
            return ast.AttributeRelation(name, other, span=self.span_from(start))
        comparison, values = self.comparison()
        test = ast.AttributeTest(name, comparison, values, span=self.span_from(start))
        if side.lower == "resource's":
            return ast.ResourceAttribute(test, span=self.span_from(start))
        return ast.SubjectAttribute(test, span=self.span_from(start))

    # --- obligations -----------------------------------------------------------------------------

    def token_lifetime(self) -> ast.TokenLifetime:
        start = self.advance()
        kind = {"access": ast.TokenKind.ACCESS, "refresh": ast.TokenKind.REFRESH, "id": ast.TokenKind.ID}[start.lower]
        self.expect("tokens", '"tokens"', after=start)
        self.expect("expire", '"expire after" and a duration')
        self.expect("after", '"after" and a duration')
        lifetime = self.duration()
        self.expect_end("nothing more")
        return ast.TokenLifetime(kind, lifetime, span=self.span_from(start))

    def rotation(self) -> ast.Rotation:
        start = self.advance()
        if start.lower == "service":
            self.advance()
            kind = ast.CredentialKind.SERVICE_CREDENTIALS
        else:
            self.expect("keys", after=start)
            kind = ast.CredentialKind.SIGNING_KEYS
        self.expect("rotate", '"rotate every" and a duration')
        self.expect("every", '"every" and a duration')
        every = self.duration()
        self.expect_end("nothing more")
        return ast.Rotation(kind, every, span=self.span_from(start))

    def session_limits(self) -> ast.SessionLimits:
        start = self.advance()
        self.expect("end", '"end after" and a duration', after=start)
        absolute = idle = None
        while True:
            after = self.expect("after", '"after" and a duration')
            duration = self.duration()
            if self.accept("idle"):
                if idle is not None:
                    raise self.fail("the idle limit is already given", after)
                idle = duration
            else:
                if absolute is not None:
                    raise self.fail("the absolute limit is already given", after)
                absolute = duration
            if self.at_punct(",") or self.at("or"):
                self.accept_punct(",")
                self.accept("or")
                continue
            break
        self.expect_end('", or after N minutes idle"')
        return ast.SessionLimits(absolute, idle, span=self.span_from(start))

    def accounts(self) -> ast.Sentence:
        start = self.advance()
        if self.accept("lock"):
            self.expect("for", '"for" and a duration', after=self.tokens[self.pos - 1])
            duration = self.duration()
            self.expect("after", '"after N failed logins"')
            attempts = self.positive_number("the number of failed logins")
            self.expect("failed", '"failed logins"')
            self.expect("logins" if attempts > 1 else "login", '"logins"' if attempts > 1 else '"login"')
            self.expect_end("nothing more")
            return ast.Lockout(duration, attempts, span=self.span_from(start))
        if self.accept("of"):
            for word in ("people", "who", "leave", "are", "disabled", "within"):
                self.expect(
                    word, f'"{word}" (the sentence is "Accounts of people who leave are disabled within 1 hour.")'
                )
            within = self.duration()
            self.expect_end("nothing more")
            return ast.Offboarding(within, span=self.span_from(start))
        raise self.expected('"lock for" or "of people who leave"', ("lock", "of"), after=start)

    def retention(self) -> ast.Retention:
        start = self.advance()
        kind = ast.RecordKind.AUDIT if start.lower == "audit" else ast.RecordKind.DECISION
        self.expect("records", after=start)
        self.expect("are", '"are kept for" and a duration')
        self.expect("kept")
        self.expect("for", '"for" and a duration')
        keep = self.duration()
        self.expect_end("nothing more")
        return ast.Retention(kind, keep, span=self.span_from(start))

    def membership_review(self) -> ast.MembershipReview:
        start = self.advance()
        self.expect("of", after=start)
        self.expect("group", '"group" and its name')
        group = self.expect_string("the group's name")
        self.expect("is", '"is reviewed every"')
        self.expect("reviewed")
        self.expect("every", '"every" and a duration')
        every = self.duration()
        self.expect("by", '"by group" and the reviewers\' group')
        self.expect("group", '"group" and the reviewers\' group name')
        reviewers = self.expect_string("the reviewers' group name")
        self.expect_end("nothing more")
        return ast.MembershipReview(group.text, every, reviewers.text, span=self.span_from(start))

    def undecided_requests(self) -> ast.Sentence:
        start = self.advance()
        self.expect("not", '"not decided within"', after=start)
        self.expect("decided")
        self.expect("within", '"within" and a duration')
        within = self.duration()
        if self.accept("expire"):
            self.expect_end("nothing more")
            return ast.RequestExpiry(within, span=self.span_from(start))
        self.expect("escalate", '"escalate to group" or "expire"')
        self.expect("to")
        self.expect("group", '"group" and its name')
        group = self.expect_string("the group's name")
        self.expect_end("nothing more")
        return ast.Escalation(within, group.text, span=self.span_from(start))

    def recovery(self) -> ast.Recovery:
        start = self.advance()
        self.expect_mfa()
        for word in ("devices", "are", "reset", "only", "by"):
            self.expect(word, f'"{word}" (the sentence is "Lost MFA devices are reset only by 2 members of group ...")')
        approvers = self.quorums(after=self.tokens[self.pos - 1])
        self.expect_end('"and" and more approvers')
        return ast.Recovery(approvers, span=self.span_from(start))

    def group_revocation(self) -> ast.Revocation:
        start = self.advance()
        name = self.expect_string("the group's name")
        if not self.at("is"):
            raise self.expected(
                '"is revoked" (to grant a group\'s members, write Members of group "name" may ...)', ("is",)
            )
        self.advance()
        self.expect("revoked", '"revoked"')
        self.expect_end("nothing more")
        return ast.Revocation(
            ast.Subject(ast.SubjectKind.GROUP, name.text, span=self.span_from(start)), span=self.span_from(start)
        )

    # --- values ---------------------------------------------------------------------------------

    def quorums(self, after: Token) -> tuple[ast.Quorum, ...]:
        found = [self.quorum(after)]
        while self.at("and") and (self.peek(1).kind is Kind.NUMBER or self.at("group", ahead=1)):
            self.advance()
            found.append(self.quorum(after))
        return tuple(found)

    def quorum(self, after: Token) -> ast.Quorum:
        start = self.peek()
        count = 1
        if start.kind is Kind.NUMBER or start.lower in NUMBER_WORDS:
            count = self.positive_number("the number of approvers")
            if not self.accept("member", "members"):
                raise self.expected('"member" or "members"', ("member", "members"))
            self.expect("of", '"of group" and its name')
        elif not self.at("group"):
            hint = f'did you mean 1 member of group "{start.text}"?' if start.kind is Kind.STRING else None
            raise self.expected(
                'a number of approvers and their group (such as 1 member of group "sre-leads")', after=after, hint=hint
            )
        self.expect("group", '"group" and its name')
        group = self.expect_string("the group's name")
        return ast.Quorum(count, group.text, span=self.span_from(start))

    def positive_number(self, what: str) -> int:
        token = self.peek()
        if token.kind is not Kind.NUMBER:
            spelt = NUMBER_WORDS.get(token.lower) if token.kind is Kind.WORD else None
            raise self.expected(f"{what} (a whole number)", hint=f"write numbers in digits: {spelt}" if spelt else None)
        try:
            value = int(token.text)
        except ValueError:  # thousands of digits: more than int() converts
            raise self.fail(f"{what} is too large", token) from None
        if value < 1:
            raise self.fail(f"{what} must be at least 1, found {token.text}", token)
        self.advance()
        return value

    def duration(self) -> ast.Duration:
        start = self.peek()
        if start.kind is not Kind.NUMBER and start.lower not in NUMBER_WORDS:
            unit_first = start.kind is Kind.WORD and start.lower in (*UNITS, "month", "months", "year", "years")
            raise self.expected(
                'a duration (a number and a unit, such as "30 days")',
                after=self.tokens[self.pos - 1],
                hint=f'put the number before the unit, as in "30 {start.text}"' if unit_first else None,
            )
        amount = self.positive_number("the amount of time")
        unit_token = self.peek()
        unit = UNITS.get(unit_token.lower) if unit_token.kind is Kind.WORD else None
        if unit is None:
            if unit_token.lower in ("month", "months", "year", "years"):
                raise self.fail(
                    f'"{unit_token.text}" varies in length: write the duration in days',
                    unit_token,
                    hint=f"did you mean {amount * (30 if unit_token.lower.startswith('month') else 365)} days?",
                )
            raise self.expected(
                "a unit of time (seconds, minutes, hours, days or weeks)", tuple(UNITS), after=self.tokens[self.pos - 1]
            )
        self.advance()
        duration = ast.Duration(amount, unit, span=self.span_from(start))
        if duration.seconds > MAX_DURATION_SECONDS:
            raise self.fail(
                f"{amount} {unit_token.text} is longer than a century: durations are at most 36500 days",
                span=duration.span,
            )
        return duration

    def date(self) -> dt.date:
        token = self.peek()
        if token.kind is not Kind.DATE:
            raise self.expected("a date as YYYY-MM-DD, such as 2026-12-01")
        try:
            value = dt.date.fromisoformat(token.text)
        except ValueError:
            message, hint = _not_on_calendar(token.text)
            raise self.fail(message, token, hint) from None
        self.advance()
        return value


class _Modifiers:
    """What `modifiers()` collected after a rule's resources."""

    __slots__ = ("approvers", "conditions", "exemptions", "max_duration", "reason", "review", "validity")

    def __init__(self) -> None:
        self.conditions: tuple[ast.Condition, ...] = ()
        self.validity: ast.Validity | None = None
        self.max_duration: ast.Duration | None = None
        self.reason = False
        self.approvers: tuple[ast.Quorum, ...] = ()
        self.exemptions: tuple[ast.Exemption, ...] = ()
        self.review: tuple[str, ast.Duration] | None = None


def _bad_network(text: str) -> tuple[str, str | None]:
    """Why `text` (which looks like an address range) is not a network, and the nearest one that is."""
    address, _, prefix = text.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        if ":" in address:
            return f"{address} is not an IPv6 address", None
        return f"{address} is not an IPv4 address: expected four numbers from 0 to 255", None
    if prefix and int(prefix) > ip.max_prefixlen:
        return f"expected a prefix length from /0 to /{ip.max_prefixlen}, found /{prefix}", None
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:  # a prefix length written with other digits than 0-9, such as /\u0663
        return f"expected a prefix length from /0 to /{ip.max_prefixlen}, found /{prefix}", None
    return (
        f"it has host bits set; expected the network address for /{prefix}",
        f"did you mean {network}?",
    )


# English month names: calendar.month_name follows the locale.
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _not_on_calendar(text: str) -> tuple[str, str | None]:
    """The message and hint for a YYYY-MM-DD date that does not exist, such as 2026-02-30."""
    year, month, day = (int(part) for part in text.split("-"))
    if year < 1:
        return f"{text} is not a date on the calendar: expected a year from 0001, found 0000", None
    if not 1 <= month <= 12:
        return f"{text} is not a date on the calendar: expected a month from 01 to 12, found {month:02d}", None
    last = calendar.monthrange(year, month)[1]
    return (
        f"{text} is not a date on the calendar: expected a day from 01 to {last} in {_MONTHS[month - 1]} {year}",
        f"did you mean {year:04d}-{month:02d}-{last:02d}?" if day > last else None,
    )


@cache
def _time_zones() -> frozenset[str]:
    import zoneinfo

    # "localtime" is the machine's own zone and "Factory" a placeholder: neither means one place.
    return (frozenset(zoneinfo.available_timezones()) - {"localtime", "Factory"}) | {"UTC"}


def _example(what: str) -> str:
    if "group" in what:
        return "sre"
    if "charter" in what:
        return "Acme Production Access"
    if "reason" in what:
        return "on-call handover"
    if "service" in what:
        return "billing-api"
    if "partner" in what:
        return "acme-logistics"
    if "user" in what:
        return "alice"
    return "..."
