"""Backing up and restoring the register, and what a register proves it has done.

A backup is one snapshot of the register: SQLite's online backup API copies the file in one
step (one read transaction); PostgreSQL's `pg_dump --format=custom` reads a snapshot exported by
a REPEATABLE READ transaction of ours (`pg_export_snapshot`), which stays open until the dump
is done. What the backup's register has done (`positions`) and its migration revision are read
in that same snapshot: from the copy for SQLite, in the exporting transaction for PostgreSQL.

What the register proves it has done, per partition of a topic the hub reads (`positions`): every
registration, held event and case ticket keeps the topic, partition and offset of the message it
came from, and a ticket the partition and offset of the dead letter it last counted. A batch is
decided in order and marked in `unfinished_work` before it begins (`hub.pipeline.crash_guard`),
the mark removed only once its outcomes are committed and answered. So, per partition:
- with a mark, everything before the lowest marked offset is done (a worker begins a batch only
  once the one before it on that partition is finished);
- without, everything up to the highest offset a row names is done (its batch is finished).
The lower of the two is taken: the register proves nothing beyond it. A message after it is
decided again after a restore: the register recognises what it holds as a redelivery.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from hub.errors import ConfigurationError
from hub.register.database import sqlite_file
from hub.register.models import Base, CaseTicket, HeldEvent, RegistrationRecord, UnfinishedWork

Place = tuple[str, int]  # topic, partition


@dataclass(frozen=True)
class Snapshot:
    """What a backup's register says of itself, read in the backup's own snapshot."""

    revision: str | None
    positions: dict[Place, int]  # per partition, the first offset the register does not prove done
    dialect: str


def positions(session: Session | Connection, dead_letters: str) -> dict[Place, int]:
    """Per partition, the first offset the register does not prove done (module docstring)."""
    done: dict[Place, int] = {}

    def seen(place: Place, offset: int) -> None:
        done[place] = max(done.get(place, 0), offset + 1)

    for model in (RegistrationRecord, HeldEvent):
        rows = session.execute(
            select(model.topic, model.partition, func.max(model.offset)).group_by(
                model.topic, model.partition
            )
        )
        for topic, partition, offset in rows:
            seen((topic, partition), offset)
    tickets = session.execute(
        select(CaseTicket.original_topic, CaseTicket.original_partition, func.max(CaseTicket.original_offset))
        .where(CaseTicket.original_topic.is_not(None), CaseTicket.original_offset.is_not(None))
        .group_by(CaseTicket.original_topic, CaseTicket.original_partition)
    )
    for ticket_topic, ticket_partition, ticket_offset in tickets:
        if ticket_topic is not None and ticket_partition is not None and ticket_offset is not None:
            seen((ticket_topic, ticket_partition), ticket_offset)
    # "partition:offset" of the dead letter a ticket last counted (`hub.support.tickets`).
    for ref in session.scalars(
        select(CaseTicket.last_dead_letter).where(CaseTicket.last_dead_letter.is_not(None))
    ):
        where, _, at = (ref or "").partition(":")
        if where.isdigit() and at.isdigit():
            seen((dead_letters, int(where)), int(at))
    marks = session.execute(
        select(
            UnfinishedWork.topic, UnfinishedWork.partition, func.min(UnfinishedWork.first_offset)
        ).group_by(UnfinishedWork.topic, UnfinishedWork.partition)
    )
    for topic, partition, first in marks:
        place = (topic, partition)
        done[place] = min(done.get(place, first), first)
    return done


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def has_data(engine: Engine) -> bool:
    """Does the register hold anything (a row in any of its tables)? A missing SQLite file and an
    empty, migrated register hold nothing."""
    file = sqlite_file(engine.url)
    if file is not None and not file.exists():
        return False
    with engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
        for table in Base.metadata.sorted_tables:
            if table.name in existing and connection.scalar(select(func.count()).select_from(table)):
                return True
    return False


# --- backup ------------------------------------------------------------------------------------


def backup(engine: Engine, out: Path, dead_letters: str) -> Snapshot:
    """Copy the register to `out` in one snapshot; returns what that snapshot says of itself."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    dialect = engine.dialect.name
    if dialect == "sqlite":
        snapshot = _backup_sqlite(engine, partial, dead_letters)
    elif dialect == "postgresql":
        snapshot = _backup_postgresql(engine, partial, dead_letters)
    else:
        raise ConfigurationError(f"hub backup knows SQLite and PostgreSQL, not {dialect}")
    os.replace(partial, out)  # a backup file is whole, or not there
    return snapshot


def _backup_sqlite(engine: Engine, out: Path, dead_letters: str) -> Snapshot:
    file = sqlite_file(engine.url)
    if file is None or not file.exists():
        raise ConfigurationError(f"there is no register at {file or engine.url}")
    # pages=-1: the whole database in one step, so one read transaction: one snapshot, however
    # the worker writes meanwhile (WAL mode lets it).
    with (
        contextlib.closing(sqlite3.connect(file, timeout=30)) as source,
        contextlib.closing(sqlite3.connect(out)) as copy,
    ):
        source.backup(copy, pages=-1)
        # The copy keeps the source's WAL mode; a backup file is one file.
        copy.execute("PRAGMA journal_mode=DELETE")
    copied = create_engine(f"sqlite:///{out}")  # not `make_engine`: that would set WAL again
    try:
        with copied.connect() as connection:
            return Snapshot(_revision(connection), positions(connection, dead_letters), "sqlite")
    finally:
        copied.dispose()


def _backup_postgresql(engine: Engine, out: Path, dead_letters: str) -> Snapshot:
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            # The snapshot pg_dump reads is this transaction's: what we read here is what it dumps.
            snapshot_id = connection.scalar(text("SELECT pg_export_snapshot()"))
            said = Snapshot(_revision(connection), positions(connection, dead_letters), "postgresql")
            _pg_tool(
                engine,
                "pg_dump",
                "--format=custom",
                f"--snapshot={snapshot_id}",
                "--no-owner",
                "--no-privileges",
                f"--file={out}",
            )
    return said


# --- restore -----------------------------------------------------------------------------------


def restore(engine: Engine, file: Path) -> None:
    """Put the backup in `file` in place of the register (the caller has checked that it may)."""
    if not file.exists():
        raise ConfigurationError(f"there is no backup at {file}")
    dialect = engine.dialect.name
    if dialect == "sqlite":
        _restore_sqlite(engine, file)
    elif dialect == "postgresql":
        _restore_postgresql(engine, file)
    else:
        raise ConfigurationError(f"hub restore knows SQLite and PostgreSQL, not {dialect}")


def _restore_sqlite(engine: Engine, file: Path) -> None:
    target = sqlite_file(engine.url)
    if target is None:
        raise ConfigurationError("a SQLite register in memory cannot be restored")
    engine.dispose()
    target.parent.mkdir(parents=True, exist_ok=True)
    restoring = target.with_name(target.name + ".restoring")
    restoring.unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(file)) as source,
        contextlib.closing(sqlite3.connect(restoring)) as copy,
    ):
        source.backup(copy, pages=-1)
    # The lost register's journal must not be applied to the restored one.
    for stale in (target.with_name(target.name + suffix) for suffix in ("-wal", "-shm", "-journal")):
        stale.unlink(missing_ok=True)
    os.replace(restoring, target)


def _restore_postgresql(engine: Engine, file: Path) -> None:
    # The register's own tables go first (a register restored over one at a newer revision
    # would otherwise keep tables the backup does not know); nothing else in the database is
    # touched.
    with engine.begin() as connection:
        existing = set(inspect(connection).get_table_names())
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in existing:
                connection.exec_driver_sql(f'DROP TABLE "{table.name}" CASCADE')
        if "alembic_version" in existing:
            connection.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()
    _pg_tool(
        engine,
        "pg_restore",
        "--single-transaction",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        str(file),
    )


# --- PostgreSQL's tools ------------------------------------------------------------------------


def _pg_tool(engine: Engine, tool: str, *args: str) -> None:
    """Run pg_dump or pg_restore on the register's database. Where it is goes by libpq's
    environment, so the password is on no command line."""
    url = make_url(engine.url)
    env = {**os.environ, "PGHOST": url.host or "localhost", "PGDATABASE": url.database or ""}
    env |= {"PGPORT": str(url.port)} if url.port else {}
    env |= {"PGUSER": url.username} if url.username else {}
    env |= {"PGPASSWORD": url.password} if url.password else {}
    dbname = ["--dbname", url.database or ""] if tool == "pg_restore" else []
    result = subprocess.run(
        [str(_pg_binary(tool)), *dbname, *args], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ConfigurationError(f"{tool} failed: {result.stderr.strip()[-500:]}")


def _pg_binary(tool: str) -> Path:
    """The newest of Debian's PostgreSQL versions (pg_dump must be at least the server's), else
    the one on PATH."""
    for directory in sorted(_debian_bindirs(), key=lambda d: int(d.parent.name), reverse=True):
        if (directory / tool).exists():
            return directory / tool
    found = shutil.which(tool)
    if found is None:
        raise ConfigurationError(f"{tool} is not installed (Debian package: postgresql-client)")
    return Path(found)


def _debian_bindirs() -> Iterator[Path]:
    for directory in Path("/usr/lib/postgresql").glob("*/bin"):
        if directory.parent.name.isdigit():
            yield directory


@dataclass(frozen=True)
class Contents:
    """What a register holds, without surrogate ids or times: what a restored register is compared
    by with the one it replaced (`hub demo --disaster`)."""

    registrations: list[tuple[str, str, int, int]]  # event id, topic, partition, offset
    held: list[str]  # event ids
    tickets: list[tuple[str | None, str, str, str | None, int | None, int]]
    # event id, status, kind, error code, original offset, attempts


def contents(session: Session) -> Contents:
    return Contents(
        registrations=[
            (r.event_id, r.topic, r.partition, r.offset) for r in session.scalars(select(RegistrationRecord))
        ],
        held=list(session.scalars(select(HeldEvent.event_id))),
        tickets=[
            (t.event_id, t.status, t.kind, t.error_code, t.original_offset, t.attempts)
            for t in session.scalars(select(CaseTicket))
        ],
    )
