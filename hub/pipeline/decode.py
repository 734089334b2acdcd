"""Decode stage: message bytes → a domain event, or a `DecodeError`."""

from __future__ import annotations

from typing import Any

from hub.domain.events import AddressChange, Registration
from hub.errors import DecodeError
from hub.schemas.codec import ADDRESS_CHANGE, REGISTRATION, SchemaCatalog
from hub.schemas.contract import to_json


def _decode(catalog: SchemaCatalog, data: bytes | None, family: str) -> tuple[dict[str, Any], str]:
    decoded = catalog.decode(data)
    if decoded.family != family:
        raise DecodeError(f"expected a {family} message, got {decoded.family}")
    return decoded.datum, f"{decoded.family}.v{decoded.writer_version}"


def decode_registration(catalog: SchemaCatalog, data: bytes | None) -> Registration:
    datum, writer = _decode(catalog, data, REGISTRATION)
    record_name, payload = datum["payload"]
    return Registration(
        event_id=datum["eventId"],
        event_type=datum["eventType"],
        payload_record=record_name,
        fact_date=datum["factDate"],
        sent_at=datum["sentAt"],
        source_system=datum["sourceSystem"],
        municipality=datum["municipality"],
        national_id=datum["person"]["nationalId"],
        duf_number=datum["person"]["dufNumber"],
        payload=to_json(payload),
        writer_schema=writer,
        fagsystem_version=datum.get("fagsystemVersion"),
        action=datum["action"],
        corrects_event_id=datum["correctsEventId"],
    )


def decode_address_change(catalog: SchemaCatalog, data: bytes | None) -> AddressChange:
    datum, _ = _decode(catalog, data, ADDRESS_CHANGE)
    return AddressChange(
        sequence_number=datum["sequenceNumber"],
        event_type=datum["eventType"],
        national_id=datum["nationalId"],
        recorded_at=datum["recordedAt"],
        moved_on=datum["movedOn"],
        municipality=datum["municipality"],
        protection=datum["protection"],
        address_kind=datum["addressKind"],
        address_line=datum["addressLine"],
        postal_code=datum["postalCode"],
        postal_place=datum["postalPlace"],
        former_national_ids=tuple(datum["formerNationalIds"]),
        event_date=datum["eventDate"],
    )
