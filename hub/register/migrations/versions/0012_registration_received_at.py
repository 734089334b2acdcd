"""When the hub received each registration (the broker's time), which the deadlines count to;
sentAt is the fagsystem's own clock and stays for information.

Registrations accepted before this revision take the time they were accepted: the hub accepted
them as it read them, so that is when it had them (a held one's is later than its receipt).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE registrations SET received_at = accepted_at")
    with op.batch_alter_table("registrations") as batch:
        batch.alter_column("received_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("received_at")
