"""Keeping the signing key ring current: the first key when a token is first signed, the next in good time.

No key exists until Charter first signs a token (`ensure_keys` from the token path); from then on the
scheduler calls `rotate_if_due` every tick. `ensure_keys` is cheap when nothing is due (it reads the
engine's ring, no store access); when a key is due it writes it under the revision lock, re-checking
there so two servers never both make one, and audits it. Other servers load it with the next snapshot.
"""

from __future__ import annotations

import datetime as dt

from charter.oidc import keys
from charter.store.db import bump_revision

ACTOR = "charter (signing key rotation)"


def rotate_if_due(engine, actor: str = ACTOR) -> str | None:
    """The scheduler's tick: rotate only a ring that is in use (a store that never signed a token has none),
    and take out of the ring the keys whose tokens have all expired."""
    if engine.keyring is None or not engine.keyring.rows:
        return None
    kid = ensure_keys(engine, actor)
    unpublish_expired(engine, actor)
    return kid


def unpublish_expired(engine, actor: str = ACTOR) -> list[str]:
    """Keys past `publish_until` leave JWKS: a new revision, so every server reloads its ring; audited.

    Verification already refuses their tokens from that moment (it reads `publish_until` itself); this makes
    the published key set say so too. The rows stay, as the record of which keys existed."""
    now = engine.clock.now().astimezone(dt.UTC)
    ring = engine.keyring
    moment = int(now.timestamp())
    if ring is None or all(until > moment for until in ring.publish_until.values()):
        return []
    with engine.sessions.begin() as session:
        revision = bump_revision(session)
        live = {row.kid for row in keys.live_rows(session, now)}
        gone = [row.kid for row in ring.rows if row.kid not in live]
        if not gone:
            session.rollback()
            return []
        for kid in gone:
            engine.audit.record(
                session,
                actor,
                "oidc.key.unpublish",
                f"signing-key:{kid}",
                details={
                    "publish_until": dt.datetime.fromtimestamp(ring.publish_until[kid], dt.UTC).isoformat(),
                    "revision": revision,
                },
            )
    engine.catch_up(revision)
    return gone


def ensure_keys(engine, actor: str = ACTOR) -> str | None:
    """Make the next signing key if one is due; its kid, or None when none was due."""
    now = engine.clock.now().astimezone(dt.UTC)
    obligations = engine.snapshot.auth
    ring = engine.keyring
    if ring is not None and keys.due(ring.rows, now, obligations) is None:
        return None
    with engine.sessions.begin() as session:
        revision = bump_revision(session)  # the row lock: one server at a time decides
        rows = keys.live_rows(session, now)
        signs_from = keys.due(rows, now, obligations)
        if signs_from is None:
            session.rollback()
            return None
        row = keys.new_key(engine.sealer, signs_from, obligations)
        session.add(row)
        engine.audit.record(
            session,
            actor,
            "oidc.key.create",
            f"signing-key:{row.kid}",
            details={
                "signs_from": signs_from.isoformat(),
                "retires_at": row.retires_at.isoformat(),
                "revision": revision,
            },
        )
    engine.catch_up(revision)
    return row.kid


def rotate_now(engine, actor: str) -> str:
    """Retire the current key at once (a suspected compromise) and sign with a new one; audited."""
    now = engine.clock.now().astimezone(dt.UTC)
    with engine.sessions.begin() as session:
        revision = bump_revision(session)
        row = keys.rotate_now(session, engine.sealer, now, engine.snapshot.auth)
        engine.audit.record(session, actor, "oidc.key.rotate", f"signing-key:{row.kid}", details={"revision": revision})
    engine.catch_up(revision)
    return row.kid
