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
    # What the code means, in Norwegian, for `hub rules list --lang nb` (the English is the
    # docstring's first paragraph, see `title`); set on the classes in FAILURE_CODES.
    title_nb: str = ""

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
    title_nb = "Meldingen er ikke en Avro-post i enkeltobjektkoding som huben kan lese"


class UnknownSchemaError(DecodeError):
    """The message names a writer schema (fingerprint) that the hub does not know."""

    code = "NIR-SCHEMA-UNKNOWN"
    title_nb = "Meldingen viser til et skjema (fingeravtrykk) som huben ikke kjenner"


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
    title_nb = "En annen transaksjon skrev samme nøkkel, også etter flere nye forsøk"


class RegisterRefused(HubError):
    """The register refused a value (too long for its column, a NUL byte, out of range, a broken
    constraint): a property of the data, so the same write would fail again. Never retried."""

    code = "NIR-REGISTER-REFUSED"
    title_nb = "Registeret avviste en verdi (for lang, NUL-tegn, utenfor gyldig område); prøves ikke på nytt"


class BrokerUnavailable(HubError):
    """A send to Kafka was not confirmed."""

    code = "NIR-BROKER-UNAVAILABLE"
    retriable = True


class MessageTooLarge(HubError):
    """The broker refused a message as larger than it takes: that message can never be sent as it
    is, so this is no outage and is never retried."""

    code = "NIR-MESSAGE-TOO-LARGE"
    title_nb = "Megleren avviste en melding som for stor; den prøves ikke på nytt"


class SetAside(HubError):
    """The worker stopped again and again while processing this message; it was set aside unread."""

    code = "NIR-POISON"
    title_nb = "Huben stoppet gang på gang på denne meldingen; den er lagt til side ulest"


class Quarantined(HubError):
    """A dead letter could not be made into a ticket; it is kept as it came, with why."""

    code = "NIR-QUARANTINE"
    title_nb = "En død melding kunne ikke bli en sak; den er tatt vare på slik den kom, med årsak"


class InvalidAddressChange(HubError):
    """An address change's fields do not have their shape (municipality number, text, length)."""

    code = "NIR-ADDR-001"
    title_nb = "Feltene i en adresseendring har ikke riktig form (kommunenummer, tekst, lengde)"


class RegisterNotMigrated(ConfigurationError):
    """The register's schema is not at the newest migration; run `hub db upgrade`."""

    code = "NIR-REGISTER-NOT-MIGRATED"


class RegisterMissing(RegisterNotMigrated):
    """There is no register at NIR_DATABASE_URL; only `hub db upgrade` makes a new one."""

    code = "NIR-REGISTER-MISSING"


class RecoveryRefused(ConfigurationError):
    """`hub restore` or `hub recover` would do harm: a register with data, a backup of an unknown
    revision, or a worker of the consumer group still alive."""

    code = "NIR-RECOVERY-REFUSED"


class InternalError(HubError):
    """An unexpected error in the hub; the event is kept on its ticket for a replay."""

    title_nb = "En uventet feil i huben; hendelsen er tatt vare på i saken for ny sending"


# The codes that can end an event besides the rules' (`hub rules list` prints both).
FAILURE_CODES: tuple[type[HubError], ...] = (
    DecodeError,
    UnknownSchemaError,
    InvalidAddressChange,
    RegisterRefused,
    WriteConflict,
    SetAside,
    Quarantined,
    InternalError,
)


def title(error: type[HubError]) -> str:
    """The first paragraph of an error class's docstring, on one line: what its code means."""
    return " ".join((error.__doc__ or error.code).strip().split("\n\n")[0].split())


def safe_traceback(exc: BaseException) -> str:
    """Where an unexpected error happened, without its message.

    An arbitrary exception's message can carry data (a key, a row, an identifier), so logs get
    the exception's type and the frames it passed through, never `str(exc)`.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__} at {where or 'unknown location'}"
