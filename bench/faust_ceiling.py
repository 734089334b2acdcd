"""Faust's ceiling, and the floor of the hub's chosen libraries, beside the raw limit of the same
machine, on valid claims:

- a Faust agent that does nothing with its events, with Faust's own Kafka transport and with
  the hub's (`nirkafka://`, hub/kafka/transport.py): what Faust's per-message machinery alone allows;
- the same agent on the hub's transport doing only what the chosen libraries must do for every
  event whatever the hub decides: decode it (fastavro); then also encode its receipt (fastavro)
  and send it (aiokafka, through the worker's producer, keyed by the source as the hub keys
  them), confirmed before the next batch. No rule, no register: whatever the hub decides costs
  on top of this floor.

Each agent runs in a process of its own and reports its rate and its own CPU time per event,
from its first batch to its last.

    python bench/faust_ceiling.py [--events 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SOURCE, Preloaded, preload, run_benchmark
from bench.throughput import raw_limit
from hub.config import Settings
from hub.dev.localrun import local_admin

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500  # as the registrations agent takes them (NIR_BATCH_SIZE)
NOTHING, DECODE, FLOOR = "nothing", "decode", "the floor"


def agent_worker() -> None:
    """Runs in the child process: a worker whose one agent takes the events in batches and does
    `CEILING_WORK` with them (`nothing`, `decode` or `the floor`: see the module's notes), then reports its
    rate and its CPU time per event."""
    import asyncio
    import datetime as dt

    import faust

    from hub.agents.runner import messages_of
    from hub.domain.transfer import ReceiptOutcome
    from hub.kafka.transport import HubProducer
    from hub.pipeline.ports import Outgoing
    from hub.pipeline.receipts import encode_receipt
    from hub.schemas.codec import catalog

    topic, expected = os.environ["CEILING_TOPIC"], int(os.environ["CEILING_EVENTS"])
    receipts, work = os.environ["CEILING_RECEIPTS"], os.environ["CEILING_WORK"]
    app = faust.App(
        f"ceiling-{os.getpid()}",
        broker=os.environ["CEILING_BROKER"],
        broker_credentials=Settings.from_env().kafka.faust_credentials(),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        datadir=os.environ["CEILING_DATADIR"],
        Worker="hub.worker:HubWorker",
    )
    schemas = catalog()

    async def answer(messages: list[Any]) -> None:
        """Decode each message and send its receipt, as the hub must whatever it decides."""
        now = dt.datetime.now(dt.UTC)
        outgoing = [
            Outgoing(
                receipts,
                SOURCE.encode(),  # as the hub keys a source's receipts
                encode_receipt(
                    schemas,
                    event_id=schemas.decode(m.value).datum["eventId"],
                    outcome=ReceiptOutcome.ACCEPTED,
                    violations=[],
                    origin=m.origin,
                    now=now,
                    registered_at=now,
                ),
                [],
            )
            for m in messages
        ]
        # As the worker's publisher sends (`hub.app.FaustPublisher`), without the hub's app.
        producer = app.producer
        assert isinstance(producer, HubProducer)
        await asyncio.gather(*await producer.send_batches(outgoing))

    @app.agent(app.topic(topic, key_type=bytes, value_type=bytes))
    async def take(stream: Any) -> None:
        seen, started, cpu = 0, 0.0, 0.0
        async for events in stream.take_events(BATCH, within=0.05):
            started, cpu = started or time.perf_counter(), cpu or time.process_time()
            messages = [m for event in events for m in messages_of(event)]
            if work == FLOOR:
                await answer(messages)
            elif work == DECODE:
                for m in messages:
                    schemas.decode(m.value)
            seen += len(messages)
            if seen >= expected:
                rate = seen / (time.perf_counter() - started)
                print(f"RATE {rate:.0f} CPU {(time.process_time() - cpu) / seen * 1e6:.1f}", flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def ceiling(run: Preloaded, scheme: str, work: str) -> tuple[float, float]:
    """The child's events per second and CPU µs per event."""
    settings = run.settings
    env = {
        **os.environ,
        # As the admin: its consumer group is not the hub's.
        **local_admin(settings).to_env(),
        "CEILING_TOPIC": run.topic,
        "CEILING_RECEIPTS": run.hub.names.receipts(SOURCE),
        "CEILING_EVENTS": str(run.events),
        "CEILING_WORK": work,
        "CEILING_BROKER": f"{scheme}://{settings.kafka_bootstrap}",
        "CEILING_DATADIR": str(run.work / f"{scheme}-{work.replace(' ', '-')}"),
    }
    code = "import bench.faust_ceiling as c; c.agent_worker()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    # Faust's worker sends what the agent prints through its logging (to stderr).
    reported = re.findall(r"RATE (\d+) CPU ([\d.]+)", done.stdout + done.stderr)
    if not reported:
        raise SystemExit(f"the {scheme} worker reported no rate:\n{done.stderr[-2000:]}")
    rate, cpu = reported[0]
    return float(rate), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()

    run = preload(args.events)
    raw = raw_limit(run.hub, run.topic, args.events)
    print(f"Faust agents, batches of {BATCH}:")
    for scheme, work, what in (
        ("kafka", NOTHING, "Faust's transport, no work"),
        ("nirkafka", NOTHING, "the hub's transport, no work"),
        ("nirkafka", DECODE, "the hub's transport, decode"),
        ("nirkafka", FLOOR, "the hub's transport, decode + receipt sent"),
    ):
        rate, cpu = ceiling(run, scheme, work)
        print(
            f"  {what:<44} {rate:9,.0f} events/s, ratio to raw {rate / raw:.3f}, "
            f"{cpu:6.1f} us of the agent's CPU per event",
            flush=True,
        )


if __name__ == "__main__":
    run_benchmark(main)
