"""Which registration a held correction or annulment refers to, so that the snapshot of a batch
reads that registration too (a correction held for its original, or one that names another
person's registration, is decided again the moment its person gains a fact).

Rows held before this revision are read once to fill it in; one whose bytes no longer decode is
left empty and waits, as before, until the hold limit.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from hub.pipeline.decode import decode_registration
    from hub.schemas.codec import catalog

    with op.batch_alter_table("held_events") as batch:
        batch.add_column(sa.Column("corrects_event_id", sa.String(36), nullable=True))
    held = sa.table(
        "held_events",
        sa.column("id", sa.Integer()),
        sa.column("message_value"),
        sa.column("corrects_event_id"),
    )
    connection = op.get_bind()
    schemas = catalog()
    for row_id, value in connection.execute(sa.select(held.c.id, held.c.message_value)).all():
        try:
            original = decode_registration(schemas, value).corrects_event_id
        except Exception:  # unreadable bytes: left as they were
            continue
        if original is not None:
            connection.execute(
                held.update().where(held.c.id == row_id).values(corrects_event_id=str(original))
            )


def downgrade() -> None:
    with op.batch_alter_table("held_events") as batch:
        batch.drop_column("corrects_event_id")
