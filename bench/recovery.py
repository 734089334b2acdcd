"""Recovery time after the register's database is lost, on PostgreSQL (issue 31).

A worker registers a first part of a stream of valid claims of distinct persons (`--before`);
the register is backed up while the worker runs (`hub backup`), and the worker registers
`--events` more. Then the database is lost (dropped and made anew, empty), and timed:

- restore: the backup put back (`hub restore`: pg_restore of the custom-format dump);
- recover: the consumer group moved back by the backup's manifest, as the admin (`hub recover`);
- catch-up: a worker started again, until the register holds every event again;
- total: the three together, the recovery time of `--events` events after the backup.

The catch-up's events/s is of the events after the backup, beside the rate the first worker
registered them at. The result is checked (every event in the register once, none held): a lost
or doubled event ends the benchmark instead of giving a figure. Timings are printed, never
asserted.

    python bench/recovery.py [--events 100000] [--before 10000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    SOURCE,
    admin,
    bench_settings,
    broker,
    claim_values,
    fresh_register,
    held_events,
    machine,
    postgres,
    prepare_topics,
    produce,
    registrations,
    run_benchmark,
)
from hub.dev.localrun import WorkerProcess, local_admin
from hub.ops.recovery import GroupAdmin, recover, restore_backup, take_backup

QUICK = {"events": 5_000, "before": 1_000}


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events registered after the backup")
    parser.add_argument("--before", type=int, default=10_000, help="events registered before the backup")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {QUICK['events']:,} after, {QUICK['before']:,} before",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds a worker may take")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.before = QUICK["events"], QUICK["before"]
    if args.events < 1 or args.before < 1:
        parser.error("--events and --before must each be at least 1")
    return args


@dataclasses.dataclass(frozen=True)
class Result:
    before: int  # events registered before the backup
    events: int  # events registered after it
    restored: int  # registrations in the restored register
    rows: int  # registrations once caught up
    held: int  # events held then
    first_rate: float  # events/s the first worker registered the events after the backup at
    restore_seconds: float
    recover_seconds: float
    catch_up_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.restore_seconds + self.recover_seconds + self.catch_up_seconds

    @property
    def catch_up_rate(self) -> float:
        again = self.rows - self.restored
        return again / self.catch_up_seconds if self.catch_up_seconds else float("nan")


def check(result: Result) -> None:
    """The recovered register against the stream: the backup held exactly the first part, and
    once caught up the register holds every event once and none held back."""
    wrong = []
    if result.restored != result.before:
        wrong.append(
            f"the restored register holds {result.restored:,} registrations, the backup's {result.before:,}"
        )
    expected = result.before + result.events
    if result.rows != expected:
        wrong.append(f"{result.rows:,} registrations after the catch-up, should be {expected:,}")
    if result.held:
        wrong.append(f"{result.held:,} events held")
    if wrong:
        raise SystemExit("the recovery got it wrong: " + "; ".join(wrong))


def main() -> None:
    args = parse()
    local = broker()
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="nir-bench-recovery-"))
    with postgres() as url:
        fresh_register(url)
        settings = bench_settings(local, url, work)
        hub = prepare_topics(settings)
        topic = hub.names.registrations(SOURCE)
        started = time.perf_counter()
        values = claim_values(hub, args.before + args.events)
        print(f"{len(values):,} claims encoded in {time.perf_counter() - started:.1f} s", flush=True)
        backup = work / "register.backup"
        log = work / "worker.log"

        worker = WorkerProcess(settings, log, log_level="warn").start()
        try:
            asyncio.run(produce(admin(settings), topic, values[: args.before]))
            _until(lambda: registrations(hub) >= args.before, args.timeout, worker, "the first part")
            started = time.perf_counter()
            manifest = asyncio.run(take_backup(hub, backup))
            print(
                f"backup of {registrations(hub):,} registrations taken in {time.perf_counter() - started:.1f} s "
                f"while the worker ran ({backup.stat().st_size / 2**20:.1f} MiB)",
                flush=True,
            )
            started = time.perf_counter()
            asyncio.run(produce(admin(settings), topic, values[args.before :]))
            _until(
                lambda: registrations(hub) >= len(values), args.timeout, worker, "the events after the backup"
            )
            first = args.events / (time.perf_counter() - started)
            print(f"{args.events:,} events after the backup registered at {first:,.0f} events/s", flush=True)
        finally:
            worker.stop()

        hub.engine.dispose()
        _lose(url)
        print("the database is lost (dropped, and made anew empty)", flush=True)

        started = time.perf_counter()
        restore_backup(hub, backup)
        restored_at = time.perf_counter()
        restored = registrations(hub)
        groups = GroupAdmin(local_admin(settings))
        _until(lambda: groups.members(settings.app_id) == 0, 60, None, "the group without members")
        waited = time.perf_counter()
        recover(hub, local_admin(settings), manifest)
        recovered_at = time.perf_counter()
        catching_up = WorkerProcess(settings, work / "catch-up.log", log_level="warn").start()
        try:
            _until(lambda: registrations(hub) >= len(values), args.timeout, catching_up, "the catch-up")
            caught_up_at = time.perf_counter()
        finally:
            catching_up.stop()
        result = Result(
            before=args.before,
            events=args.events,
            restored=restored,
            rows=registrations(hub),
            held=held_events(hub),
            first_rate=first,
            restore_seconds=restored_at - started,
            recover_seconds=recovered_at - waited,
            catch_up_seconds=caught_up_at - recovered_at,
        )
    check(result)
    report(result)


def report(result: Result) -> None:
    print()
    print(f"recovery of {result.events:,} events after the backup ({result.before:,} in it), PostgreSQL")
    print(f"  restore    {result.restore_seconds:8.1f} s  ({result.restored:,} registrations back)")
    print(f"  recover    {result.recover_seconds:8.1f} s  (the group moved back by the manifest)")
    print(
        f"  catch-up   {result.catch_up_seconds:8.1f} s  ({result.catch_up_rate:,.0f} events/s, worker start "
        f"included; the first time {result.first_rate:,.0f} events/s)"
    )
    print(f"  total      {result.total_seconds:8.1f} s")
    print(f"  register   {result.rows:,} registrations, {result.held} held: every event once")


def _until(condition: Callable[[], bool], timeout: float, worker: WorkerProcess | None, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if worker is not None and not worker.running:
            raise SystemExit(f"the worker stopped while waiting for {what}; see {worker.log_path}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _lose(url: str) -> None:
    """Drop the register's database and make it anew, empty, as a lost disk leaves it (from
    template1: the benchmark's register is the cluster's `postgres` database)."""
    parsed = make_url(url)
    connection = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname=template1"
    with psycopg.connect(connection, autocommit=True) as server:
        server.execute(f'DROP DATABASE "{parsed.database}" WITH (FORCE)')
        server.execute(f'CREATE DATABASE "{parsed.database}"')


if __name__ == "__main__":
    run_benchmark(main)
