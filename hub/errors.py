"""The hub's exception root.

Every error the hub raises on purpose derives from `HubError` and carries a stable `code` and a
`retriable` flag: retriable errors (database or broker unavailable) are retried with backoff,
the others are a property of the event and send it to the dead-letter topic. Messages never
contain personal identifiers in clear text (see `hub.domain.identifiers.mask`).
"""

from __future__ import annotations

import traceback
from pathlib import Path


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    code: str = "NIR-INTERNAL"
    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ConfigurationError(HubError):
    """The hub's settings or source registry are invalid; raised at start-up."""

    code = "NIR-CONFIG"


class DecodeError(HubError):
    """The message bytes are not a single-object-encoded Avro record the hub can read."""

    code = "NIR-DECODE"


class UnknownSchemaError(DecodeError):
    """The message names a writer schema (fingerprint) that the hub does not know."""

    code = "NIR-SCHEMA-UNKNOWN"


class EncodeError(HubError):
    """A datum does not fit the schema it is being encoded with."""

    code = "NIR-ENCODE"


class RegisterUnavailable(HubError):
    """The register database could not be reached or the transaction failed transiently."""

    code = "NIR-REGISTER-UNAVAILABLE"
    retriable = True


class WriteConflict(RegisterUnavailable):
    """A unique key was written by a concurrent transaction; a retry sees the other write.

    Retried only a few times: a conflict that does not go away is a fault, not a race.
    """

    code = "NIR-REGISTER-CONFLICT"


class BrokerUnavailable(HubError):
    """A send to Kafka was not confirmed."""

    code = "NIR-BROKER-UNAVAILABLE"
    retriable = True


class RegisterNotMigrated(ConfigurationError):
    """The register's schema is not at the newest migration; run `hub db upgrade`."""

    code = "NIR-REGISTER-NOT-MIGRATED"


def safe_traceback(exc: BaseException) -> str:
    """Where an unexpected error happened, without its message.

    An arbitrary exception's message can carry data (a key, a row, an identifier), so logs get
    the exception's type and the frames it passed through, never `str(exc)`.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__} at {where or 'unknown location'}"
