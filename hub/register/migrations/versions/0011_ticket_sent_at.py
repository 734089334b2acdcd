"""When the failed event was sent, on its ticket: only an event the fagsystem sent after it is
taken as its fix (an earlier event accepted late is not).

Tickets opened before this revision have none; for them, as before, any later accepted event of
the same person, type and source settles the ticket.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_tickets") as batch:
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_tickets") as batch:
        batch.drop_column("sent_at")
