"""One frozen settings object, read from the environment.

Every setting has a documented default that runs the hub on the embedded defaults (local broker,
SQLite register). `Settings.describe()` prints them with secrets masked.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hub.errors import ConfigurationError
from hub.kafka.connection import OAUTHBEARER, SCRAM, KafkaConnection, read_secret

PACKAGE_DIR = Path(__file__).resolve().parent


def _local_state_dir() -> Path:
    """The hub's local state on this machine (deploy/kafka/kafka.sh's NIR_CACHE_DIR)."""
    return Path(
        os.environ.get("NIR_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nir-hub"
    )


def _local_kafka_dir() -> Path:
    """Where deploy/kafka/kafka.sh keeps the local broker's data, CA and secrets (its defaults)."""
    if os.environ.get("NIR_KAFKA_DATA_DIR"):
        return Path(os.environ["NIR_KAFKA_DATA_DIR"])
    return _local_state_dir() / "kafka-data"


LOCAL_KAFKA_DIR = _local_kafka_dir()
# The mask key of this machine's hub processes, made by the first that starts (hub.bootstrap).
LOCAL_MASK_KEY_FILE = _local_state_dir() / "secrets" / "nir-mask.key"


def _setting(env: str, default: Any, doc: str, *, secret: bool = False, shown: str = "") -> Any:
    """A setting: its environment variable, default and meaning. `shown` is how the configuration
    page writes a default that depends on this machine (a path), so the page is the same everywhere
    (`python -m tools.configuration_docs` writes it)."""
    return field(default=default, metadata={"env": env, "doc": doc, "secret": secret, "shown": shown})


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
    kafka_ca_file: str = _setting(
        "NIR_KAFKA_CA_FILE",
        str(LOCAL_KAFKA_DIR / "tls" / "ca.pem"),
        "the CA that signed the brokers' certificates, PEM (empty: the system's CAs; the "
        "default is the local broker's)",
        shown="the local broker's `tls/ca.pem`",
    )
    kafka_sasl_mechanism: str = _setting(
        "NIR_KAFKA_SASL_MECHANISM",
        "SCRAM-SHA-512",
        "how this process authenticates to Kafka: SCRAM-SHA-512, or OAUTHBEARER with a Maskinporten token",
    )
    kafka_username: str = _setting(
        "NIR_KAFKA_USERNAME",
        "nir-worker",
        "this process's Kafka principal (SCRAM): nir-worker for the worker, nir-connector for "
        "the Folkeregister connector, nir-admin for `hub topics ensure` and `hub sources`",
    )
    kafka_oauth_scope: str = _setting(
        "NIR_KAFKA_OAUTH_SCOPE", "nir:kafka", "the Maskinporten scope an OAUTHBEARER Kafka client asks for"
    )
    kafka_oauth_resource: str = _setting(
        "NIR_KAFKA_OAUTH_RESOURCE",
        "nir-kafka",
        "the audience an OAUTHBEARER Kafka client asks Maskinporten for: the broker's expected "
        "audience (kafka.sh: NIR_KAFKA_OAUTH_AUDIENCE)",
    )
    kafka_password: str = _setting(
        "NIR_KAFKA_PASSWORD",
        "",
        "the SCRAM password, masked by `hub settings` (prefer NIR_KAFKA_PASSWORD_FILE)",
        secret=True,
    )
    kafka_password_file: str = _setting(
        "NIR_KAFKA_PASSWORD_FILE",
        "",
        "a file holding the SCRAM password (empty: <NIR_KAFKA_SECRETS_DIR>/<user name>.password)",
    )
    kafka_secrets_dir: str = _setting(
        "NIR_KAFKA_SECRETS_DIR",
        str(LOCAL_KAFKA_DIR / "secrets"),
        "where the SCRAM passwords of the principals the hub manages are kept, one "
        "<principal>.password file each, mode 0600 (the default is the local broker's)",
        shown="the local broker's `secrets/`",
    )
    kafka_worker_user: str = _setting(
        "NIR_KAFKA_WORKER_USER", "nir-worker", "the worker's Kafka principal, for the ACLs the hub makes"
    )
    kafka_replay_user: str = _setting(
        "NIR_KAFKA_REPLAY_USER",
        "nir-replay",
        "the principal replays send corrected events as (the support page, `hub cases replay`); "
        "its password is <NIR_KAFKA_SECRETS_DIR>/<user>.password",
    )
    kafka_connector_user: str = _setting(
        "NIR_KAFKA_CONNECTOR_USER",
        "nir-connector",
        "the Folkeregister connector's Kafka principal, for the ACLs the hub makes",
    )
    kafka_gateway_user: str = _setting(
        "NIR_KAFKA_GATEWAY_USER",
        "nir-gateway",
        "the ingestion gateway's Kafka principal (`hub gateway`), for the ACLs the hub makes: it "
        "may write each source's registrations and read each source's receipts",
    )
    kafka_monitor_user: str = _setting(
        "NIR_KAFKA_MONITOR_USER",
        "nir-monitor",
        "the lag exporter's Kafka principal, for the ACLs the hub makes: it may describe the "
        "hub's topics and consumer group, and read or write nothing",
    )
    mask_key_file: str = _setting(
        "NIR_MASK_KEY_FILE",
        str(LOCAL_MASK_KEY_FILE),
        "the secret key of the masks that stand for identifiers in logs and messages (at least 32 "
        "bytes, mode 0600): the default is made, 32 random bytes, by the first hub process that "
        "starts on this machine; a file named here must exist (a clear error at start otherwise)",
        shown="`<NIR_CACHE_DIR>/secrets/nir-mask.key` (`~/.cache/nir-hub/secrets/`)",
    )
    database_url: str = _setting(
        "NIR_DATABASE_URL", "sqlite:///var/nir-register.sqlite3", "SQLAlchemy URL of the register"
    )
    topic_prefix: str = _setting(
        "NIR_TOPIC_PREFIX", "nir", "first part of every topic name; lets several hubs share a broker"
    )
    app_id: str = _setting("NIR_APP_ID", "nir-hub", "Faust app id, which is also the consumer group")
    sources_file: str = _setting(
        "NIR_SOURCES_FILE",
        str(PACKAGE_DIR / "sources.toml"),
        "the source registry (TOML)",
        shown="`hub/sources.toml` in the package",
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
        "NIR_ALLOW_SYNTHETIC_IDENTIFIERS",
        False,
        "accept Tenor test identifiers (month + 80); the demo and tests turn it on",
    )
    web_host: str = _setting("NIR_WEB_HOST", "127.0.0.1", "interface of the worker's web server")
    web_port: int = _setting("NIR_WEB_PORT", 6066, "port of the worker's web server")
    support_secure_cookie: bool = _setting(
        "NIR_SUPPORT_SECURE_COOKIE",
        False,
        "the worker's web server is reached over TLS (directly or behind a proxy): cookies go "
        "over HTTPS only and every answer carries Strict-Transport-Security",
    )
    web_tls_cert_file: str = _setting(
        "NIR_WEB_TLS_CERT_FILE",
        "",
        "the worker's web server serves HTTPS with this certificate chain (PEM); empty: HTTP, for "
        "a TLS proxy in front or for this machine only",
    )
    web_tls_key_file: str = _setting(
        "NIR_WEB_TLS_KEY_FILE", "", "the private key of NIR_WEB_TLS_CERT_FILE (PEM)"
    )
    signin_failure_limit: int = _setting(
        "NIR_SIGNIN_FAILURE_LIMIT",
        5,
        "failed sign-ins for one username from one client address within the window that lock "
        "that username out from that address (only)",
    )
    signin_user_failure_limit: int = _setting(
        "NIR_SIGNIN_USER_FAILURE_LIMIT",
        100,
        "failed sign-ins for one username from any address within NIR_SIGNIN_USER_WINDOW_SECONDS "
        "that lock that username out everywhere (slows guessing from many addresses)",
    )
    signin_user_window_seconds: float = _setting(
        "NIR_SIGNIN_USER_WINDOW_SECONDS",
        3600.0,
        "how far back failed sign-ins for a username from every address are counted",
    )
    signin_address_failure_limit: int = _setting(
        "NIR_SIGNIN_ADDRESS_FAILURE_LIMIT",
        50,
        "failed sign-ins from one client address within the window that lock that address out",
    )
    signin_window_seconds: float = _setting(
        "NIR_SIGNIN_WINDOW_SECONDS", 900.0, "how far back failed sign-ins are counted"
    )
    signin_lockout_seconds: float = _setting(
        "NIR_SIGNIN_LOCKOUT_SECONDS",
        900.0,
        "how long a locked-out username or address is refused, even with the right password",
    )
    signin_delay_seconds: float = _setting(
        "NIR_SIGNIN_DELAY_SECONDS",
        0.5,
        "how long the answer to a first failed sign-in waits; it doubles with each further failure",
    )
    signin_delay_max_seconds: float = _setting(
        "NIR_SIGNIN_DELAY_MAX_SECONDS", 8.0, "the longest wait before answering a failed sign-in"
    )
    oidc_issuer: str = _setting(
        "NIR_OIDC_ISSUER",
        "",
        "the identity provider support staff sign in with (OpenID Connect), its issuer URL (ID-porten "
        "test: https://test.idporten.no; Entra ID: https://login.microsoftonline.com/TENANT/v2.0); "
        "empty: no such sign-in",
    )
    oidc_client_id: str = _setting("NIR_OIDC_CLIENT_ID", "", "the hub's client id at the identity provider")
    oidc_client_secret_file: str = _setting(
        "NIR_OIDC_CLIENT_SECRET_FILE",
        "",
        "a file holding the client secret (client_secret_basic); empty: NIR_OIDC_PRIVATE_KEY_FILE",
    )
    oidc_private_key_file: str = _setting(
        "NIR_OIDC_PRIVATE_KEY_FILE",
        "",
        "the client's RSA private key (PEM, 0600) for private_key_jwt, as ID-porten asks",
    )
    oidc_key_id: str = _setting(
        "NIR_OIDC_KEY_ID", "", "the kid of NIR_OIDC_PRIVATE_KEY_FILE's key as registered with the provider"
    )
    oidc_scopes: str = _setting("NIR_OIDC_SCOPES", "openid profile", "the scopes asked for, space-separated")
    oidc_acr_values: str = _setting(
        "NIR_OIDC_ACR_VALUES",
        "idporten-loa-high",
        "the assurance levels (acr) the hub accepts, space-separated; the first is asked for; "
        "empty: any (for a provider that sends no acr)",
    )
    oidc_subject_claim: str = _setting(
        "NIR_OIDC_SUBJECT_CLAIM",
        "pid",
        "the ID token's claim that identifies the person: pid for ID-porten, sub (or oid) for Entra ID",
    )
    oidc_redirect_url: str = _setting(
        "NIR_OIDC_REDIRECT_URL",
        "",
        "the callback address registered with the provider; empty: the support page's own address "
        "as the browser reached it, + /support/login/oidc/callback",
    )
    oidc_provider_name: str = _setting(
        "NIR_OIDC_PROVIDER_NAME", "ID-porten", "the provider's name on the sign-in page's button"
    )
    metrics_host: str = _setting(
        "NIR_METRICS_HOST",
        "127.0.0.1",
        "interface of the worker's own /metrics server (with NIR_METRICS_PORT)",
    )
    metrics_port: int = _setting(
        "NIR_METRICS_PORT",
        0,
        "serve the worker's /metrics on this port instead of the web server (0: on the web server)",
    )
    lag_exporter_port: int = _setting(
        "NIR_LAG_EXPORTER_PORT",
        6072,
        "port of `hub lag-exporter`'s /metrics and /health/ready, on NIR_METRICS_HOST",
    )
    lag_exporter_interval_seconds: float = _setting(
        "NIR_LAG_EXPORTER_INTERVAL_SECONDS",
        15.0,
        "how often the lag exporter reads the consumer group's offsets from the broker",
    )
    ticket_overdue_days: float = _setting(
        "NIR_TICKET_OVERDUE_DAYS",
        7.0,
        "an open case ticket older than this many days is overdue: the NirTicketOverdue alert "
        "fires (the workers export the limit as nir_ticket_overdue_after_seconds)",
    )
    incident_window_hours: float = _setting(
        "NIR_INCIDENT_WINDOW_HOURS",
        24.0,
        "active case tickets of one cause (source, error code, event type, fagsystemVersion) whose "
        "last failures follow each other less than this many hours apart are one incident "
        "(`hub cases incidents`); a longer quiet starts the next",
    )
    # Retention (`hub retention run`, `hub topics ensure`): days, 0 for kept indefinitely.
    # docs/operations/retention.md gives each default's reason.
    retention_closed_ticket_days: int = _setting(
        "NIR_RETENTION_CLOSED_TICKET_DAYS",
        730,
        "a resolved or discarded case ticket, with its stored event bytes, edits and outcomes, is "
        "deleted this many days after it was closed (anonymised instead while a merge record "
        "names it); open and replayed tickets are never deleted; 0: kept indefinitely",
    )
    retention_audit_days: int = _setting(
        "NIR_RETENTION_AUDIT_DAYS",
        1826,
        "audit-log entries are deleted this many days (five years) after they were written; 0: kept "
        "indefinitely",
    )
    retention_access_log_days: int = _setting(
        "NIR_RETENTION_ACCESS_LOG_DAYS",
        1826,
        "access-log entries (who read which person's data, and why) are deleted this many days "
        "(five years) after the read; 0: kept indefinitely",
    )
    retention_signin_attempt_days: int = _setting(
        "NIR_RETENTION_SIGNIN_ATTEMPT_DAYS",
        7,
        "failed sign-in attempts (username tried, client address) are deleted this many days after "
        "(sign-in itself forgets them once they no longer count; this is for when nobody signs in); "
        "0: kept indefinitely",
    )
    retention_session_days: int = _setting(
        "NIR_RETENTION_SESSION_DAYS",
        1,
        "signed-in sessions are deleted this many days after they expired; 0: kept indefinitely",
    )
    retention_register_days: int = _setting(
        "NIR_RETENTION_REGISTER_DAYS",
        0,
        "the register's own facts (persons, identifiers, registrations, addresses): 0, kept "
        "indefinitely, is the only value accepted, because the NIR regulation's retention period "
        "is unconfirmed (DOMAIN.md)",
    )
    retention_dead_letter_days: int = _setting(
        "NIR_RETENTION_DEAD_LETTER_DAYS",
        30,
        "retention.ms of the dead-letter topic, set by `hub topics ensure` (each dead letter is "
        "also kept in its case ticket); 0: infinite",
    )
    retention_registrations_days: int = _setting(
        "NIR_RETENTION_REGISTRATIONS_DAYS",
        0,
        "retention.ms of each source's registrations topic, set by `hub topics ensure`: 0 is "
        "infinite (-1), because the register can be rebuilt from these topics",
    )
    retention_receipts_days: int = _setting(
        "NIR_RETENTION_RECEIPTS_DAYS",
        30,
        "retention.ms of each source's receipts topic, set by `hub topics ensure`: how long a "
        "fagsystem (or a gateway cursor) can still read a receipt; 0: infinite",
    )
    retention_address_changes_days: int = _setting(
        "NIR_RETENTION_ADDRESS_CHANGES_DAYS",
        30,
        "retention.ms of Folkeregisteret's address-changes topic, set by `hub topics ensure` (each "
        "change is kept in the register's address history once read; Folkeregisteret holds them "
        "all); 0: infinite",
    )
    retention_batch_size: int = _setting(
        "NIR_RETENTION_BATCH_SIZE",
        500,
        "rows `hub retention run --apply` deletes or anonymises per transaction",
    )
    backup_interval_hours: int = _setting(
        "NIR_BACKUP_INTERVAL_HOURS",
        24,
        "hours between backups of the register: `hub topics ensure` warns of a topic the hub reads "
        "that keeps messages for less, since a restore could not apply what it no longer holds",
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
        "NIR_HOLD_CHECK_SECONDS",
        60.0,
        "how often the worker tries again the held events whose persons' numbers changed (an identity "
        "change, a merge) or whose answer is owed (accepted when the worker stopped before answering), "
        "and looks for those that waited too long",
    )
    commit_interval_seconds: float = _setting(
        "NIR_COMMIT_INTERVAL_SECONDS", 1.0, "how often Faust commits the offsets of finished events"
    )
    batch_size: int = _setting(
        "NIR_BATCH_SIZE", 500, "registration events decided in one register transaction at most"
    )
    batch_window_seconds: float = _setting(
        "NIR_BATCH_WINDOW_SECONDS",
        0.005,
        "how long the worker waits to fill a batch before it decides what it has (the broker "
        "gathers records first: NIR_FETCH_WAIT_SECONDS)",
    )
    fetch_wait_seconds: float = _setting(
        "NIR_FETCH_WAIT_SECONDS",
        0.025,
        "how long the broker may hold the worker's fetch to gather NIR_FETCH_MIN_BYTES of records "
        "(Kafka's fetch.max.wait.ms): the most it adds to an event's latency",
    )
    fetch_min_bytes: int = _setting(
        "NIR_FETCH_MIN_BYTES",
        65536,
        "how many bytes of records let the broker answer the worker's fetch before "
        "NIR_FETCH_WAIT_SECONDS (Kafka's fetch.min.bytes)",
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

    gateway_host: str = _setting("NIR_GATEWAY_HOST", "127.0.0.1", "interface of `hub gateway`'s HTTPS API")
    gateway_port: int = _setting("NIR_GATEWAY_PORT", 8443, "port of `hub gateway`'s HTTPS API")
    gateway_tls_cert_file: str = _setting(
        "NIR_GATEWAY_TLS_CERT_FILE",
        "",
        "the gateway serves HTTPS with this certificate chain (PEM); empty: HTTP, only behind a TLS "
        "proxy or on this machine",
    )
    gateway_tls_key_file: str = _setting(
        "NIR_GATEWAY_TLS_KEY_FILE", "", "the private key of NIR_GATEWAY_TLS_CERT_FILE (PEM)"
    )
    gateway_metrics_port: int = _setting(
        "NIR_GATEWAY_METRICS_PORT",
        6073,
        "port of the gateway's /metrics, /health/live and /health/ready, on NIR_METRICS_HOST (0: on "
        "the API's own port)",
    )
    gateway_jwks_url: str = _setting(
        "NIR_GATEWAY_JWKS_URL",
        "http://127.0.0.1:6080/jwks",
        "where the gateway reads Maskinporten's signing keys (test: https://test.maskinporten.no/jwk)",
    )
    gateway_audience: str = _setting(
        "NIR_GATEWAY_AUDIENCE",
        "nir-gateway",
        "the audience a token for the gateway must have: the resource a fagsystem asks Maskinporten for",
    )
    gateway_scope: str = _setting(
        "NIR_GATEWAY_SCOPE", "nir:registrations", "the Maskinporten scope a token for the gateway must have"
    )
    gateway_max_request_bytes: int = _setting(
        "NIR_GATEWAY_MAX_REQUEST_BYTES", 5_000_000, "the largest request body the gateway reads (413 beyond)"
    )
    gateway_max_batch_events: int = _setting(
        "NIR_GATEWAY_MAX_BATCH_EVENTS", 500, "the most events one POST /v1/events may carry"
    )
    gateway_rate_per_second: float = _setting(
        "NIR_GATEWAY_RATE_PER_SECOND",
        50.0,
        "requests each source may make per second on average (429 with Retry-After beyond)",
    )
    gateway_rate_burst: int = _setting(
        "NIR_GATEWAY_RATE_BURST", 100, "requests a source may make at once before its rate applies"
    )
    gateway_poll_max_seconds: float = _setting(
        "NIR_GATEWAY_POLL_MAX_SECONDS",
        30.0,
        "the longest a GET /v1/receipts waits for a new receipt (its `wait` is cut to this)",
    )
    gateway_jwks_refresh_seconds: float = _setting(
        "NIR_GATEWAY_JWKS_REFRESH_SECONDS",
        3600.0,
        "how often the gateway reads Maskinporten's JWKS again to follow its key rotation (in the "
        "background: no request with a known key waits for it)",
    )
    gateway_jwks_max_stale_seconds: float = _setting(
        "NIR_GATEWAY_JWKS_MAX_STALE_SECONDS",
        86400.0,
        "how long after the last successful JWKS read the gateway keeps trusting the keys it read "
        "while reads fail; past it every token is refused (401) until a read succeeds",
    )
    gateway_jwks_unknown_kid_seconds: float = _setting(
        "NIR_GATEWAY_JWKS_UNKNOWN_KID_SECONDS",
        60.0,
        "a token naming a key the gateway does not know makes it read the JWKS at most once per "
        "this many seconds (made-up key ids must not become a flood of reads)",
    )
    gateway_jwks_backoff_max_seconds: float = _setting(
        "NIR_GATEWAY_JWKS_BACKOFF_MAX_SECONDS",
        300.0,
        "after failed JWKS reads the gateway waits 1 s, 2 s, 4 s, … before the next, at most this long",
    )
    gateway_pending_seconds: float = _setting(
        "NIR_GATEWAY_PENDING_SECONDS",
        3600.0,
        "how long the gateway remembers an event it sent whose receipt has not come, to answer a "
        "retry already-received; a retry after that is sent again (the register answers DUPLICATE)",
    )
    gateway_pending_max: int = _setting(
        "NIR_GATEWAY_PENDING_MAX",
        100000,
        "the most sent events without a receipt the gateway remembers; the oldest are forgotten first",
    )
    gateway_receipts_kept: int = _setting(
        "NIR_GATEWAY_RECEIPTS_KEPT",
        100000,
        "the most receipts (of all sources together, the latest) the gateway keeps in memory; older "
        "ones are read from the broker when a cursor asks for them",
    )
    gateway_database_url: str = _setting(
        "NIR_GATEWAY_DATABASE_URL",
        "",
        "SQLAlchemy URL of the register for the gateway's `GET /v1/incidents` (it reads the caller's "
        "incidents and nothing else, in read-only transactions); empty: the gateway has no "
        "register, and that route answers 503 incidents-unavailable. On PostgreSQL, connect as "
        "the role `nir_gateway`, which may read the view `gateway_incident_tickets` only "
        "(deploy/postgres/roles.sh), never as the hub's own `nir`",
    )
    gateway_database_password_file: str = _setting(
        "NIR_GATEWAY_DATABASE_PASSWORD_FILE",
        "",
        "a file holding the password of NIR_GATEWAY_DATABASE_URL's role (a compose secret), put "
        "into that URL when the gateway connects; empty: the URL's own, if any",
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
        for name in (
            "registration_partitions",
            "address_partitions",
            "replication_factor",
            "crash_attempts",
            "signin_failure_limit",
            "signin_user_failure_limit",
            "signin_address_failure_limit",
            "gateway_max_batch_events",
            "gateway_rate_burst",
            "gateway_pending_max",
            "gateway_receipts_kept",
            "fetch_min_bytes",
            "retention_batch_size",
            "backup_interval_hours",
        ):
            if getattr(self, name) < 1:
                variable = next(f.metadata["env"] for f in fields(self) if f.name == name)
                raise ConfigurationError(f"{variable} must be at least 1")
        if self.metrics_port and self.metrics_port == self.web_port:
            raise ConfigurationError(
                "NIR_METRICS_PORT must differ from NIR_WEB_PORT (0 serves /metrics there)"
            )
        if self.lag_exporter_interval_seconds <= 0 or self.ticket_overdue_days <= 0:
            raise ConfigurationError(
                "NIR_LAG_EXPORTER_INTERVAL_SECONDS and NIR_TICKET_OVERDUE_DAYS must be more than 0"
            )
        if self.incident_window_hours <= 0:
            raise ConfigurationError("NIR_INCIDENT_WINDOW_HOURS must be more than 0")
        retention = [f for f in fields(self) if f.name.startswith("retention_") and f.name.endswith("_days")]
        for f in retention:
            if getattr(self, f.name) < 0:
                raise ConfigurationError(f"{f.metadata['env']} must be 0 (kept indefinitely) or more days")
        if self.retention_register_days != 0:
            raise ConfigurationError(
                "NIR_RETENTION_REGISTER_DAYS must be 0 (kept indefinitely): the NIR regulation's "
                "retention period for the register's facts is unconfirmed, and the hub deletes none"
            )
        if not 0 < self.fetch_wait_seconds <= 1:
            raise ConfigurationError("NIR_FETCH_WAIT_SECONDS must be more than 0 and at most 1")
        if self.max_message_bytes < 10_000:
            raise ConfigurationError("NIR_MAX_MESSAGE_BYTES must be at least 10000")
        if self.folkeregister_start not in ("latest", "beginning"):
            raise ConfigurationError("NIR_FOLKEREGISTER_START must be latest or beginning")
        if bool(self.web_tls_cert_file) != bool(self.web_tls_key_file):
            raise ConfigurationError("NIR_WEB_TLS_CERT_FILE and NIR_WEB_TLS_KEY_FILE go together")
        if bool(self.gateway_tls_cert_file) != bool(self.gateway_tls_key_file):
            raise ConfigurationError("NIR_GATEWAY_TLS_CERT_FILE and NIR_GATEWAY_TLS_KEY_FILE go together")
        if self.gateway_rate_per_second <= 0 or self.gateway_poll_max_seconds <= 0:
            raise ConfigurationError(
                "NIR_GATEWAY_RATE_PER_SECOND and NIR_GATEWAY_POLL_MAX_SECONDS must be more than 0"
            )
        if (
            min(
                self.gateway_jwks_refresh_seconds,
                self.gateway_jwks_max_stale_seconds,
                self.gateway_jwks_unknown_kid_seconds,
                self.gateway_jwks_backoff_max_seconds,
                self.gateway_pending_seconds,
            )
            <= 0
        ):
            raise ConfigurationError(
                "NIR_GATEWAY_JWKS_REFRESH_SECONDS, NIR_GATEWAY_JWKS_MAX_STALE_SECONDS, "
                "NIR_GATEWAY_JWKS_UNKNOWN_KID_SECONDS, NIR_GATEWAY_JWKS_BACKOFF_MAX_SECONDS and "
                "NIR_GATEWAY_PENDING_SECONDS must be more than 0"
            )
        if self.gateway_max_request_bytes < 10_000:
            raise ConfigurationError("NIR_GATEWAY_MAX_REQUEST_BYTES must be at least 10000")
        if self.kafka_sasl_mechanism not in ("SCRAM-SHA-512", "OAUTHBEARER"):
            raise ConfigurationError("NIR_KAFKA_SASL_MECHANISM must be SCRAM-SHA-512 or OAUTHBEARER")
        if self.folkeregister_auth not in ("none", "maskinporten") and not self.folkeregister_auth.startswith(
            "token-file:"
        ):
            raise ConfigurationError("NIR_FOLKEREGISTER_AUTH must be none, token-file:PATH or maskinporten")

    @property
    def kafka_url(self) -> str:
        """The bootstrap servers in Faust's URL form, with the hub's transport (hub.kafka.transport)."""
        return ";".join(f"nirkafka://{server.strip()}" for server in self.kafka_bootstrap.split(","))

    @property
    def service_principals(self) -> frozenset[str]:
        """The hub's own Kafka principals as configured: no source may take one of these names
        (`SourceRegistry.load`), nor one beginning `nir-` (the super users nir-admin, nir-broker)."""
        return frozenset(
            {
                self.kafka_worker_user,
                self.kafka_replay_user,
                self.kafka_connector_user,
                self.kafka_gateway_user,
                self.kafka_monitor_user,
            }
        )

    @property
    def served_over_tls(self) -> bool:
        """Whether people reach the worker's web server over HTTPS (its own, or a proxy's)."""
        return self.support_secure_cookie or bool(self.web_tls_cert_file)

    def web_ssl_context(self) -> ssl.SSLContext | None:
        """The web server's TLS context, if it serves HTTPS itself."""
        return server_ssl_context(self.web_tls_cert_file, self.web_tls_key_file, "the web server")

    def gateway_ssl_context(self) -> ssl.SSLContext | None:
        """The gateway's TLS context, if it serves HTTPS itself."""
        return server_ssl_context(self.gateway_tls_cert_file, self.gateway_tls_key_file, "the gateway")

    def password_file(self, username: str) -> str:
        """Where a principal's SCRAM password is kept: NIR_KAFKA_PASSWORD_FILE for this process's
        own, else the secrets directory's <principal>.password."""
        if username == self.kafka_username and self.kafka_password_file:
            return self.kafka_password_file
        return str(Path(self.kafka_secrets_dir) / f"{username}.password")

    @property
    def kafka(self) -> KafkaConnection:
        """This process's connection to Kafka (its secrets read now)."""
        if self.kafka_sasl_mechanism == OAUTHBEARER:
            from hub.maskinporten import kafka_token_provider

            return KafkaConnection(
                self.kafka_bootstrap,
                self.kafka_ca_file,
                OAUTHBEARER,
                token_provider=kafka_token_provider(self),
            )
        password = read_secret(
            self.kafka_password,
            self.password_file(self.kafka_username),
            f"Kafka password of {self.kafka_username}",
        )
        return KafkaConnection(self.kafka_bootstrap, self.kafka_ca_file, SCRAM, self.kafka_username, password)

    def kafka_as(self, username: str) -> KafkaConnection:
        """A connection as another of the hub's principals (this process's own, if it is that one)."""
        return self.kafka if username == self.kafka_username else self.as_kafka_user(username).kafka

    def as_kafka_user(self, username: str) -> Settings:
        """The same settings for another of the hub's principals (its password from the secrets
        directory): the admin commands of the demo and the tests."""
        return replace(self, kafka_username=username, kafka_password="", kafka_password_file="")

    def describe(self) -> str:
        """One line per setting, with secrets masked: passwords, and the password and TLS key
        password in a database URL."""
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = "***"
            elif f.name in ("database_url", "gateway_database_url"):
                value = mask_url(str(value))
            lines.append(f"{f.name} = {value}")
        return "\n".join(lines)


def server_ssl_context(cert_file: str, key_file: str, who: str) -> ssl.SSLContext | None:
    """A server's TLS context (TLS 1.2 at least) from its certificate chain and key; None without one."""
    if not cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"{who}'s certificate or key cannot be loaded: {exc}") from None
    return context


def mask_url(url: str) -> str:
    """A database URL with its password and any secret query parameter (libpq's sslpassword,
    password) masked."""
    url = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
    return re.sub(r"(?i)([?&](?:ssl)?password=)[^&]*", r"\1***", url)
