"""The tables: directory, charters and amendments, grants, API clients, the audit chains, and the revision counter.

Every committed change bumps `revision.value` in the same transaction (see
`store.db.bump_revision`), so a server that sees revision R has every change up
to R. Names are the identities' directory ids; surrogate keys stay inside the store.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dt.datetime: DateTime(timezone=True), dict: JSON, list: JSON}


class Revision(Base):
    """One row: the number of the last committed change."""

    __tablename__ = "revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class IdentityRow(Base):
    """A user, service or partner."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # user | service | partner
    name: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled | left
    owner: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class GroupRow(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    owner: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


# SCIM names are case-insensitive: lookups by lower(name) use these (migration 0007)
Index("ix_identities_kind_lower_name", IdentityRow.kind, func.lower(IdentityRow.name))
Index("ix_groups_lower_name", func.lower(GroupRow.name))


class MembershipRow(Base):
    """An identity's direct membership of a group."""

    __tablename__ = "memberships"
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    __table_args__ = (Index("ix_memberships_group", "group_id"),)


class GroupNestingRow(Base):
    """`child` is nested in `parent`: members of child are members of parent."""

    __tablename__ = "group_nesting"
    child_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)


class ResourceRow(Base):
    """What the directory knows about a resource: owner and attributes conditions can test."""

    __tablename__ = "resources"
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime]


class CharterVersionRow(Base):
    """A charter text as uploaded (after `check`). The newest row is the charter in force, with its amendments."""

    __tablename__ = "charter_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(255))
    uploaded_at: Mapped[dt.datetime]
    revision: Mapped[int] = mapped_column(BigInteger)


class AmendmentRow(Base):
    """An amendment to the charter and where it is in its lifecycle (draft ... in force)."""

    __tablename__ = "amendments"
    __table_args__ = (UniqueConstraint("charter_name", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charter_name: Mapped[str] = mapped_column(String(255))
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # draft|proposed|approved|scheduled|in_force|rejected|withdrawn
    effective: Mapped[dt.date] = mapped_column()
    proposed_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    applied_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)  # why the last attempt to apply it failed
    # {file name: new text, or None to delete}: the expectation files the amendment updates when applied
    expectations: Mapped[dict | None] = mapped_column()
    canary: Mapped[dict | None] = mapped_column()  # the canary plan (charter.canary.CanaryPlan.to_json)
    canary_started_at: Mapped[dt.datetime | None]
    canary_outcome: Mapped[dict | None] = mapped_column()  # the last measurement, and why it ended


class ConsolidatedRow(Base):
    """A consolidated version as it was made (version 0 on upload, N when amendment N took effect), rendered."""

    __tablename__ = "charter_consolidated"
    __table_args__ = (Index("ix_charter_consolidated_name_version", "charter_name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charter_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    charter_version_id: Mapped[int] = mapped_column(ForeignKey("charter_versions.id"))
    amendment_number: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)  # `consolidate.render`: each clause with its origin
    sha256: Mapped[str] = mapped_column(String(64))
    made_at: Mapped[dt.datetime]
    revision: Mapped[int] = mapped_column(BigInteger)


class ExpectationFileRow(Base):
    """A policy test file kept with the charter; run against every proposed amendment before approval."""

    __tablename__ = "expectation_files"
    __table_args__ = (UniqueConstraint("charter_name", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charter_name: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime]


class AmendmentVerdictRow(Base):
    """One person's approval or rejection of an amendment, with the groups they were counted for."""

    __tablename__ = "amendment_verdicts"
    __table_args__ = (UniqueConstraint("amendment_id", "person"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amendment_id: Mapped[int] = mapped_column(ForeignKey("amendments.id", ondelete="CASCADE"))
    person: Mapped[str] = mapped_column(String(255))  # a user's directory id
    verdict: Mapped[str] = mapped_column(String(16))  # approve | reject
    groups: Mapped[list] = mapped_column(default=list)  # their groups then (nesting resolved)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime]


class GrantRow(Base):
    """A just-in-time or break-glass grant: access for one subject, from `starts` until `ends`."""

    __tablename__ = "grants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # request | break glass
    subject_type: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    actions: Mapped[list] = mapped_column(default=list)
    resource: Mapped[str] = mapped_column(String(1024))
    starts: Mapped[dt.datetime]
    ends: Mapped[dt.datetime]
    clause: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(255))
    __table_args__ = (Index("ix_grants_subject", "subject_type", "subject"),)


class ApiClientRow(Base):
    """A bearer credential acting as one identity. Only the SHA-256 of the secret is kept."""

    __tablename__ = "api_clients"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


# --- the audit trail (charter.audit) ------------------------------------------------------------
# Two hash chains with the same shape: "audit" (every change of state, written in the change's own
# transaction) and "decisions" (the decision log, written in batches by a background writer).
# No unique constraint on `seq`: tampering must be representable so that `charter audit verify` can
# name it; appends are serialised by the chain's head row instead.


class _ChainRecord:
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1024))
    outcome: Mapped[str] = mapped_column(String(16))
    charter_version: Mapped[int | None] = mapped_column(Integer)
    clause: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditRecordRow(_ChainRecord, Base):
    """A change of state: who did what to what, with which outcome, under which clause."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_seq", "seq"), Index("ix_audit_records_time", "time"))


class DecisionRecordRow(_ChainRecord, Base):
    """A logged decision: `actor` is the subject, `action` and `target` what it asked, `outcome` the effect."""

    __tablename__ = "decision_records"
    __table_args__ = (Index("ix_decision_records_seq", "seq"), Index("ix_decision_records_time", "time"))


class ChainHeadRow(Base):
    """The last record of a chain, and where pruning has cut its start (a signed checkpoint anchors it)."""

    __tablename__ = "audit_heads"
    chain: Mapped[str] = mapped_column(String(16), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)


class CheckpointRow(Base):
    """A signature over (chain, seq, hash, time): vouches for every record up to `seq`."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_chain_seq", "chain", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    time: Mapped[dt.datetime]
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class AuditKeyRow(Base):
    """A checkpoint signing key's public half. Kept after rotation, so old checkpoints still verify."""

    __tablename__ = "audit_keys"
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw Ed25519, 32 bytes
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]


# --- just-in-time access, reviews and notifications (charter.access, charter.reviews, charter.notify) ----------


class AccessRequestRow(Base):
    """A request for access under an eligibility clause: pending until its quorum approves (a grant) or not."""

    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_access_requests_status", "status"),
        Index("ix_access_requests_subject", "subject_type", "subject"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(255))
    resource: Mapped[str] = mapped_column(String(1024))
    clause: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[int] = mapped_column(BigInteger)  # the duration asked for
    reason: Mapped[str | None] = mapped_column(Text)
    starts: Mapped[dt.datetime | None]  # a requested start; None: from approval
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | denied | expired | cancelled
    approvers: Mapped[list] = mapped_column(default=list)  # [[count, group], ...] from the clause when asked
    escalated_to: Mapped[str | None] = mapped_column(String(255))
    grant_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]


class AccessRequestVerdictRow(Base):
    __tablename__ = "access_request_verdicts"
    __table_args__ = (UniqueConstraint("request_id", "person"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"))
    person: Mapped[str] = mapped_column(String(255))
    verdict: Mapped[str] = mapped_column(String(16))  # approve | deny
    groups: Mapped[list] = mapped_column(default=list)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime]


class ReviewTaskRow(Base):
    """Something a group must review by a date: a use of break glass, or the membership of a group."""

    __tablename__ = "review_tasks"
    __table_args__ = (Index("ix_review_tasks_status_due", "status", "due"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # break glass | membership
    clause: Mapped[int] = mapped_column(Integer)
    reviewer_group: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(512))
    details: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))  # open | done
    opened_at: Mapped[dt.datetime]
    due: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[dict | None] = mapped_column()


class EventRow(Base):
    """Something people should hear about (a request to approve, a break glass): sent to webhooks and streams."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime]
    payload: Mapped[dict] = mapped_column(default=dict)


class WebhookRow(Base):
    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))  # the HMAC key deliveries are signed with
    events: Mapped[list] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    disabled_at: Mapped[dt.datetime | None]


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[dt.datetime]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None]


# --- authentication, sessions and the OpenID Connect provider (charter.auth, charter.oidc) -------------------
# Secrets are never stored in the clear: passwords as argon2id hashes, random tokens (sessions, codes,
# refresh tokens, client secrets, recovery codes) as SHA-256 digests, TOTP seeds and private signing keys
# sealed with the key-encryption key (charter.sealed).


class PasswordRow(Base):
    """A user's password, as an argon2id hash (the parameters are in the hash)."""

    __tablename__ = "passwords"
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    hash: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[dt.datetime]
    must_change: Mapped[bool] = mapped_column(default=False)


class MfaFactorRow(Base):
    """A user's TOTP factor: pending until the first code confirms it. `last_step` refuses a code used twice."""

    __tablename__ = "mfa_factors"
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    confirmed_at: Mapped[dt.datetime | None]
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCodeRow(Base):
    """A one-time recovery code (its SHA-256), made when MFA is enrolled."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user", "user"),)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class MfaResetRow(Base):
    """A request to reset a user's lost factor, done when the recovery clause's quorum has approved."""

    __tablename__ = "mfa_resets"
    __table_args__ = (Index("ix_mfa_resets_user", "user"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(255))
    clause: Mapped[int | None] = mapped_column(Integer)
    approvers: Mapped[list] = mapped_column(default=list)  # [[count, group], ...] from the clause when asked
    approvals: Mapped[list] = mapped_column(default=list)  # [{"person", "groups", "at"}, ...]
    status: Mapped[str] = mapped_column(String(16))  # pending | done | cancelled
    created_at: Mapped[dt.datetime]
    done_at: Mapped[dt.datetime | None]


class LoginFailureRow(Base):
    """Failed sign-ins per account name (known or not, so a lockout reveals nothing) and the lock they caused."""

    __tablename__ = "login_failures"
    account: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]


class SessionRow(Base):
    """A signed-in browser. Limits come from the charter in force when it is checked, not when it began."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user", "user"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token
    user: Mapped[str] = mapped_column(String(255))
    amr: Mapped[list] = mapped_column(default=list)  # ["pwd"], ["pwd", "otp"], ...
    auth_time: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    source: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ended_at: Mapped[dt.datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(64))


class OAuthClientRow(Base):
    """An OAuth 2.0 client: an application people sign in to, or a service using client credentials."""

    __tablename__ = "oauth_clients"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    public: Mapped[bool] = mapped_column(default=False)  # no secret; PKCE with S256 required
    service: Mapped[str | None] = mapped_column(String(255))  # client credentials act as this service
    redirect_uris: Mapped[list] = mapped_column(default=list)
    grant_types: Mapped[list] = mapped_column(default=list)
    scopes: Mapped[str] = mapped_column(String(1024), default="")
    audience: Mapped[str | None] = mapped_column(String(1024))
    secret_sha256: Mapped[str | None] = mapped_column(String(64))
    secret_created_at: Mapped[dt.datetime | None]
    previous_secret_sha256: Mapped[str | None] = mapped_column(String(64))  # accepted until its expiry
    previous_secret_expires_at: Mapped[dt.datetime | None]
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class AuthorizationCodeRow(Base):
    """An authorization code (its SHA-256): one use, a minute or so; a second use revokes what the first got."""

    __tablename__ = "authorization_codes"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(255))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1024), default="")
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    auth_time: Mapped[dt.datetime]
    amr: Mapped[list] = mapped_column(default=list)
    session_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    family: Mapped[str | None] = mapped_column(String(64))  # the refresh-token family its exchange began


class ConsentRow(Base):
    """The scopes a user has agreed to give a client."""

    __tablename__ = "consents"
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scopes: Mapped[str] = mapped_column(String(1024))
    granted_at: Mapped[dt.datetime]


class RefreshTokenRow(Base):
    """A refresh token (its SHA-256). Each use rotates it; using a rotated one revokes its whole family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family"), Index("ix_refresh_tokens_user", "user"))
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(255))
    scope: Mapped[str] = mapped_column(String(1024), default="")
    auth_time: Mapped[dt.datetime]
    amr: Mapped[list] = mapped_column(default=list)
    session_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    rotated_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class RevokedTokenRow(Base):
    """An access token revoked before its expiry (RFC 7009), by its `jti`; kept until it would have expired."""

    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime]
    reason: Mapped[str | None] = mapped_column(String(64))


class SigningKeyRow(Base):
    """A token signing key: signs from `created_at` until `retires_at`, published in JWKS until `publish_until`."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict] = mapped_column(default=dict)
    sealed_private_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    retires_at: Mapped[dt.datetime]
    publish_until: Mapped[dt.datetime]
