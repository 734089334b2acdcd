"""Which registration a held correction or annulment refers to, so that the snapshot of a batch
reads that registration too (a correction held for its original, or one that names another
person's registration, is decided again the moment its person gains a fact).

Rows held before this revision are read once to fill it in; one whose bytes no longer decode is
left empty and waits, as before, until the hold limit. They are read as the hub read them at this
revision (`_corrects_event_id`, frozen here: a migration never imports live code), with the
registration schemas published (a published schema never changes).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("held_events") as batch:
        batch.add_column(sa.Column("corrects_event_id", sa.String(36), nullable=True))
    held = sa.table(
        "held_events",
        sa.column("id", sa.Integer()),
        sa.column("message_value"),
        sa.column("corrects_event_id"),
    )
    connection = op.get_bind()
    schemas = _registration_schemas()
    for row_id, value in connection.execute(sa.select(held.c.id, held.c.message_value)).all():
        try:
            original = _corrects_event_id(schemas, value)
        except Exception:  # unreadable bytes: left as they were
            continue
        if original is not None:
            connection.execute(
                held.update().where(held.c.id == row_id).values(corrects_event_id=str(original))
            )


def downgrade() -> None:
    with op.batch_alter_table("held_events") as batch:
        batch.drop_column("corrects_event_id")


_MARKER = b"\xc3\x01"  # Avro single-object encoding: the marker, the writer's fingerprint, the body
_HEADER_LENGTH = len(_MARKER) + 8


def _registration_schemas() -> dict[bytes, Any]:
    """Each published registration schema, parsed, by its CRC-64-AVRO fingerprint (little endian)."""
    directory = Path(__file__).resolve().parents[3] / "schemas"
    schemas = {}
    for path in sorted(directory.glob("registration_event.v*.avsc")):
        parsed = fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")), named_schemas={})
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
        schemas[bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))] = parsed
    return schemas


def _corrects_event_id(schemas: dict[bytes, Any], value: bytes | None) -> str | None:
    """The event a held registration corrects or annuls; raises on bytes that do not decode."""
    if not value or len(value) < _HEADER_LENGTH or value[:2] != _MARKER:
        raise ValueError("not a registration")
    writer = schemas[value[2:_HEADER_LENGTH]]
    body = io.BytesIO(value[_HEADER_LENGTH:])
    datum = fastavro.schemaless_reader(body, writer)
    if not isinstance(datum, dict) or body.tell() != len(value) - _HEADER_LENGTH:
        raise ValueError("not a registration")
    original = datum.get("correctsEventId")
    return str(original) if original is not None else None
