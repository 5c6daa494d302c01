"""Consolidated versions kept as rows; expectation files in the store; drafts' and canaries' amendment fields.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charter_consolidated",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("charter_name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("charter_version_id", sa.Integer(), sa.ForeignKey("charter_versions.id"), nullable=False),
        sa.Column("amendment_number", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_charter_consolidated_name_version", "charter_consolidated", ["charter_name", "version"])
    op.create_table(
        "expectation_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("charter_name", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("charter_name", "name"),
    )
    with op.batch_alter_table("amendments") as table:
        table.add_column(sa.Column("expectations", sa.JSON(), nullable=True))
        table.add_column(sa.Column("canary", sa.JSON(), nullable=True))
        table.add_column(sa.Column("canary_started_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("canary_outcome", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("amendments") as table:
        for column in ("canary_outcome", "canary_started_at", "canary", "expectations"):
            table.drop_column(column)
    op.drop_table("expectation_files")
    op.drop_index("ix_charter_consolidated_name_version", "charter_consolidated")
    op.drop_table("charter_consolidated")
