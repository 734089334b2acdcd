#!/usr/bin/env bash
# The register's login roles beside its owner `nir`, made or brought up to date; run it as `nir`
# (or another role that may create roles) after `hub db upgrade`, as often as you like.
#
#   deploy/postgres/roles.sh     with libpq's environment: PGHOST, PGPORT, PGUSER, PGPASSWORD,
#                                PGDATABASE (compose: the service register-roles)
#
#   nir_gateway   the gateway's (`GET /v1/incidents`): LOGIN, its password read from the file
#                 NIR_GATEWAY_DATABASE_PASSWORD_FILE, SELECT on the view gateway_incident_tickets
#                 (migration 0026) and on nothing else; every transaction read-only by default.
#
# The password is read by psql itself (`\set` with a command), so it is on no command line. The
# grant is made here as well as by migration 0026, which grants only to a role that exists: a role
# made after that migration gets it here, and one made before gets it there.
set -euo pipefail

password_file="${NIR_GATEWAY_DATABASE_PASSWORD_FILE:?set NIR_GATEWAY_DATABASE_PASSWORD_FILE to the file of the password of nir_gateway}"
[[ -s "$password_file" ]] || { echo "$password_file is missing or empty" >&2; exit 1; }
export NIR_GATEWAY_DATABASE_PASSWORD_FILE="$password_file"

psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 <<'SQL'
\set password `tr -d '\n' < "$NIR_GATEWAY_DATABASE_PASSWORD_FILE"`
SELECT 'CREATE ROLE nir_gateway' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nir_gateway')
\gexec
-- Whatever an earlier hand may have given it: a login and nothing more.
ALTER ROLE nir_gateway WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION
    NOBYPASSRLS CONNECTION LIMIT 20 PASSWORD :'password';
ALTER ROLE nir_gateway SET default_transaction_read_only = on;
SELECT 'GRANT SELECT ON gateway_incident_tickets TO nir_gateway'
    WHERE to_regclass('gateway_incident_tickets') IS NOT NULL
\gexec
SQL
echo "nir_gateway: may log in and read gateway_incident_tickets"
