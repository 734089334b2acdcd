"""A held event keeps when the broker appended its message (`held_events.received_at`): it is
registered as received then, not when it was held, so the same message held again after a
restore (`hub recover`) is registered as received on the same day. Older holds have none, and
count from when they were held, as before.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("held_events", sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("held_events") as batch:
        batch.drop_column("received_at")
