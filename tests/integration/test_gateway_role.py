"""The gateway's least privilege on the register (issue 32): `GET /v1/incidents` reads the view
`gateway_incident_tickets` (migration 0026), on PostgreSQL as the role `nir_gateway` that
deploy/postgres/roles.sh makes, which may read that view and nothing else; and what it counts
from the view is what the support desk counts from the tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import select

from hub.errors import ConfigurationError
from hub.gateway.incidents import GATEWAY_TICKETS, vendor_view, with_password
from hub.gateway.tokens import SigningKeys
from hub.register.database import make_engine, make_session_factory
from hub.register.migrate import upgrade
from hub.register.repository import RegisterRepository
from hub.register.unit_of_work import UnitOfWork
from tests.conftest import ROOT, PostgresServer, pipeline_hub
from tests.factories import Person
from tests.integration.test_gateway_incidents import T0, _get, _tickets
from tests.offline_gateway import (
    OTHER_CLIENT,
    OTHER_SOURCE,
    SOURCE,
    JwksEndpoint,
    client_of,
    offline_gateway,
    settings,
    signing_key,
    token,
)

ROLES_SCRIPT = ROOT / "deploy" / "postgres" / "roles.sh"
WINDOW = dt.timedelta(hours=24)


def _roles(server: PostgresServer, database_url: str, password_file: Path) -> str:
    """Run deploy/postgres/roles.sh as `nir` on the register, as compose's register-roles does."""
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(server.port),
        "PGUSER": "nir",
        "PGDATABASE": database_url.rsplit("/", 1)[1],
        "NIR_GATEWAY_DATABASE_PASSWORD_FILE": str(password_file),
    }
    done = subprocess.run(["bash", str(ROLES_SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _register(postgres_server: PostgresServer, tmp_path: Path, *, role_first: bool) -> tuple[str, str]:
    """A migrated register, its role made before the migration or after; its URL as `nir`, and
    as `nir_gateway`."""
    url = postgres_server.create_database()
    password = tmp_path / "nir-gateway-db.password"
    password.write_text("not checked: the test cluster trusts local connections\n")
    engine = make_engine(url)
    if role_first:
        _roles(postgres_server, url, password)
    upgrade(engine)
    engine.dispose()
    if not role_first:
        _roles(postgres_server, url, password)
    return url, url.replace("//nir@", "//nir_gateway@")


def _as_gateway(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@pytest.mark.parametrize("role_first", [True, False], ids=["role-before-migration", "role-after"])
def test_as_nir_gateway_the_gateway_answers_its_sources_incidents(
    postgres_server: PostgresServer, tmp_path: Path, role_first: bool
) -> None:
    url, gateway_url = _register(postgres_server, tmp_path, role_first=role_first)
    hub = pipeline_hub(url)
    _, tickets = _tickets(hub)
    password_file = tmp_path / "nir-gateway-db.password"

    async def run() -> None:
        key = signing_key()
        async with JwksEndpoint(key).serving() as endpoint:
            gateway = offline_gateway(
                settings(gateway_database_url=gateway_url, gateway_database_password_file=str(password_file)),
                SigningKeys(endpoint.url),
            )
            assert gateway.incidents.engine is not None
            assert gateway.incidents.engine.url.username == "nir_gateway"
            async with client_of(gateway) as client:
                status, _, mine = await _get(client, "/v1/incidents", token(key))
                assert status == 200
                assert [i["sampleTicket"] for i in mine["incidents"]] == [
                    tickets["undecodable"][0],
                    tickets["release"][0],
                ]
                assert mine["incidents"][1]["persons"] == 2
                _, _, theirs = await _get(client, "/v1/incidents", token(key, OTHER_CLIENT))
                assert [i["sampleTicket"] for i in theirs["incidents"]] == tickets["other"][::-1]
            gateway.incidents.close()

    asyncio.run(run())


@pytest.mark.parametrize("role_first", [True, False], ids=["role-before-migration", "role-after"])
def test_nir_gateway_may_select_its_view_and_nothing_else(
    postgres_server: PostgresServer, tmp_path: Path, role_first: bool
) -> None:
    url, gateway_url = _register(postgres_server, tmp_path, role_first=role_first)
    _tickets(pipeline_hub(url))
    with _as_gateway(gateway_url) as connection:
        assert connection.execute("SELECT count(*) FROM gateway_incident_tickets").fetchone() == (6,)
        for table in ("case_tickets", "person_identifiers", "registrations", "persons", "alembic_version"):
            with pytest.raises(errors.InsufficientPrivilege):
                connection.execute(f"SELECT 1 FROM {table} LIMIT 1")
        for statement in (
            "INSERT INTO case_tickets (status, kind, first_failed_at, last_failed_at) VALUES ('open', 'x', now(), now())",
            "CREATE TABLE gateway_own (id int)",
            "SELECT nextval('case_tickets_id_seq')",
        ):
            with pytest.raises((errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)):
                connection.execute(statement)
        # And even with its transactions made writable, it may write nowhere.
        connection.execute("SET default_transaction_read_only = off")
        for statement in (
            "INSERT INTO case_tickets (status, kind, first_failed_at, last_failed_at) VALUES ('open', 'x', now(), now())",
            "INSERT INTO registrations (id) VALUES (1)",
            "UPDATE person_identifiers SET value = 'x'",
            "DELETE FROM case_tickets",
            "CREATE TABLE gateway_own (id int)",
            "SELECT nextval('case_tickets_id_seq')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                connection.execute(statement)
        # Its view is no way in either: it is not updatable, and it was granted SELECT alone.
        for statement in (
            "INSERT INTO gateway_incident_tickets (id) VALUES (1)",
            "UPDATE gateway_incident_tickets SET status = 'resolved'",
            "DELETE FROM gateway_incident_tickets",
        ):
            with pytest.raises((errors.InsufficientPrivilege, errors.ObjectNotInPrerequisiteState)):
                connection.execute(statement)
        assert connection.execute("SELECT count(*) FROM gateway_incident_tickets").fetchone() == (6,)
    # What it holds, by the catalogue: SELECT on the view, on no other relation, and no power.
    with _as_gateway(url) as owner:
        grants = owner.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = 'nir_gateway'"
        ).fetchall()
        assert grants == [("gateway_incident_tickets", "SELECT")]
        held = owner.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S', 'm', 'p')"
            " AND (has_table_privilege('nir_gateway', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
            "   OR (c.relkind = 'S' AND has_sequence_privilege('nir_gateway', c.oid, 'USAGE, SELECT, UPDATE')))"
        ).fetchall()
        assert held == [("gateway_incident_tickets",)]
        power = owner.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin FROM pg_roles"
            " WHERE rolname = 'nir_gateway'"
        ).fetchone()
        assert power == (False, False, False, False, True)


def test_roles_sh_run_again_changes_nothing_and_a_register_without_the_role_migrates(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url, _ = _register(postgres_server, tmp_path, role_first=False)
    _roles(postgres_server, url, tmp_path / "nir-gateway-db.password")
    with _as_gateway(url) as owner:
        grants = "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = '{}'"
        assert owner.execute(grants.format("nir_gateway")).fetchone() == (1,)
        # A cluster where the operator made no such role (roles are the cluster's: set it aside).
        owner.execute("ALTER ROLE nir_gateway RENAME TO nir_gateway_aside")
        try:
            bare = postgres_server.create_database()
            engine = make_engine(bare)
            upgrade(engine)
            engine.dispose()
        finally:
            owner.execute("ALTER ROLE nir_gateway_aside RENAME TO nir_gateway")
    with _as_gateway(bare) as owner:
        assert owner.execute(grants.format("nir_gateway")).fetchone() == (0,)
        assert owner.execute("SELECT count(*) FROM gateway_incident_tickets").fetchone() == (0,)


def _with_known_person(url: str, person: Person) -> None:
    """Make one person known to the register, so the view's key for them is the register's."""
    sessions = make_session_factory(make_engine(url))
    with sessions() as session:
        RegisterRepository(session).person_with(person.national_id, person.duf_number, T0)
        session.commit()


def test_the_gateways_counts_from_its_view_are_the_desks_from_the_tables(database_url: str) -> None:
    hub = pipeline_hub(database_url)
    persons, _ = _tickets(hub)
    _with_known_person(database_url, persons[0])  # ola: by the register's person; kari: by number

    async def served() -> dict[str, list[dict[str, Any]]]:
        gateway = offline_gateway(settings(gateway_database_url=database_url), SigningKeys("http://unused/"))
        try:
            return {source: await gateway.incidents.of(source, 100) for source in (SOURCE, OTHER_SOURCE)}
        finally:
            gateway.incidents.close()

    sessions = make_session_factory(make_engine(database_url))
    for source, incidents in asyncio.run(served()).items():
        with UnitOfWork(sessions) as uow:
            desk = [vendor_view(i) for i in uow.incidents.find(window=WINDOW, source_system=source)]
        assert incidents == desk and incidents
    # And the view names no number: its person key is the register's person, or a ticket's number.
    with sessions() as session:
        keys = list(session.scalars(select(GATEWAY_TICKETS.c.person)))
    numbers = {n for p in persons for n in (p.national_id, p.duf_number) if n}
    assert keys and not [k for k in keys if k and any(n in k for n in numbers)]
    kinds = {k[0] for k in keys if k}
    assert "p" in kinds and kinds & {"n", "d"} and kinds <= {"p", "n", "d"}


def test_a_password_file_that_cannot_be_read_stops_the_gateway_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        with_password("postgresql+psycopg://nir_gateway@db/nir", str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        with_password("postgresql+psycopg://nir_gateway@db/nir", str(tmp_path / "empty"))
    (tmp_path / "secret").write_text("s3cret:/@x\n")
    url = with_password("postgresql+psycopg://nir_gateway@db/nir", str(tmp_path / "secret"))
    assert make_engine(url).url.password == "s3cret:/@x"
