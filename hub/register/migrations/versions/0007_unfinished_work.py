"""Marks of the messages a worker began and has not finished, to find a message it keeps dying on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unfinished_work",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("flow", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("first_offset", sa.BigInteger(), nullable=False),
        sa.Column("last_offset", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("began_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_unfinished_work_place", "unfinished_work", ["flow", "topic", "partition"])


def downgrade() -> None:
    op.drop_table("unfinished_work")
