"""The gateway's view of the register (issue 32): `gateway_incident_tickets`, the active case
tickets with only what `GET /v1/incidents` counts, and on PostgreSQL SELECT on it, and on
nothing else, for the gateway's own login role `nir_gateway`.

The internet-facing gateway must never hold the hub's role `nir` (read and write on all the
personal data). What it reads is this view: a ticket's number, status, cause (source, error
code, event type, fagsystemVersion), last failure and municipality, and a person key that names
no number: `p<id>` of the register's person where it knows the ticket's number, else `n<ticket>`
or `d<ticket>`, the first ticket that names the same fødselsnummer or DUF number. Each kind of
key stands for one person as the number would, so the gateway counts persons as the support desk
does (`hub.support.incidents.list_incidents`); unlike a hash of an 11-digit number, a ticket's
number cannot be turned back into the number by trying them all. The new indexes (number, id)
make that first ticket one index step.

A view is read with its owner's privileges: `nir_gateway` needs none on the tables, and has
none. The role itself is the operator's (deploy/postgres/roles.sh makes it in compose, with its
password from a secret): the grant is made here only where it exists, so a register without it
(SQLite, or an operator who does not serve incidents) migrates as before, and roles.sh grants it
too, for a role made after this migration. Any later migration that replaces the view must grant
again the same way (`grant_to_gateway`): a dropped view takes its grants with it.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

VIEW = "gateway_incident_tickets"
ROLE = "nir_gateway"

# Written for both databases (`||` and CAST mean the same on SQLite and PostgreSQL); the status
# list in these words, as the partial incident index says it, so that PostgreSQL uses that index.
_VIEW_SQL = f"""
CREATE VIEW {VIEW} AS
SELECT
    c.id,
    c.status,
    c.source_system,
    c.error_code,
    c.event_type,
    c.fagsystem_version,
    c.last_failed_at,
    c.municipality,
    COALESCE(
        'p' || CAST(national.person_id AS VARCHAR),
        'p' || CAST(duf.person_id AS VARCHAR),
        'n' || CAST((SELECT MIN(f.id) FROM case_tickets f WHERE f.national_id = c.national_id) AS VARCHAR),
        'd' || CAST((SELECT MIN(f.id) FROM case_tickets f WHERE f.duf_number = c.duf_number) AS VARCHAR)
    ) AS person
FROM case_tickets c
LEFT OUTER JOIN person_identifiers national
    ON national.kind = 'national_id' AND national.value = c.national_id
LEFT OUTER JOIN person_identifiers duf
    ON duf.kind = 'duf' AND duf.value = c.duf_number
WHERE c.status IN ('open', 'replayed')
"""


def grant_to_gateway() -> None:
    """SELECT on the view for `nir_gateway` where the role exists (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                GRANT SELECT ON {VIEW} TO {ROLE};
            END IF;
        END
        $$
        """
    )


def upgrade() -> None:
    for column in ("national_id", "duf_number"):
        op.drop_index(f"ix_case_tickets_{column}", table_name="case_tickets")
        op.create_index(f"ix_case_tickets_{column}", "case_tickets", [column, "id"])
    op.execute(sa.text(_VIEW_SQL))
    grant_to_gateway()


def downgrade() -> None:
    op.execute(sa.text(f"DROP VIEW {VIEW}"))
    for column in ("national_id", "duf_number"):
        op.drop_index(f"ix_case_tickets_{column}", table_name="case_tickets")
        op.create_index(f"ix_case_tickets_{column}", "case_tickets", [column])
