"""Parse benchmark: how long the charter language takes on a large, realistic charter.

    .venv/bin/python bench/parse.py [--clauses N] [--repeat R]

Generates a charter of N clauses (default 10,000) deterministically, seeded with
`random.Random(7)`: every sentence family of examples/acme.charter in realistic
proportions (mostly permissions with conditions; some prohibitions, request and
break-glass clauses, obligations and revocations), with varied groups, actions
and resources, and an amendment of about N/20 changes (500 for 10,000 clauses).

Then measures, best of R runs (default 5) with time.perf_counter: tokenize,
parse, format, parse of the formatted text, check (with a directory holding
every generated name) and consolidation with the amendment. Prints a table, the
Python version, the machine and the peak resident memory.

The target is for parsing 10,000 clauses to take under 2 s; this is a benchmark,
not a test: it exits non-zero only if the format/parse round trip fails, never
because of a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from charter.language import ast
from charter.language.checker import KnownNames, check
from charter.language.consolidate import consolidate
from charter.language.formatter import format_amendment, format_charter
from charter.language.lexer import tokenize
from charter.language.parser import parse_amendment, parse_charter

CHARTER_NAME = "Bench Production Access"
EFFECTIVE = dt.date(2026, 12, 1)

TEAMS = (
    "sre", "platform", "payments", "billing", "support", "data", "analytics", "security", "identity", "mobile",
    "web", "search", "checkout", "fraud", "risk", "finance", "hr", "legal", "growth", "ml", "infra", "network",
    "storage", "devex", "release", "qa", "partners", "logistics", "catalog", "messaging",
)  # fmt: skip
ROLES = (
    "oncall", "leads", "engineers", "admins", "readers", "operators", "analysts", "contractors", "interns",
    "managers", "auditors", "dba", "reviewers", "approvers", "eu", "us", "apac", "tier1", "tier2", "tier3",
)  # fmt: skip
SYSTEMS = (
    "db", "s3", "k8s", "kafka", "vault", "api", "tickets", "reports", "logs", "metrics", "git", "ci", "dns",
    "cdn", "queue", "cache", "warehouse", "crm", "erp", "mail",
)  # fmt: skip
ENVS = ("prod", "staging", "dev", "eu-prod", "us-prod", "sandbox")
AREAS = (
    "orders", "invoices", "customers", "payments", "users", "sessions", "inventory", "shipments", "refunds",
    "ledger", "audit", "events", "catalog", "pricing", "accounts", "secrets", "configs", "builds", "releases",
)  # fmt: skip
ACTIONS = (
    "read", "write", "list", "create", "update", "deploy", "restart", "scale", "approve", "query", "publish",
    "subscribe", "download", "upload", "rotate", "annotate", "comment", "merge", "tag", "run",
)  # fmt: skip
DANGEROUS = ("delete", "drop", "purge", "export", "truncate", "impersonate")
DEPARTMENTS = ("finance", "engineering", "support", "sales", "legal", "operations", "marketing", "hr")
CLEARANCES = ("public", "internal", "confidential", "restricted")
ZONES = ("UTC", "UTC", "UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London")
FIRST = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar")
LAST = ("smith", "jones", "garcia", "kim", "martin", "rossi", "novak", "tanaka", "silva", "meyer")

# Sentence families, by weight per 100 clauses (obligations that the checker allows only once are added separately).
FAMILIES = (
    ("permission", 70),
    ("prohibition", 6),
    ("eligibility", 10),
    ("break_glass", 3),
    ("mfa", 5),
    ("review", 3),
    ("revocation", 3),
)

SINGLETONS = (
    "Access tokens expire after 1 hour.",
    "Refresh tokens expire after 30 days.",
    "ID tokens expire after 1 hour.",
    "Service credentials rotate every 90 days.",
    "Signing keys rotate every 180 days.",
    "Sessions end after 12 hours, or after 30 minutes idle.",
    "Accounts lock for 15 minutes after 5 failed logins.",
    "Audit records are kept for 365 days.",
    "Decision records are kept for 730 days.",
    'Requests not decided within 4 hours escalate to group "security-leads".',
    "Accounts of people who leave are disabled within 1 hour.",
    'Lost MFA devices are reset only by 2 members of group "security-oncall".',
)


@dataclass
class Generator:
    """Writes charter sentences in the shapes of examples/acme.charter, recording every name it uses."""

    rng: random.Random
    groups: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    partners: set[str] = field(default_factory=set)
    used_groups: set[str] = field(default_factory=set)
    reviewed: set[str] = field(default_factory=set)
    revoked: int = 0
    groups_revoked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.groups = [f"{team}-{role}" for team in TEAMS for role in ROLES]

    # --- names -------------------------------------------------------------------------------

    def group(self) -> str:
        # A few teams hold most of the grants, as in a real organisation.
        name = (
            self.groups[min(int(self.rng.paretovariate(0.8)) - 1, len(self.groups) - 1)]
            if self.rng.random() < 0.3
            else (self.rng.choice(self.groups))
        )
        self.used_groups.add(name)
        return name

    def user(self) -> str:
        name = f"{self.rng.choice(FIRST)}.{self.rng.choice(LAST)}{self.rng.randrange(100)}"
        self.users.add(name)
        return name

    def service(self) -> str:
        name = f"{self.rng.choice(TEAMS)}-{self.rng.choice(('api', 'worker', 'cron', 'etl', 'gateway'))}"
        self.services.add(name)
        return name

    def partner(self) -> str:
        name = f"{self.rng.choice(('acme', 'globex', 'initech', 'umbrella', 'hooli'))}-{self.rng.choice(TEAMS)}"
        self.partners.add(name)
        return name

    def resource(self) -> str:
        rng = self.rng
        base = f"{rng.choice(SYSTEMS)}:{rng.choice(ENVS)}"
        roll = rng.random()
        if roll < 0.45:
            return f"{base}/*"
        if roll < 0.8:
            return f"{base}/{rng.choice(AREAS)}/*"
        return f"{base}/{rng.choice(AREAS)}"

    def resources(self) -> str:
        count = 1 if self.rng.random() < 0.8 else 2
        return _join([f'"{r}"' for r in dict.fromkeys(self.resource() for _ in range(count))])

    def actions(self, pool: tuple[str, ...] = ACTIONS) -> str:
        count = self.rng.choices((1, 2, 3), (60, 30, 10))[0]
        return _join(self.rng.sample(pool, count))

    # --- parts -------------------------------------------------------------------------------

    def subject(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.65:
            return f'Members of group "{self.group()}"'
        if roll < 0.73:
            return f'Members of group "{self.group()}" whose department is "{rng.choice(DEPARTMENTS)}"'
        if roll < 0.81:
            return f'Service "{self.service()}"'
        if roll < 0.86:
            return f'User "{self.user()}"'
        if roll < 0.90:
            return f'Partner "{self.partner()}"'
        if roll < 0.96:
            return f'Users whose department is "{rng.choice(DEPARTMENTS)}"'
        return "Anyone authenticated"

    def condition(self) -> str:
        rng = self.rng
        start = rng.randrange(6, 11)
        shapes: list[Callable[[], str]] = [
            lambda: "with MFA",
            lambda: f"on weekdays between {start:02d}:00 and {start + 8:02d}:00 {rng.choice(ZONES)}",
            lambda: "on Monday through Friday",
            lambda: f"between {start:02d}:30 and {start + 9:02d}:00 {rng.choice(ZONES)}",
            lambda: f"from network 10.{rng.randrange(256)}.0.0/16",
            lambda: f"from networks 10.{rng.randrange(256)}.0.0/16 and 192.168.{rng.randrange(256)}.0/24",
            lambda: f'with scope "{rng.choice(AREAS)}.{rng.choice(("read", "write"))}"',
            lambda: f'when the resource\'s classification is "{rng.choice(CLEARANCES)}"',
            lambda: 'when the resource\'s "cost-center" is the subject\'s "cost-center"',
            lambda: f'when the subject\'s clearance is one of "{CLEARANCES[2]}", "{CLEARANCES[3]}"',
            lambda: "they own",
            lambda: "of their own department",
        ]
        weights = (30, 12, 3, 4, 12, 3, 6, 8, 3, 4, 8, 7)
        return rng.choices(shapes, weights)[0]()

    def conditions(self) -> list[str]:
        count = self.rng.choices((0, 1, 2, 3), (20, 50, 25, 5))[0]
        found: list[str] = []
        kinds: set[str] = set()
        for _ in range(count):
            text = self.condition()
            kind = {"between": "on"}.get(text.split()[0], text.split()[0])
            if kind in kinds and kind != "when":
                continue  # one condition of each kind (one time window, one network list, ...) per clause
            kinds.add(kind)
            found.append(text)
        return found

    def validity(self) -> str:
        roll = self.rng.random()
        if roll < 0.2:
            return f" for {self.rng.choice((7, 14, 30, 90))} days"
        if roll < 0.25:
            return f" until 2027-{self.rng.randrange(1, 13):02d}-28"
        return ""

    # --- sentences ---------------------------------------------------------------------------

    def sentence(self, family: str) -> str:
        return getattr(self, family)()

    def permission(self) -> str:
        conditions = self.conditions()
        actions = self.actions() if self.rng.random() < 0.97 else self.actions(("read", "write", "delete"))
        text = f"{self.subject()} may {actions} {self.resources()}"
        if conditions:
            text += " " + ", ".join(conditions)
        return text + self.validity() + "."

    def prohibition(self) -> str:
        rng = self.rng
        roll = rng.random()
        what = f"{self.actions(DANGEROUS)} {self.resources()}"
        if roll < 0.5:
            return f"No one may {what} except by break glass."
        if roll < 0.65:
            return f"No one may {what} except by break glass or by approved request."
        if roll < 0.8:
            return f'No one may {what} except members of group "{self.group()}".'
        if roll < 0.9:
            return f'Members of group "{self.group()}" may not {what} on weekends.'
        return f"No one may {what} from network 0.0.0.0/0 except by approved request."

    def eligibility(self) -> str:
        rng = self.rng
        text = f"{self.subject()} may request {self.actions()} on {self.resources()}"
        if rng.random() < 0.3:
            text += " with MFA"
        hours = rng.choice((1, 2, 4, 8, 12))
        text += f" for up to {hours} {'hour' if hours == 1 else 'hours'}"
        if rng.random() < 0.7:
            text += ", with a reason"
        if rng.random() < 0.8:
            count = rng.choice((1, 1, 1, 2))
            text += f', approved by {count} {"member" if count == 1 else "members"} of group "{self.group()}"'
        return text + "."

    def break_glass(self) -> str:
        rng = self.rng
        text = f'Members of group "{self.group()}" may break glass'
        if rng.random() < 0.4:
            text += f" to {self.actions(DANGEROUS + ACTIONS[:4])}"
        text += f" on {self.resources()} for up to {rng.choice((1, 2, 4))} hour"
        text += "" if text.endswith(" 1 hour") else "s"
        return text + f'; each use is reviewed by group "{self.group()}" within {rng.choice((24, 48, 72))} hours.'

    def mfa(self) -> str:
        return f"{self.subject()} must use MFA."

    def review(self) -> str:
        fresh = [g for g in self.groups if g not in self.reviewed]
        if not fresh:  # every group already has its review: one review per group is all the checker allows
            return self.permission()
        group = self.rng.choice(fresh)
        self.reviewed.add(group)
        days = self.rng.choice((30, 60, 90))
        return f'Membership of group "{group}" is reviewed every {days} days by group "{self.group()}".'

    def revocation(self) -> str:
        roll = self.rng.random()
        self.revoked += 1
        if roll < 0.6:
            name = f"legacy-{self.revoked}"
            self.groups_revoked.append(name)
            return f'Group "{name}" is revoked.'
        # People who left and retired services: names no other clause grants.
        if roll < 0.85:
            name = f"{self.rng.choice(FIRST)}.{self.rng.choice(LAST)}{100 + self.revoked}"
            self.users.add(name)
            return f'User "{name}" is revoked.'
        name = f"{self.rng.choice(TEAMS)}-legacy-{self.revoked}"
        self.services.add(name)
        return f'Service "{name}" is revoked.'

    def known_names(self) -> KnownNames:
        return KnownNames(
            users=frozenset(self.users),
            groups=frozenset(
                self.used_groups
                | set(self.groups_revoked)
                | {"security", "security-leads", "security-oncall", "eng-leads"}
            ),
            services=frozenset(self.services),
            partners=frozenset(self.partners),
        )


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


BREAK_BEFORE = tuple(
    f"{word} "
    for word in ("with", "on", "between", "from", "when", "they", "of their", "approved", "for", "until", "except")
)


def _clause_text(lead: str, sentence: str, width: int = 90) -> str:
    """`lead + sentence`, long ones broken before a condition into indented lines, the way people write them."""
    lines = []
    while len(lead) + len(sentence) > width:
        breaks = [i for i, char in enumerate(sentence) if char == " " and sentence.startswith(BREAK_BEFORE, i + 1)]
        breaks = [i for i in breaks if i > 20]
        if not breaks:
            break
        at = max((i for i in breaks if len(lead) + i <= width), default=breaks[0])
        lines.append(lead + sentence[:at])
        lead, sentence = " " * len(lead), sentence[at + 1 :]
    return "\n".join([*lines, lead + sentence])


def generate(clauses: int, rng: random.Random) -> tuple[str, str, Generator]:
    """The charter text, an amendment to it (about one change per 20 clauses) and the generator with its names."""
    gen = Generator(rng)
    families = [name for name, _ in FAMILIES]
    weights = [weight for _, weight in FAMILIES]
    places = sorted(rng.sample(range(1, clauses + 1), min(len(SINGLETONS), clauses)))
    singles = dict(zip(places, SINGLETONS, strict=False))

    lines = [
        "# Generated by bench/parse.py: a large charter in the shapes of examples/acme.charter.",
        f'Charter "{CHARTER_NAME}".',
        f"  Effective {EFFECTIVE.isoformat()}.",
        '  Owned by group "security" and group "eng-leads".',
        '  Amendments are approved by 1 member of group "security".',
        "",
    ]
    for number in range(1, clauses + 1):
        sentence = singles.get(number) or gen.sentence(rng.choices(families, weights)[0])
        if rng.random() < 0.02:
            lines.append(f"# Ticket SEC-{rng.randrange(1000, 9999)}: requested by the owning team.")
        lines.append(_clause_text(f"Clause {number}. ", sentence))
    charter = "\n".join(lines) + "\n"

    changes = max(1, clauses // 20)
    inserts = changes // 5
    touched = sorted(rng.sample(range(1, clauses + 1), min(changes - inserts, clauses)))
    amendment_families = [f for f in families if f != "review"]  # a new review could repeat a group's review
    amendment_weights = [w for f, w in FAMILIES if f != "review"]
    lines = [
        "Amendment 1 to Charter " + f'"{CHARTER_NAME}".',
        "  Effective 2027-01-15.",
        '  Reason "Quarterly access review".',
        '  Approved by 1 member of group "security" and 1 member of group "eng-leads".',
        "",
    ]
    for number in touched:
        if number in singles or rng.random() < 0.3:
            lines.append(f"Strike clause {number}.")
        else:
            sentence = gen.sentence(rng.choices(amendment_families, amendment_weights)[0])
            lines.append(_clause_text(f"Replace clause {number} with: ", sentence))
    for number in range(clauses + 1, clauses + inserts + 1):
        sentence = gen.sentence(rng.choices(amendment_families, amendment_weights)[0])
        lines.append(_clause_text(f"Insert clause {number}: ", sentence))
    amendment = "\n".join(lines) + "\n"
    return charter, amendment, gen


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    """The shortest of `repeat` timed runs, and what the last run returned."""
    best = float("inf")
    result: object = None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--clauses", type=int, default=10_000, help="clauses in the generated charter (10000)")
    options.add_argument("--repeat", type=int, default=5, help="runs per stage; the best is reported (5)")
    args = options.parse_args(argv)
    if args.clauses < 1 or args.repeat < 1:
        options.error("--clauses and --repeat must be at least 1")

    console = Console()
    charter_text, amendment_text, gen = generate(args.clauses, random.Random(7))
    names = gen.known_names()
    changes = amendment_text.count("\nStrike ") + amendment_text.count("\nReplace ") + amendment_text.count("\nInsert ")

    rows: list[tuple[str, float, int]] = []

    def stage(name: str, items: int, run: Callable[[], object]) -> object:
        seconds, result = best_of(args.repeat, run)
        rows.append((name, seconds, items))
        return result

    tokens, _ = stage("tokenize", args.clauses, lambda: tokenize(charter_text))  # type: ignore[misc]
    charter = stage("parse", args.clauses, lambda: parse_charter(charter_text))
    assert isinstance(charter, ast.Charter)
    amendment = stage(f"parse amendment ({changes} changes)", changes, lambda: parse_amendment(amendment_text))
    assert isinstance(amendment, ast.Amendment)
    formatted = stage("format", args.clauses, lambda: format_charter(charter))
    assert isinstance(formatted, str)
    reparsed = stage("parse formatted text", args.clauses, lambda: parse_charter(formatted))
    result = stage("check (with the amendment)", args.clauses, lambda: check(charter, [amendment], names, EFFECTIVE))
    stage("consolidate (with the amendment)", args.clauses, lambda: consolidate(charter, [amendment]))

    round_trip = reparsed == charter and parse_amendment(format_amendment(amendment)) == amendment

    table = Table(title=f"Charter language, {args.clauses:,} clauses, best of {args.repeat}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("clauses/s", justify="right")
    for name, seconds, items in rows:
        table.add_row(name, f"{seconds:.3f}", f"{items / seconds:,.0f}" if seconds else "-")
    console.print(table)

    warnings = len(result.warnings)  # type: ignore[attr-defined]
    errors = len(result.errors)  # type: ignore[attr-defined]
    console.print(
        f"input: {len(charter_text):,} characters, {len(tokens):,} tokens, {charter_text.count(chr(10)):,} lines; "
        f"amendment: {changes} changes; check: {errors} errors, {warnings} warnings"
    )
    console.print(f"python: {platform.python_implementation()} {platform.python_version()}")
    console.print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    console.print(f"peak resident memory: {peak_rss_mib():.0f} MiB")
    if not round_trip:
        console.print("[bold red]round trip failed: parse(format(charter)) != charter[/]")
        return 1
    console.print("round trip: parse(format(charter)) == charter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
