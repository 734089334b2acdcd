"""Avro single-object encoding with schema resolution.

Every message is `C3 01` + the writer schema's CRC-64-AVRO fingerprint (8 bytes, little endian)
+ the Avro binary body (see the Avro specification, "Single object encoding"). The fingerprint
names the writer schema, so no schema registry is needed: the hub knows every version it ever
published (`<family>.v<N>.avsc` in this directory) and reads any of them into the newest version
of the same family by Avro schema resolution (fastavro does the resolution).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from hub.errors import DecodeError, EncodeError, UnknownSchemaError

SCHEMA_DIR = Path(__file__).resolve().parent
MARKER = b"\xc3\x01"
HEADER_LENGTH = len(MARKER) + 8
_FILE_NAME = re.compile(r"^(?P<family>[a-z_]+)\.v(?P<version>\d+)\.avsc$")

REGISTRATION = "registration_event"
ADDRESS_CHANGE = "address_change"
RECEIPT = "receipt"


@dataclass(frozen=True)
class SchemaVersion:
    """One published version of one schema family."""

    family: str
    version: int
    path: Path
    raw: dict[str, Any] = field(repr=False)
    parsed: Any = field(repr=False)
    fingerprint: bytes  # CRC-64-AVRO of the parsing canonical form, little endian

    @property
    def name(self) -> str:
        return f"{self.family}.v{self.version}"

    @property
    def header(self) -> bytes:
        return MARKER + self.fingerprint


@dataclass(frozen=True)
class Decoded:
    """A decoded message: the datum in the reader (newest) schema, and who wrote it."""

    family: str
    writer_version: int
    datum: dict[str, Any]


def _load_version(path: Path) -> SchemaVersion:
    match = _FILE_NAME.match(path.name)
    assert match, path
    raw = json.loads(path.read_text(encoding="utf-8"))
    # Each version gets its own named-type table: versions share type names.
    parsed = parse_schema(raw, named_schemas={})
    canonical = to_parsing_canonical_form(parsed)
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))  # fastavro gives it little endian
    return SchemaVersion(
        family=match["family"],
        version=int(match["version"]),
        path=path,
        raw=raw,
        parsed=parsed,
        fingerprint=fp,
    )


class SchemaCatalog:
    """Every known schema version, by family and by fingerprint."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        versions = [_load_version(p) for p in sorted(directory.glob("*.avsc"))]
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        self._families: dict[str, list[SchemaVersion]] = {}
        for v in sorted(versions, key=lambda v: (v.family, v.version)):
            self._families.setdefault(v.family, []).append(v)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for family in sorted(self._families):
            yield from self._families[family]

    def current(self, family: str) -> SchemaVersion:
        return self._families[family][-1]

    def version(self, family: str, version: int) -> SchemaVersion:
        for v in self._families[family]:
            if v.version == version:
                return v
        raise KeyError(f"{family}.v{version}")

    def encode(
        self, family: str, datum: dict[str, Any], version: int | None = None, *, validated: bool = True
    ) -> bytes:
        """Single-object-encode `datum` with the given (default: newest) version.

        `validated=False` skips fastavro's field-by-field validation, which costs more than the
        encoding itself; for data the hub builds itself (receipts). A datum that does not fit
        still fails, with an `EncodeError` that names no value.
        """
        writer = self.current(family) if version is None else self.version(family, version)
        if validated:
            try:
                validate(datum, writer.parsed, raise_errors=True)
            except ValidationError as exc:
                # Name the fields only: the values may be personal data.
                where = ", ".join(sorted({str(e.field) for e in exc.errors}))
                raise EncodeError(f"does not fit {writer.name} at {where}") from exc
        buffer = io.BytesIO()
        buffer.write(writer.header)
        try:
            fastavro.schemaless_writer(buffer, writer.parsed, datum)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EncodeError(f"does not fit {writer.name} ({type(exc).__name__})") from None
        return buffer.getvalue()

    def decode(self, data: bytes | None) -> Decoded:
        """Decode a single-object-encoded message into its family's newest schema."""
        if not data or len(data) < HEADER_LENGTH or data[:2] != MARKER:
            raise DecodeError("not Avro single-object encoding (missing C3 01 marker)")
        writer = self._by_fingerprint.get(data[2:HEADER_LENGTH])
        if writer is None:
            raise UnknownSchemaError(f"unknown writer schema fingerprint {data[2:HEADER_LENGTH].hex()}")
        reader = self.current(writer.family)
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_LENGTH)
        try:
            datum = fastavro.schemaless_reader(
                buffer,
                writer.parsed,
                reader.parsed if reader is not writer else None,
                return_record_name=True,
                return_record_name_override=True,
            )
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise DecodeError(f"body does not decode as {writer.name}: {type(exc).__name__}") from exc
        if buffer.tell() != len(data):
            raise DecodeError(f"{len(data) - buffer.tell()} trailing bytes after the {writer.name} body")
        if not isinstance(datum, dict):
            raise DecodeError(f"{writer.name} is not a record schema")
        return Decoded(family=writer.family, writer_version=writer.version, datum=datum)


@cache
def catalog() -> SchemaCatalog:
    """The catalog of the schemas shipped with the hub."""
    return SchemaCatalog()
