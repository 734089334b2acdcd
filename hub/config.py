"""One frozen settings object, read from the environment.

Every setting has a documented default that runs the hub on the embedded defaults (local broker,
SQLite register). `Settings.describe()` prints them with secrets masked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from hub.errors import ConfigurationError

PACKAGE_DIR = Path(__file__).resolve().parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """The hub's configuration. Field comments name the environment variable and its default."""

    # NIR_KAFKA_BOOTSTRAP [127.0.0.1:9092]: comma-separated host:port list.
    kafka_bootstrap: str = "127.0.0.1:9092"
    # NIR_DATABASE_URL [sqlite:///var/nir-register.sqlite3]: SQLAlchemy URL of the register.
    database_url: str = "sqlite:///var/nir-register.sqlite3"
    # NIR_TOPIC_PREFIX [nir]: first part of every topic name; lets several hubs share a broker.
    topic_prefix: str = "nir"
    # NIR_APP_ID [nir-hub]: Faust app id, which is also the Kafka consumer group.
    app_id: str = "nir-hub"
    # NIR_SOURCES_FILE [hub/sources.toml in the package]: the source registry.
    sources_file: str = str(PACKAGE_DIR / "sources.toml")
    # NIR_REGISTRATION_PARTITIONS [6]: partitions of each source's registrations topic.
    registration_partitions: int = 6
    # NIR_ADDRESS_PARTITIONS [6]: partitions of the Folkeregister address-change topic.
    address_partitions: int = 6
    # NIR_REPLICATION_FACTOR [1]: replication factor of topics the hub creates.
    replication_factor: int = 1
    # NIR_ALLOW_SYNTHETIC_IDENTIFIERS [false]: accept Tenor test identifiers (month + 80).
    allow_synthetic_identifiers: bool = False
    # NIR_WEB_PORT [6066]: port of the worker's web server (Faust's).
    web_port: int = 6066
    # NIR_WEB_HOST [127.0.0.1]: interface the worker's web server binds to.
    web_host: str = "127.0.0.1"
    # NIR_DATA_DIR [var/faust]: Faust's local data directory.
    data_dir: str = "var/faust"
    # NIR_RETRY_INITIAL_SECONDS [0.5] and NIR_RETRY_MAX_SECONDS [30]: backoff for transient errors.
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 30.0
    # NIR_COMMIT_INTERVAL_SECONDS [1.0]: how often Faust commits acknowledged offsets.
    commit_interval_seconds: float = 1.0

    @classmethod
    def from_env(cls) -> Settings:
        settings = cls(
            kafka_bootstrap=_env("NIR_KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            database_url=_env("NIR_DATABASE_URL", cls.database_url),
            topic_prefix=_env("NIR_TOPIC_PREFIX", cls.topic_prefix),
            app_id=_env("NIR_APP_ID", cls.app_id),
            sources_file=_env("NIR_SOURCES_FILE", cls.sources_file),
            registration_partitions=_env_int(
                "NIR_REGISTRATION_PARTITIONS", cls.registration_partitions
            ),
            address_partitions=_env_int("NIR_ADDRESS_PARTITIONS", cls.address_partitions),
            replication_factor=_env_int("NIR_REPLICATION_FACTOR", cls.replication_factor),
            allow_synthetic_identifiers=_env_bool(
                "NIR_ALLOW_SYNTHETIC_IDENTIFIERS", cls.allow_synthetic_identifiers
            ),
            web_port=_env_int("NIR_WEB_PORT", cls.web_port),
            web_host=_env("NIR_WEB_HOST", cls.web_host),
            data_dir=_env("NIR_DATA_DIR", cls.data_dir),
            retry_initial_seconds=_env_float("NIR_RETRY_INITIAL_SECONDS", cls.retry_initial_seconds),
            retry_max_seconds=_env_float("NIR_RETRY_MAX_SECONDS", cls.retry_max_seconds),
            commit_interval_seconds=_env_float(
                "NIR_COMMIT_INTERVAL_SECONDS", cls.commit_interval_seconds
            ),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.topic_prefix):
            raise ConfigurationError(
                f"NIR_TOPIC_PREFIX must be lower-case letters, digits and '-', not {self.topic_prefix!r}"
            )
        for name in ("registration_partitions", "address_partitions", "replication_factor"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")

    @property
    def kafka_url(self) -> str:
        """The bootstrap servers in Faust's URL form."""
        return ";".join(f"kafka://{server.strip()}" for server in self.kafka_bootstrap.split(","))

    def describe(self) -> str:
        """One line per setting, with any password in a database URL masked."""
        lines = []
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "database_url":
                value = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", str(value))
            lines.append(f"{field.name} = {value}")
        return "\n".join(lines)
