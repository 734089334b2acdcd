"""`hub publish FILE`: publish a JSON Lines file of events, reporting line by line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.connectors.fagsystem import FagsystemProducer, SentEvent, UnknownSourceTopic
from hub.schemas.contract import ContractError
from hub.sources import SOURCE_ID_PATTERN


@dataclass(frozen=True)
class LineResult:
    line: int
    sent: SentEvent | None = None
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.sent is not None:
            s = self.sent
            return f"line {self.line}: sent {s.event_id} to {s.topic} [partition {s.partition}, offset {s.offset}]"
        return f"line {self.line}: refused: " + "; ".join(self.problems)


@dataclass
class PublishReport:
    lines: list[LineResult] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(1 for r in self.lines if r.sent is not None)

    @property
    def refused(self) -> int:
        return sum(1 for r in self.lines if r.sent is None)


def read_events(lines: Iterable[str]) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed JSON or None, parse problem or None); blank lines are skipped."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text), None
        except json.JSONDecodeError as exc:
            # The message names the position only, never the content (it may be personal data).
            yield number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"


async def publish_file(
    path: Path,
    producer_for: Callable[[str], FagsystemProducer],
    *,
    source: str | None = None,
    on_line: Callable[[LineResult], None] = lambda _r: None,
) -> PublishReport:
    with path.open(encoding="utf-8") as handle:
        return await publish_lines(handle, producer_for, source=source, on_line=on_line)


async def publish_lines(
    lines: Iterable[str],
    producer_for: Callable[[str], FagsystemProducer],
    *,
    source: str | None = None,
    on_line: Callable[[LineResult], None] = lambda _r: None,
) -> PublishReport:
    """Check and send every line. `producer_for(source_id)` gives a started producer.

    With `source`, lines whose sourceSystem is another source are refused; without it each
    line goes to the topic of the source it names.
    """
    report = PublishReport()
    producers: dict[str, FagsystemProducer] = {}
    try:
        for number, event, problem in read_events(lines):
            result = await _publish_line(number, event, problem, source, producers, producer_for)
            report.lines.append(result)
            on_line(result)
    finally:
        for producer in producers.values():
            await producer.stop()
    return report


async def _publish_line(
    number: int,
    event: Any,
    problem: str | None,
    source: str | None,
    producers: dict[str, FagsystemProducer],
    producer_for: Callable[[str], FagsystemProducer],
) -> LineResult:
    if problem is not None:
        return LineResult(number, problems=[problem])
    if not isinstance(event, dict):
        return LineResult(number, problems=["<event>: must be a JSON object"])
    source_id = source or event.get("sourceSystem")
    if not isinstance(source_id, str) or not source_id:
        return LineResult(number, problems=["sourceSystem: is required"])
    if source_id not in producers:
        if not re.fullmatch(SOURCE_ID_PATTERN, source_id):
            return LineResult(number, problems=["sourceSystem: is not a valid source id"])
        producer = producer_for(source_id)
        try:
            await producer.start()
        except UnknownSourceTopic as exc:
            return LineResult(number, problems=[exc.message])
        producers[source_id] = producer
    producer = producers[source_id]
    try:
        datum = producer.prepare(event)
    except ContractError as exc:
        return LineResult(number, problems=exc.problems)
    return LineResult(number, sent=await producer.send_datum(datum))
