"""Amendment approvals: who approved or rejected, counted for which groups; when an amendment was applied.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("amendments") as table:
        table.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    op.create_table(
        "amendment_verdicts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("amendment_id", sa.Integer(), sa.ForeignKey("amendments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("person", sa.String(255), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("amendment_id", "person"),
    )


def downgrade() -> None:
    op.drop_table("amendment_verdicts")
    with op.batch_alter_table("amendments") as table:
        table.drop_column("last_error")
        table.drop_column("applied_at")
