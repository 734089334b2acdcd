"""The initial register: persons, their identifiers, registrations and addresses.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "person_identifiers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(16), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "value", name="uq_person_identifiers_kind_value"),
    )
    op.create_index("ix_person_identifiers_person_id", "person_identifiers", ["person_id"])
    op.create_index("ix_person_identifiers_value", "person_identifiers", ["value"])
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("fact_date", sa.Date(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_system", sa.String(64), nullable=False),
        sa.Column("municipality", sa.String(4), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("writer_schema", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_registrations_person_id", "registrations", ["person_id"])
    op.create_table(
        "addresses",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved_on", sa.Date(), nullable=True),
        sa.Column("municipality", sa.String(4), nullable=True),
        sa.Column("protection", sa.String(32), nullable=False),
        sa.Column("address_kind", sa.String(32), nullable=False),
        sa.Column("address_line", sa.String(256), nullable=True),
        sa.Column("postal_code", sa.String(8), nullable=True),
        sa.Column("postal_place", sa.String(128), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_addresses_person_id", "addresses", ["person_id"])


def downgrade() -> None:
    op.drop_table("addresses")
    op.drop_table("registrations")
    op.drop_table("person_identifiers")
    op.drop_table("persons")
