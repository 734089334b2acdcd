"""Running the hub's processes on this machine: the local Kafka broker, worker subprocesses and
the local stand-ins' web servers.

Used by `hub demo`, the tests and the benchmarks, so that all start things the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from hub.config import LOCAL_KAFKA_DIR, PACKAGE_DIR, Settings
from hub.errors import ConfigurationError
from hub.kafka.admin import broker_answers
from hub.ops.logs import silenced

KAFKA_SCRIPT = PACKAGE_DIR.parent / "deploy" / "kafka" / "kafka.sh"
LOCAL_ADMIN = "nir-admin"  # the super user the local broker's first start makes (kafka.sh)


@dataclass(frozen=True)
class LocalBroker:
    """A broker started by deploy/kafka/kafka.sh: its address, and the directory with its CA
    (tls/ca.pem) and the passwords of the principals (secrets/)."""

    bootstrap: str
    data_dir: Path

    def settings(self, base: Settings | None = None) -> Settings:
        """`base` (default: the defaults) pointed at this broker, as the worker principal."""
        return dataclasses.replace(
            base or Settings(),
            kafka_bootstrap=self.bootstrap,
            kafka_ca_file=str(self.data_dir / "tls" / "ca.pem"),
            kafka_secrets_dir=str(self.data_dir / "secrets"),
        )


def _kafka(command: str, env: Mapping[str, str] | None, *options: str) -> str:
    if not KAFKA_SCRIPT.exists():
        raise ConfigurationError(
            f"no local broker script at {KAFKA_SCRIPT}: run from a clone of the repository, "
            "or point NIR_KAFKA_BOOTSTRAP at a running Kafka"
        )
    result = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), command, *options],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigurationError(f"local broker {command} failed:\n{result.stderr.strip()}")
    return result.stdout.strip()


def local_admin(settings: Settings) -> Settings:
    """`settings` as the local broker's admin: the demo, the tests and the benchmarks prepare
    and read topics as it."""
    return settings.as_kafka_user(LOCAL_ADMIN)


def local_broker_answers(settings: Settings) -> bool:
    """Does the broker answer the local admin (and has this machine its CA and password)?

    Quietly: the Kafka client's "unable to connect" is the answer, not news."""
    try:
        with silenced("aiokafka"):
            return asyncio.run(broker_answers(local_admin(settings).kafka))
    except ConfigurationError:
        return False  # no CA or password yet: the local broker has never started


def start_local_broker(env: Mapping[str, str] | None = None, *options: str) -> LocalBroker:
    """Start the local broker (see deploy/kafka/kafka.sh; `options` such as "--brokers", "3"
    for a cluster, or "--node", "2" for one node of it) and say where it is."""
    address = _kafka("start", env, *options).splitlines()[-1]
    data_dir = (env or {}).get("NIR_KAFKA_DATA_DIR") or os.environ.get("NIR_KAFKA_DATA_DIR")
    return LocalBroker(address, Path(data_dir) if data_dir else LOCAL_KAFKA_DIR)


def stop_local_broker(env: Mapping[str, str] | None = None, *options: str) -> None:
    _kafka("stop", env, *options)


HUB_CLI = ("-m", "hub.cli")


@dataclass
class WorkerProcess:
    """`hub worker` (or another long-running hub command) in a subprocess, configured by
    `settings`, logging to `log_path`."""

    settings: Settings
    log_path: Path
    log_level: str = "info"
    command: tuple[str, ...] = ()  # default: the worker
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)  # beside the settings
    program: tuple[str, ...] = HUB_CLI  # what the interpreter runs: the hub, or a benchmark's peer

    @classmethod
    def connector(cls, settings: Settings, log_path: Path) -> WorkerProcess:
        """`hub folkeregister connect`, as the connector's principal."""
        return cls(
            settings.as_kafka_user(settings.kafka_connector_user),
            log_path,
            command=("folkeregister", "connect"),
        )

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = self.log_path.open("ab")
        self._terminated = False
        self.process = subprocess.Popen(
            [sys.executable, *self.program, *self._arguments()],
            env={**os.environ, **self.settings.to_env(), **self.environment},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def _arguments(self) -> tuple[str, ...]:
        if self.command or self.program != HUB_CLI:
            return self.command
        return ("worker", "-l", self.log_level)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) without waiting: several can then stop together."""
        if self.running and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 30.0) -> int:
        """Stop gracefully (SIGTERM); SIGKILL if it does not stop in `timeout` seconds."""
        if self.running:
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the crash the delivery guarantees are tested against."""
        if self.running:
            self.process.kill()
        self.process.wait()


def isolated_settings(
    broker: LocalBroker, database_url: str, data_dir: Path, *, label: str, **changes: Any
) -> Settings:
    """Settings for a throwaway run beside others on the same broker (tests, benchmarks): its own
    topics (prefixed `label` and a random part), consumer group, ports and Faust data directory;
    synthetic identifiers allowed."""
    unique = uuid.uuid4().hex[:8]
    return dataclasses.replace(
        broker.settings(),
        database_url=database_url,
        topic_prefix=f"{label}{unique}",
        app_id=f"{label}-{unique}",
        allow_synthetic_identifiers=True,
        web_port=free_port(),
        connector_metrics_port=free_port(),
        data_dir=str(data_dir / f"faust-{unique}"),
        **changes,
    )


def free_port(pair: bool = False, *, run: int = 1) -> int:
    """A free TCP port on 127.0.0.1 and the `run` - 1 after it (2 if `pair`: a broker's client
    and controller ports; 6 for a cluster of three)."""
    run = max(run, 2 if pair else 1)
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if all(_free(port + i) for i in range(1, run)):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@contextmanager
def serve_in_background(app: web.Application, host: str, port: int, *, name: str) -> Iterator[int]:
    """Serve an aiohttp app from a thread with its own event loop; yields the bound port (`port` 0
    picks a free one). The stand-ins are served this way so a test or a command can go on in
    the calling thread, with or without an event loop of its own."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(app, access_log=None)
    bound: list[int] = []
    failed: list[OSError] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        started.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except OSError as exc:  # the port is taken, or the host is not this machine's
            failed.append(exc)
            started.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError(f"{name} did not start")
    if failed:
        thread.join(10)
        raise ConfigurationError(f"{name} cannot listen on {host}:{port}: {failed[0].strerror}")
    try:
        yield bound[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
