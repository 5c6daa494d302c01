"""Authentication and the OpenID Connect provider: passwords, MFA factors and recovery codes, MFA resets,
login failures, sessions, OAuth clients, authorization codes, consents, refresh tokens, revoked access
tokens and signing keys.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "passwords",
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("hash", sa.String(255), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.Column("must_change", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "mfa_factors",
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
    )
    op.create_index("ix_recovery_codes_user", "recovery_codes", ["user"])
    op.create_table(
        "mfa_resets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("clause", sa.Integer(), nullable=True),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("done_at", TS, nullable=True),
    )
    op.create_index("ix_mfa_resets_user", "mfa_resets", ["user"])
    op.create_table(
        "login_failures",
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("auth_time", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(255), nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("ended_reason", sa.String(64), nullable=True),
    )
    op.create_index("ix_sessions_user", "sessions", ["user"])
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("service", sa.String(255), nullable=True),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("grant_types", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.String(1024), nullable=False),
        sa.Column("audience", sa.String(1024), nullable=True),
        sa.Column("secret_sha256", sa.String(64), nullable=True),
        sa.Column("secret_created_at", TS, nullable=True),
        sa.Column("previous_secret_sha256", sa.String(64), nullable=True),
        sa.Column("previous_secret_expires_at", TS, nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "authorization_codes",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("scope", sa.String(1024), nullable=False),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("code_challenge_method", sa.String(16), nullable=True),
        sa.Column("auth_time", TS, nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("family", sa.String(64), nullable=True),
    )
    op.create_table(
        "consents",
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("scopes", sa.String(1024), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(1024), nullable=False),
        sa.Column("auth_time", TS, nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("rotated_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(64), nullable=True),
    )
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family"])
    op.create_index("ix_refresh_tokens_user", "refresh_tokens", ["user"])
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("sealed_private_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retires_at", TS, nullable=False),
        sa.Column("publish_until", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "signing_keys",
        "revoked_tokens",
        "refresh_tokens",
        "consents",
        "authorization_codes",
        "oauth_clients",
        "sessions",
        "login_failures",
        "mfa_resets",
        "recovery_codes",
        "mfa_factors",
        "passwords",
    ):
        op.drop_table(table)
