"""What the `hub` commands share: the hub they act on, listings, the acting user and the reason
for a read, and persons' numbers taken from standard input or a file, never the command line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hub.bootstrap import Hub


@functools.cache
def the_hub() -> Hub:
    """The hub on the settings of the environment: its register, sources and contract (not the
    worker's Faust app, which no command but `hub worker` and `hub faust` needs)."""
    from hub.config import Settings

    return Hub.from_settings(Settings.from_env())


def migrated_hub() -> Hub:
    """The hub, once its register is known to be at the newest migration (else a clear error)."""
    from hub.register.migrate import require_current

    hub = the_hub()
    require_current(hub.engine)
    return hub


AS_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object a line, no header.")


LIMIT = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Show at most this many; a notice on stderr says when there are more.",
)


def echo_listing(
    rows: list[dict[str, Any]],
    columns: dict[str, Callable[[dict[str, Any]], Any]],
    *,
    as_json: bool,
    limit: int,
    what: str,
) -> None:
    """Print a list command's `rows` as a table under a header of `columns`, or as JSON Lines.

    Given up to `limit` + 1 rows, it shows `limit` and says on stderr when there were more: a
    list cut short must not pass for the whole.
    """
    shown = rows[:limit]
    if as_json:
        for row in shown:
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        table = [list(columns)] + [
            ["-" if (value := cell(row)) is None else str(value) for cell in columns.values()]
            for row in shown
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        for line in table:
            click.echo(
                "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            )
    if len(rows) > limit:
        click.echo(f"only the first {limit} {what} are shown; there are more (--limit)", err=True)


def os_user() -> str:
    from hub.register.access_log import os_user

    return os_user()


def _acting_as(ctx: click.Context, _param: click.Parameter, user: str) -> str:
    """A command that acts as a user (`--user`) audits what it changes with the OS user it runs
    as too (`hub.register.access_log.on_the_command_line`), until it ends. Only such commands: a
    long-running service (`hub worker`, whose support page audits its signed-in users) has none."""
    from hub.register.access_log import on_the_command_line

    ctx.call_on_close(on_the_command_line())
    return user


USER = click.option(
    "--user",
    default=os_user,
    show_default="the OS user",
    callback=_acting_as,
    help="Who is acting (for the audit log); the operating-system user is recorded beside it.",
)


READ_REASON = click.option(
    "--reason",
    required=True,
    help="Why you read this person's data (kept in the access log with who and when).",
)


IDENTIFIER_FILE = click.option(
    "--file",
    "identifier_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the person's number (else it is read from standard input).",
)


def numbers_in(metavar: str = "< NUMBER-FILE") -> Callable[[Any], Any]:
    """A command that takes a person's number (or numbers) on standard input or with --file: the
    --file option, and an `identifier` argument that is there only to refuse a number given on
    the command line (`read_identifiers`) with how to give it instead."""

    def decorate(command: Any) -> Any:
        return click.argument("identifier", required=False, metavar=metavar)(IDENTIFIER_FILE(command))

    return decorate


def read_identifier(on_command_line: str | None, file: Path | None) -> str:
    """The person's number, from `--file` or standard input; see `read_identifiers`."""
    [number] = read_identifiers(on_command_line, file, ["The person's number (not shown)"])
    return number


def read_identifiers(on_command_line: str | None, file: Path | None, prompts: list[str]) -> list[str]:
    """One number per prompt, from `--file` or standard input (one per line; asked for, unechoed,
    at a terminal): never from the command line, where it would stay in the shell's history and be
    seen by anyone listing processes. A number given there is refused with how to give it instead."""
    if on_command_line is not None:
        raise click.UsageError(
            "a person's number is not taken on the command line (it would stay in the shell's history "
            "and the process list); give it on standard input (`< FILE`, or type it when asked) "
            "or with --file FILE"
        )
    if file is not None:
        numbers = file.read_text(encoding="utf-8").split()
    elif sys.stdin.isatty():
        numbers = [click.prompt(prompt, hide_input=True, err=True).strip() for prompt in prompts]
    else:
        numbers = sys.stdin.read().split()
    whole = all(len(n) in (11, 12) and n.isascii() and n.isdigit() for n in numbers)
    if len(numbers) != len(prompts) or not whole:
        one = "one whole fødselsnummer, D-number (11 digits) or DUF number (12 digits)"
        raise click.UsageError(
            f"give {one}" if len(prompts) == 1 else f"give {len(prompts)} numbers, one per line, each {one}"
        )
    return numbers
