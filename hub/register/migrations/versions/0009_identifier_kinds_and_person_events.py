"""What kind each identifier is (fødselsnummer, D-number, H-number, DUF), when Folkeregisteret
stopped using it, and the person events from its feed (identity changes, deaths, duplicate
cessations).

Existing rows get their kind from the number's shape (`_number_kind`: `hub.domain.identifiers.number_kind`
as it was at this revision, frozen here: a migration never imports live code).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

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
            identifiers.update().where(identifiers.c.id == row_id).values(number_kind=_number_kind(value))
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


def _number_kind(value: str) -> str:
    """What a stored identifier is, from its shape only (synthetic numbers as what they imitate)."""
    digits = value.isascii() and value.isdigit()
    if len(value) == 12 and digits:
        return "duf"
    if len(value) != 11 or not digits:
        return "unknown"
    day, month = int(value[0:2]), int(value[2:4])
    month -= 80 if month > 80 else 0  # a synthetic number's month
    if day > 40:
        return "d-number"
    if month > 40:
        return "h-number"
    return "fodselsnummer"
