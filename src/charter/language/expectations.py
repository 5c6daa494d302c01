"""Expectation files: policy tests kept beside a charter, checked by `charter test`.

    Expectations for Charter "Acme Production Access".
      As of 2026-12-16 10:00 UTC.
      Directory "acme-directory.yaml".

    Expect allow by clause 1: user "alice" read "db:prod/orders".
    Expect deny by clause 4: user "alice" delete "db:prod/orders".
    Expect allow: user "carol" read "tickets/1" with MFA at 2026-12-16 09:30 UTC.
    Expect deny: service "billing-api" read "db:prod/invoices" from 192.168.1.4.

A request may add `with MFA`, `with scope "s"`, `from ADDRESS`,
`at DATE [HH:MM] [ZONE]` and `where the resource's "attr" is "value"`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from charter.language.ast import NO_SPAN, Span
from charter.language.errors import CharterError
from charter.language.lexer import Kind
from charter.language.parser import _Parser


@dataclass(frozen=True, slots=True)
class Expectation:
    allow: bool
    clause: int | None
    subject_type: str
    subject: str
    action: str
    resource: str
    mfa: bool = False
    ip: str | None = None
    at: dt.datetime | None = None
    scopes: tuple[str, ...] = ()
    resource_attributes: tuple[tuple[str, str], ...] = ()
    text: str = ""
    span: Span = NO_SPAN

    @property
    def effect(self) -> str:
        return "allow" if self.allow else "deny"


@dataclass(frozen=True, slots=True)
class ExpectationFile:
    charter_name: str
    as_of: dt.datetime | None
    directory: str | None
    expectations: tuple[Expectation, ...]


def parse_expectations(source: str, source_name: str = "<text>") -> ExpectationFile:
    """Parse an expectation file; raises CharterError listing every syntax error."""
    return _ExpectationParser(source, source_name).expectation_file()


class _ExpectationParser(_Parser):
    def expectation_file(self) -> ExpectationFile:
        try:
            self.expect("expectations", '"Expectations for Charter" and the charter\'s name')
            self.expect("for")
            self.expect("charter")
            name = self.expect_string("the charter's name").text
            self.expect_punct(".", 'a "." after the charter\'s name')
            as_of = directory = None
            while self.at("as", "directory"):
                if self.accept("as"):
                    self.expect("of", after=self.tokens[self.pos - 1])
                    as_of = self.moment()
                else:
                    self.advance()
                    directory = self.expect_string("the directory file").text
                self.expect_punct(".", 'a "." to end the header line')
        except Exception as failure:
            self._raise(failure)
        expectations = []
        while self.peek().kind is not Kind.END:
            found = self.numbered(self.expectation)
            if found is not None:
                expectations.append(found)
        if self.errors:
            raise CharterError(self.errors, self.source)
        if not expectations:
            self._raise(self.fail('expected at least one "Expect allow: ..." or "Expect deny: ..." line'))
        return ExpectationFile(name, as_of, directory, tuple(expectations))

    def _raise(self, failure: Exception) -> None:
        diagnostic = getattr(failure, "diagnostic", None)
        if diagnostic is None:
            raise failure
        raise CharterError([*self.errors, diagnostic], self.source) from None

    def skip_to_next_sentence(self, header: bool) -> None:
        self.advance()
        while self.peek().kind is not Kind.END and not (
            self.at("expect") and self.tokens[self.pos - 1].span.line < self.peek().span.line
        ):
            self.advance()

    def expectation(self) -> Expectation:
        start = self.expect("expect", '"Expect allow:" or "Expect deny:"')
        effect = self.peek()
        if not self.at("allow", "deny"):
            raise self.expected('"allow" or "deny"', ("allow", "deny"), after=start)
        self.advance()
        clause = None
        if self.accept("by"):
            self.expect("clause", '"clause" and its number')
            clause = self.positive_number("the clause number")
        self.expect_punct(":", '":" before the request')
        kind_token = self.peek()
        if not self.at("user", "service", "partner"):
            raise self.expected(
                'the subject: user "name", service "name" or partner "name"', ("user", "service", "partner")
            )
        self.advance()
        subject = self.expect_string(f"the {kind_token.lower}'s name").text
        action = self.action(after=self.tokens[self.pos - 1])
        resource = self.expect_string("the resource").text
        mfa, ip, at, scopes, attributes = False, None, None, [], []
        while not self.at_punct("."):
            if self.accept("with"):
                if self.at("mfa"):
                    self.advance()
                    mfa = True
                elif self.accept("scope", "scopes"):
                    scopes.append(self.expect_string("the scope").text)
                else:
                    raise self.expected('"MFA" or "scope"', ("MFA", "scope"))
            elif self.accept("from"):
                ip = self.address()
            elif self.accept("at"):
                at = self.moment()
            elif self.accept("where"):
                self.expect("the")
                self.expect("resource's", '"resource\'s" and an attribute name')
                name = self.attribute_name()
                self.expect("is", '"is" and a value')
                attributes.append((name, self.expect_string("the value").text))
            else:
                raise self.expected(
                    '".", or "with MFA", "with scope", "from ADDRESS", "at DATE" or "where the resource\'s ..."'
                )
            self.accept_punct(",")
        self.advance()
        text = self.source[start.span.start : self.tokens[self.pos - 1].span.end]
        return Expectation(
            effect.lower == "allow",
            clause,
            kind_token.lower,
            subject,
            action,
            resource,
            mfa,
            ip,
            at,
            tuple(scopes),
            tuple(attributes),
            " ".join(text.split()),
            self.span_from(start),
        )

    def address(self) -> str:
        token = self.peek()
        if token.kind is not Kind.NETWORK or "/" in token.text:
            raise self.expected("an IP address such as 10.1.2.3")
        try:
            ipaddress.ip_address(token.text)
        except ValueError:
            raise self.fail(f"{token.text} is not an IP address", token) from None
        self.advance()
        return token.text

    def moment(self) -> dt.datetime:
        day = self.date()
        time = dt.time()
        if self.peek().kind is Kind.TIME:
            time = self.time_of_day()
        zone = self.zone(required=False) or "UTC"
        return dt.datetime.combine(day, time, ZoneInfo(zone))
