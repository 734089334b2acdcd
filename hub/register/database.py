"""Engine and session factory for the register, and the translation of driver errors.

SQLite is the embedded default; PostgreSQL is used in production. Both are reached through the
same synchronous SQLAlchemy engine; the agents call it from a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Engine,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import QueryableAttribute, Session, sessionmaker

T = TypeVar("T")


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite register; None for a server's database or one in memory."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def make_engine(database_url: str) -> Engine:
    """An engine for the register; it connects, and SQLite creates a missing file, only when
    used (`hub.register.migrate` checks for the file first)."""
    url = make_url(database_url)
    # A statement's parameters are the register's data (identifiers among them): never in an
    # error's text or a log line.
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        # Two workers may share one SQLite file: wait for the lock instead of failing at once.
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif url.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _postgresql_session)
    return engine


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    """Two settings of each PostgreSQL connection:

    - Lists (the batches' `= ANY(:values)` arrays, see `among_parameter`) travel in
      PostgreSQL's binary format: psycopg renders a list as array text in Python, element by
      element, which cost more per event than the snapshot's queries themselves.
    - Every execution of a statement is planned for its parameters and the tables as they are
      then (`plan_cache_mode`). psycopg prepares a statement it has run five times, and
      PostgreSQL then keeps one generic plan for it: for a register that began empty that is a
      sequential scan, comparing each row with each value of the batch's array one by one, kept
      while the table grows until autovacuum next analyzes it. On a fresh register at 1,000
      events/s this made two snapshot reads 100 ms each, PostgreSQL's CPU per event three times
      what it is with a plan per execution, and the p99 latency seconds instead of a fraction
      of one. Planning each time costs a fraction of a millisecond per statement."""
    if isinstance(dbapi_connection, psycopg.Connection):
        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def answers(engine: Engine) -> None:
    """Ask the database for nothing, to see that it answers (the worker's health check); raises
    the driver's error when it does not."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among_parameter(
    dialect: str, column: ColumnElement[Any] | QueryableAttribute[Any], name: str
) -> ColumnElement[bool]:
    """`column IN (the values bound to name)`, for a batch's many values, in a statement built once
    per dialect (`prebuilt`). On PostgreSQL the values travel as one array (`column =
    ANY(:name)`), so the statement's text is the same for every batch and the driver neither
    renders nor parses a new one each time; elsewhere as an expanding IN."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def prebuilt(session: Session, build: Callable[[str], T]) -> T:
    """The statement `build(dialect)` makes for the session's database, built once per process:
    SQLAlchemy spends more CPU building a statement and computing its cache key than the
    driver spends executing it, which for a batch of a few events was most of its cost."""
    key = (build, session.get_bind().dialect.name)
    if key not in _PREBUILT:
        _PREBUILT[key] = build(key[1])
    return cast(T, _PREBUILT[key])


_PREBUILT: dict[tuple[Callable[[str], Any], str], Any] = {}


def insert_new(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert rows of a table whose primary key is an integer `id` the database assigns, and
    return their ids, in order.

    On PostgreSQL the ids are drawn from the column's sequence in one statement and the rows go
    in by COPY with them: an INSERT .. RETURNING of many rows costs SQLAlchemy and the driver a
    statement rendered and parsed anew for every batch size, with a parameter set per row.
    Elsewhere with one INSERT of many VALUES .. RETURNING: SQLite gives the rows of one
    statement ascending ids in the order of their values (executemany would send a statement per
    row to keep that order).
    """
    if not rows:
        return []
    if not _on_postgresql(session):
        return sorted(session.scalars(insert(table).values(list(rows)).returning(table.c.id)).all())
    ids = list(
        session.scalars(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": len(rows)},
        )
    )
    insert_rows(session, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
    return ids


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows, each with the same columns, in the session's transaction.

    On PostgreSQL with COPY: the rows travel as one stream, where an executemany costs the driver
    a round of Python work per row (most of a batch's insert time). JSON columns are sent as the
    text SQLAlchemy would have sent. Elsewhere with executemany.
    """
    if not rows:
        return
    if not _on_postgresql(session):
        session.execute(insert(table), rows)
        return
    quote = session.get_bind().dialect.identifier_preparer.quote
    names = list(rows[0])
    as_json = [isinstance(table.c[name].type, JSON) for name in names]
    command = f"COPY {quote(table.name)} ({', '.join(quote(name) for name in names)}) FROM STDIN"
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(command) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row([json.dumps(row[n]) if j else row[n] for n, j in zip(names, as_json, strict=True)])
