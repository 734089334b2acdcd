"""A ticket is found by where its message was read (topic, partition, offset) when the message
could not be decoded (issue 32): an index for that look-up, which read the whole table for every
dead letter of a flood and slowed ticketing to 47/s after 54,000 tickets.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_case_tickets_origin", "case_tickets", ["original_topic", "original_partition", "original_offset"]
    )


def downgrade() -> None:
    op.drop_index("ix_case_tickets_origin", table_name="case_tickets")
