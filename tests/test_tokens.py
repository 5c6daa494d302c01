"""Token verification in process (the cache), signing keys rotating on the charter's schedule, `charter keys`.

The store is real (both backends, the `db` fixture); time moves only by the engine's FixedClock.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from charter.admin import Admin
from charter.audit import store
from charter.bootstrap import ADMIN_USER, initialize, sample
from charter.cli.main import cli
from charter.clients import Caller
from charter.clock import FixedClock
from charter.engine import Engine
from charter.oidc import keys
from charter.oidc.rotation import ensure_keys, rotate_if_due
from charter.oidc.verify import InvalidToken, TokenVerifier
from charter.scheduler import AmendmentScheduler
from charter.store.models import SigningKeyRow
from token_kit import HOUR, mint, segments

NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


@pytest.fixture
def engine(db):
    clock = FixedClock(NOW)
    initialize(db, clock)
    engine = Engine(db, clock=clock, listen=False)
    engine.start()
    yield engine
    engine.stop()


def refused(engine, token: str, **kwargs) -> str:
    with pytest.raises(InvalidToken) as caught:
        engine.tokens.verify(token, engine.clock.now(), **kwargs)
    return caught.value.reason


def audit_actions(engine, action_prefix: str) -> list:
    """The audit chain's entries whose action starts with `action_prefix`, oldest first."""
    with engine.sessions() as session:
        return [r.entry for r in store.records(session, "audit") if r.entry.action.startswith(action_prefix)]


# --- the cache -------------------------------------------------------------------------------------


def test_a_token_verifies_once_and_is_then_served_from_the_cache(engine):
    token = mint(engine, amr=("pwd", "otp"))
    first = engine.tokens.verify(token, engine.clock.now())
    assert (first.subject, first.subject_type, first.mfa, first.scope) == ("alice", "user", True, ("openid",))
    assert engine.tokens.verify(token, engine.clock.now()) is first  # the cached entry, no second signature check
    assert token in engine.tokens._cache


def test_a_cached_token_is_still_checked_for_expiry_and_audience_on_every_call(engine):
    token = mint(engine)
    engine.tokens.verify(token, engine.clock.now())
    assert refused(engine, token, audience="https://elsewhere.example") == "audience"
    later = engine.clock.now() + HOUR + dt.timedelta(minutes=1)
    with pytest.raises(InvalidToken) as caught:
        engine.tokens.verify(token, later)
    assert caught.value.reason == "expired"


def test_the_cache_is_bounded_and_emptied_when_full(engine):
    tokens = [mint(engine, f"user-{i}") for i in range(5)]
    verifier = TokenVerifier(engine.keyring, engine.issuer, cache_size=3)
    for token in tokens:
        verifier.verify(token, engine.clock.now())
        assert len(verifier._cache) <= 3
    assert all(verifier.verify(t, engine.clock.now()).subject == f"user-{i}" for i, t in enumerate(tokens))


def test_a_refused_token_is_not_cached(engine):
    token = mint(engine)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert refused(engine, forged) == "signature"
    assert forged not in engine.tokens._cache
    assert engine.tokens.verify(token, engine.clock.now()).subject == "alice"


def test_a_revocation_is_a_new_verifier_with_an_empty_cache(engine):
    from charter.store.db import bump_revision
    from charter.store.models import RevokedTokenRow

    token = mint(engine)
    engine.tokens.verify(token, engine.clock.now())
    _, claims, _ = segments(token)
    with engine.sessions.begin() as session:
        revision = bump_revision(session)
        session.add(
            RevokedTokenRow(
                jti=claims["jti"],
                expires_at=NOW + HOUR,
                revoked_at=NOW,
                reason="test",
            )
        )
    assert engine.catch_up(revision)
    assert refused(engine, token) == "revoked"


# --- rotation --------------------------------------------------------------------------------------


def upload_weekly_rotation(engine) -> None:
    text = sample("charter.charter") + "Clause 21. Signing keys rotate every 7 days.\n"
    done = Admin(engine).upload_charter(Caller("test", "user", ADMIN_USER), text)
    assert engine.catch_up(done.revision)
    assert engine.snapshot.auth.signing_keys.value == WEEK
    assert engine.snapshot.auth.signing_keys.clause == 21


def test_keys_rotate_on_the_charters_schedule_with_overlap_until_their_tokens_expire(engine):
    clock: FixedClock = engine.clock  # type: ignore[assignment]
    upload_weekly_rotation(engine)
    assert rotate_if_due(engine) is None  # a store that never signed a token has no ring to rotate
    first = ensure_keys(engine)
    ring = engine.keyring
    assert ring.signing_kid(clock.now()) == first
    retires = ring.retires[first]
    assert retires == NOW + WEEK  # the charter's period, not the 30-day default
    lead = keys.lead(WEEK)

    # Before the lead time nothing happens; from it the successor is published, K1 still signs.
    clock.set(retires - lead - dt.timedelta(minutes=1))
    assert rotate_if_due(engine) is None
    clock.set(retires - lead + dt.timedelta(minutes=1))
    second = rotate_if_due(engine)
    assert second is not None and second != first
    assert {k["kid"] for k in engine.keyring.jwks["keys"]} == {first, second}
    assert engine.keyring.signing_kid(clock.now()) == first
    assert engine.keyring.signs_from[second] == retires
    assert rotate_if_due(engine) is None  # made once

    # A token K1 signs shortly before it retires...
    clock.set(retires - dt.timedelta(minutes=10))
    old_token = mint(engine, "alice")
    assert segments(old_token)[0]["kid"] == first
    # ...still verifies after it retired, while K2 signs the new ones.
    clock.set(retires + dt.timedelta(minutes=1))
    new_token = mint(engine, "bob")
    assert segments(new_token)[0]["kid"] == second
    assert engine.tokens.verify(old_token, clock.now()).subject == "alice"
    assert engine.tokens.verify(new_token, clock.now()).subject == "bob"

    # A long-lived token K1 signed (none of ours is, but a stolen key could make one) outlives the overlap:
    with_k1 = mint(engine, "mallory", lifetime=dt.timedelta(days=30), now=retires - dt.timedelta(minutes=5))
    assert segments(with_k1)[0]["kid"] == first
    # After publish_until (retires + longest token lifetime + margin), K1 leaves the ring and JWKS.
    publish_until = keys.published_for(retires, engine.snapshot.auth)
    assert publish_until == retires + HOUR + keys.MARGIN
    clock.set(publish_until + dt.timedelta(seconds=1))
    assert refused(engine, with_k1) == "unknown key"  # refused at once, before the tick reloads the ring
    scheduler = AmendmentScheduler(Admin(engine))
    scheduler.run_once()  # the minute tick: unpublishes K1 (a new revision every server reloads)
    assert first not in engine.keyring.public
    assert [k["kid"] for k in engine.keyring.jwks["keys"]] == [second]
    assert refused(engine, with_k1) == "unknown key"
    assert engine.tokens.verify(mint(engine, "bob"), clock.now()).subject == "bob"

    actions = [(r.action, r.target) for r in audit_actions(engine, "oidc.key.")]
    assert actions == [
        ("oidc.key.create", f"signing-key:{first}"),
        ("oidc.key.create", f"signing-key:{second}"),
        ("oidc.key.unpublish", f"signing-key:{first}"),
    ]


def test_every_key_retired_means_a_new_key_signs_at_once(engine):
    clock: FixedClock = engine.clock  # type: ignore[assignment]
    first = ensure_keys(engine)
    clock.advance(dt.timedelta(days=60))  # the scheduler was down for the whole lead time and beyond
    second = rotate_if_due(engine)
    assert second not in (None, first)
    assert engine.keyring.signing_kid(clock.now()) == second


# --- the CLI ---------------------------------------------------------------------------------------


def test_charter_keys_list_and_rotate(engine, backend, monkeypatch):
    monkeypatch.setenv("CHARTER_DATABASE_URL", backend.url)
    engine.clock.set(dt.datetime.now(dt.UTC))  # the CLI reads the system clock
    first = ensure_keys(engine)
    listed = CliRunner().invoke(cli, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(k["kid"], k["state"]) for k in json.loads(listed.output)] == [(first, "signing")]

    rotated = CliRunner().invoke(cli, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    with engine.sessions() as session:
        rows = session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at)).all()
    assert len(rows) == 2 and rows[0].kid == first
    second = rows[1].kid
    assert second in rotated.output

    text = CliRunner().invoke(cli, ["keys", "list"]).output
    assert f"{first}  retired, published" in text and f"{second}  signing" in text
    record = audit_actions(engine, "oidc.key.rotate")[-1]
    assert record.target == f"signing-key:{second}" and record.actor.startswith("operator:")

    # The running server picks the new key up with the revision the CLI made.
    engine.refresh_if_stale()
    assert engine.keyring.signing_kid(engine.clock.now()) is not None
