"""Sealing secrets the store must keep readable (TOTP seeds, private signing keys) with a key-encryption key.

The key comes from CHARTER_SECRET_KEYS (comma-separated Fernet keys, newest first: every server of a
deployment must share them) or, for a single server, from `<data dir>/secret.key`, made on first use with
mode 0600. Sealing uses the first key; opening tries each, so a new key can be introduced before the old
is dropped (`MultiFernet`). A database dump alone therefore reveals no factor and no signing key.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENVIRONMENT = "CHARTER_SECRET_KEYS"
KEY_FILE = "secret.key"


class Unsealable(Exception):
    """A sealed value none of the configured keys opens (the keys changed, or the value was altered)."""


class Sealer:
    def __init__(self, keys: list[bytes]):
        if not keys:
            raise ValueError("at least one key-encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, plain: bytes, at: float | None = None) -> str:
        """Seal `plain`; `at` (seconds since the epoch, from the engine's clock) stamps it for `open(ttl=...)`."""
        if at is None:
            return self._fernet.encrypt(plain).decode("ascii")
        return self._fernet.encrypt_at_time(plain, int(at)).decode("ascii")

    def open(self, sealed: str, ttl: int | None = None, at: float | None = None) -> bytes:
        """Open a sealed value; with `ttl`, refuse one sealed more than `ttl` seconds before `at` (default: now)."""
        try:
            if ttl is not None and at is not None:
                return self._fernet.decrypt_at_time(sealed.encode("ascii"), ttl, int(at))
            return self._fernet.decrypt(sealed.encode("ascii"), ttl)
        except (InvalidToken, UnicodeEncodeError):
            raise Unsealable(
                f"a sealed secret could not be opened with the keys in {ENVIRONMENT} or {KEY_FILE}"
            ) from None


def sealer_from(environment: str | None, data_dir: Path) -> Sealer:
    if environment and environment.strip():
        return Sealer([part.strip().encode() for part in environment.split(",") if part.strip()])
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this data directory made it first
            pass
        else:
            with os.fdopen(descriptor, "wb") as file:
                file.write(Fernet.generate_key())
    return Sealer([path.read_bytes().strip()])


@lru_cache(maxsize=1)
def default_sealer() -> Sealer:
    """The process's sealer, from the environment or the data directory (read once)."""
    from charter.store.db import data_dir

    return sealer_from(os.environ.get(ENVIRONMENT), data_dir())
