"""Throughput: events per second from topic to committed register rows, for one worker, beside
the raw limit of the same machine.

Preloads N valid registration events (distinct persons) on a fresh source topic, then measures
in one run:

- raw: a plain aiokafka consumer that only fetches the messages and decodes them with fastavro
  (the best of three passes);
- hub: one `hub worker` on SQLite, and one on PostgreSQL (each its own consumer group and empty
  register), timed from its first committed row to its last, with its peak RSS, and the CPU time
  per event the worker, PostgreSQL, the broker and the kernel (with anything else running) spent
  meanwhile: what a faster worker would still have to share the machine with.

    python bench/throughput.py [--events 200000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Preloaded,
    admin,
    bench_settings,
    fresh_register,
    postgres,
    preload,
    prepare_topics,
    run_worker_until,
)
from hub.bootstrap import Hub
from hub.config import Settings


async def raw_rate(hub: Hub, topic: str, expected: int) -> float:
    """Fetch and decode every message with a plain consumer; events per second."""
    consumer = AIOKafkaConsumer(
        **admin(hub.settings).aiokafka(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(hub.settings.registration_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        decode = hub.catalog.decode
        started, seen = time.perf_counter(), 0
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in records:
                    decode(record.value)
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def raw_limit(hub: Hub, topic: str, expected: int) -> float:
    """The best of three raw passes, printed: one pass is short and swings with the machine's noise."""
    passes = [asyncio.run(raw_rate(hub, topic, expected)) for _ in range(3)]
    print(
        f"raw limit (aiokafka fetch + fastavro decode): {max(passes):,.0f} events/s "
        f"(best of {', '.join(f'{p:,.0f}' for p in passes)})",
        flush=True,
    )
    return max(passes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a worker may take")
    args = parser.parse_args()
    databases = args.databases.split(",")

    preloaded = preload(args.events)
    work = preloaded.work
    raw = raw_limit(preloaded.hub, preloaded.topic, args.events)

    for database in databases:
        sqlite_url = f"sqlite:///{work}/register-{database}.sqlite3"
        with postgres() if database == "postgresql" else contextlib.nullcontext(sqlite_url) as url:
            fresh_register(url)
            settings = _same_topics(preloaded, url, work)
            run = run_worker_until(
                Hub.from_settings(settings),
                settings,
                args.events,
                work / f"worker-{database}.log",
                args.timeout,
            )
        print(
            f"hub on {database:<10}: {run.rate:,.0f} events/s ({run.events} events in {run.seconds:.1f} s), "
            f"ratio to raw {run.rate / raw:.3f}, worker peak RSS {run.peak_rss_mib:.0f} MiB",
            flush=True,
        )
        print(f"  CPU microseconds per event: {run.cpu.per_event(run.events)}", flush=True)


def _same_topics(run: Preloaded, url: str, work: Path) -> Settings:
    """A new consumer group and register on the preloaded topics (with the worker's ACLs)."""
    settings = dataclasses.replace(
        bench_settings(run.broker, url, work), topic_prefix=run.settings.topic_prefix
    )
    prepare_topics(settings)
    return settings


if __name__ == "__main__":
    main()
