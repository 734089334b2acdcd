"""A mixed stream of registration events, as a fagsystem sends them over a few weeks: several
events per person (claim, decision, start, hours, end), with duplicates, corrections,
annulments and events sent before the one they depend on (held, then released), the persons
interleaved so that one person's events fall into the same batch and into different ones.

Every event is valid for the hub's rules; each says what the hub should answer in the end
(ACCEPTED or DUPLICATE) and whether it should be held first, so a run can be checked against
the stream.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

from hub.bootstrap import Hub
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from tests.factories import Person, event

# How many persons' chains are open at once while interleaving: a person's events spread over
# about this many times their number (6) of the stream's events, around the worker's batch size
# (NIR_BATCH_SIZE, 500), so they fall into the same batch and into different ones.
ACTIVE_PERSONS = 64


@dataclasses.dataclass(frozen=True)
class Sent:
    """One event of the stream and what the hub should make of it."""

    event: dict[str, Any]
    kind: str  # claim, decision, start, hours, end, duplicate, correction, annulment
    final: str  # ACCEPTED or DUPLICATE: the last receipt the event should get
    held: bool = False  # sent before what it depends on: HELD first, ACCEPTED when that arrives

    @property
    def key(self) -> bytes:
        return str(self.event["person"]["nationalId"]).encode()


def _chain(person: Person, variant: int, rng: random.Random) -> list[Sent]:
    """One person's events in the order the fagsystem sends them."""
    day = dt.date.today() - dt.timedelta(days=rng.randint(30, 56))  # within two months: not late

    def on(days: int, event_type: str, **changes: Any) -> dict[str, Any]:
        made = event(person, event_type, fact_date=day + dt.timedelta(days=days))
        made.update(changes)
        return made

    claim = Sent(on(0, "TRAINING_CLAIM"), "claim", "ACCEPTED")
    decision = Sent(on(2, "TRAINING_DECISION"), "decision", "ACCEPTED")
    start = Sent(on(5, "TRAINING_STARTED"), "start", "ACCEPTED")
    hours = Sent(on(12, "TRAINING_HOURS"), "hours", "ACCEPTED")
    more_hours = Sent(on(19, "TRAINING_HOURS"), "hours", "ACCEPTED")
    end = Sent(on(26, "TRAINING_ENDED"), "end", "ACCEPTED")

    def again(sent: Sent) -> Sent:  # the same event (same id, same bytes) sent a second time
        return Sent(sent.event, "duplicate", "DUPLICATE")

    def correcting(sent: Sent, payload: dict[str, Any], action: str = "CORRECT") -> Sent:
        original = sent.event
        fixed = event(
            person,
            original["eventType"],
            fact_date=dt.date.fromisoformat(original["factDate"]),
            payload=payload,
        )
        fixed.update(action=action, correctsEventId=original["eventId"])
        return Sent(fixed, "annulment" if action == "ANNUL" else "correction", "ACCEPTED")

    match variant:
        case 0:  # the plain course of a training
            return [claim, decision, start, hours, end]
        case 1:
            return [claim, decision, start, hours, more_hours, end]
        case 2:  # the start before its decision: held until the decision arrives
            return [claim, dataclasses.replace(start, held=True), decision, hours, end]
        case 3:  # hours before the start: held until the start arrives
            return [claim, decision, dataclasses.replace(hours, held=True), start, end]
        case 4:
            return [claim, decision, start, again(claim), hours, end]
        case 5:
            return [claim, decision, start, hours, again(hours), end]
        case 6:
            scope = {**decision.event["payload"], "scopeHours": 500}
            return [claim, decision, start, correcting(decision, scope), hours, end]
        case 7:
            fewer = {**hours.event["payload"], "norwegianHours": 5.0}
            return [claim, decision, start, hours, correcting(hours, fewer), end]
        case 8:
            annul = correcting(more_hours, more_hours.event["payload"], "ANNUL")
            return [claim, decision, start, hours, more_hours, annul, end]
        case _:  # still in training
            return [claim, decision, start, hours]


VARIANTS = 10


def mixed_stream(
    national_ids: Iterator[str], count: int, seed: int = 1, active: int = ACTIVE_PERSONS
) -> list[Sent]:
    """About `count` events (whole chains: a little more), persons of `national_ids` taking the
    variants in turn, interleaved `active` persons at a time, each person's own events in order."""
    rng = random.Random(seed)
    chains: Iterator[list[Sent]] = (
        _chain(Person(national_id, None), index % VARIANTS, rng)
        for index, national_id in enumerate(national_ids)
    )
    planned = 0
    open_chains: list[list[Sent]] = []
    stream: list[Sent] = []
    while planned < count or open_chains:
        while planned < count and len(open_chains) < active:
            chain = next(chains)
            open_chains.append(chain)
            planned += len(chain)
        chain = rng.choice(open_chains)
        stream.append(chain.pop(0))
        if not chain:
            open_chains.remove(chain)
    return stream


def encoded(hub: Hub, stream: list[Sent]) -> list[tuple[bytes, bytes, str]]:
    """(key, value, event id) of each event: keyed by the person, so a person's events keep
    their order on one partition."""
    encode: Callable[[str, dict[str, Any]], bytes] = hub.catalog.encode
    values: dict[str, bytes] = {}  # a duplicate is the same message again, bytes and all
    out = []
    for sent in stream:
        event_id = sent.event["eventId"]
        if event_id not in values:
            values[event_id] = encode(REGISTRATION, from_json(sent.event))
        out.append((sent.key, values[event_id], event_id))
    return out


def describe(stream: list[Sent]) -> str:
    """What the stream holds, by kind, and how many persons."""
    kinds = collections.Counter(s.kind for s in stream)
    plural = {"claim": "claims", "decision": "decisions", "start": "starts", "hours": "hours reports"}
    plural |= {
        "end": "ends",
        "duplicate": "duplicates",
        "correction": "corrections",
        "annulment": "annulments",
    }
    persons = len({s.key for s in stream})
    held = sum(s.held for s in stream)
    parts = ", ".join(f"{kinds[k]:,} {name}" for k, name in plural.items() if kinds[k])
    return f"{len(stream):,} events of {persons:,} persons: {parts}; {held:,} sent before what they depend on"


def expected_outcomes(stream: list[Sent]) -> collections.Counter[str]:
    """The final receipts the stream should get, by outcome."""
    return collections.Counter(s.final for s in stream)


def expected_rows(stream: list[Sent]) -> int:
    """Register rows the stream should leave: one per accepted event (corrections and
    annulments are rows too; duplicates are not)."""
    return sum(s.final == "ACCEPTED" for s in stream)
