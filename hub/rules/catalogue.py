"""The rules. Each is one function: it returns None when the event passes, else a message.

Codes are stable: fagsystems and support staff rely on them. Never reuse a retired code.
Messages never contain a person identifier in clear text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from hub.domain.calendar import norwegian_date
from hub.domain.events import Registration
from hub.domain.identifiers import InvalidIdentifier, check_duf_number, parse_national_id
from hub.domain.municipalities import municipality_on
from hub.rules.base import RuleContext, rule
from hub.schemas.contract import event_type_of

# How far a fagsystem's clock may run ahead of ours before sentAt counts as in the future.
CLOCK_SKEW = dt.timedelta(minutes=5)


@rule("NIR-SCHEMA-001", "The event type is one this hub knows")
def known_event_type(event: Registration, ctx: RuleContext) -> str | None:
    if event.event_type == "UNKNOWN":
        return "the event type is not known to this version of the hub"
    return None


@rule("NIR-SCHEMA-002", "The payload's record matches the event type")
def payload_matches_event_type(event: Registration, ctx: RuleContext) -> str | None:
    expected = event_type_of(event.payload_record)
    if event.event_type != "UNKNOWN" and expected != event.event_type:
        return f"eventType is {event.event_type} but the payload is a {expected} record"
    return None


@rule("NIR-ID-001", "The person has a fødselsnummer, D-number or DUF number")
def has_identifier(event: Registration, ctx: RuleContext) -> str | None:
    if not event.national_id and not event.duf_number:
        return "the person has neither a national identity number nor a DUF number"
    return None


@rule("NIR-ID-002", "The fødselsnummer or D-number is valid")
def valid_national_id(event: Registration, ctx: RuleContext) -> str | None:
    if not event.national_id:
        return None
    try:
        parse_national_id(
            event.national_id,
            rule=ctx.check_digit_rule,
            allow_synthetic=ctx.allow_synthetic_identifiers,
        )
    except InvalidIdentifier as exc:
        return f"the national identity number {exc}"
    return None


@rule("NIR-ID-003", "The DUF number has a valid shape")
def valid_duf_number(event: Registration, ctx: RuleContext) -> str | None:
    if not event.duf_number:
        return None
    try:
        check_duf_number(event.duf_number, today=ctx.today)
    except InvalidIdentifier as exc:
        return f"the DUF number {exc}"
    return None


@rule("NIR-SOURCE-001", "The event comes from the source that owns the topic")
def source_matches_topic(event: Registration, ctx: RuleContext) -> str | None:
    if ctx.registry.get(ctx.topic_source) is None:
        return f"source {ctx.topic_source!r} is not in the source registry"
    if event.source_system != ctx.topic_source:
        return (
            f"sourceSystem is {event.source_system!r} but the event was sent on the topic "
            f"of source {ctx.topic_source!r}"
        )
    return None


@rule("NIR-SOURCE-002", "The source may report for the municipality")
def source_may_report_for_municipality(event: Registration, ctx: RuleContext) -> str | None:
    source = ctx.registry.get(ctx.topic_source)
    if source is not None and event.municipality not in source.municipalities:
        return (
            f"source {source.id!r} may not report for municipality {event.municipality}; "
            f"it may report for {', '.join(sorted(source.municipalities))}"
        )
    return None


@rule("NIR-MUNI-001", "The municipality exists on the fact's date")
def municipality_exists(event: Registration, ctx: RuleContext) -> str | None:
    if municipality_on(event.municipality, event.fact_date) is None:
        return f"municipality {event.municipality} does not exist on {event.fact_date.isoformat()}"
    return None


@rule("NIR-DATE-001", "The fact's date is not in the future")
def fact_not_in_future(event: Registration, ctx: RuleContext) -> str | None:
    if event.fact_date > ctx.today:
        return f"factDate {event.fact_date.isoformat()} is in the future"
    return None


@rule("NIR-DATE-002", "The event was sent after the fact and not in the future")
def sent_after_fact(event: Registration, ctx: RuleContext) -> str | None:
    if event.sent_at > ctx.now + CLOCK_SKEW:
        return f"sentAt {event.sent_at.isoformat()} is in the future"
    sent_on = norwegian_date(event.sent_at)
    # A fact in the future is NIR-DATE-001's to report; do not report it twice.
    if sent_on < event.fact_date <= ctx.today:
        return f"sentAt {sent_on.isoformat()} is before factDate {event.fact_date.isoformat()}"
    return None


# Pairs of (earlier, later) date fields that must be in order wherever they occur in a payload.
_ORDERED_PAIRS = (("periodStart", "periodEnd"), ("startDate", "endDate"))


def _objects(value: Any, path: str = "payload") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        yield path, value
        for key, child in value.items():
            yield from _objects(child, f"{path}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _objects(child, f"{path}[{index}]")


@rule("NIR-DATE-003", "Periods in the payload end on or after they start")
def periods_in_order(event: Registration, ctx: RuleContext) -> str | None:
    for path, obj in _objects(event.payload):
        for first, last in _ORDERED_PAIRS:
            if obj.get(first) and obj.get(last) and obj[last] < obj[first]:
                return f"{path}.{last} {obj[last]} is before {path}.{first} {obj[first]}"
    for later in ("plannedEndDate", "stoppedUntil"):
        value = event.payload.get(later)
        if value and value < event.fact_date.isoformat():
            return f"payload.{later} {value} is before factDate {event.fact_date.isoformat()}"
    return None
