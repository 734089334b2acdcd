"""The HTTPS gateway under load: N concurrent clients post events (batches of B) with a
Maskinporten token; reported are requests/s and events/s, the latency from a POST to the event's
receipt being readable from GET /v1/receipts (p50, p99), and the ratio of the gateway's events/s
to producing the same number of events directly with `FagsystemProducer` in the same run.

One worker (SQLite register) and one gateway (over HTTP on this machine, so TLS is not in the
figures) run as processes; a Maskinporten stand-in grants the token.

    python bench/gateway.py [--clients 8] [--batch 10] [--events 4000]

With `--flood N` it instead posts N events (each with its receipt coming, as in production)
with the gateway's state bounds set low (`--kept`), and prints the gateway process's resident
memory every 5,000 events, so one can see it stay flat once the bounds are reached:

    python bench/gateway.py --flood 50000 [--kept 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    SOURCE,
    admin,
    bench_settings,
    broker,
    fresh_register,
    machine,
    national_ids,
    prepare_topics,
    run_benchmark,
)
from hub.config import Settings
from hub.connectors.fagsystem import FagsystemProducer
from hub.dev.localrun import WorkerProcess, free_port
from hub.dev.maskinporten_standin import (
    MaskinportenStandIn,
    RegisteredClient,
    make_client_keys,
    serving,
)
from hub.maskinporten import MaskinportenClient, MaskinportenTokens, generate_rsa_key, read_private_key


def events(count: int) -> list[dict[str, Any]]:
    """`count` valid TRAINING_CLAIM events of distinct persons, in the contract's JSON shape."""
    fact_date = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    return [
        {
            "eventId": str(uuid.uuid4()),
            "eventType": "TRAINING_CLAIM",
            "factDate": fact_date,
            "sentAt": dt.datetime.now(dt.UTC).isoformat(),
            "sourceSystem": SOURCE,
            "municipality": "0301",
            "person": {"nationalId": national_id, "dufNumber": None},
            "payload": {"claimedWithinDeadline": True},
        }
        for national_id in national_ids(count)
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def post_all(
    url: str, token: str, batches: list[list[dict[str, Any]]], clients: int
) -> tuple[dict[str, float], float, int]:
    """Post every batch with `clients` concurrent clients; when each event's POST began, the
    seconds it took, and how many requests were made."""
    posted: dict[str, float] = {}
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    headers = {"Authorization": f"Bearer {token}"}

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            began = time.monotonic()
            async with session.post(url + "/v1/events", json={"events": batch}, headers=headers) as response:
                body = await response.json()
                assert response.status == 202, body
            for result in body["results"]:
                assert result["status"] == "accepted", result
                posted[result["eventId"]] = began

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return posted, time.monotonic() - started, len(batches)


async def follow_receipts(url: str, token: str, wanted: int, seen: dict[str, float], timeout: float) -> None:
    """Long-poll the receipts, noting when each event's receipt was first readable."""
    headers = {"Authorization": f"Bearer {token}"}
    cursor = ""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while len(seen) < wanted and time.monotonic() < deadline:
            query = {"limit": "1000", "wait": "5", **({"after": cursor} if cursor else {})}
            async with session.get(url + "/v1/receipts", params=query, headers=headers) as response:
                body = await response.json()
            now = time.monotonic()
            for receipt in body["receipts"]:
                seen.setdefault(receipt["eventId"], now)
            cursor = body["cursor"]


async def direct(settings: Settings, sample: list[dict[str, Any]]) -> float:
    """Seconds to send the same number of events with FagsystemProducer (checked, keyed, acked)."""
    async with FagsystemProducer(admin(settings), SOURCE, topic_prefix=settings.topic_prefix) as producer:
        started = time.monotonic()
        await producer.send_many_json(sample)
        return time.monotonic() - started


def rss_kib(pid: int) -> int:
    """A process's resident set size in KiB (Linux: /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def flood(
    url: str, token: str, count: int, batch: int, clients: int, pid: int, every: int = 5000
) -> list[tuple[int, int]]:
    """Post `count` events, noting the gateway's RSS each time another `every` were accepted."""
    samples = [(0, rss_kib(pid))]
    print(f"  {0:>8} events posted   gateway RSS {samples[0][1] / 1024:8.1f} MiB", flush=True)
    posted = 0
    next_sample = every
    for start in range(0, count, every):
        part = events(min(every, count - start))
        batches = [part[i : i + batch] for i in range(0, len(part), batch)]
        await post_all(url, token, batches, clients)
        posted += len(part)
        if posted >= next_sample or posted == count:
            samples.append((posted, rss_kib(pid)))
            print(f"  {posted:>8} events posted   gateway RSS {samples[-1][1] / 1024:8.1f} MiB", flush=True)
            next_sample += every
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument(
        "--flood", type=int, default=0, help="post this many events and print the gateway's RSS"
    )
    parser.add_argument(
        "--kept", type=int, default=5000, help="with --flood: the gateway's receipts kept and pending bound"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nir-bench-gateway-"))
    url_db = f"sqlite:///{work}/register.sqlite3"
    fresh_register(url_db)
    client_id = "bench-fagsystem"
    kid, private_file, _ = make_client_keys(work / "keys", client_id)
    public = read_private_key(private_file).public_key()
    stand_in = MaskinportenStandIn(
        generate_rsa_key(),
        {
            client_id: RegisteredClient(
                client_id,
                "974760673",
                {kid: public},
                frozenset({"nir:registrations"}),
                frozenset({"nir-gateway"}),
            )
        },
    )
    registry = work / "sources.toml"
    registry.write_text(
        f'[sources.{SOURCE}]\nname = "bench"\nmunicipalities = ["0301"]\n'
        f'authentication = "maskinporten"\nprincipal = "{client_id}"\n'
    )
    with serving(stand_in) as issuer:
        settings = bench_settings(
            broker(),
            url_db,
            work,
            sources_file=str(registry),
            maskinporten_issuer=issuer,
            gateway_jwks_url=issuer + "jwks",
            gateway_port=free_port(),
            gateway_metrics_port=0,
            gateway_rate_per_second=1e6,
            gateway_rate_burst=1_000_000,
            **({"gateway_receipts_kept": args.kept, "gateway_pending_max": args.kept} if args.flood else {}),
        )
        prepare_topics(settings)
        worker = WorkerProcess(settings, work / "worker.log", log_level="warn").start()
        gateway = WorkerProcess(settings, work / "gateway.log", command=("gateway",)).start()
        url = f"http://127.0.0.1:{settings.gateway_port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(url + "/health/ready", timeout=2):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "the gateway did not become ready"
                    time.sleep(0.3)
            client = MaskinportenClient(
                issuer + "token", issuer, client_id, private_file, kid, "nir:registrations", "nir-gateway"
            )
            token = asyncio.run(MaskinportenTokens(client).token())
            if args.flood:
                print(machine())
                print(
                    f"gateway flood: {args.flood} events, {args.clients} clients, batches of {args.batch}, "
                    f"{args.kept} receipts kept and {args.kept} pending at most"
                )
                assert gateway.process is not None
                asyncio.run(flood(url, token, args.flood, args.batch, args.clients, gateway.process.pid))
                return

            sample = events(2 * args.events)
            over_http, over_kafka = sample[: args.events], sample[args.events :]
            batches = [over_http[i : i + args.batch] for i in range(0, len(over_http), args.batch)]

            async def run() -> tuple[dict[str, float], float, int, dict[str, float]]:
                seen: dict[str, float] = {}
                follower = asyncio.create_task(follow_receipts(url, token, len(over_http), seen, timeout=300))
                posted, seconds, requests = await post_all(url, token, batches, args.clients)
                await follower
                return posted, seconds, requests, seen

            posted, seconds, requests, seen = asyncio.run(run())
            direct_seconds = asyncio.run(direct(settings, over_kafka))
        finally:
            gateway.stop()
            worker.stop()

    latencies = [seen[e] - posted[e] for e in posted if e in seen]
    print(machine())
    print(f"gateway: {args.clients} clients, batches of {args.batch}, {len(over_http)} events")
    print(f"  requests/s   {requests / seconds:8.1f}")
    print(f"  events/s     {len(over_http) / seconds:8.1f}")
    print(
        f"  POST to receipt readable: p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms ({len(latencies)} of {len(posted)} receipts)"
    )
    print(f"direct (FagsystemProducer.send_many_json): {len(over_kafka) / direct_seconds:8.1f} events/s")
    print(f"  gateway / direct: {len(over_http) / seconds / (len(over_kafka) / direct_seconds):.2f}")


if __name__ == "__main__":
    run_benchmark(main)
