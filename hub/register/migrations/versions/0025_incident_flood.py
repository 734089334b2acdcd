"""The incident index holds only the active tickets, and on PostgreSQL everything the grouping of
all incidents reads (issue 32): listing every incident reads the active tickets of a flood in the
index's order, without the table and without a sort, where 0024's index (status first, and
without the ticket's id, municipality and person) left PostgreSQL a sequential scan of the whole
table and a sort. One incident's tickets are found by it as before (the same columns lead).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_CAUSE = ["source_system", "error_code", "event_type", "fagsystem_version", "last_failed_at", "id"]
_ACTIVE = sa.text("status IN ('open', 'replayed')")


def upgrade() -> None:
    op.drop_index("ix_case_tickets_incident", table_name="case_tickets")
    op.create_index(
        "ix_case_tickets_incident",
        "case_tickets",
        _CAUSE,
        postgresql_where=_ACTIVE,
        postgresql_include=["municipality", "national_id", "duf_number"],
        sqlite_where=_ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_case_tickets_incident", table_name="case_tickets")
    op.create_index(
        "ix_case_tickets_incident",
        "case_tickets",
        ["status", "source_system", "error_code", "event_type", "fagsystem_version", "last_failed_at"],
    )
