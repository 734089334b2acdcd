"""The contract in the shape vendors write: plain JSON objects, converted to and from Avro data.

The JSON shape of an event is the schema's field names with natural values: dates as
`YYYY-MM-DD`, timestamps as ISO 8601 with a zone, UUIDs as strings, optional fields as the value
or null, and `payload` as a plain object whose record type is given by `eventType` (so the
vendor never writes Avro's tagged-union form). `from_json` checks the object against the schema
and names every problem by its path.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from hub.domain.calendar import iso_utc
from hub.domain.events import event_type_of
from hub.errors import EncodeError
from hub.schemas.codec import REGISTRATION, SchemaVersion, catalog

NAMESPACE = "no.imdi.nir"


class ContractError(EncodeError):
    """A JSON event does not match the contract; `problems` names each one by path."""

    code = "NIR-CONTRACT"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def payload_records(version: SchemaVersion | None = None) -> dict[str, str]:
    """Event type symbol -> full name of its payload record, for a registration schema version."""
    version = version or catalog().current(REGISTRATION)
    payload = next(f for f in version.raw["fields"] if f["name"] == "payload")
    names = [branch["name"] if isinstance(branch, dict) else branch for branch in payload["type"]]
    return {event_type_of(n): f"{NAMESPACE}.{n.rsplit('.', 1)[-1]}" for n in names}


def _date_fields(schema: Any, found: set[str]) -> set[str]:
    """The names of every field of `schema` (a raw schema, walked inline) whose type is a date."""
    if isinstance(schema, list):
        for branch in schema:
            _date_fields(branch, found)
    elif isinstance(schema, dict):
        for f in schema.get("fields", []):
            kinds = f["type"] if isinstance(f["type"], list) else [f["type"]]
            if any(isinstance(k, dict) and k.get("logicalType") == "date" for k in kinds):
                found.add(f["name"])
            _date_fields(f["type"], found)
        if "items" in schema:
            _date_fields(schema["items"], found)
    return found


# The payload fields that hold a date (written YYYY-MM-DD in the JSON shape), from the contract
# (the rules read `hub.domain.events.DATE_FIELDS`, which a test holds equal to this).
DATE_FIELDS = frozenset(_date_fields(catalog().current(REGISTRATION).raw, set()))


def _named_types(schema: Any, table: dict[str, Any]) -> None:
    """Collect every named type defined inline in `schema`, by full and short name."""
    if isinstance(schema, list):
        for branch in schema:
            _named_types(branch, table)
    elif isinstance(schema, dict):
        if schema.get("type") in {"record", "enum", "fixed"}:
            name = schema["name"]
            full = name if "." in name else f"{schema.get('namespace', NAMESPACE)}.{name}"
            table[full] = schema
            table[full.rsplit(".", 1)[-1]] = schema
        for f in schema.get("fields", []):
            _named_types(f["type"], table)
        if "items" in schema:
            _named_types(schema["items"], table)


class _Converter:
    """Walks a raw schema and a JSON value together, collecting problems instead of failing fast."""

    def __init__(self, version: SchemaVersion) -> None:
        self.types: dict[str, Any] = {}
        _named_types(version.raw, self.types)
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '<event>'}: {message}")

    def convert(self, schema: Any, value: Any, path: str) -> Any:
        if isinstance(schema, str) and schema in self.types:
            schema = self.types[schema]
        if isinstance(schema, list):
            return self._union(schema, value, path)
        if isinstance(schema, dict):
            kind = schema["type"]
            logical = schema.get("logicalType")
            if logical == "date":
                return self._date(value, path)
            if logical == "timestamp-millis":
                return self._timestamp(value, path)
            if logical == "uuid":
                return self._uuid(value, path)
            if kind == "record":
                return self._record(schema, value, path)
            if kind == "enum":
                if value not in schema["symbols"]:
                    self.fail(path, f"must be one of {', '.join(schema['symbols'])}")
                return value
            if kind == "array":
                if not isinstance(value, list):
                    self.fail(path, "must be a list")
                    return []
                return [self.convert(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(value)]
            return self.convert(kind, value, path)
        return self._primitive(schema, value, path)

    def _union(self, branches: list[Any], value: Any, path: str) -> Any:
        if value is None:
            if "null" not in branches:
                self.fail(path, "is required")
            return None
        others = [b for b in branches if b != "null"]
        if len(others) != 1:  # only `payload` has several branches; it is converted by eventType
            self.fail(path, "ambiguous union")
            return value
        return self.convert(others[0], value, path)

    def _record(self, schema: dict[str, Any], value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, "must be an object")
            return {}
        known = {f["name"] for f in schema["fields"]}
        for extra in sorted(set(value) - known):
            self.fail(f"{path}.{extra}".lstrip("."), "is not a field of the contract")
        result: dict[str, Any] = {}
        for f in schema["fields"]:
            field_path = f"{path}.{f['name']}".lstrip(".")
            if f["name"] in value:
                result[f["name"]] = self.convert(f["type"], value[f["name"]], field_path)
            elif "default" in f:
                result[f["name"]] = f["default"]
            else:
                self.fail(field_path, "is required")
        return result

    def _primitive(self, kind: str, value: Any, path: str) -> Any:
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
            "long": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "double": isinstance(value, int | float) and not isinstance(value, bool),
            "null": value is None,
        }.get(kind)
        if ok is None:
            self.fail(path, f"has unsupported type {kind}")
        elif not ok:
            self.fail(path, f"must be of type {kind}")
        elif kind in {"float", "double"}:
            return float(value)
        return value

    def _date(self, value: Any, path: str) -> dt.date | None:
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            self.fail(path, "must be a date written YYYY-MM-DD")
            return None

    def _timestamp(self, value: Any, path: str) -> dt.datetime | None:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            self.fail(path, "must be an ISO 8601 timestamp with a time zone")
            return None
        if parsed.tzinfo is None:
            self.fail(path, "must include a time zone (for example Z or +01:00)")
        return parsed

    def _uuid(self, value: Any, path: str) -> str | None:
        try:
            return str(uuid.UUID(value))
        except (TypeError, ValueError, AttributeError):
            self.fail(path, "must be a UUID")
            return None


def from_json(event: Any, version: SchemaVersion | None = None) -> dict[str, Any]:
    """Convert a JSON event into an Avro datum of `version` (default: the newest registration
    schema). Raises `ContractError` listing every problem found."""
    version = version or catalog().current(REGISTRATION)
    converter = _Converter(version)
    if not isinstance(event, Mapping):
        raise ContractError(["<event>: must be a JSON object"])
    if version.family == REGISTRATION:
        datum = _registration_from_json(converter, event, version)
    else:
        datum = converter.convert(version.raw, event, "")
    if converter.problems:
        raise ContractError(converter.problems)
    return datum


def _registration_from_json(
    converter: _Converter, event: Mapping[str, Any], version: SchemaVersion
) -> dict[str, Any]:
    records = payload_records(version)
    event_type = event.get("eventType")
    payload_record = records.get(event_type) if isinstance(event_type, str) else None
    envelope_schema = dict(version.raw)
    envelope_schema["fields"] = [f for f in version.raw["fields"] if f["name"] != "payload"]
    envelope = {k: v for k, v in event.items() if k != "payload"}
    datum: dict[str, Any] = converter.convert(envelope_schema, envelope, "")
    if payload_record is None:
        # Replaces the enum's own message: UNKNOWN is for readers, not something to send.
        converter.problems = [p for p in converter.problems if not p.startswith("eventType:")]
        converter.fail("eventType", f"must be one of {', '.join(records)}")
    elif "payload" not in event:
        converter.fail("payload", "is required")
    else:
        payload = converter.convert(payload_record, event["payload"], "payload")
        datum["payload"] = (payload_record, payload)
    return datum


def to_json(value: Any) -> Any:
    """An Avro datum (as decoded) in the contract's JSON shape: the inverse of `from_json`."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return to_json(value[1])  # a union branch tagged with its record name
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
