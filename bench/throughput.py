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
from collections.abc import Callable
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
    preload_register,
    prepare_topics,
    register_state,
    run_benchmark,
    run_worker_until,
)
from bench.mixed import describe, encoded, expected_outcomes, expected_rows, mixed_stream
from hub.bootstrap import Hub
from hub.config import Settings
from hub.dev.localrun import local_admin

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


PEER = (str(Path(__file__).resolve().parent / "peer_quixstreams.py"),)
CONSUMERS = {"hub": None, "peer": PEER}  # what reads the stream: `hub worker`, or the peer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--stream", choices=["claims", "mixed", "both"], default="both")
    parser.add_argument("--consumers", default="hub,peer", help="hub, peer, or both (hub,peer)")
    parser.add_argument(
        "--register-persons",
        type=int,
        default=0,
        help="also run each consumer on a PostgreSQL register preloaded with this many persons",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a worker may take")
    args = parser.parse_args()
    databases = args.databases.split(",")
    names = ["claims", "mixed"] if args.stream == "both" else [args.stream]
    consumers = args.consumers.split(",")

    streams = []
    for index, name in enumerate(names):
        make = claims_stream if name == "claims" else mixed
        streams.append(make(args.events, announce=index == 0))
    for stream in streams:
        print(f"{stream.name}: ", end="")
        stream.raw = raw_limit(stream.preloaded.hub, stream.preloaded.topic, stream.preloaded.events)

    for database in databases:
        by_size: dict[int, dict[tuple[str, str], Result]] = {}
        sizes = [0, args.register_persons] if args.register_persons and database == "postgresql" else [0]
        for persons in sizes:
            results: dict[tuple[str, str], Result] = {}
            for stream in streams:
                for consumer in consumers:
                    result = run_one(stream, database, consumer, args.timeout, persons)
                    results[stream.name, consumer] = result
                    run = result.run
                    print(
                        f"{stream.name} on {database}{_preloaded(persons)}, {consumer}: {run.rate:,.0f} "
                        f"events/s ({run.events} events in {run.seconds:.1f} s), ratio to raw "
                        f"{run.rate / stream.raw:.3f}, peak RSS {run.peak_rss_mib:.0f} MiB",
                        flush=True,
                    )
                    print(f"  CPU microseconds per event: {run.cpu.per_event(run.events)}", flush=True)
            print_side_by_side(f"{database}{_preloaded(persons)}", streams, consumers, results)
            by_size[persons] = results
        if len(by_size) == 2:
            for (stream_name, consumer), preloaded in by_size[args.register_persons].items():
                empty = by_size[0][stream_name, consumer].run.rate
                print(
                    f"{stream_name}, {consumer}: empty register {empty:,.0f} events/s, preloaded "
                    f"{preloaded.run.rate:,.0f}: empty/preloaded {empty / preloaded.run.rate:.2f}"
                )


def _preloaded(persons: int) -> str:
    return f" preloaded with {persons:,} persons" if persons else ""


def run_one(stream: Stream, database: str, consumer: str, timeout: float, persons: int = 0) -> Result:
    """One consumer on the stream: its own consumer group and register (empty, or preloaded
    with `persons` persons)."""
    preloaded, work = stream.preloaded, stream.preloaded.work
    sqlite_url = f"sqlite:///{work}/register-{database}-{consumer}.sqlite3"
    with postgres() if database == "postgresql" else contextlib.nullcontext(sqlite_url) as url:
        fresh_register(url)
        preload_register(url, persons)
        settings = _same_topics(preloaded, url, work)
        hub = Hub.from_settings(settings)
        if consumer == "peer":
            # quixstreams reads each topic's configuration as it starts (DescribeConfigs), which
            # the worker's principal is not granted: the peer runs as the broker's admin.
            settings = local_admin(settings)
        log = work / f"{consumer}-{stream.name}-{database}.log"
        run = run_worker_until(
            hub, settings, stream.rows, log, timeout, events=preloaded.events, program=CONSUMERS[consumer]
        )
        result = Result(run, register_state(hub, preloaded=persons))
    check(stream, consumer, result)
    return result


def check(stream: Stream, consumer: str, result: Result) -> None:
    """The run's own result against what the stream should get: exactly its rows, nothing held,
    and for each outcome exactly its receipts (a HELD receipt first for each event sent before
    what it depends on). A lost event, or one answered or written twice, ends the benchmark."""
    got, rows = result.run.outcomes, result.register.rows
    wrong = [
        f"{outcome}: {got[outcome]:,} receipts, should be {stream.final[outcome]:,}"
        for outcome in OUTCOMES
        if outcome != "HELD" and got[outcome] != stream.final[outcome]
    ]
    if got["HELD"] < stream.held_first:
        wrong.append(f"HELD: {got['HELD']:,} receipts, should be at least {stream.held_first:,}")
    if rows != stream.rows:
        wrong.append(f"{rows:,} register rows, should be {stream.rows:,}")
    if result.register.held:
        wrong.append(f"{result.register.held:,} events still held")
    if wrong:
        raise SystemExit(f"{consumer} on the {stream.name} stream got it wrong: " + "; ".join(wrong))


def print_side_by_side(
    database: str, streams: list[Stream], consumers: list[str], results: dict[tuple[str, str], Result]
) -> None:
    """One column per stream and consumer: rate, CPU, memory, and what it answered and wrote
    against what the stream should get; then the ratios."""
    columns = [(s, c) for s in streams for c in consumers]
    heads = [f"{s.name} {c}" for s, c in columns]

    def each(value: Callable[[Stream, Result], str]) -> list[str]:
        return [value(s, results[s.name, c]) for s, c in columns]

    rows: list[tuple[str, list[str]]] = [
        ("events on the topic", each(lambda s, r: f"{s.preloaded.events:,}")),
        ("events/s", each(lambda s, r: f"{r.run.rate:,.0f}")),
        ("ratio to raw", each(lambda s, r: f"{r.run.rate / s.raw:.3f}")),
    ]
    for who in next(iter(results.values())).run.cpu.by_whom:
        label = "worker or peer" if who == "worker" else who
        rows.append(
            (
                f"CPU µs/event: {label}",
                each(lambda s, r, who=who: f"{r.run.cpu.by_whom[who] / r.run.events * 1e6:,.0f}"),
            )
        )
    rows.append(("peak RSS MiB", each(lambda s, r: f"{r.run.peak_rss_mib:.0f}")))
    for outcome in OUTCOMES:
        if outcome == "HELD":
            rows.append(
                (f"receipts {outcome}", each(lambda s, r: f"{r.run.outcomes['HELD']:,} (≥ {s.held_first:,})"))
            )
        else:
            rows.append(
                (
                    f"receipts {outcome}",
                    each(lambda s, r, o=outcome: f"{r.run.outcomes[o]:,} ({s.final[o]:,})"),
                )
            )
    rows.append(("register rows", each(lambda s, r: f"{r.register.rows:,} ({s.rows:,})")))
    rows.append(("  written by the batch path", each(lambda s, r: f"{r.register.rows_in_batches:,}")))
    rows.append(("events still held", each(lambda s, r: f"{r.register.held:,} (0)")))
    width = max(len(label) for label, _ in rows)
    sizes = [max(len(h), *(len(values[i]) for _, values in rows)) for i, h in enumerate(heads)]
    print(f"\n{database}, side by side (in brackets: what the stream should get)")
    print(f"{'':<{width}}  " + "  ".join(f"{h:>{c}}" for h, c in zip(heads, sizes, strict=True)))
    for label, values in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{v:>{c}}" for v, c in zip(values, sizes, strict=True)))
    if {"hub", "peer"} <= set(consumers):
        for s in streams:
            hub, peer = results[s.name, "hub"].run, results[s.name, "peer"].run
            print(
                f"{s.name} on {database}: hub/peer {hub.rate / peer.rate:.2f}, hub/raw {hub.rate / s.raw:.3f}, "
                f"peer/raw {peer.rate / s.raw:.3f}"
            )
    print(flush=True)


def _same_topics(run: Preloaded, url: str, work: Path) -> Settings:
    """A new consumer group and register on the preloaded topics (with the worker's ACLs)."""
    settings = dataclasses.replace(
        bench_settings(run.broker, url, work), topic_prefix=run.settings.topic_prefix
    )
    prepare_topics(settings)
    return settings


if __name__ == "__main__":
    run_benchmark(main)
