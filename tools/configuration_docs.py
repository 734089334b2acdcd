"""Write the table of settings in `docs/operations/configuration.md` from `hub.config.Settings`.

Each setting's environment variable, default and meaning are declared once, in `hub/config.py`
(`_setting(name, default, doc)`); the configuration page shows them as a table, generated here
between two markers. The prose around the table is written by hand and left as it is.

    python -m tools.configuration_docs           # rewrite the table (run from the checkout)
    python -m tools.configuration_docs --check   # exit 1, saying so, if the page is stale

A default that depends on the machine (a path under the home directory or the installed package)
is written as its setting's `shown` says, so the page is the same on every machine.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

from hub.config import PACKAGE_DIR, Settings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "operations" / "configuration.md"
BEGIN = "<!-- The table below is generated from hub/config.py: run `python -m tools.configuration_docs`. -->"
END = "<!-- End of the generated table. -->"
REGENERATE = "python -m tools.configuration_docs"


class StalePage(Exception):
    """The page's table is not what the settings give."""


def _cell(text: str) -> str:
    """Markdown table text: a `|` would end the cell, and a `<name>` outside backticks would be
    taken for an HTML tag and hidden."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(
        part if part.startswith("`") else part.replace("<", "&lt;").replace(">", "&gt;") for part in parts
    ).replace("|", "\\|")


def _default(f: Field[Any]) -> str:
    if f.metadata["shown"]:
        return str(f.metadata["shown"])
    value = f.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    text = str(value)
    for local in (str(Path.home()), str(PACKAGE_DIR)):
        if local in text:
            raise ValueError(
                f"{f.metadata['env']}'s default {text!r} depends on this machine: give its _setting a "
                "shown= that says what it is"
            )
    return f"`{text}`" if text else ""


def table() -> str:
    """The settings as a Markdown table, in the order `Settings` declares them."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        rows.append(f"| `{f.metadata['env']}` | {_default(f)} | {_cell(f.metadata['doc'])} |")
    return "\n".join(rows)


def render(page: str) -> str:
    """The page with the table between its markers replaced by the one the settings give."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{PAGE.name} lacks the markers the table goes between:\n{BEGIN}\n{END}")
    return page[: start + len(BEGIN)] + "\n" + table() + "\n" + page[end:]


def check(path: Path = PAGE) -> None:
    """Raise `StalePage` when the page's table is not the one the settings give."""
    page = path.read_text(encoding="utf-8")
    if render(page) != page:
        name = "docs/operations/configuration.md" if path == PAGE else str(path)
        raise StalePage(
            f"{name} is stale: its table of settings is not what hub/config.py declares. "
            f"Run `{REGENERATE}` to regenerate it."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only say whether the page is stale")
    args = parser.parse_args(argv)
    if args.check:
        try:
            check()
        except StalePage as stale:
            print(stale, file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(render(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
