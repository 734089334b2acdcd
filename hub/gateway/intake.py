"""What a POST to /v1/events carries, read and checked before anything is sent.

The body is one event or a batch, in the contract's JSON shape (`application/json`: an event
object, or `{"events": [...]}`), or one event as Avro single-object bytes (`application/avro`).
Every event is checked on its own, as `FagsystemProducer` checks it: against the contract, and
that its `sourceSystem` is the caller's source. A batch with a bad event refuses only that event.
The rules that read the values' meaning are the worker's; their outcome comes as a receipt.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from hub.connectors.fagsystem import OtherSource, checked_datum, person_key
from hub.errors import DecodeError, EncodeError
from hub.gateway.problems import Problem, field_errors
from hub.schemas.codec import REGISTRATION, SchemaCatalog
from hub.schemas.contract import ContractError

JSON = "application/json"
AVRO = "application/avro"


@dataclass(frozen=True)
class Checked:
    """An event fit to send: its id, message key and single-object-encoded value."""

    index: int
    event_id: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Refused:
    index: int
    event_id: str | None
    problem: Problem


def read_events(body: bytes, content_type: str, max_events: int) -> list[Any] | bytes:
    """The JSON events of a body (a list even for one), or the Avro bytes of one; a 4xx `Problem`
    if the body is none of these."""
    if content_type == AVRO:
        return body
    if content_type != JSON:
        raise Problem(
            415,
            "unsupported-media-type",
            "The body must be application/json or application/avro",
            f'send Content-Type: {JSON} (one event, or {{"events": [...]}}) or {AVRO} (one event)',
        )
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "invalid-json", "The body is not JSON (UTF-8)") from None
    except RecursionError:
        raise Problem(400, "invalid-json", "The body is nested too deeply") from None
    if not isinstance(document, dict):
        raise Problem(400, "invalid-body", 'The body must be an event object or {"events": [...]}')
    if "events" not in document:
        return [document]
    events = document["events"]
    if not isinstance(events, list) or len(document) != 1:
        raise Problem(400, "invalid-body", 'A batch is {"events": [...]}: a list of events and nothing else')
    if not events:
        raise Problem(400, "invalid-body", "The batch has no events")
    if len(events) > max_events:
        raise Problem(
            413,
            "batch-too-large",
            "The batch has too many events",
            f"send at most {max_events} events per request",
        )
    return events


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_json(index: int, event: Any, source_id: str, catalog: SchemaCatalog) -> Checked | Refused:
    try:
        datum = checked_datum(event, source_id)
    except OtherSource as exc:
        return Refused(index, _claimed_id(event), _other_source(exc))
    except ContractError as exc:
        return Refused(index, _claimed_id(event), _invalid(exc.problems))
    try:
        value = catalog.encode(REGISTRATION, datum)
    except EncodeError as exc:  # what from_json let through and Avro still refuses (a too large number)
        return Refused(index, _claimed_id(event), _invalid([f"<event>: {exc.message}"]))
    return Checked(index, str(datum["eventId"]), person_key(datum), value)


def check_avro(value: bytes, source_id: str, catalog: SchemaCatalog) -> Checked | Refused:
    """One Avro single-object-encoded event, sent on as it came (its writer's version)."""
    try:
        decoded = catalog.decode(value)
    except DecodeError as exc:
        return Refused(0, None, _invalid([f"<event>: {exc.message}"]))
    if decoded.family != REGISTRATION:
        return Refused(0, None, _invalid([f"<event>: is a {decoded.family}, not a registration event"]))
    datum = decoded.datum
    event_id = str(datum["eventId"])
    if datum["sourceSystem"] != source_id:
        return Refused(0, event_id, _other_source(OtherSource([f"sourceSystem: is not {source_id}"])))
    return Checked(0, event_id, person_key(datum), value)


def _invalid(problems: list[str]) -> Problem:
    return Problem(
        400, "invalid-event", "The event does not match the contract", errors=field_errors(problems)
    )


def _other_source(exc: OtherSource) -> Problem:
    return Problem(
        403,
        "forbidden-source",
        "The event names another source than the caller's",
        errors=field_errors(exc.problems),
    )


def _claimed_id(event: Any) -> str | None:
    """The event id a refused event claims, if it is a UUID (so the caller can match it)."""
    claimed = event.get("eventId") if isinstance(event, dict) else None
    try:
        return str(uuid.UUID(claimed)) if isinstance(claimed, str) and len(claimed) <= 64 else None
    except ValueError:
        return None
