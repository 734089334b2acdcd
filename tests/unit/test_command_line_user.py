"""Which `hub` commands audit what they change with the operating-system user they run as: those
that act as a user (`--user`), not a long-running service such as `hub worker`, whose support page
audits its signed-in users under their own names (`audit_log.os_user` stays empty for them)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

import hub.cli as hub_cli
from hub.cli.common import USER
from hub.register.access_log import command_line_os_user, os_user

SEEN: dict[str, str | None] = {}


@click.command(name="probe-service")
def _service() -> None:
    SEEN["service"] = command_line_os_user()


@click.command(name="probe-acting")
@USER
def _acting(user: str) -> None:
    SEEN["acting"] = command_line_os_user()


@pytest.fixture
def probes() -> Iterator[None]:
    for command in (_service, _acting):
        hub_cli.cli.add_command(command)
    try:
        yield
    finally:
        for command in (_service, _acting):
            hub_cli.cli.commands.pop(command.name or "")


@pytest.mark.usefixtures("probes")
def test_only_a_command_acting_as_a_user_names_the_os_user_and_only_while_it_runs() -> None:
    runner = CliRunner()
    assert runner.invoke(hub_cli.cli, ["probe-service"]).exit_code == 0
    assert runner.invoke(hub_cli.cli, ["probe-acting", "--user", "kari"]).exit_code == 0
    assert SEEN["service"] is None
    assert SEEN["acting"] == os_user()
    assert command_line_os_user() is None  # the mark ends with the command
