"""Where the registration flow's time goes: the CPU time per event of each stage of the flow, run
in this process without Faust.

Each pass runs valid claims in batches, as the registrations agent does, and adds one stage to
the pass before it; a stage's cost is the difference (the least of `--rounds` runs of each pass;
the passes that write take persons no other pass has):

- decode: Avro bytes to a `Registration` (`decode_registration`);
- rules: the rule catalogue on each event (`hub.rules.evaluate`);
- register, receipts built, metrics: the whole `RegistrationFlow.process_batch` with a publisher
  that drops what it is given, minus the two above;
- receipts sent: the same with the worker's publisher (`FaustPublisher` over the hub's transport,
  confirmed by the broker), minus the pass before.

CPU time is this process's own (`time.process_time`, all threads): PostgreSQL's and the broker's
work is not in it. What Faust's per-message delivery adds on top is in `bench/faust_ceiling.py`.

    python bench/stages.py [--events 20000] [--rounds 3] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import faust

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    SOURCE,
    admin,
    bench_settings,
    broker,
    claim_values,
    fresh_register,
    machine,
    postgres,
    prepare_topics,
    run_benchmark,
)
from hub.app import FaustPublisher
from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.pipeline.decide import Circumstances
from hub.pipeline.decode import decode_registration
from hub.pipeline.ports import Outgoing, Publisher
from hub.rules import evaluate
from hub.wiring import registration_flow


class DroppingPublisher:
    async def send_many(self, messages: Sequence[Outgoing]) -> None:
        return None


def passes(hub: Hub, count: int, number: int) -> list[list[list[Message]]]:
    """`number` passes of `count` events each, in batches; no person is in two passes."""
    topic = hub.names.registrations(SOURCE)
    values = claim_values(hub, count * number)
    messages = [Message(Origin(topic, 0, i), k, v) for i, (k, v, _) in enumerate(values)]
    size = hub.settings.batch_size
    return [
        [messages[i : i + size] for i in range(start, start + count, size)]
        for start in range(0, count * number, count)
    ]


def per_event(started: float, events: list[list[Message]]) -> float:
    """Microseconds of this process's CPU time per event since `started` (a `process_time`)."""
    return (time.process_time() - started) / sum(map(len, events)) * 1e6


def cpu_per_event(work: Callable[[list[Message]], object], events: list[list[Message]]) -> float:
    started = time.process_time()
    for batch in events:
        work(batch)
    return per_event(started, events)


async def flow_cost(hub: Hub, publisher: Publisher, events: list[list[Message]]) -> float:
    flow = registration_flow(hub, publisher)
    started = time.process_time()
    for batch in events:
        await flow.process_batch(batch)
    return per_event(started, events)


async def flow_cost_with_broker(hub: Hub, events: list[list[Message]]) -> float:
    app = faust.App(
        f"stages-{hub.settings.topic_prefix}",
        broker=hub.settings.kafka_url,
        broker_credentials=admin(hub.settings).faust_credentials(),
    )
    await app.producer.start()
    try:
        return await flow_cost(hub, FaustPublisher(app), events)
    finally:
        await app.producer.stop()


def stages(hub: Hub, count: int, rounds: int) -> dict[str, float]:
    """Each pass `rounds` times, interleaved, and the least of each: a stage is a difference of two
    passes, and the machine's noise would otherwise be most of it."""
    context = Circumstances(hub.clock(), hub.registry, hub.settings.allow_synthetic_identifiers).rule_context(
        SOURCE
    )
    fresh = iter(passes(hub, count, 1 + 2 * rounds))  # the flow's passes write: each its own persons
    reused = next(fresh)  # decoding and the rules write nothing
    decoded, with_rules, flow, sent = [], [], [], []
    for _ in range(rounds):
        decoded.append(
            cpu_per_event(lambda b: [decode_registration(hub.catalog, m.value) for m in b], reused)
        )
        with_rules.append(
            cpu_per_event(
                lambda b: [evaluate(decode_registration(hub.catalog, m.value), context) for m in b], reused
            )
        )
        flow.append(asyncio.run(flow_cost(hub, DroppingPublisher(), next(fresh))))
        sent.append(asyncio.run(flow_cost_with_broker(hub, next(fresh))))
    return {
        "decode": min(decoded),
        "rules": min(with_rules) - min(decoded),
        "register, receipts built, metrics": min(flow) - min(with_rules),
        "receipts and dead letters sent": min(sent) - min(flow),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per pass")
    parser.add_argument("--rounds", type=int, default=3, help="times each pass runs (the least counts)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    local = broker()
    for database in args.databases.split(","):
        work = Path(tempfile.mkdtemp(prefix="nir-bench-stages-"))
        with (
            postgres()
            if database == "postgresql"
            else contextlib.nullcontext(f"sqlite:///{work}/r.sqlite3") as url
        ):
            fresh_register(url)
            hub = prepare_topics(bench_settings(local, url, work))
            costs = stages(hub, args.events, args.rounds)
        total = sum(costs.values())
        print(
            f"\n{database}: CPU time per event, {args.events} events a pass, batches of {hub.settings.batch_size}"
        )
        for stage, cost in costs.items():
            print(f"  {stage:<36} {cost:7.1f} us  {cost / total:6.1%}")
        print(f"  {'the flow, in all':<36} {total:7.1f} us  ({1e6 / total:,.0f} events/s on one core)")


if __name__ == "__main__":
    run_benchmark(main)
