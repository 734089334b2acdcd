"""Running and checking Alembic migrations (`hub db upgrade`, and the worker's start-up check)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from hub.domain.identifiers import subject_key
from hub.errors import RegisterMissing, RegisterNotMigrated
from hub.register.database import sqlite_file

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the register's schema to `revision` (default: the newest); make the register if
    there is none. Nothing else makes one."""
    file = sqlite_file(engine.url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        # What only the running hub has, handed to the migrations that need it: a migration
        # imports nothing of the hub, so that it does tomorrow what it did the day it was written.
        config.attributes["subject_key"] = subject_key  # 0021: the hash keyed with the installation's key
        command.upgrade(config, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def known_revision(revision: str) -> bool:
    """Is `revision` one of this hub's migrations (a backup's register from a newer hub is not)?"""
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # Alembic's own error for an unknown or ambiguous revision
        return False


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine) -> None:
    """Raise `RegisterMissing` if there is no register, `RegisterNotMigrated` unless it is at
    the newest migration."""
    file = sqlite_file(engine.url)
    # Asked first: connecting to a missing SQLite file would make an empty one.
    if file is not None and not file.exists():
        raise RegisterMissing(
            f"there is no register at {file}: check NIR_DATABASE_URL, or make a new register "
            "with `hub db upgrade`"
        )
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise RegisterNotMigrated(
            f"the register's schema is at revision {current or 'none'}, the hub needs {head}: "
            "run `hub db upgrade`"
        )
