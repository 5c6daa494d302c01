"""TOTP factors (RFC 6238: SHA-1, 6 digits, 30 s) and one-time recovery codes, in the caller's transaction.

A factor is enrolled pending (`confirmed_at` None) with a random 160-bit base32 seed, sealed
(`charter.sealed`) so a database dump reveals none; the first valid code confirms it. A code is accepted
one step either side of now (clock drift), and only for a step after the last one used (`last_step`), so
a code seen over a shoulder cannot be replayed. Confirming makes 10 recovery codes, shown once; only
their SHA-256 is stored and each works once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import secrets

import pyotp
import qrcode
import qrcode.image.svg
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from charter.sealed import Sealer
from charter.store.models import MfaFactorRow, RecoveryCodeRow

ISSUER = "Charter"
STEP = 30
WINDOW = 1  # steps either side of now
RECOVERY_CODES = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def factor(session: Session, user: str, lock: bool = False) -> MfaFactorRow | None:
    query = select(MfaFactorRow).where(MfaFactorRow.user == user)
    return session.scalar(query.with_for_update() if lock else query)


def confirmed(session: Session, user: str) -> bool:
    row = factor(session, user)
    return row is not None and row.confirmed_at is not None


def enrol(session: Session, user: str, now: dt.datetime, sealer: Sealer) -> tuple[MfaFactorRow, str]:
    """A pending factor for `user` (the one already pending, if any) and its seed; refused when one is confirmed."""
    row = factor(session, user, lock=True)
    if row is not None and row.confirmed_at is not None:
        raise ValueError(f"{user} already has a confirmed factor: it must be reset before enrolling another")
    if row is not None:
        return row, sealer.open(row.sealed_secret).decode()
    secret = pyotp.random_base32(32)
    row = MfaFactorRow(
        user=user, sealed_secret=sealer.seal(secret.encode()), created_at=now, confirmed_at=None, last_step=None
    )
    session.add(row)
    session.flush()
    return row, secret


def provisioning_uri(secret: str, user: str) -> str:
    """The `otpauth://totp/Charter:<user>?secret=...&issuer=Charter` an authenticator app scans."""
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=user, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as an inline SVG element (no raster images, no PIL)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    out = io.BytesIO()
    image.save(out)
    text = out.getvalue().decode()
    return text[text.index("<svg") :]  # without the XML declaration, to embed in HTML


def step_of(now: dt.datetime) -> int:
    return int(now.timestamp()) // STEP


def check_code(session: Session, user: str, code: str, now: dt.datetime, sealer: Sealer, pending: bool = False) -> bool:
    """Whether `code` is valid for `user`'s factor now (confirmed, or pending when `pending`); records its step.

    The factor row is locked, so two requests with the same code cannot both pass.
    """
    code = "".join(str(code).split())
    row = factor(session, user, lock=True)
    if row is None or (row.confirmed_at is None) != pending or not (code.isdigit() and len(code) == 6):
        return False
    totp = pyotp.TOTP(sealer.open(row.sealed_secret).decode(), interval=STEP)
    now_step = step_of(now)
    for step in range(now_step - WINDOW, now_step + WINDOW + 1):
        if row.last_step is not None and step <= row.last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            row.last_step = step
            return True
    return False


def confirm(session: Session, user: str, code: str, now: dt.datetime, sealer: Sealer) -> list[str] | None:
    """Confirm `user`'s pending factor with its first code; the new recovery codes, or None for a wrong code."""
    if not check_code(session, user, code, now, sealer, pending=True):
        return None
    row = factor(session, user)
    row.confirmed_at = now  # type: ignore[union-attr]
    return new_recovery_codes(session, user, now)


def _digest(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def normalise_code(code: str) -> str:
    return "".join(ch for ch in str(code).lower() if ch.isalnum())


def new_recovery_codes(session: Session, user: str, now: dt.datetime) -> list[str]:
    """Replace `user`'s recovery codes with 10 new ones (returned once, stored as SHA-256)."""
    session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user == user))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))  # ~49 bits each
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        session.add(RecoveryCodeRow(digest=_digest(code), user=user, created_at=now, used_at=None))
    session.flush()
    return codes


def use_recovery_code(session: Session, user: str, code: str, now: dt.datetime) -> bool:
    """Spend one of `user`'s unused recovery codes; False when it is not one (or was used)."""
    if not 8 <= len(normalise_code(code)) <= 32:
        return False
    query = select(RecoveryCodeRow).where(RecoveryCodeRow.digest == _digest(code)).with_for_update()
    row = session.scalar(query)
    if row is None or row.user != user or row.used_at is not None:
        return False
    row.used_at = now
    return True


def recovery_codes_left(session: Session, user: str) -> int:
    query = select(func.count()).where(RecoveryCodeRow.user == user, RecoveryCodeRow.used_at.is_(None))
    return int(session.scalar(query) or 0)


def remove(session: Session, user: str) -> int:
    """Delete `user`'s factor and recovery codes (an approved reset); how many factors were removed."""
    session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user == user))
    return session.execute(delete(MfaFactorRow).where(MfaFactorRow.user == user)).rowcount
