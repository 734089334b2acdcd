"""A change made with the `hub` command names the operating-system user it ran as
(`audit_log.os_user`) beside the `--user` the caller gave, which is only what they typed. Empty
for the support page's changes, whose session names the user, and for entries made before.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("os_user", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("os_user")
