"""A ticket keeps the fagsystem release that sent its event (`fagsystemVersion`), and an index
answers the incidents (issue 32): the active tickets of one cause (source, error code, event
type, release) in time order. Tickets made before this revision have no release.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_tickets") as batch:
        batch.add_column(sa.Column("fagsystem_version", sa.String(64), nullable=True))
    op.create_index(
        "ix_case_tickets_incident",
        "case_tickets",
        ["status", "source_system", "error_code", "event_type", "fagsystem_version", "last_failed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_case_tickets_incident", table_name="case_tickets")
    with op.batch_alter_table("case_tickets") as batch:
        batch.drop_column("fagsystem_version")
