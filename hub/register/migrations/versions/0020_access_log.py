"""The access log (issue 30): one row per read of one person's personal data, with who, when,
why and whom, the person named by register id and by a keyed hash of the number asked by.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("os_user", sa.String(128), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(512), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("subject_key", sa.String(64), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_access_log_at", "access_log", ["at"])
    op.create_index("ix_access_log_actor", "access_log", ["actor"])
    op.create_index("ix_access_log_person_id", "access_log", ["person_id"])
    op.create_index("ix_access_log_subject_key", "access_log", ["subject_key"])


def downgrade() -> None:
    for column in ("subject_key", "person_id", "actor", "at"):
        op.drop_index(f"ix_access_log_{column}", table_name="access_log")
    op.drop_table("access_log")
