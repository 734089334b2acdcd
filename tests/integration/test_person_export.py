"""A person's right of access (GDPR art. 15, issue 30): the export holds everything the register
holds about the person, built by a scenario with a correction, a merge, tickets and addresses
(a protected one too), and nothing about anyone else; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.bootstrap import Hub
from hub.domain.events import AddressChange
from hub.register.access_log import Reader, record_ticket_read
from hub.register.addresses import record_address_change
from hub.register.identity import merge_persons
from hub.register.models import AccessLogEntry, AddressRecord, PersonIdentifier, RegistrationRecord
from hub.register.repository import find_person_id
from hub.register.unit_of_work import UnitOfWork
from hub.support.export import export_html, export_person
from hub.support.tickets import IDENTITY_CONFLICT_KIND, file_manual_case
from tests.conftest import pipeline_hub
from tests.decisions import days_ago, later, programme, run
from tests.factories import Person, event, synthetic_person
from tests.harness import hub_command

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def _address(sequence: int, person: Person, municipality: str, protection: str) -> AddressChange:
    return AddressChange(
        sequence_number=sequence,
        event_type="ADDRESS_CHANGED",
        national_id=person.national_id or "",
        recorded_at=NOW,
        moved_on=dt.date(2026, 11, sequence),
        municipality=municipality,
        protection=protection,
        address_kind="STREET_ADDRESS",
        address_line="Storgata 1" if protection == "UNGRADED" else None,
        postal_code="0155" if protection == "UNGRADED" else None,
        postal_place="OSLO" if protection == "UNGRADED" else None,
    )


@dataclasses.dataclass
class Scenario:
    hub: Hub
    one: Person
    one_duf_only: Person  # a second record of the same person, merged into the first
    other: Person
    person_id: int
    merge_id: int
    tickets: set[int]
    conflict: int
    corrected: dict[str, Any]


def scenario(database_url: str) -> Scenario:
    """Two persons. The first: a residence permit and a programme with its claim corrected, a second record (their DUF
    number alone) merged in by IMDi, an address and a protected one, a ticket of their own and
    an identity conflict with the other's number, and a read by the desk. The other: their own
    programme, address, ticket and a read."""
    hub = pipeline_hub(database_url)
    one, other = synthetic_person(), synthetic_person()
    one_duf_only = synthetic_person(with_national_id=False)
    claim, *rest = programme(one)
    correction = {
        **event(one, "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", fact_date=days_ago(41)),
        "action": "CORRECT",
        "correctsEventId": claim["eventId"],
        "sentAt": later(claim["sentAt"], 5),
    }
    permit = event(one, "RESIDENCE_PERMIT_REGISTERED", fact_date=days_ago(60))
    outcomes, _ = run(hub, [permit, claim, *rest], [correction], [event(one_duf_only)], programme(other))
    assert all(o == "ACCEPTED" for batch in outcomes for o in batch), outcomes
    with UnitOfWork(hub.session_factory) as uow:
        s = uow.session
        keeper, merged = (
            find_person_id(s, one.duf_number or ""),
            find_person_id(s, one_duf_only.duf_number or ""),
        )
        assert keeper is not None and merged is not None and keeper != merged
        merge = merge_persons(
            s, keeper, merged, reason="the same person, by UDI's papers", by="imdi", now=NOW
        )
        for sequence, who, municipality, protection in (
            (1, one, "0301", "UNGRADED"),
            (2, one, "4601", "CONFIDENTIAL"),
            (3, other, "5001", "UNGRADED"),
        ):
            assert record_address_change(s, _address(sequence, who, municipality, protection), NOW)
        own = file_manual_case(
            s, duf_number=one.duf_number or "", description="by hand", municipality="0301", now=NOW
        )
        conflict = file_manual_case(
            s, duf_number=one.duf_number or "", description="x", municipality="0301", now=NOW
        )
        conflict.kind, conflict.national_id = IDENTITY_CONFLICT_KIND, other.national_id  # names both
        theirs = file_manual_case(
            s, duf_number=other.duf_number or "", description="y", municipality="0301", now=NOW
        )
        s.flush()
        record_ticket_read(s, Reader.desk("kari"), "view_ticket", NOW, own)
        record_ticket_read(s, Reader.desk("ola"), "view_ticket", NOW, theirs)
        uow.commit()
        return Scenario(
            hub, one, one_duf_only, other, keeper, merge.id, {own.id, conflict.id}, conflict.id, correction
        )


def exported(s: Scenario) -> dict[str, Any]:
    with UnitOfWork(s.hub.session_factory) as uow:
        export = export_person(
            uow.session, s.hub.catalog, Reader.command_line("imdi", "request of access"), s.person_id, NOW
        )
        uow.commit()
    return export


def test_the_export_holds_everything_the_register_holds_about_the_person(database_url: str) -> None:
    s = scenario(database_url)
    export = exported(s)
    person = export["person"]
    with s.hub.session_factory() as session:
        identifiers = set(
            session.scalars(select(PersonIdentifier.value).where(PersonIdentifier.person_id == s.person_id))
        )
        registrations = set(
            session.scalars(
                select(RegistrationRecord.event_id).where(RegistrationRecord.person_id == s.person_id)
            )
        )
        addresses = set(
            session.scalars(
                select(AddressRecord.sequence_number).where(AddressRecord.person_id == s.person_id)
            )
        )
    assert identifiers == {s.one.national_id, s.one.duf_number, s.one_duf_only.duf_number}
    assert {i["value"] for i in person["identifiers"]} == identifiers
    assert {i["kind"] for i in person["identifiers"]} == {"fodselsnummer", "duf"}
    assert len(registrations) == 7  # a permit, the programme, its correction, the merged record's claim
    assert {r["eventId"] for r in person["registrations"]} == registrations
    [chain] = person["chains"]
    assert [v["eventId"] for v in chain["versions"]][-1] == s.corrected["eventId"]
    assert person["state"] and person["categories"] is not None
    assert {a["sequenceNumber"] for a in person["addresses"]} == addresses == {1, 2}
    # The protected address is the person's own: its municipality is in their export.
    assert {a["municipality"] for a in person["addresses"]} == {"0301", "4601"}
    assert [m["mergeId"] for m in person["merges"]] == [s.merge_id]
    assert {t["id"] for t in export["tickets"]} == s.tickets
    reads = export["accessLog"]
    assert [(r["actor"], r["action"]) for r in reads] == [("kari", "view_ticket"), ("imdi", "person_export")]
    assert reads[1]["reason"] == "request of access" and reads[1]["channel"] == "cli"


def test_the_export_for_one_person_holds_nothing_about_another(database_url: str) -> None:
    s = scenario(database_url)
    export = exported(s)
    text = json.dumps(export, ensure_ascii=False)
    page = export_html(export)
    with s.hub.session_factory() as session:
        others = find_person_id(session, s.other.duf_number or "")
        their_events = set(
            session.scalars(select(RegistrationRecord.event_id).where(RegistrationRecord.person_id == others))
        )
    assert their_events
    for theirs in (s.other.national_id, s.other.duf_number, "5001", "ola", *their_events):
        assert theirs and theirs not in text and theirs not in page, theirs
    [conflict] = [t for t in export["tickets"] if t["id"] == s.conflict]
    assert conflict["namesAnotherPerson"] and conflict["event"] is None
    assert conflict["dufNumber"] == s.one.duf_number and conflict["nationalId"] is None


def test_the_page_for_the_person_is_in_norwegian_and_shows_their_numbers_and_who_read_them(
    sqlite_url: str,
) -> None:
    s = scenario(sqlite_url)
    page = export_html(exported(s))
    assert '<html lang="nb">' in page and "Hvem har sett opplysningene dine" in page
    assert s.one.duf_number and s.one.duf_number in page and "4601" in page
    assert "kari" in page and "request of access" in page


def test_hub_person_export_writes_json_or_html_to_a_new_file_only_its_owner_reads_and_logs_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    s = scenario(sqlite_url)
    out = tmp_path / "innsyn.json"
    done = hub_command(
        s.hub.settings,
        "person",
        "export",
        "--out",
        str(out),
        "--reason",
        "art. 15 request 2026-17",
        stdin=s.one.national_id,
    )
    assert done.returncode == 0, done.stderr
    assert (out.stat().st_mode & 0o777) == 0o600
    written = json.loads(out.read_text(encoding="utf-8"))
    assert {i["value"] for i in written["person"]["identifiers"]} >= {s.one.national_id}
    assert written["accessLog"][-1]["reason"] == "art. 15 request 2026-17"
    again = hub_command(
        s.hub.settings, "person", "export", "--out", str(out), "--reason", "x", stdin=s.one.national_id
    )
    assert again.returncode == 2 and "exists" in again.stderr
    html = tmp_path / "innsyn.html"
    page = hub_command(
        s.hub.settings,
        "person",
        "export",
        "--out",
        str(html),
        "--format",
        "html",
        "--reason",
        "x",
        "--file",
        str(_number_file(tmp_path, s.one.duf_number or "")),
    )
    assert page.returncode == 0, page.stderr
    assert "Innsyn" in html.read_text(encoding="utf-8")
    with s.hub.session_factory() as session:
        exports = list(
            session.scalars(select(AccessLogEntry).where(AccessLogEntry.action == "person_export"))
        )
    assert {e.reason for e in exports} == {"art. 15 request 2026-17", "x"}
    assert all(e.person_id == s.person_id and e.os_user for e in exports)


def _number_file(tmp_path: Path, number: str) -> Path:
    path = tmp_path / f"number-{uuid.uuid4().hex[:6]}"
    path.write_text(number + "\n", encoding="utf-8")
    return path
