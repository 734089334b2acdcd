"""Retention (issue 30): `case_tickets.anonymised_at`, when `hub retention run` took the personal
data out of a closed ticket it could not delete (a merge record names it), so the next run does
not count it again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_tickets") as batch:
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_tickets") as batch:
        batch.drop_column("anonymised_at")
