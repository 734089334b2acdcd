"""What kind each identifier is (fødselsnummer, D-number, H-number, DUF), when Folkeregisteret
stopped using it, and the person events from its feed (identity changes, deaths, duplicate
cessations).

Existing rows get their kind from the number's shape (`hub.domain.identifiers.number_kind`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from hub.domain.identifiers import number_kind

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("person_identifiers") as batch:
        batch.add_column(sa.Column("number_kind", sa.String(16), nullable=False, server_default="unknown"))
        batch.add_column(sa.Column("ceased_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ceased_sequence", sa.BigInteger(), nullable=True))
    identifiers = sa.table(
        "person_identifiers", sa.column("id", sa.Integer()), sa.column("value"), sa.column("number_kind")
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(identifiers.c.id, identifiers.c.value)).all()
    for row_id, value in rows:
        connection.execute(
            identifiers.update().where(identifiers.c.id == row_id).values(number_kind=number_kind(value))
        )
    op.create_table(
        "person_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_person_events_person_id", "person_events", ["person_id"])


def downgrade() -> None:
    op.drop_table("person_events")
    with op.batch_alter_table("person_identifiers") as batch:
        batch.drop_column("ceased_sequence")
        batch.drop_column("ceased_at")
        batch.drop_column("number_kind")
