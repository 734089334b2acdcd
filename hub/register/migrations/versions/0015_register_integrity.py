"""The register's integrity (issue 27): the numbers each registration named, merges recorded so a
split can undo them, Folkeregisteret's person events kept until their person appears, event ids
scoped by source on tickets, and IMDi's approval of a ticket's event.

- `registrations.national_id`, `duf_number` and `addresses.national_id`: what each row was sent
  for (None on older rows, which no recorded merge has moved).
- `person_events.person_id` may be None (a pending event); its numbers are in
  `person_event_numbers`; its sequence number is unique with its type (a look-up gives an
  identity change and a death the same one).
- `person_merges` and `person_merge_moves`: who joined which persons, why, and what moved.
- `held_events.nudged_at`: a held event whose person's numbers changed outside the registration
  flow, to be tried again by the worker that owns it.
- `case_tickets`: unique by topic and event id (another source's event with the same id is
  another ticket), `kind` up to 32 characters (`identity_conflict`), and the approval columns.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The names SQLite's reflection gives the unnamed unique constraints of a column, so that batch
# mode can drop them (PostgreSQL names them itself: <table>_<column>_key).
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _unique_on(table: str, column: str) -> str:
    """The name of the unique constraint on one column, as this database calls it."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if constraint["column_names"] == [column] and constraint.get("name"):
            return str(constraint["name"])
    return f"uq_{table}_{column}"


def upgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("national_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("duf_number", sa.String(16), nullable=True))
    with op.batch_alter_table("addresses") as batch:
        batch.add_column(sa.Column("national_id", sa.String(16), nullable=True))
    with op.batch_alter_table("held_events") as batch:
        batch.add_column(sa.Column("nudged_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_held_events_nudged_at", ["nudged_at"])

    unique = _unique_on("person_events", "sequence_number")
    with op.batch_alter_table("person_events", naming_convention=_NAMING) as batch:
        batch.alter_column("person_id", existing_type=sa.Integer(), nullable=True)
        batch.drop_constraint(unique, type_="unique")
        batch.create_unique_constraint("uq_person_events_sequence_type", ["sequence_number", "event_type"])
    op.create_table(
        "person_event_numbers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("person_event_id", sa.Integer(), sa.ForeignKey("person_events.id"), nullable=False),
        sa.Column("value", sa.String(16), nullable=False),
        sa.Column("ceased", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_person_event_numbers_person_event_id", "person_event_numbers", ["person_event_id"])
    op.create_index("ix_person_event_numbers_value", "person_event_numbers", ["value"])

    op.create_table(
        "person_merges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("keeper_id", sa.Integer(), nullable=False),
        sa.Column("other_id", sa.Integer(), nullable=False),
        sa.Column("other_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("other_lookup", sa.JSON(), nullable=True),
        sa.Column("marks", sa.JSON(), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merged_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("split_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("split_by", sa.String(128), nullable=True),
        sa.Column("split_reason", sa.String(2000), nullable=True),
    )
    op.create_index("ix_person_merges_keeper_id", "person_merges", ["keeper_id"])
    op.create_index("ix_person_merges_other_id", "person_merges", ["other_id"])
    op.create_table(
        "person_merge_moves",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("merge_id", sa.Integer(), sa.ForeignKey("person_merges.id"), nullable=False),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
    )
    op.create_index("ix_person_merge_moves_merge_id", "person_merge_moves", ["merge_id"])

    unique = _unique_on("case_tickets", "event_id")
    with op.batch_alter_table("case_tickets", naming_convention=_NAMING) as batch:
        batch.alter_column("kind", existing_type=sa.String(16), type_=sa.String(32))
        batch.drop_constraint(unique, type_="unique")
        batch.create_unique_constraint("uq_case_tickets_topic_event", ["original_topic", "event_id"])
        batch.create_index("ix_case_tickets_event_id", ["event_id"])
        batch.add_column(sa.Column("approved_code", sa.String(32), nullable=True))
        batch.add_column(sa.Column("approved_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_tickets") as batch:
        for column in ("approved_at", "approved_by", "approved_digest", "approved_code"):
            batch.drop_column(column)
        batch.drop_index("ix_case_tickets_event_id")
        batch.drop_constraint("uq_case_tickets_topic_event", type_="unique")
        batch.create_unique_constraint("uq_case_tickets_event_id", ["event_id"])
        batch.alter_column("kind", existing_type=sa.String(32), type_=sa.String(16))
    op.drop_table("person_merge_moves")
    op.drop_table("person_merges")
    op.drop_table("person_event_numbers")
    op.execute("DELETE FROM person_events WHERE person_id IS NULL")
    with op.batch_alter_table("person_events") as batch:
        batch.drop_constraint("uq_person_events_sequence_type", type_="unique")
        batch.create_unique_constraint("uq_person_events_sequence_number", ["sequence_number"])
        batch.alter_column("person_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("held_events") as batch:
        batch.drop_index("ix_held_events_nudged_at")
        batch.drop_column("nudged_at")
    with op.batch_alter_table("addresses") as batch:
        batch.drop_column("national_id")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("duf_number")
        batch.drop_column("national_id")
