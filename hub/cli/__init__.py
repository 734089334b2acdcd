"""The `hub` command: the hub's commands, grouped in its help, with Faust's worker as `hub worker`
and the rest of Faust's command line under `hub faust`."""

from __future__ import annotations

import sys
from typing import Any

import click

from hub.cli.cases import cases_group, users_group
from hub.cli.operations import (
    folkeregister_group,
    idporten_group,
    lag_exporter,
    maskinporten_group,
    recover_command,
    show_settings,
    topics_group,
)
from hub.cli.register import backup_command, db_group, person_group, restore_command, retention_group
from hub.cli.reports import report
from hub.cli.run import demo, faust_group, gateway, worker
from hub.cli.sources import publish, receipts, rules_group, schemas_group, sources_group
from hub.errors import HubError


class SectionedGroup(click.Group):
    """A command group whose help lists its commands under headings, in the order given."""

    def __init__(self, name: str, sections: dict[str, list[click.Command]], **kwargs: Any) -> None:
        super().__init__(name, commands=[c for commands in sections.values() for c in commands], **kwargs)
        self.sections = {title: [c.name or "" for c in commands] for title, commands in sections.items()}

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.commands)
        for title, names in self.sections.items():
            with formatter.section(title):
                formatter.write_dl([(name, self.commands[name].get_short_help_str(limit)) for name in names])


def _install_masks() -> None:
    """Before any command: what a command prints is cleaned (`hub.domain.redaction`), and its
    masks are keyed with this installation's key, as the worker's are."""
    from hub.bootstrap import install_masks
    from hub.config import Settings

    install_masks(Settings.from_env())


cli = SectionedGroup(
    "hub",
    {
        "Run": [worker, gateway, demo],
        "Register": [db_group, backup_command, restore_command, person_group, retention_group],
        "Sources": [sources_group, schemas_group, publish, receipts, rules_group],
        "Cases": [cases_group, users_group],
        "Reports": [report],
        "Operations": [
            topics_group,
            recover_command,
            folkeregister_group,
            maskinporten_group,
            idporten_group,
            lag_exporter,
            show_settings,
            faust_group,
        ],
    },
    help="The NIR integration hub: transfers the municipalities' registrations to the register.",
    callback=_install_masks,
)


click.version_option(package_name="nir-hub", prog_name="hub", message="%(prog)s %(version)s")(cli)


def main() -> None:
    try:
        cli.main(prog_name="hub")
    except HubError as exc:
        click.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
