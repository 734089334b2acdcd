"""Drawing a report as a bar chart (PNG), for those who would rather look than read."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render straight to a file

import matplotlib.pyplot as plt

from hub.domain.municipalities import municipality_on
from hub.register.reports import Report


def draw(report: Report, *, title: str, path: Path) -> None:
    """Bars per municipality (first column), one series per category column, the last column's
    numbers as the heights."""
    columns = list(report.columns)
    value_index = len(columns) - 1
    # The category is the last text column before the value (scheme, status, activity ...).
    category_index = max(i for i in range(1, value_index) if columns[i] != "year")
    series: dict[str, dict[str, float]] = defaultdict(dict)
    municipalities: list[str] = []
    for row in report.rows:
        municipality = str(row[0])
        if municipality not in municipalities:
            municipalities.append(municipality)
        series[str(row[category_index])][municipality] = float(row[value_index])  # type: ignore[arg-type]

    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 * len(municipalities) + 3), 4.5), dpi=100)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(sorted(series.items())):
        xs = [j + i * width for j in range(len(municipalities))]
        axes.bar(xs, [values.get(m, 0.0) for m in municipalities], width=width, label=name)
    axes.set_xticks([j + 0.4 - width / 2 for j in range(len(municipalities))])
    axes.set_xticklabels([_label(m) for m in municipalities], rotation=30, ha="right")
    axes.set_ylabel(columns[value_index].replace("_", " "))
    axes.set_title(title)
    if series:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def _label(number: str) -> str:
    import datetime as dt

    municipality = municipality_on(number, dt.date.today())
    return f"{number} {municipality.name}" if municipality else number
