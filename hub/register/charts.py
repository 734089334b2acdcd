"""Drawing a report as a bar chart (PNG), for those who would rather look than read."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hub.register.reports import Report

NO_DATA = "no data"


def draw(report: Report, *, title: str, path: Path) -> Figure:
    """Save the report as a PNG at `path`: bars per municipality, one series per combination of
    the report's series columns. Returns the figure, so what was drawn can be inspected."""
    municipalities, series = _grouped(report)
    # Room for each municipality's group of bars, and for the legend beside them.
    width = 3.0 + len(municipalities) * (0.5 + 0.25 * len(series)) + (3.0 if report.series else 0.0)
    # A figure of its own rather than pyplot's: no global state to close, nothing shared
    # between reports drawn side by side.
    figure = Figure(figsize=(max(6.0, width), 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    if series:
        _bars(figure, report, municipalities, series)
    else:
        # Empty axes would look like a drawing error; say why there is nothing to see.
        axes.set_axis_off()
        axes.text(0.5, 0.5, NO_DATA, transform=axes.transAxes, ha="center", va="center", fontsize="large")
    figure.savefig(path, format="png")
    return figure


def _grouped(report: Report) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The municipalities ("0301 Oslo") in the report's order, and per series label the height
    of its bar for each municipality that has one."""
    number, name = report.columns.index("municipality"), report.columns.index("municipality_name")
    value = report.columns.index(report.value)
    keys = [report.columns.index(c) for c in report.series]
    municipalities: list[str] = []
    series: dict[str, dict[str, float]] = {}
    for row in report.rows:
        municipality = f"{row[number]} {row[name]}".strip()
        if municipality not in municipalities:
            municipalities.append(municipality)
        # A report without series columns is one series, named for what it shows.
        values = series.setdefault(": ".join(str(row[k]) for k in keys) or report.value, {})
        if municipality in values:
            # Two rows drawn as one bar would hide one of them (the bug of Oslo's two schemes).
            raise ValueError(
                f"two rows for {row[number]} in one series: the report needs another series column"
            )
        height = float(row[value])  # type: ignore[arg-type]
        values[municipality] = 100 * height if report.share else height
    return municipalities, series


def _bars(
    figure: Figure, report: Report, municipalities: list[str], series: dict[str, dict[str, float]]
) -> None:
    (axes,) = figure.axes
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(sorted(series.items())):
        # Only the bars a row gives: a missing combination is no bar, not a bar of height 0.
        positions = [municipalities.index(m) - 0.4 + width * (i + 0.5) for m in values]
        bars = axes.bar(positions, list(values.values()), width=width, label=label)
        # The figure on each bar: a share of 0 % draws no bar at all, and is not "no data".
        axes.bar_label(bars, fmt="{:.1f} %" if report.share else "{:.0f}", fontsize="small")
    axes.set_xticks(range(len(municipalities)), municipalities, rotation=30, ha="right")
    axes.set_xlim(-0.5, len(municipalities) - 0.5)
    label = report.value.replace("_", " ")
    if report.share:
        axes.set_ylim(0, 100)  # a share is read against the whole, not against the largest bar
        axes.set_ylabel(f"{label} (%)")
    else:
        highest = max(h for values in series.values() for h in values.values())
        axes.set_ylim(0, max(1.0, 1.15 * highest))  # room above the tallest bar for its figure
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # no 1.5 persons
        axes.set_ylabel(label)
    if report.series:
        # Outside the axes, to the right: a legend inside may hide a bar.
        figure.legend(loc="outside right upper", fontsize="small")
