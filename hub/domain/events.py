"""The hub's own view of decoded events: plain dataclasses the rules and the register work on."""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from dataclasses import dataclass
from typing import Any

# The payload fields that hold a date (written YYYY-MM-DD in the JSON shape): the contract's, as its
# schemas say (`hub.schemas.contract.DATE_FIELDS` reads them there; a test holds the two equal).
DATE_FIELDS = frozenset(
    {
        "decidedOn",
        "endDate",
        "factDate",
        "periodEnd",
        "periodStart",
        "plannedEndDate",
        "renewalAppliedOn",
        "renewalRefusedOn",
        "startDate",
        "stoppedUntil",
        "validUntil",
    }
)


@functools.cache  # a rule asks for every event; the record names are the schemas' few
def event_type_of(record_name: str) -> str:
    """`no.imdi.nir.TrainingLeave` -> `TRAINING_LEAVE` (the contract's naming rule)."""
    short = record_name.rsplit(".", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", short).upper()


@dataclass(frozen=True)
class Origin:
    """Where a message was read from; identifies it even when it cannot be decoded."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Registration:
    """One registration event from a fagsystem, decoded into the current contract."""

    event_id: uuid.UUID
    event_type: str
    payload_record: str  # full Avro name of the payload's record, e.g. no.imdi.nir.TrainingLeave
    fact_date: dt.date
    sent_at: dt.datetime
    source_system: str
    municipality: str
    national_id: str | None
    duf_number: str | None
    payload: dict[str, Any]  # in the contract's JSON shape
    writer_schema: str  # e.g. registration_event.v1
    fagsystem_version: str | None = None
    action: str = "REGISTER"  # REGISTER, CORRECT or ANNUL (UNKNOWN from a newer writer)
    corrects_event_id: uuid.UUID | None = None

    @property
    def person_key(self) -> str | None:
        """The Kafka key that keeps one person's events on one partition: DUF number first,
        as it is the identifier a person keeps from the first application on."""
        return self.duf_number or self.national_id


@dataclass(frozen=True)
class AddressChange:
    """An address change or person event from Folkeregisteret, decoded into the current contract."""

    sequence_number: int
    event_type: str
    national_id: str
    recorded_at: dt.datetime
    moved_on: dt.date | None
    municipality: str | None
    protection: str
    address_kind: str
    address_line: str | None
    postal_code: str | None
    postal_place: str | None
    # Person events (IDENTITY_CHANGED, PERSON_DIED, PERSON_CEASED_AS_DUPLICATE), from v2 on.
    former_national_ids: tuple[str, ...] = ()
    event_date: dt.date | None = None

    @staticmethod
    def is_protected(protection: str) -> bool:
        """Protected addresses are never shown or logged; UNKNOWN grading counts as protected."""
        return protection not in {"UNGRADED", "CLIENT_ADDRESS"}
