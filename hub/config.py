"""One frozen settings object, read from the environment.

Every setting has a documented default that runs the hub on the embedded defaults (local broker,
SQLite register). `Settings.describe()` prints them with secrets masked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hub.errors import ConfigurationError

PACKAGE_DIR = Path(__file__).resolve().parent


def _setting(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


def _parse(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        value = raw.strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(f"{name} must be true or false, not {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        what = "whole number" if kind is int else "number"
        raise ConfigurationError(f"{name} must be a {what}, not {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """The hub's configuration: each field names its environment variable and default."""

    kafka_bootstrap: str = _setting(
        "NIR_KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers, comma-separated host:port"
    )
    database_url: str = _setting(
        "NIR_DATABASE_URL", "sqlite:///var/nir-register.sqlite3", "SQLAlchemy URL of the register"
    )
    topic_prefix: str = _setting(
        "NIR_TOPIC_PREFIX", "nir", "first part of every topic name; lets several hubs share a broker"
    )
    app_id: str = _setting("NIR_APP_ID", "nir-hub", "Faust app id, which is also the consumer group")
    sources_file: str = _setting(
        "NIR_SOURCES_FILE", str(PACKAGE_DIR / "sources.toml"), "the source registry (TOML)"
    )
    registration_partitions: int = _setting(
        "NIR_REGISTRATION_PARTITIONS", 6, "partitions of each source's registrations topic"
    )
    address_partitions: int = _setting(
        "NIR_ADDRESS_PARTITIONS", 6, "partitions of the Folkeregister address-change topic"
    )
    replication_factor: int = _setting(
        "NIR_REPLICATION_FACTOR", 1, "replication factor of the topics the hub creates"
    )
    allow_synthetic_identifiers: bool = _setting(
        "NIR_ALLOW_SYNTHETIC_IDENTIFIERS", False, "accept Tenor test identifiers (month + 80)"
    )
    web_host: str = _setting("NIR_WEB_HOST", "127.0.0.1", "interface of the worker's web server")
    web_port: int = _setting("NIR_WEB_PORT", 6066, "port of the worker's web server")
    support_secure_cookie: bool = _setting(
        "NIR_SUPPORT_SECURE_COOKIE",
        False,
        "send the support page's session cookie over HTTPS only (set when served behind TLS)",
    )
    data_dir: str = _setting("NIR_DATA_DIR", "var/faust", "Faust's local data directory")
    retry_initial_seconds: float = _setting(
        "NIR_RETRY_INITIAL_SECONDS", 0.5, "first backoff after a transient failure"
    )
    retry_max_seconds: float = _setting(
        "NIR_RETRY_MAX_SECONDS", 30.0, "longest backoff between retries of a transient failure"
    )
    session_timeout_seconds: float = _setting(
        "NIR_SESSION_TIMEOUT_SECONDS",
        30.0,
        "how long the group waits for a silent worker before moving its partitions to another",
    )
    hold_seconds: float = _setting(
        "NIR_HOLD_SECONDS",
        86400.0,
        "how long an event waits for one it depends on before it is dead-lettered",
    )
    hold_check_seconds: float = _setting(
        "NIR_HOLD_CHECK_SECONDS", 60.0, "how often the worker looks for held events that waited too long"
    )
    commit_interval_seconds: float = _setting(
        "NIR_COMMIT_INTERVAL_SECONDS", 1.0, "how often Faust commits the offsets of finished events"
    )
    batch_size: int = _setting(
        "NIR_BATCH_SIZE", 500, "registration events decided in one register transaction at most"
    )
    batch_window_seconds: float = _setting(
        "NIR_BATCH_WINDOW_SECONDS",
        0.05,
        "how long the worker waits to fill a batch before it decides what it has",
    )
    max_message_bytes: int = _setting(
        "NIR_MAX_MESSAGE_BYTES",
        1_000_000,
        "the largest message the hub sends; a dead letter whose original would not fit goes by "
        "reference (keep it below the broker's message.max.bytes)",
    )
    crash_attempts: int = _setting(
        "NIR_CRASH_ATTEMPTS",
        3,
        "how many times a message may be begun without the worker finishing it before it is set "
        "aside unread (dead-lettered as NIR-POISON)",
    )
    log_repeat_seconds: float = _setting(
        "NIR_LOG_REPEAT_SECONDS",
        10.0,
        "how often the same log message may repeat (an outage's errors); the next one says how many were held back",
    )
    shutdown_seconds: float = _setting(
        "NIR_SHUTDOWN_SECONDS",
        10.0,
        "how long a worker may take to stop after SIGTERM or SIGINT before it exits without "
        "committing unfinished work",
    )
    folkeregister_url: str = _setting(
        "NIR_FOLKEREGISTER_URL",
        "http://127.0.0.1:6070/folkeregisteret/offentlig-med-hjemmel/api/v1",
        "base URL of Folkeregisteret's API (the default is the local stand-in)",
    )
    folkeregister_auth: str = _setting(
        "NIR_FOLKEREGISTER_AUTH",
        "none",
        "how the connector authenticates: none; token-file:PATH (a Maskinporten access token "
        "kept fresh by another process; read before every request); or maskinporten (the "
        "connector's own grant with the NIR_MASKINPORTEN_* client and NIR_FOLKEREGISTER_SCOPE)",
    )
    folkeregister_scope: str = _setting(
        "NIR_FOLKEREGISTER_SCOPE",
        "folkeregister:deling/offentligmedhjemmel",
        "the Maskinporten scope the connector asks for when NIR_FOLKEREGISTER_AUTH is maskinporten",
    )
    folkeregister_poll_seconds: float = _setting(
        "NIR_FOLKEREGISTER_POLL_SECONDS", 1.0, "how long the connector waits after an empty feed page"
    )
    connector_metrics_port: int = _setting(
        "NIR_CONNECTOR_METRICS_PORT", 6071, "port of the Folkeregister connector's /metrics (0: none)"
    )
    folkeregister_start: str = _setting(
        "NIR_FOLKEREGISTER_START",
        "latest",
        "where a connector with no stored position starts: latest or beginning of the feed",
    )

    maskinporten_token_url: str = _setting(
        "NIR_MASKINPORTEN_TOKEN_URL",
        "http://127.0.0.1:6080/token",
        "Maskinporten's token endpoint (the default is the local stand-in; test: "
        "https://test.maskinporten.no/token)",
    )
    maskinporten_issuer: str = _setting(
        "NIR_MASKINPORTEN_ISSUER",
        "http://127.0.0.1:6080/",
        "Maskinporten's issuer URL, the audience of the hub's grants (test: https://test.maskinporten.no/)",
    )
    maskinporten_client_id: str = _setting(
        "NIR_MASKINPORTEN_CLIENT_ID", "", "the hub's client id at Maskinporten (empty: no client)"
    )
    maskinporten_key_file: str = _setting(
        "NIR_MASKINPORTEN_KEY_FILE", "", "the hub client's RSA private key (PEM, unencrypted; keep it 0600)"
    )
    maskinporten_kid: str = _setting(
        "NIR_MASKINPORTEN_KID", "", "the key id under which the client's public key is registered"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw not in (None, ""):
                values[f.name] = _parse(f.metadata["env"], raw, type(f.default))
        settings = cls(**values)
        settings.check()
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in another process."""
        return {
            f.metadata["env"]: str(getattr(self, f.name)).lower()
            if isinstance(f.default, bool)
            else str(getattr(self, f.name))
            for f in fields(self)
        }

    def check(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.topic_prefix):
            raise ConfigurationError(
                f"NIR_TOPIC_PREFIX must be lower-case letters, digits and '-', not {self.topic_prefix!r}"
            )
        for name in ("registration_partitions", "address_partitions", "replication_factor", "crash_attempts"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        if self.max_message_bytes < 10_000:
            raise ConfigurationError("NIR_MAX_MESSAGE_BYTES must be at least 10000")
        if self.folkeregister_start not in ("latest", "beginning"):
            raise ConfigurationError("NIR_FOLKEREGISTER_START must be latest or beginning")
        if self.folkeregister_auth not in ("none", "maskinporten") and not self.folkeregister_auth.startswith(
            "token-file:"
        ):
            raise ConfigurationError("NIR_FOLKEREGISTER_AUTH must be none, token-file:PATH or maskinporten")

    @property
    def kafka_url(self) -> str:
        """The bootstrap servers in Faust's URL form, with the hub's transport (hub.streaming)."""
        return ";".join(f"nirkafka://{server.strip()}" for server in self.kafka_bootstrap.split(","))

    def describe(self) -> str:
        """One line per setting, with any password in a database URL masked."""
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "database_url":
                value = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", str(value))
            lines.append(f"{f.name} = {value}")
        return "\n".join(lines)
