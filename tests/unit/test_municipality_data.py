"""The shipped municipality lists and change tables: they agree with each other, and
`tools/municipalities.py` reproduces them from SSB's KLASS API and from SSB's CSVs."""

from __future__ import annotations

import csv
import datetime as dt
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import hub.domain.municipalities
from tools import municipalities as tool

DATA = Path(hub.domain.municipalities.__file__).parent / "data"
SSB_CSVS = Path(__file__).resolve().parent.parent / "data" / "ssb"


def _rows(file_name: str) -> list[dict[str, str]]:
    with (DATA / file_name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


INDEX = _rows("kommuner-versjoner.csv")
STEPS = [r for r in INDEX if r["endringer"]]


def _list_before(step: dict[str, str]) -> str:
    return INDEX[INDEX.index(step) - 1]["liste"]


def test_the_index_names_a_list_for_every_year_from_2018_to_2026_and_says_2025_and_2026_changed_nothing() -> (
    None
):
    assert [int(r["aar"]) for r in INDEX] == list(range(2018, 2027))
    by_year = {int(r["aar"]): r for r in INDEX}
    for year in (2021, 2022, 2023, 2025, 2026):
        assert by_year[year]["endringer"] == "" and by_year[year]["liste"] == by_year[year - 1]["liste"]
    assert [r["liste"] for r in STEPS] == ["kommuner-2019.csv", "kommuner-2020.csv", "kommuner-2024.csv"]
    assert hub.domain.municipalities.CHECKED_THROUGH == 2026


@pytest.mark.parametrize("step", STEPS, ids=[s["endringer"] for s in STEPS])
def test_each_change_table_agrees_with_the_lists_before_and_after_it(step: dict[str, str]) -> None:
    old = {r["kommunenummer"]: r["navn"] for r in _rows(_list_before(step))}
    new = {r["kommunenummer"]: r["navn"] for r in _rows(step["liste"])}
    changes = _rows(step["endringer"])
    # Every source is in the earlier list and every target in the later one, under its name there.
    assert all(old.get(r["fra_nummer"]) == r["fra_navn"] for r in changes)
    assert all(new.get(r["til_nummer"]) == r["til_navn"] for r in changes)
    # Every number gone is in the table, and every new one comes from somewhere.
    assert old.keys() - new.keys() <= {r["fra_nummer"] for r in changes}
    assert new.keys() - old.keys() <= {r["til_nummer"] for r in changes}
    # `delt` says exactly which municipalities were split among several.
    targets = {
        f: {r["til_nummer"] for r in changes if r["fra_nummer"] == f}
        for f in {r["fra_nummer"] for r in changes}
    }
    assert all((r["delt"] == "1") == (len(targets[r["fra_nummer"]]) > 1) for r in changes)
    # A row keeping its number records a renaming, nothing else.
    assert all(r["fra_navn"] != r["til_navn"] for r in changes if r["fra_nummer"] == r["til_nummer"])


def test_the_lists_have_the_municipalities_ssb_counted_and_no_name_lost_a_letter() -> None:
    sizes = {r["liste"]: len(_rows(r["liste"])) for r in INDEX}
    assert sizes == {
        "kommuner-2018.csv": 422,
        "kommuner-2019.csv": 422,
        "kommuner-2020.csv": 356,
        "kommuner-2024.csv": 357,
    }
    for file_name in sizes:
        assert all("?" not in r["navn"] and len(r["kommunenummer"]) == 4 for r in _rows(file_name)), file_name
    # Mended from SSB's change table, where the list had lost the letter.
    assert {r["kommunenummer"]: r["navn"] for r in _rows("kommuner-2019.csv")}[
        "2021"
    ] == "Kárášjohka - Karasjok"


def test_the_known_changes_are_there_baerum_renumbered_haram_merged_and_split_out_snillfjord_split() -> None:
    pairs = {(r["fra_nummer"], r["til_nummer"], r["delt"]) for s in STEPS for r in _rows(s["endringer"])}
    assert {("0219", "3024", "0"), ("3024", "3201", "0"), ("1534", "1507", "0")} <= pairs
    assert {("1507", "1508", "1"), ("1507", "1580", "1")} <= pairs
    assert {("5012", "5055", "1"), ("5012", "5056", "1"), ("5012", "5059", "1")} <= pairs


def _shipped() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in DATA.glob("*.csv")}


def _generated(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.glob("*.csv")}


def test_regenerating_from_ssbs_csvs_reproduces_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    assert tool.main(["--out", str(tmp_path), "csv", str(SSB_CSVS)]) == 0
    assert _generated(tmp_path) == _shipped()


def test_a_change_table_that_misses_a_gone_number_stops_the_tool_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for path in SSB_CSVS.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        if path.name == "kommuner-endringer-2019-2020.csv":
            text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("0219,"))
        (source / path.name).write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    assert tool.main(["--out", str(out), "csv", str(source)]) == 1
    assert not out.exists()


def _klass_from_shipped() -> type[BaseHTTPRequestHandler]:
    """A stand-in for SSB's KLASS API answering from the shipped files, in KLASS's JSON shape."""
    lists = {int(r["aar"]): _rows(r["liste"]) for r in INDEX}
    changes = [(dt.date(int(s["aar"]), 1, 1), r) for s in STEPS for r in _rows(s["endringer"])]

    class KlassStandIn(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/api/klass/v1/classifications/131/codesAt":
                rows = lists[dt.date.fromisoformat(query["date"]).year]
                codes = [{"code": r["kommunenummer"], "name": r["navn"], "level": "1"} for r in rows]
                body: object = {"codes": [*codes, {"code": "9999", "name": "Uoppgitt", "level": "1"}]}
            elif url.path == "/api/klass/v1/classifications/104/codesAt":
                rows = lists[dt.date.fromisoformat(query["date"]).year]
                counties = {r["fylkesnummer"]: r["fylkesnavn"] for r in rows}
                body = {"codes": [{"code": c, "name": n, "level": "1"} for c, n in sorted(counties.items())]}
            elif url.path == "/api/klass/v1/classifications/131/changes":
                start, end = dt.date.fromisoformat(query["from"]), dt.date.fromisoformat(query["to"])
                body = {
                    "codeChanges": [
                        {
                            "oldCode": r["fra_nummer"],
                            "oldName": r["fra_navn"],
                            "newCode": r["til_nummer"],
                            "newName": r["til_navn"],
                            "changeOccurred": day.isoformat(),
                        }
                        for day, r in changes
                        if start <= day < end  # SSB: from inclusive, to exclusive
                    ]
                }
            else:
                self.send_error(404)
                return
            payload = json.dumps(body).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return KlassStandIn


@pytest.fixture
def klass() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _klass_from_shipped())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/klass/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_regenerating_from_the_klass_api_reproduces_the_shipped_files_byte_for_byte(
    klass: str, tmp_path: Path
) -> None:
    assert tool.main(["--out", str(tmp_path), "klass", "--base-url", klass]) == 0
    assert _generated(tmp_path) == _shipped()
