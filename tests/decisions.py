"""Helpers of the decision core's unit tests: events through the registration flow over the
register in memory (`tests.fakes`), and what came out."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.wiring import registration_flow
from tests.factories import Person, event
from tests.fakes import RecordingPublisher

TOPIC = "nir.source.oslo-fagsystem.registrations"
RECEIPTS = "nir.source.oslo-fagsystem.receipts"
TODAY = dt.date.today()


def topic_of(source: str) -> str:
    return f"nir.source.{source}.registrations"


def message(e: dict[str, Any], offset: int = 0) -> Message:
    """The event as its source's topic would carry it (the topic of its sourceSystem)."""
    return Message(
        Origin(topic_of(e["sourceSystem"]), 0, offset), b"k", catalog().encode(REGISTRATION, from_json(e))
    )


def run(hub: Hub, *batches: list[dict[str, Any]]) -> tuple[list[list[str]], RecordingPublisher]:
    """Each batch through one flow, offsets counting on; the outcomes per batch, and what was sent."""
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    outcomes, offset = [], 0
    for batch in batches:
        messages = [message(e, offset + i) for i, e in enumerate(batch)]
        offset += len(batch)
        decided = asyncio.run(flow.process_batch(messages))
        outcomes.append([d.outcome.value if d.outcome else "WAITING" for d in decided])
    return outcomes, publisher


def receipts(publisher: RecordingPublisher, source: str = "oslo-fagsystem") -> list[tuple[str, str]]:
    return [
        (str(r["eventId"]), r["outcome"])
        for r in (catalog().decode(v).datum for _, _, v, _ in publisher.on(f"nir.source.{source}.receipts"))
    ]


def codes(publisher: RecordingPublisher, source: str = "oslo-fagsystem") -> list[list[str]]:
    """The rule codes of each receipt sent to the source, in order."""
    return [
        [v["code"] for v in catalog().decode(value).datum["violations"]]
        for _, _, value, _ in publisher.on(f"nir.source.{source}.receipts")
    ]


def days_ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def later(sent_at: str, seconds: int = 1) -> str:
    """A sentAt some seconds after another: the fagsystem sent this version after that one."""
    return (dt.datetime.fromisoformat(sent_at) + dt.timedelta(seconds=seconds)).isoformat()


def programme(person: Person) -> list[dict[str, Any]]:
    """Claim, decision, start and end of an introduction programme, in order."""
    return [
        event(person, "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", fact_date=days_ago(40)),
        event(person, "INTRODUCTION_PROGRAMME_DECISION", fact_date=days_ago(30)),
        event(person, "INTRODUCTION_PROGRAMME_STARTED", fact_date=days_ago(20)),
        event(person, "INTRODUCTION_PROGRAMME_ENDED", fact_date=days_ago(2)),
    ]
