"""How every Kafka client of the hub connects: TLS to the broker, and who it is.

The hub speaks only SASL_SSL. A client proves who it is with SCRAM-SHA-512 (the hub's own
principals, and sources whose password the hub manages) or with OAUTHBEARER (a Maskinporten
access token, from a token provider that renews it). `KafkaConnection` holds one client's
connection and turns it into the options of each client library the hub uses: aiokafka's
keyword arguments, Faust's credentials, and librdkafka's configuration (confluent-kafka, used
for the admin calls aiokafka lacks: ACLs and SCRAM credentials).

Secrets are read when the connection is made, from the environment or a file, and never
printed: `repr` shows the user, not the password.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from hub.errors import ConfigurationError

SCRAM = "SCRAM-SHA-512"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = (SCRAM, OAUTHBEARER)


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: str
    ca_file: str  # empty: the system's trusted CAs
    mechanism: str = SCRAM
    username: str = ""
    password: str = field(default="", repr=False)
    token_provider: AbstractTokenProvider | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ConfigurationError(f"the Kafka SASL mechanism must be one of {', '.join(MECHANISMS)}")
        if self.mechanism == SCRAM and not (self.username and self.password):
            raise ConfigurationError("a SCRAM-SHA-512 Kafka client needs a user name and a password")
        if self.mechanism == OAUTHBEARER and self.token_provider is None:
            raise ConfigurationError("an OAUTHBEARER Kafka client needs a token provider")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise ConfigurationError(f"the Kafka CA file {self.ca_file} does not exist")

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return _ssl_context(self.ca_file)

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_context": self.ssl_context,
            "sasl_mechanism": self.mechanism,
        }
        if self.mechanism == SCRAM:
            options.update(sasl_plain_username=self.username, sasl_plain_password=self.password)
        else:
            options.update(sasl_oauth_token_provider=self.token_provider)
        return options

    def faust_credentials(self) -> faust.auth.Credentials:
        if self.mechanism == SCRAM:
            return faust.SASLCredentials(
                username=self.username, password=self.password, ssl_context=self.ssl_context, mechanism=SCRAM
            )
        assert self.token_provider is not None
        return faust.OAuthCredentials(oauth_cb=self.token_provider, ssl_context=self.ssl_context)

    def librdkafka(self) -> dict[str, Any]:
        """Configuration for confluent-kafka's clients (the hub uses its admin client, with SCRAM)."""
        if self.mechanism != SCRAM:
            raise ConfigurationError("the hub's admin commands authenticate with SCRAM-SHA-512")
        config = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM,
            "sasl.username": self.username,
            "sasl.password": self.password,
        }
        if self.ca_file:
            config["ssl.ca.location"] = self.ca_file
        return config


@functools.lru_cache(maxsize=8)
def _ssl_context(ca_file: str) -> ssl.SSLContext:
    # One context per CA file: building one reads and parses the certificates.
    context = create_ssl_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def read_secret(value: str, file: str, what: str) -> str:
    """A secret given directly (from the environment) or in a file; the file's content is
    stripped of surrounding white space."""
    if value:
        return value
    if not file:
        raise ConfigurationError(f"no {what} is configured")
    try:
        secret = Path(file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"the {what} file {file} cannot be read: {exc.strerror}") from None
    if not secret:
        raise ConfigurationError(f"the {what} file {file} is empty")
    return secret
