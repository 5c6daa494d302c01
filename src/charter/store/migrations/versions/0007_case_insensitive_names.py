"""Case-insensitive name indexes: SCIM's userName and displayName are case-insensitive (RFC 7643 §4.1.1),
so a create looks names up by lower(name); without an index that lookup scans every row.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_identities_kind_lower_name", "identities", ["kind", sa.text("lower(name)")])
    op.create_index("ix_groups_lower_name", "groups", [sa.text("lower(name)")])


def downgrade() -> None:
    op.drop_index("ix_groups_lower_name", "groups")
    op.drop_index("ix_identities_kind_lower_name", "identities")
