"""The support desk: each user's language on the support page (None: Norwegian, the default),
and each ticket's outcomes (every failure with its reason, and the acceptance that closed it).

Tickets from before this revision have no outcomes; their story starts from their first and
last failure, which the ticket itself keeps.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(2), nullable=True))
    op.create_table(
        "ticket_outcomes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("case_tickets.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.String(2000), nullable=True),
        sa.Column("event_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_ticket_outcomes_ticket_id", "ticket_outcomes", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_outcomes_ticket_id", "ticket_outcomes")
    op.drop_table("ticket_outcomes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
