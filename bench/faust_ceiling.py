"""Faust's ceiling: the rate of a Faust agent that does nothing with its events, beside the raw
limit of the same machine; once with Faust's own Kafka transport and once with the hub's
(`nirkafka://`, hub/streaming.py).

Whatever the hub does per event comes on top of this; the figure shows how much of the gap
between the hub and the raw limit is Faust's per-message machinery.

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

from bench.common import preload, run_benchmark
from bench.throughput import raw_limit
from hub.config import Settings
from hub.localrun import local_admin

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500  # as the registrations agent takes them (NIR_BATCH_SIZE)


def noop_worker() -> None:
    """Runs in the child process: a worker whose one agent counts events, then reports its rate."""
    import faust

    topic, expected = os.environ["CEILING_TOPIC"], int(os.environ["CEILING_EVENTS"])
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
        Worker="hub.streaming:HubWorker",
    )

    @app.agent(app.topic(topic, key_type=bytes, value_type=bytes))
    async def count(stream: Any) -> None:
        seen, started = 0, 0.0
        async for events in stream.take_events(BATCH, within=0.05):
            started = started or time.perf_counter()
            seen += len(events)
            if seen >= expected:
                print(f"RATE {seen / (time.perf_counter() - started):.0f}", flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def ceiling(settings: Settings, topic: str, events: int, scheme: str, work: Path) -> float:
    env = {
        **os.environ,
        # As the admin: its consumer group is not the hub's.
        **local_admin(settings).to_env(),
        "CEILING_TOPIC": topic,
        "CEILING_EVENTS": str(events),
        "CEILING_BROKER": f"{scheme}://{settings.kafka_bootstrap}",
        "CEILING_DATADIR": str(work / scheme),
    }
    code = "import bench.faust_ceiling as c; c.noop_worker()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    # Faust's worker sends what the agent prints through its logging (to stderr).
    rates = re.findall(r"RATE (\d+)", done.stdout + done.stderr)
    if not rates:
        raise SystemExit(f"the {scheme} worker reported no rate:\n{done.stderr[-2000:]}")
    return float(rates[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()

    run = preload(args.events)
    raw = raw_limit(run.hub, run.topic, args.events)
    for scheme, what in (("kafka", "Faust's transport"), ("nirkafka", "the hub's transport")):
        rate = ceiling(run.settings, run.topic, args.events, scheme, run.work)
        print(
            f"no-op Faust agent, batches of {BATCH}, {what:<20}: {rate:,.0f} events/s, "
            f"ratio to raw {rate / raw:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    run_benchmark(main)
