"""A failure's message in Norwegian beside the English one, on tickets and their story, so the
support page speaks its user's language about why an event failed.

Tickets from before this revision have none; the page shows their English message.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = ("case_tickets", "ticket_outcomes")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("error_message_nb", sa.String(2000), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("error_message_nb")
