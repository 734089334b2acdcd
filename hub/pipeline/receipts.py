"""Receipts: the outcome of each event, as the sending fagsystem reads it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from hub.domain.events import Origin
from hub.domain.transfer import ReceiptOutcome
from hub.rules import Violation
from hub.schemas.codec import RECEIPT, SchemaCatalog


def encode_receipt(
    catalog: SchemaCatalog,
    *,
    event_id: uuid.UUID | None,
    outcome: ReceiptOutcome,
    violations: list[Violation],
    origin: Origin,
    now: dt.datetime,
    registered_at: dt.datetime | None = None,
) -> bytes:
    datum: dict[str, Any] = {
        "eventId": str(event_id) if event_id else None,
        "outcome": outcome.value,
        "violations": [
            {"code": v.code, "severity": v.severity.value, "message": v.message, "messageNb": v.message_nb}
            for v in violations
        ],
        "registeredAt": registered_at,
        "processedAt": now,
        "originalTopic": origin.topic,
        "originalPartition": origin.partition,
        "originalOffset": origin.offset,
    }
    return catalog.encode(RECEIPT, datum, validated=False)  # built here, from checked values
