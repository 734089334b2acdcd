"""Case tickets for failed transfers, and support users' edits of their events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_tickets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True, unique=True),
        sa.Column("error_class", sa.String(32), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.String(2000), nullable=True),
        sa.Column("source_system", sa.String(64), nullable=True),
        sa.Column("municipality", sa.String(4), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=True),
        sa.Column("fact_date", sa.Date(), nullable=True),
        sa.Column("duf_number", sa.String(16), nullable=True),
        sa.Column("national_id", sa.String(16), nullable=True),
        sa.Column("original_topic", sa.String(249), nullable=True),
        sa.Column("original_partition", sa.Integer(), nullable=True),
        sa.Column("original_offset", sa.BigInteger(), nullable=True),
        sa.Column("original_key", sa.LargeBinary(), nullable=True),
        sa.Column("original_value", sa.LargeBinary(), nullable=True),
        sa.Column("last_dead_letter", sa.String(64), nullable=True),
        sa.Column("description", sa.String(4000), nullable=True),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.Column("resolution_note", sa.String(2000), nullable=True),
        sa.Column("linked_event_id", sa.String(36), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    for column in (
        "status",
        "error_code",
        "source_system",
        "municipality",
        "duf_number",
        "national_id",
        "last_failed_at",
    ):
        op.create_index(f"ix_case_tickets_{column}", "case_tickets", [column])
    op.create_table(
        "ticket_edits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("case_tickets.id"), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_by", sa.String(128), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_ticket_edits_ticket_id", "ticket_edits", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("ticket_edits")
    op.drop_table("case_tickets")
