"""Sign-in through OpenID Connect (issue 30): a user may be linked to a person at an identity
provider (`users.external_issuer` + `external_subject`, unique together), and a sign-in begun at
the provider waits in `oidc_sign_ins` for its answer (state, nonce, PKCE verifier), used once.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("external_issuer", sa.String(512), nullable=True))
    op.add_column("users", sa.Column("external_subject", sa.String(256), nullable=True))
    op.create_index(
        "ux_users_external_identity", "users", ["external_issuer", "external_subject"], unique=True
    )
    op.create_table(
        "oidc_sign_ins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("browser_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("next_path", sa.String(2000), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_oidc_sign_ins_started_at", "oidc_sign_ins", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_oidc_sign_ins_started_at", table_name="oidc_sign_ins")
    op.drop_table("oidc_sign_ins")
    op.drop_index("ux_users_external_identity", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("external_subject")
        batch.drop_column("external_issuer")
