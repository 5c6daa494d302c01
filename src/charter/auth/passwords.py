"""Passwords: argon2id hashes, the password policy (NIST SP 800-63B), and the breached-password list.

- Hashing: argon2-cffi's `PasswordHasher` defaults, which are RFC 9106's low-memory profile (argon2id,
  t=3, m=64 MiB, p=4). The parameters travel in the hash, so a stored hash made with older parameters is
  upgraded on the next successful sign-in (`needs_rehash`).
- Policy: 12 to 256 characters (the upper bound keeps hashing cheap to refuse), any characters, no
  composition rules; refused when it is in the breached list, contains the user name, or is one character
  repeated. Each refusal says what was wrong and what is expected.
- Breached list: `samples/common-passwords.txt` (compared in lower case) plus, with
  CHARTER_BREACHED_PASSWORDS=/path, a larger file of plain lines or of HIBP-style `SHA1HEX[:count]` lines
  (detected line by line; the SHA-1 is of the exact password).
- Timing: checking a sign-in for an unknown account still runs one argon2 verification against a dummy
  hash, so the answer takes as long whether the account exists or not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from charter.store.models import PasswordRow

MIN_LENGTH = 12
MAX_LENGTH = 256
BREACHED_ENVIRONMENT = "CHARTER_BREACHED_PASSWORDS"
COMMON_FILE = Path(__file__).resolve().parent.parent / "samples" / "common-passwords.txt"
_SHA1_LINE = re.compile(r"^[0-9A-Fa-f]{40}(:\d+)?$")

HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


class WeakPassword(ValueError):
    """A password the policy refuses; the message says what is wrong and what is expected."""


@dataclass(frozen=True, slots=True)
class Breached:
    plain: frozenset[str]  # lower case
    sha1: frozenset[bytes]  # SHA-1 digests of exact passwords

    def __contains__(self, password: str) -> bool:
        if password.lower() in self.plain:
            return True
        return bool(self.sha1) and hashlib.sha1(password.encode(), usedforsecurity=False).digest() in self.sha1


def _read_list(path: Path, plain: set[str], sha1: set[bytes]) -> None:
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            line = line.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            if _SHA1_LINE.match(line):
                sha1.add(bytes.fromhex(line[:40]))
            else:
                plain.add(line.lower())


@lru_cache(maxsize=4)
def _breached(extra: str | None) -> Breached:
    plain: set[str] = set()
    sha1: set[bytes] = set()
    _read_list(COMMON_FILE, plain, sha1)
    if extra:
        path = Path(extra)
        if not path.is_file():
            raise SystemExit(f"{BREACHED_ENVIRONMENT} names {extra!r}, which is not a readable file")
        _read_list(path, plain, sha1)
    return Breached(frozenset(plain), frozenset(sha1))


def breached() -> Breached:
    """The breached list in use (the shipped one plus CHARTER_BREACHED_PASSWORDS), read once per file."""
    return _breached(os.environ.get(BREACHED_ENVIRONMENT, "").strip() or None)


def check_policy(password: str, user: str) -> None:
    """Raise WeakPassword when the policy refuses `password` for `user`."""
    if not isinstance(password, str):
        raise WeakPassword("the password must be text")
    password = unicodedata.normalize("NFC", password)
    length = len(password)
    if length < MIN_LENGTH:
        raise WeakPassword(f"the password is too short: {length} characters, at least {MIN_LENGTH} expected")
    if length > MAX_LENGTH:
        raise WeakPassword(f"the password is too long: {length} characters, at most {MAX_LENGTH} expected")
    if len(set(password)) == 1:
        raise WeakPassword("the password is one character repeated: choose a passphrase of several words")
    name = user.strip().casefold()
    if len(name) >= 3 and name in password.casefold():
        raise WeakPassword("the password contains the user name: choose one that does not")
    if password in breached():
        raise WeakPassword(
            "the password is on a list of common or leaked passwords: choose another, such as several unrelated words"
        )


def hash_password(password: str) -> str:
    return HASHER.hash(unicodedata.normalize("NFC", password))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return HASHER.hash("charter: no such account, this hash only spends the same time")


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches the argon2 hash `stored`; with no hash, one verification all the same."""
    candidate = unicodedata.normalize("NFC", password)[: MAX_LENGTH * 4] if isinstance(password, str) else ""
    try:
        return HASHER.verify(stored or _dummy_hash(), candidate) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def set_password(
    session: Session, user: str, password: str, now: dt.datetime, must_change: bool = False
) -> PasswordRow:
    """Check the policy, then store the hash of `user`'s new password in the caller's transaction."""
    check_policy(password, user)
    row = session.get(PasswordRow, user)
    if row is None:
        row = PasswordRow(user=user, hash="", changed_at=now, must_change=must_change)
        session.add(row)
    row.hash, row.changed_at, row.must_change = hash_password(password), now, must_change
    return row


def stored_hash(session: Session, user: str | None) -> PasswordRow | None:
    return session.get(PasswordRow, user) if user else None
