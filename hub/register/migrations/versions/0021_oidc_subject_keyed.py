"""A support user's link to a person at an identity provider keeps the person's subject as a
keyed hash (`hub.domain.identifiers.subject_key`), not in clear: ID-porten's subject is the staff
member's fødselsnummer, which the sign-in only ever needs to compare.

Links made before this revision are hashed here as sign-in hashes them: the subject under the
label `oidc-subject:`, keyed with the installation's mask key. Only the running hub has the key,
so `hub.register.migrate.upgrade` hands the migration the keyed hash (`subject_key` in Alembic's
config attributes); the label is this migration's own. A register with links and no keyed hash
(Alembic run by hand) refuses to upgrade rather than lose them.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# The label sign-in hashes a link's subject under (`hub.domain.identifiers.link_key`, as of this
# revision).
LABEL = "oidc-subject:"

_users = sa.table(
    "users",
    sa.column("id", sa.Integer),
    sa.column("external_subject", sa.String(256)),
)


def upgrade() -> None:
    connection = op.get_bind()
    linked = connection.execute(
        sa.select(_users.c.id, _users.c.external_subject).where(_users.c.external_subject.is_not(None))
    ).all()
    if not linked:
        return
    config = op.get_context().config
    subject_key = config.attributes.get("subject_key") if config is not None else None
    if subject_key is None:
        raise RuntimeError(
            "users linked to an identity provider need the installation's mask key to be kept "
            "hashed: upgrade with `hub db upgrade`, not Alembic by hand"
        )
    for user_id, subject in linked:
        connection.execute(
            _users.update().where(_users.c.id == user_id).values(external_subject=subject_key(LABEL + subject))
        )


def downgrade() -> None:
    # A keyed hash cannot be turned back into the subject: the links are removed (made again
    # with `hub users link`).
    op.execute(sa.text("UPDATE users SET external_issuer = NULL, external_subject = NULL"))
