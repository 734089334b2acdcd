"""Corrections and annulments (action, registration key) and events held for a predecessor.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("action", sa.String(16), nullable=False, server_default="REGISTER"))
        batch.add_column(sa.Column("registration_key", sa.String(36), nullable=True))
    op.execute("UPDATE registrations SET registration_key = event_id")
    with op.batch_alter_table("registrations") as batch:
        batch.alter_column("registration_key", existing_type=sa.String(36), nullable=False)
        batch.create_index("ix_registrations_registration_key", ["registration_key"])
    op.create_table(
        "held_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("national_id", sa.String(16), nullable=True),
        sa.Column("duf_number", sa.String(16), nullable=True),
        sa.Column("fact_date", sa.Date(), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("message_key", sa.LargeBinary(), nullable=True),
        sa.Column("message_value", sa.LargeBinary(), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("reason_nb", sa.String(512), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_index("ix_held_events_national_id", "held_events", ["national_id"])
    op.create_index("ix_held_events_duf_number", "held_events", ["duf_number"])


def downgrade() -> None:
    op.drop_table("held_events")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_index("ix_registrations_registration_key")
        batch.drop_column("registration_key")
        batch.drop_column("action")
