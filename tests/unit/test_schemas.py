"""The Avro contract, single-object encoding and schema resolution."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many

from hub.domain.events import event_type_of
from hub.errors import DecodeError, EncodeError, UnknownSchemaError
from hub.schemas.codec import ADDRESS_CHANGE, HEADER_LENGTH, MARKER, REGISTRATION, SchemaCatalog, catalog
from hub.schemas.contract import ContractError, from_json, payload_records, to_json
from tests.factories import PAYLOADS, event, synthetic_person


def _walk(schema: Any, seen: set[str]) -> Any:
    """Every named type, record field and enum in a raw schema."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk(branch, seen)
    elif isinstance(schema, dict):
        if schema.get("name") in seen:
            return
        if schema.get("type") in {"record", "enum"}:
            seen.add(schema["name"])
            yield schema
        for f in schema.get("fields", []):
            yield f
            yield from _walk(f["type"], seen)
        if "items" in schema:
            yield from _walk(schema["items"], seen)


@pytest.mark.parametrize("version", list(catalog()), ids=lambda v: v.name)
def test_every_record_field_and_enum_of_the_contract_is_documented(version: Any) -> None:
    undocumented = [item.get("name") for item in _walk(version.raw, set()) if not item.get("doc")]
    assert undocumented == []


@pytest.mark.parametrize("version", list(catalog()), ids=lambda v: v.name)
def test_every_enum_has_a_default_so_new_symbols_do_not_break_old_readers(version: Any) -> None:
    enums = [item for item in _walk(version.raw, set()) if item.get("type") == "enum"]
    assert enums
    for enum in enums:
        assert enum.get("default") in enum["symbols"], enum["name"]


def test_every_event_type_has_its_own_payload_record_and_the_tests_cover_each() -> None:
    version = catalog().current(REGISTRATION)
    records = payload_records(version)
    event_type_enum = next(f for f in version.raw["fields"] if f["name"] == "eventType")["type"]
    assert set(records) == set(event_type_enum["symbols"]) - {"UNKNOWN"}
    assert set(PAYLOADS) == set(records)
    assert event_type_of("no.imdi.nir.TrainingFinalTest") == "TRAINING_FINAL_TEST"


def test_a_message_starts_with_the_marker_and_the_writer_fingerprint() -> None:
    datum = from_json(event(synthetic_person()))
    data = catalog().encode(REGISTRATION, datum)
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:HEADER_LENGTH] == catalog().current(REGISTRATION).fingerprint
    decoded = catalog().decode(data)
    assert decoded.writer_version == catalog().current(REGISTRATION).version
    assert decoded.datum["eventId"] == uuid.UUID(datum["eventId"])


def test_the_fingerprint_is_the_crc_64_avro_of_the_canonical_form() -> None:
    # The Avro specification's reference: fingerprint64 of the canonical form, little endian.
    def crc64_avro(data: bytes) -> int:
        empty = 0xC15D213AA4D7A795
        table = []
        for i in range(256):
            fp = i
            for _ in range(8):
                fp = (fp >> 1) ^ (empty & -(fp & 1))
            table.append(fp)
        fp = empty
        for byte in data:
            fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
        return fp

    version = catalog().current(ADDRESS_CHANGE)
    canonical = fastavro.schema.to_parsing_canonical_form(version.parsed).encode()
    assert version.fingerprint == crc64_avro(canonical).to_bytes(8, "little")


@pytest.mark.parametrize("writer_version", [1, 2, 3, 4])
def test_every_older_writer_version_is_read_into_the_current_schema(writer_version: int) -> None:
    c = catalog()
    older, current = c.version(REGISTRATION, writer_version), c.current(REGISTRATION)
    assert current.version > writer_version
    for datum in generate_many(older.parsed, 100):
        decoded = c.decode(older.header + _schemaless(older.parsed, datum))
        assert decoded.writer_version == writer_version
        if writer_version < 3:
            assert decoded.datum["action"] == "REGISTER"  # v3's fields, at their defaults
            assert decoded.datum["correctsEventId"] is None
        record, payload = decoded.datum["payload"]
        if record == "no.imdi.nir.AsylumSeekerFinalTest" and writer_version < 4:
            assert payload["socialStudiesTest"] is None  # the field v4 added
        if record == "no.imdi.nir.ResidencePermitRegistered":
            assert payload["grantedOnAppeal"] is False  # the field v5 added
        if writer_version == 1:
            assert decoded.datum["fagsystemVersion"] is None  # the field v2 added
        assert decoded.datum["eventId"] == uuid.UUID(str(datum["eventId"]))


def test_an_asylum_seekers_final_test_carries_the_social_studies_result_from_v4() -> None:
    """Issue 15, fault 4: the law asks for the partial tests in Norwegian and the social-studies
    test of asylum seekers' training; until v3 the record could hold only the former."""
    c = catalog()
    result = {"passed": True, "correctAnswers": 31, "language": "tir"}
    e = event(
        synthetic_person(),
        "ASYLUM_SEEKER_FINAL_TEST",
        payload={"partialResults": [{"skill": "ORAL", "result": "A2"}], "socialStudiesTest": result},
    )
    v4 = c.version(REGISTRATION, 4)
    decoded = c.decode(c.encode(REGISTRATION, from_json(e, v4), 4))
    assert decoded.writer_version == 4
    assert to_json(decoded.datum)["payload"]["socialStudiesTest"] == result
    v3 = c.version(REGISTRATION, 3)
    with pytest.raises(ContractError, match=r"payload\.socialStudiesTest: is not a field of the contract"):
        from_json(e, v3)
    older = {**e, "payload": {"partialResults": e["payload"]["partialResults"]}}
    read = c.decode(c.encode(REGISTRATION, from_json(older, v3), 3))
    assert read.writer_version == 3
    assert read.datum["payload"][1] == {**older["payload"], "socialStudiesTest": None}


def test_a_residence_permit_says_from_v5_whether_it_was_granted_on_appeal() -> None:
    """Issue 28: a renewal refused and then granted on appeal continues the stay, which dates
    alone cannot tell from a new stay; v5's permit says so, and older writers' permits read false."""
    c = catalog()
    payload = {"ground": "ASYLUM", "validUntil": "2026-02-01", "permanent": False, "grantedOnAppeal": True}
    e = event(synthetic_person(), "RESIDENCE_PERMIT_REGISTERED", payload=payload)
    decoded = c.decode(c.encode(REGISTRATION, from_json(e)))
    assert decoded.writer_version == c.current(REGISTRATION).version == 5
    assert to_json(decoded.datum)["payload"]["grantedOnAppeal"] is True
    v4 = c.version(REGISTRATION, 4)
    with pytest.raises(ContractError, match=r"payload\.grantedOnAppeal: is not a field of the contract"):
        from_json(e, v4)
    older = {**e, "payload": {k: v for k, v in payload.items() if k != "grantedOnAppeal"}}
    read = c.decode(c.encode(REGISTRATION, from_json(older, v4), 4))
    assert (read.writer_version, read.datum["payload"][1]["grantedOnAppeal"]) == (4, False)


def test_an_address_change_written_as_v1_is_read_into_v2_without_person_event_fields() -> None:
    c = catalog()
    v1, current = c.version(ADDRESS_CHANGE, 1), c.current(ADDRESS_CHANGE)
    assert current.version == 2 and "IDENTITY_CHANGED" in current.raw["fields"][1]["type"]["symbols"]
    for datum in generate_many(v1.parsed, 50):
        decoded = c.decode(v1.header + _schemaless(v1.parsed, datum))
        assert (decoded.writer_version, decoded.datum["eventType"]) == (1, datum["eventType"])
        assert (decoded.datum["formerNationalIds"], decoded.datum["eventDate"]) == ([], None)


def test_a_symbol_the_reader_does_not_know_resolves_to_the_enum_default() -> None:
    c = catalog()
    v1, v2 = c.version(REGISTRATION, 1), c.version(REGISTRATION, 2)
    datum = from_json(event(synthetic_person(), "TRAINING_STARTED", payload={"goalLevel": "C1"}))
    data = _schemaless(v2.parsed, datum)
    read = fastavro.schemaless_reader(io.BytesIO(data), v2.parsed, v1.parsed, return_record_name=True)
    assert read["payload"][1]["goalLevel"] == "UNKNOWN"


def _schemaless(schema: Any, datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (None, DecodeError, "marker"),
        (b"", DecodeError, "marker"),
        (b'{"json": true}', DecodeError, "marker"),
        (b"\xc3\x01\x00\x01", DecodeError, "marker"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", UnknownSchemaError, "unknown writer schema"),
    ],
)
def test_bytes_that_are_not_a_known_single_object_are_refused(
    data: bytes | None, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        catalog().decode(data)


def test_a_truncated_or_padded_body_is_refused() -> None:
    data = catalog().encode(REGISTRATION, from_json(event(synthetic_person())))
    with pytest.raises(DecodeError, match="does not decode"):
        catalog().decode(data[:-5])
    with pytest.raises(DecodeError, match="trailing"):
        catalog().decode(data + b"\x00")


def test_encoding_a_datum_that_does_not_fit_names_the_schema() -> None:
    with pytest.raises(EncodeError, match=rf"{catalog().current(REGISTRATION).name}\b.*eventType"):
        catalog().encode(REGISTRATION, {"eventId": "x"})


def test_a_json_event_with_problems_is_refused_with_every_problem_by_path() -> None:
    bad = event(synthetic_person(), "TRAINING_LEAVE")
    bad["factDate"] = "2026-13-01"
    bad["colour"] = "blue"
    bad["payload"] = {"leave": {"reason": "HOLIDAY", "durationDays": "3"}}
    with pytest.raises(ContractError) as caught:
        from_json(bad)
    assert caught.value.problems == [
        "colour: is not a field of the contract",
        "factDate: must be a date written YYYY-MM-DD",
        "payload.leave.reason: must be one of PREGNANCY, BIRTH, CARE_AFTER_BIRTH_OR_ADOPTION, "
        "LONG_ILLNESS, WELFARE, OTHER, UNKNOWN",
        "payload.leave.durationDays: must be of type int",
    ]


def test_an_unknown_event_type_and_a_missing_zone_are_named() -> None:
    bad = event(synthetic_person())
    bad["eventType"] = "TRAINING_PARTY"
    bad["sentAt"] = "2026-01-01T10:00:00"
    with pytest.raises(ContractError) as caught:
        from_json(bad)
    assert caught.value.problems[0] == "sentAt: must include a time zone (for example Z or +01:00)"
    assert caught.value.problems[1].startswith(
        "eventType: must be one of INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM"
    )
    assert "UNKNOWN" not in caught.value.problems[1]


def test_the_json_shape_round_trips_through_avro() -> None:
    original = event(synthetic_person(), "INTRODUCTION_PROGRAMME_DECISION")
    original["fagsystemVersion"] = "7.1"
    original["sentAt"] = "2026-11-20T10:00:00.123+01:00"  # timestamps keep milliseconds
    decoded = catalog().decode(catalog().encode(REGISTRATION, from_json(original))).datum
    back = to_json(decoded)
    assert back["sentAt"] == "2026-11-20T09:00:00.123000Z"
    defaults = {"action": "REGISTER", "correctsEventId": None}  # fields the original left out
    assert {k: v for k, v in back.items() if k != "sentAt"} == {
        **defaults,
        **{k: v for k, v in original.items() if k != "sentAt"},
    }


def test_a_catalog_refuses_nothing_it_wrote_itself(tmp_path: Any) -> None:
    # A vendor's exported copy of the schemas is enough to decode every message.
    for version in catalog():
        (tmp_path / version.path.name).write_text(json.dumps(version.raw))
    exported = SchemaCatalog(tmp_path)
    data = catalog().encode(REGISTRATION, from_json(event(synthetic_person())))
    assert exported.decode(data).writer_version == catalog().current(REGISTRATION).version


def test_the_date_fields_the_rules_know_are_those_the_contract_declares_as_dates() -> None:
    from hub.domain.events import DATE_FIELDS as KNOWN_TO_THE_RULES
    from hub.schemas.contract import DATE_FIELDS

    assert KNOWN_TO_THE_RULES == DATE_FIELDS
