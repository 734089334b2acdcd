"""The help's "Reports" section."""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli import common


@click.command(
    name="report",
    short_help="Statistics as CSV: participants, status, exits, late.",
    help="Statistics from the register as CSV: participants, status, exits, late.",
)
@click.argument("name", type=click.Choice(["participants", "status", "exits", "late"]))
@click.option("--year", type=int, help="The year to report on (default: this year in Norway).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the CSV here.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), help="Also draw it as a PNG.")
def report(name: str, year: int | None, output: Path | None, chart: Path | None) -> None:
    import csv
    import io

    from hub.register.reports import reported_for

    hub = common.migrated_hub()
    # This year as Oslo's calendar has it (the machine's zone may be UTC: on 31 December after
    # 23:00 UTC it is already the next year in Norway).
    year = hub.today().year if year is None else year
    with hub.unit_of_work() as uow:
        # The source registry settles which part of a split a registration belongs to.
        result = uow.reports.report(name, year, reported_for(hub.registry, hub.names.source_of))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    if output is not None:
        output.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        click.echo(buffer.getvalue(), nl=False)
    if chart is not None:
        from hub.register.charts import draw

        draw(result, title=f"{name} {year}", path=chart)
        click.echo(f"chart written to {chart}", err=True)
