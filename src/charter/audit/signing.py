"""Checkpoint signing keys: Ed25519 (via `cryptography`), the private key in the data directory.

The keyring is the directory `<data dir>/audit-keys/`: one `<key id>.pem` (PKCS #8, mode 0600) for
the active key, named by the file `active`. A key's id is the first 16 hex digits of the SHA-256 of its
raw public key. Rotating writes a new key, makes it active and deletes the old private key; the old
public key stays in the store (`audit_keys`, with the time it was retired), so checkpoints it signed
still verify, and a checkpoint claiming that key but dated after its retirement does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEYRING_DIRECTORY = "audit-keys"


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    id: str
    private: Ed25519PrivateKey

    @property
    def public_bytes(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, payload: bytes) -> bytes:
        return self.private.sign(payload)


def signature_holds(public_key: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


class Keyring:
    """The signing key of this installation, created on first use."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._key: SigningKey | None = None

    def active(self) -> SigningKey:
        """The active key (read once, then cached); a new one is created when there is none."""
        if self._key is None:
            with self._locked():
                self._key = self._read_active() or self._create()
        return self._key

    def rotate(self) -> tuple[SigningKey, SigningKey | None]:
        """A new active key; the old private key is deleted. Returns (new, old)."""
        with self._locked():
            old = self._read_active()
            new = self._create()
            if old is not None:
                (self.directory / f"{old.id}.pem").unlink(missing_ok=True)
        self._key = new
        return new, old

    def _read_active(self) -> SigningKey | None:
        pointer = self.directory / "active"
        if not pointer.exists():
            return None
        kid = pointer.read_text().strip()
        private = serialization.load_pem_private_key((self.directory / f"{kid}.pem").read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{self.directory / kid}.pem is not an Ed25519 key")
        return SigningKey(kid, private)

    def _create(self) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        key = SigningKey("", private)
        key = SigningKey(key_id(key.public_bytes), private)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = self.directory / f"{key.id}.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        pointer = self.directory / "active.tmp"
        pointer.write_text(key.id + "\n")
        os.replace(pointer, self.directory / "active")  # atomic: the active key is always a whole file
        return key

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise key creation between the processes sharing this data directory."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
