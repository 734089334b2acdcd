"""The help's "Run" section: the worker (Faust's, with the rest of Faust's command line under
`hub faust`), and the demo. The gateway's and the lag exporter's commands start through
`hub.cli.services`."""

from __future__ import annotations

import copy
import sys
from typing import TYPE_CHECKING, Any

import click

from hub.cli.services import run_service
from hub.config import Settings

if TYPE_CHECKING:
    from hub.app import HubApp


@click.command(name="demo", help="Run the hub end to end on the embedded defaults.")
@click.option("--keep-broker", is_flag=True, help="Leave a broker the demo started running.")
@click.option("--support", is_flag=True, help="Then keep serving the support page, until Ctrl-C.")
@click.option(
    "--disaster",
    is_flag=True,
    help="Then back up the register, send more events, lose the register, restore and recover it.",
)
def demo(keep_broker: bool, support: bool, disaster: bool) -> None:
    from hub.dev.demo import run_demo

    sys.exit(run_demo(keep_broker=keep_broker, support=support, disaster=disaster))


def _faust_commands(wired: HubApp) -> click.Group:
    """Faust's command line, run on the hub's app, whose `worker` first runs `prepare_worker`.

    A copy: Faust's own group stays as Faust made it. The preparation hangs on the worker's
    callback, which click calls only once the arguments are parsed (never for `--help`).
    """
    from faust.cli.faust import cli as faust_cli

    faust_worker = faust_cli.commands["worker"]
    assert faust_worker.callback is not None
    start_worker = faust_worker.callback

    def prepared_worker(*args: Any, **kwargs: Any) -> Any:
        wired.prepare_worker()
        return start_worker(*args, **kwargs)

    worker_command = copy.copy(faust_worker)
    worker_command.callback = prepared_worker
    group = copy.copy(faust_cli)
    group.commands = {**faust_cli.commands, "worker": worker_command}
    group.help = "Faust's own commands (agents, tables, send, worker, ...), run on the hub's app."
    return group


def _run_faust(args: list[str], prog_name: str) -> None:
    """Run Faust's command line with `args`, as `app.main()` does: the app is handed to it."""
    from hub.app import create_app

    wired = create_app(Settings.from_env())
    _faust_commands(wired).main(args=args, prog_name=prog_name, app=wired.app)


# Everything after the command's name goes to Faust unread, `--help` included.
_TO_FAUST = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.command(
    name="worker",
    context_settings=_TO_FAUST,
    short_help="Run the hub's worker (Faust's; `hub worker --help`).",
    help="Run the hub's worker: read the sources' topics, write the register, send receipts "
    "(Faust's worker; `hub worker --help` lists its options).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    _run_faust(["worker", *args], "hub")


@click.command(
    name="faust",
    context_settings=_TO_FAUST,
    short_help="Faust's own commands: `hub faust --help`.",
    help="Faust's own commands (agents, tables, send, ...) on the hub's app: `hub faust --help`.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def faust_group(args: tuple[str, ...]) -> None:
    _run_faust(list(args), "hub faust")


@click.command(
    name="gateway",
    help="Serve the HTTPS ingestion API for fagsystems (Maskinporten tokens; POST /v1/events, "
    "GET /v1/receipts, GET /v1/incidents) on NIR_GATEWAY_HOST:NIR_GATEWAY_PORT, as the gateway's Kafka principal.",
)
def gateway() -> None:
    from hub.gateway.server import serve

    def describe(s: Settings) -> str:
        scheme = "https" if s.gateway_tls_cert_file else "http"
        return f"gateway on {scheme}://{s.gateway_host}:{s.gateway_port} as {s.kafka_gateway_user}"

    run_service(serve, describe)
