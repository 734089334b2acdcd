"""Sources revoked and restored (issue 29): `source_states`, one row per change, the newest a
source's state. The worker reads it in each batch's transaction, so a revoked source's events
are refused from the next batch on.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_states",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_id", sa.String(100), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
    )
    op.create_index("ix_source_states_source", "source_states", ["source_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_source_states_source", table_name="source_states")
    op.drop_table("source_states")
