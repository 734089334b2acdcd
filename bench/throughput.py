"""Throughput: events per second from topic to register, for one worker, beside the raw limit
of the same machine, on two kinds of stream side by side.

- claims: N valid TRAINING_CLAIM events, one per distinct person;
- mixed: about N events of a training's course, several per person and interleaved across
  persons (`bench/mixed.py`): claims, decisions, starts, hours and ends, with duplicates,
  corrections, annulments and events sent before what they depend on (held, then released).

Each stream is preloaded on fresh topics, then measured in one run:

- raw: a plain aiokafka consumer that only fetches the messages and decodes them with fastavro
  (the best of three passes);
- hub: one `hub worker` on SQLite, and one on PostgreSQL (each its own consumer group and empty
  register), timed from its first committed row until the register has every row the stream
  should leave and holds no event back (`bench.common.run_worker_until`), with its peak RSS, and
  the CPU time per event the worker, PostgreSQL, the broker, this benchmark and the kernel (with
  anything else running) spent meanwhile: what a faster worker would still have to share the
  machine with. Then its receipts are read until every event has its final one, and counted by
  outcome beside what the stream should get, with the register's rows and held events.

    python bench/throughput.py [--events 200000] [--databases sqlite,postgresql] [--stream claims|mixed|both]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Preloaded,
    RegisterState,
    WorkerRun,
    admin,
    bench_settings,
    fresh_register,
    national_ids,
    postgres,
    preload,
    prepare_topics,
    register_state,
    run_worker_until,
)
from bench.mixed import describe, encoded, expected_outcomes, expected_rows, mixed_stream
from hub.bootstrap import Hub
from hub.config import Settings

OUTCOMES = ("ACCEPTED", "ACCEPTED_WITH_WARNINGS", "DUPLICATE", "HELD", "REJECTED")


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


@dataclasses.dataclass
class Stream:
    """A preloaded stream, and what the hub should make of it."""

    name: str
    preloaded: Preloaded
    final: collections.Counter[str]  # the final receipts it should get, by outcome
    rows: int  # the register rows it should leave
    held_first: int  # events sent before what they depend on
    raw: float = float("nan")


def claims_stream(events: int, announce: bool) -> Stream:
    preloaded = preload(events, what="claims", announce=announce)
    return Stream("claims", preloaded, collections.Counter(ACCEPTED=preloaded.events), preloaded.events, 0)


def mixed(events: int, announce: bool) -> Stream:
    stream = mixed_stream(national_ids(10 * events), events)
    print(f"mixed stream: {describe(stream)}", flush=True)
    preloaded = preload(events, lambda hub, _: encoded(hub, stream), what="mixed events", announce=announce)
    return Stream(
        "mixed", preloaded, expected_outcomes(stream), expected_rows(stream), sum(s.held for s in stream)
    )


@dataclasses.dataclass
class Result:
    run: WorkerRun
    register: RegisterState


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--stream", choices=["claims", "mixed", "both"], default="both")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a worker may take")
    args = parser.parse_args()
    databases = args.databases.split(",")
    names = ["claims", "mixed"] if args.stream == "both" else [args.stream]

    streams = []
    for index, name in enumerate(names):
        make = claims_stream if name == "claims" else mixed
        streams.append(make(args.events, announce=index == 0))
    for stream in streams:
        print(f"{stream.name}: ", end="")
        stream.raw = raw_limit(stream.preloaded.hub, stream.preloaded.topic, stream.preloaded.events)

    for database in databases:
        results: dict[str, Result] = {}
        for stream in streams:
            preloaded, work = stream.preloaded, stream.preloaded.work
            sqlite_url = f"sqlite:///{work}/register-{database}.sqlite3"
            with postgres() if database == "postgresql" else contextlib.nullcontext(sqlite_url) as url:
                fresh_register(url)
                settings = _same_topics(preloaded, url, work)
                hub = Hub.from_settings(settings)
                log = work / f"worker-{database}.log"
                run = run_worker_until(hub, settings, stream.rows, log, args.timeout, events=preloaded.events)
                results[stream.name] = Result(run, register_state(hub))
            print(
                f"{stream.name} on {database:<10}: {run.rate:,.0f} events/s ({run.events} events in "
                f"{run.seconds:.1f} s), ratio to raw {run.rate / stream.raw:.3f}, "
                f"worker peak RSS {run.peak_rss_mib:.0f} MiB",
                flush=True,
            )
            print(f"  CPU microseconds per event: {run.cpu.per_event(run.events)}", flush=True)
        print_side_by_side(database, streams, results)


def print_side_by_side(database: str, streams: list[Stream], results: dict[str, Result]) -> None:
    """One column per stream: rate, CPU, memory, and what the hub answered and wrote against what
    the stream should get."""
    rows: list[tuple[str, list[str]]] = [
        ("events on the topic", [f"{s.preloaded.events:,}" for s in streams]),
        ("events/s", [f"{results[s.name].run.rate:,.0f}" for s in streams]),
        ("ratio to raw", [f"{results[s.name].run.rate / s.raw:.3f}" for s in streams]),
    ]
    for who in next(iter(results.values())).run.cpu.by_whom:
        rows.append(
            (
                f"CPU µs/event: {who}",
                [
                    f"{results[s.name].run.cpu.by_whom[who] / results[s.name].run.events * 1e6:,.0f}"
                    for s in streams
                ],
            )
        )
    rows.append(("worker peak RSS MiB", [f"{results[s.name].run.peak_rss_mib:.0f}" for s in streams]))
    for outcome in OUTCOMES:
        got = [results[s.name].run.outcomes[outcome] for s in streams]
        if outcome == "HELD":
            should = [f"at least {s.held_first:,}" for s in streams]
        else:
            should = [f"{s.final[outcome]:,}" for s in streams]
        rows.append((f"receipts {outcome}", [f"{g:,} ({e})" for g, e in zip(got, should, strict=True)]))
    rows.append(
        (
            "register rows",
            [f"{results[s.name].register.rows:,} ({s.rows:,})" for s in streams],
        )
    )
    rows.append(
        ("  written by the batch path", [f"{results[s.name].register.rows_in_batches:,}" for s in streams])
    )
    rows.append(("events still held", [f"{results[s.name].register.held:,} (0)" for s in streams]))
    width = max(len(label) for label, _ in rows)
    columns = [max(len(s.name), *(len(values[i]) for _, values in rows)) for i, s in enumerate(streams)]
    print(f"\n{database}, side by side (in brackets: what the stream should get)")
    print(f"{'':<{width}}  " + "  ".join(f"{s.name:>{c}}" for s, c in zip(streams, columns, strict=True)))
    for label, values in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{v:>{c}}" for v, c in zip(values, columns, strict=True)))
    print(flush=True)


def _same_topics(run: Preloaded, url: str, work: Path) -> Settings:
    """A new consumer group and register on the preloaded topics (with the worker's ACLs)."""
    settings = dataclasses.replace(
        bench_settings(run.broker, url, work), topic_prefix=run.settings.topic_prefix
    )
    prepare_topics(settings)
    return settings


if __name__ == "__main__":
    main()
