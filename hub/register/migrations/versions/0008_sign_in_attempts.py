"""Failed sign-ins, counted per username and client address for the lockout; a user's last sign-in.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
    )
    for column in ("at", "username", "client_address"):
        op.create_index(f"ix_sign_in_attempts_{column}", "sign_in_attempts", [column])
    op.add_column("users", sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite drops a column only by copying the table.
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_sign_in_at")
    op.drop_table("sign_in_attempts")
