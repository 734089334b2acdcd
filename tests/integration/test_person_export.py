"""A person's right of access (GDPR art. 15, issue 30): the export holds everything the register
holds about the person, built by a scenario with a correction, a merge, tickets (one with edits,
an approval, a replay and a note), addresses (a protected one too), held events and what
Folkeregisteret told (an identity change, a death, look-ups), and nothing about anyone else; on
SQLite and PostgreSQL.

Every table of the register is written down here as exported (`EXPORTED`: with how its rows about
the person are found in the register and in the export, compared on the scenario) or as not
about a registered person (`NOT_ABOUT_A_PERSON`, with why): a new table is in neither and fails
until it is placed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.bootstrap import Hub
from hub.domain.calendar import iso_utc
from hub.domain.events import AddressChange, Origin
from hub.pipeline.deadletter import (
    H_ERROR_CLASS,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_OFFSET,
    H_PARTITION,
    H_TOPIC,
)
from hub.register.access_log import AccessLogRepository, Reader
from hub.register.addresses import complete_lookups, pending_lookups, record_address_change
from hub.register.database import make_session_factory
from hub.register.identity import IdentityRepository
from hub.register.models import (
    AccessLogEntry,
    AddressRecord,
    AuditEntry,
    Base,
    CaseTicket,
    FolkeregisterLookup,
    HeldEvent,
    PersonEvent,
    PersonEventNumber,
    PersonIdentifier,
    PersonMerge,
    PersonMergeMove,
    RegistrationRecord,
    TicketEdit,
    TicketOutcome,
)
from hub.register.models import (
    Person as PersonRow,
)
from hub.register.person_events import record_person_event
from hub.register.repository import find_person_id
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from hub.support.approval import approve
from hub.support.export import export_html, export_person
from hub.support.replay import _mark, edit_ticket
from hub.support.tickets import (
    IDENTITY_CONFLICT_KIND,
    TicketStatus,
    file_manual_case,
    settle,
    ticket_from_dead_letter,
)
from tests.conftest import pipeline_hub
from tests.decisions import days_ago, later, programme, run, topic_of
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


def _person_event(sequence: int, event_type: str, number: str, former: tuple[str, ...] = ()) -> AddressChange:
    return AddressChange(
        sequence_number=sequence,
        event_type=event_type,
        national_id=number,
        recorded_at=NOW,
        moved_on=None,
        municipality=None,
        protection="UNGRADED",
        address_kind="NONE",
        address_line=None,
        postal_code=None,
        postal_place=None,
        former_national_ids=former,
        event_date=dt.date(2026, 11, 20),
    )


def _dead_letter(
    uow: UnitOfWork, hub: Hub, e: dict[str, Any], offset: int, now: dt.datetime, *, original_offset: int
) -> CaseTicket:
    """The dead letter of an event refused by NIR-CORR-004 (one IMDi may approve past), as the
    dead-letter flow hands it to the tickets; `offset` is the dead letter's own, `original_offset`
    the refused message's (a replay is a new message, at a new offset)."""
    headers = {
        H_TOPIC: topic_of(e["sourceSystem"]),
        H_PARTITION: "0",
        H_OFFSET: str(original_offset),
        H_ERROR_CLASS: "rule",
        H_ERROR_CODE: "NIR-CORR-004",
        H_ERROR_MESSAGE: "NIR-CORR-004: only the municipality that registered it may correct it",
    }
    return ticket_from_dead_letter(
        uow,
        hub.catalog,
        key=b"k",
        value=hub.catalog.encode(REGISTRATION, from_json(e)),
        headers=tuple((k, v.encode()) for k, v in headers.items()),
        dead_letter=Origin("nir.dead-letters", 0, offset),
        source_of=lambda _topic: "oslo-fagsystem",
        now=now,
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
    renumbered: str  # the fødselsnummer Folkeregisteret gave the first person in place of theirs
    held: str  # the first person's event that waits for an earlier one
    their_held: str  # the other person's
    replayed: int  # the first person's ticket with edits, an approval, a replay and a note
    edited: dict[str, Any]  # the edit kept on it


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
    # A leave from a training that has not started waits for the start (NIR-LIFE-001).
    held, their_held = event(one, "TRAINING_LEAVE"), event(other, "TRAINING_LEAVE")
    outcomes, _ = run(
        hub, [permit, claim, *rest], [correction], [event(one_duf_only)], programme(other), [held, their_held]
    )
    assert all(o == "ACCEPTED" for batch in outcomes[:-1] for o in batch), outcomes
    assert outcomes[-1] == ["HELD", "HELD"], outcomes
    renumbered = synthetic_person().national_id or ""
    with hub.unit_of_work() as uow:
        s = uow.session
        keeper, merged = (
            find_person_id(s, one.duf_number or ""),
            find_person_id(s, one_duf_only.duf_number or ""),
        )
        assert keeper is not None and merged is not None and keeper != merged
        merge = IdentityRepository(s).merge(
            keeper, merged, reason="the same person, by UDI's papers", by="imdi", now=NOW
        )
        for sequence, who, municipality, protection in (
            (1, one, "0301", "UNGRADED"),
            (2, one, "4601", "CONFIDENTIAL"),
            (3, other, "5001", "UNGRADED"),
        ):
            assert record_address_change(s, _address(sequence, who, municipality, protection), NOW)
        own = file_manual_case(
            uow, duf_number=one.duf_number or "", description="by hand", municipality="0301", now=NOW
        )
        conflict = file_manual_case(
            uow, duf_number=one.duf_number or "", description="x", municipality="0301", now=NOW
        )
        conflict.kind, conflict.national_id = IDENTITY_CONFLICT_KIND, other.national_id  # names both
        theirs = file_manual_case(
            uow, duf_number=other.duf_number or "", description="y", municipality="0301", now=NOW
        )
        s.flush()
        # Folkeregisteret: both persons looked up; the first given a new fødselsnummer (the old
        # one ceased), the other dead.
        lookups = pending_lookups(s, NOW)
        assert {n for _, n in lookups} == {one.national_id, other.national_id}
        complete_lookups(s, [i for i, _ in lookups], NOW)
        assert record_person_event(
            s, _person_event(21, "IDENTITY_CHANGED", renumbered, (one.national_id or "",)), NOW
        )
        assert record_person_event(s, _person_event(22, "PERSON_DIED", other.national_id or ""), NOW)
        # A refused correction of the first person's: edited, approved, replayed, refused again
        # (its second dead letter), then discarded with a note.
        refused = {**event(one, "INTRODUCTION_PROGRAMME_DECISION", municipality="0301"), "action": "CORRECT"}
        replayed = _dead_letter(uow, hub, refused, 1, NOW, original_offset=40)
        edited = {**refused, "municipality": "4601"}
        edit_ticket(uow, hub.catalog, replayed, edited, "kari", NOW + dt.timedelta(minutes=1))
        approve(
            uow,
            replayed,
            username="imdi-per",
            note="IMDi corrects it",
            now=NOW + dt.timedelta(minutes=2),
        )
        _mark(uow, replayed.id, TicketStatus.REPLAYED, 1, "imdi-per", NOW + dt.timedelta(minutes=3))
        again = _dead_letter(uow, hub, refused, 2, NOW + dt.timedelta(minutes=4), original_offset=41)
        assert again.id == replayed.id
        settle(
            uow,
            replayed.id,
            TicketStatus.DISCARDED,
            "sent again by the municipality",
            NOW + dt.timedelta(minutes=5),
            username="imdi-per",
        )
        AccessLogRepository(s).record_ticket_read(Reader.desk("kari"), "view_ticket", NOW, own)
        AccessLogRepository(s).record_ticket_read(Reader.desk("ola"), "view_ticket", NOW, theirs)
        uow.commit()
        return Scenario(
            hub,
            one,
            one_duf_only,
            other,
            keeper,
            merge.id,
            {own.id, conflict.id, replayed.id},
            conflict.id,
            correction,
            renumbered,
            held["eventId"],
            their_held["eventId"],
            replayed.id,
            edited,
        )


def exported(s: Scenario) -> dict[str, Any]:
    with s.hub.unit_of_work() as uow:
        export = export_person(
            uow, s.hub.catalog, Reader.command_line("imdi", "request of access"), s.person_id, NOW
        )
        uow.commit()
    return export


def test_the_export_holds_everything_the_register_holds_about_the_person(database_url: str) -> None:
    s = scenario(database_url)
    export = exported(s)
    person = export["person"]
    with make_session_factory(s.hub.engine)() as session:
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
    assert identifiers == {s.one.national_id, s.one.duf_number, s.one_duf_only.duf_number, s.renumbered}
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
    # Held events, Folkeregisteret's word, and a ticket's story with its edit, approval and note.
    [held] = export["heldEvents"]
    assert held["eventId"] == s.held and held["reason"]["code"] == "NIR-LIFE-001"
    assert held["event"]["eventType"] == "TRAINING_LEAVE" and held["reason"]["messageNb"]
    folkeregister = export["folkeregister"]
    [changed] = folkeregister["personEvents"]
    assert changed["eventType"] == "IDENTITY_CHANGED"
    assert {(n["value"], n["ceased"]) for n in changed["numbers"]} == {
        (s.renumbered, False),
        (s.one.national_id, True),
    }
    assert [lookup["completedAt"] for lookup in folkeregister["lookups"]] == [iso_utc(NOW)]
    [merge] = export["merges"]
    assert merge["direction"] == "into" and merge["moved"]["registrations"] == 1
    [ticket] = [t for t in export["tickets"] if t["id"] == s.replayed]
    assert [e["what"] for e in ticket["story"]] == [
        "failed",
        "edit",
        "approve",
        "replay",
        "failed",
        "discarded",
    ]
    assert ticket["story"][3]["outcome"]["what"] == "failed" and ticket["story"][3]["who"] == "imdi-per"
    assert [e["event"] for e in ticket["edits"]] == [s.edited]
    assert ticket["approval"] == {
        "code": "NIR-CORR-004",
        "by": "imdi-per",
        "at": iso_utc(NOW + dt.timedelta(minutes=2)),
    }
    assert ticket["resolution"]["note"] == "sent again by the municipality"
    assert ("approve", "NIR-CORR-004: IMDi corrects it") in {
        (a["action"], a["detail"]) for a in ticket["auditLog"]
    }


def test_the_page_tells_the_person_their_held_events_folkeregisteret_and_each_tickets_story(
    database_url: str,
) -> None:
    s = scenario(database_url)
    page = export_html(exported(s))
    for shown in (
        "Registreringer som venter",
        "TRAINING_LEAVE",
        "Hendelser fra Folkeregisteret",
        s.renumbered,
        "Oppslag i Folkeregisteret",
        f"Sak {s.replayed}",
        "rettet",
        "godkjent forbi regelen",
        "sendt på nytt",
        "forkastet",
        "sent again by the municipality",
        "imdi-per",
    ):
        assert shown in page, shown


def _of_person(model: Any, column: str = "person_id") -> Callable[[Session, Scenario], Any]:
    return lambda session, s: getattr(model, column) == s.person_id


def _numbers(session: Session, s: Scenario) -> list[str]:
    return list(
        session.scalars(select(PersonIdentifier.value).where(PersonIdentifier.person_id == s.person_id))
    )


def _ticket_ids(session: Session, s: Scenario) -> list[int]:
    numbers = _numbers(session, s)
    return list(
        session.scalars(
            select(CaseTicket.id).where(
                or_(CaseTicket.duf_number.in_(numbers), CaseTicket.national_id.in_(numbers))
            )
        )
    )


def _person_event_ids(session: Session, s: Scenario) -> list[int]:
    return list(session.scalars(select(PersonEvent.id).where(PersonEvent.person_id == s.person_id)))


def _merge_ids(session: Session, s: Scenario) -> list[int]:
    return list(
        session.scalars(
            select(PersonMerge.id).where(
                or_(PersonMerge.keeper_id == s.person_id, PersonMerge.other_id == s.person_id)
            )
        )
    )


# Each table that holds data about a person: how its rows about the person are found in the
# register, and in the export, as comparable values (a Counter where rows may repeat).
Finder = Callable[[Session, Scenario], Any]
Shown = Callable[[dict[str, Any]], Any]
EXPORTED: dict[str, tuple[Finder, Shown]] = {
    "persons": (
        lambda session, s: {session.get_one(PersonRow, s.person_id).id},
        lambda x: {x["person"]["personId"]},
    ),
    "person_identifiers": (
        lambda session, s: set(_numbers(session, s)),
        lambda x: {i["value"] for i in x["person"]["identifiers"]},
    ),
    "registrations": (
        lambda session, s: set(
            session.scalars(
                select(RegistrationRecord.event_id).where(RegistrationRecord.person_id == s.person_id)
            )
        ),
        lambda x: {r["eventId"] for r in x["person"]["registrations"]},
    ),
    "addresses": (
        lambda session, s: set(
            session.scalars(
                select(AddressRecord.sequence_number).where(AddressRecord.person_id == s.person_id)
            )
        ),
        lambda x: {a["sequenceNumber"] for a in x["person"]["addresses"]},
    ),
    "person_events": (
        lambda session, s: set(
            session.scalars(select(PersonEvent.sequence_number).where(PersonEvent.person_id == s.person_id))
        ),
        lambda x: {e["sequenceNumber"] for e in x["folkeregister"]["personEvents"]},
    ),
    "person_event_numbers": (
        lambda session, s: Counter(
            (n.value, n.ceased)
            for n in session.scalars(
                select(PersonEventNumber).where(
                    PersonEventNumber.person_event_id.in_(_person_event_ids(session, s))
                )
            )
        ),
        lambda x: Counter(
            (n["value"], n["ceased"]) for e in x["folkeregister"]["personEvents"] for n in e["numbers"]
        ),
    ),
    "folkeregister_lookups": (
        lambda session, s: {
            iso_utc(lookup.requested_at)
            for lookup in session.scalars(
                select(FolkeregisterLookup).where(FolkeregisterLookup.person_id == s.person_id)
            )
        },
        lambda x: {
            lookup["requestedAt"] for lookup in x["folkeregister"]["lookups"] if lookup["mergeId"] is None
        },
    ),
    "person_merges": (
        lambda session, s: set(_merge_ids(session, s)),
        lambda x: {m["mergeId"] for m in x["merges"]},
    ),
    "person_merge_moves": (
        lambda session, s: Counter(
            (m.merge_id, m.table_name)
            for m in session.scalars(
                select(PersonMergeMove).where(PersonMergeMove.merge_id.in_(_merge_ids(session, s)))
            )
        ),
        lambda x: Counter({(m["mergeId"], t): n for m in x["merges"] for t, n in m["moved"].items()}),
    ),
    "held_events": (
        lambda session, s: set(
            session.scalars(
                select(HeldEvent.event_id).where(
                    or_(
                        HeldEvent.national_id.in_(_numbers(session, s)),
                        HeldEvent.duf_number.in_(_numbers(session, s)),
                    )
                )
            )
        ),
        lambda x: {h["eventId"] for h in x["heldEvents"]},
    ),
    "case_tickets": (
        lambda session, s: set(_ticket_ids(session, s)),
        lambda x: {t["id"] for t in x["tickets"]},
    ),
    # A ticket from before its outcomes were kept gets a story made of its columns (the desk's
    # `ticket_story`): those entries have no message, the outcomes' do.
    "ticket_outcomes": (
        lambda session, s: Counter(
            (o.ticket_id, o.kind)
            for o in session.scalars(
                select(TicketOutcome).where(TicketOutcome.ticket_id.in_(_ticket_ids(session, s)))
            )
        ),
        lambda x: Counter(
            (t["id"], e["what"])
            for t in x["tickets"]
            for e in t["story"]
            if e["what"] in ("failed", "accepted") and "message" in e
        ),
    ),
    "ticket_edits": (
        lambda session, s: Counter(
            (e.ticket_id, e.edited_by, iso_utc(e.edited_at))
            for e in session.scalars(
                select(TicketEdit).where(TicketEdit.ticket_id.in_(_ticket_ids(session, s)))
            )
        ),
        lambda x: Counter((t["id"], e["editedBy"], e["editedAt"]) for t in x["tickets"] for e in t["edits"]),
    ),
    "audit_log": (
        lambda session, s: Counter(
            (a.ticket_id, a.action)
            for a in session.scalars(
                select(AuditEntry).where(AuditEntry.ticket_id.in_(_ticket_ids(session, s)))
            )
        ),
        lambda x: Counter((t["id"], a["action"]) for t in x["tickets"] for a in t["auditLog"]),
    ),
    "access_log": (
        lambda session, s: Counter(
            (a.actor, a.action)
            for a in session.scalars(select(AccessLogEntry).where(AccessLogEntry.person_id == s.person_id))
        ),
        lambda x: Counter((r["actor"], r["action"]) for r in x["accessLog"]),
    ),
}
# And the tables that are not about a registered person, with why not.
NOT_ABOUT_A_PERSON = {
    "users": "support staff: a support user's own request is answered from here, not by this export",
    "sign_in_attempts": "support staff's sign-ins",
    "user_sessions": "support staff's sessions",
    "pending_sign_ins": "support staff's sign-ins",
    "recovery_codes": "support staff's second factor",
    "oidc_sign_ins": "support staff's sign-ins",
    "unfinished_work": "the workers' batch marks: topics and offsets, no person",
    "source_states": "revocations of sources (fagsystemer), no person",
}
# A column by one of these names says a table is about a person: such a table cannot be placed
# among those that are not.
PERSONAL_COLUMNS = {"person_id", "national_id", "duf_number", "subject_key", "keeper_id", "other_id", "value"}


def test_every_table_of_the_register_is_exported_or_written_down_as_not_about_a_person() -> None:
    tables = set(Base.metadata.tables)
    assert not set(EXPORTED) & set(NOT_ABOUT_A_PERSON)
    assert tables == set(EXPORTED) | set(NOT_ABOUT_A_PERSON), tables ^ (
        set(EXPORTED) | set(NOT_ABOUT_A_PERSON)
    )
    for name in NOT_ABOUT_A_PERSON:
        personal = {c.name for c in Base.metadata.tables[name].columns} & PERSONAL_COLUMNS
        assert not personal, (name, personal)


def test_every_row_about_the_person_in_every_exported_table_is_in_the_export(database_url: str) -> None:
    s = scenario(database_url)
    export = exported(s)
    with make_session_factory(s.hub.engine)() as session:
        for name, (in_register, in_export) in EXPORTED.items():
            held, shown = in_register(session, s), in_export(export)
            assert held, f"the scenario makes no row of {name} about the person"
            assert held == shown, (name, held, shown)


def test_the_export_for_one_person_holds_nothing_about_another(database_url: str) -> None:
    s = scenario(database_url)
    export = exported(s)
    text = json.dumps(export, ensure_ascii=False)
    page = export_html(export)
    with make_session_factory(s.hub.engine)() as session:
        others = find_person_id(session, s.other.duf_number or "")
        their_events = set(
            session.scalars(select(RegistrationRecord.event_id).where(RegistrationRecord.person_id == others))
        )
    assert their_events
    for theirs in (s.other.national_id, s.other.duf_number, "5001", "ola", s.their_held, *their_events):
        # As a whole word: "5001" may well be part of a hash or an identifier of the first person.
        whole = re.compile(rf"(?<![\w-]){re.escape(theirs or '')}(?![\w-])")
        assert theirs and not whole.search(text) and not whole.search(page), theirs
    assert "PERSON_DIED" not in text  # the other's death
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
    with make_session_factory(s.hub.engine)() as session:
        exports = list(
            session.scalars(select(AccessLogEntry).where(AccessLogEntry.action == "person_export"))
        )
    assert {e.reason for e in exports} == {"art. 15 request 2026-17", "x"}
    assert all(e.person_id == s.person_id and e.os_user for e in exports)


def _number_file(tmp_path: Path, number: str) -> Path:
    path = tmp_path / f"number-{uuid.uuid4().hex[:6]}"
    path.write_text(number + "\n", encoding="utf-8")
    return path


def test_a_number_the_register_has_no_person_for_is_exported_with_its_tickets_and_reads_and_nothing_else(
    database_url: str, tmp_path: Path
) -> None:
    """A registration that failed before the person was ever registered leaves a ticket with the
    event as it arrived, and support's views of it are reads of their data: the person's request
    of access gets those, though the register has no person for them."""
    from hub.domain.identifiers import subject_key
    from hub.register.repository import RegisterRepository
    from hub.support.tickets import file_manual_case

    hub = pipeline_hub(database_url)
    unknown, someone, nobody = "201812345604", synthetic_person(), "31129956715"
    with hub.unit_of_work() as uow:
        RegisterRepository(uow.session).person_with(someone.national_id, someone.duf_number, hub.clock())
        theirs = file_manual_case(
            uow,
            duf_number=unknown,
            description="called about it",
            municipality="0301",
            now=hub.clock(),
        )
        file_manual_case(
            uow,
            duf_number=someone.duf_number,
            description="not theirs",
            municipality="4601",
            now=hub.clock(),
        )
        uow.access_log.record_number_read(Reader.desk("kari"), "search_person", hub.clock(), unknown)
        uow.commit()
        assert find_person_id(uow.session, unknown) is None

    out = tmp_path / "innsyn.json"
    done = hub_command(
        hub.settings, "person", "export", "--out", str(out), "--reason", "art. 15", stdin=unknown
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    written = json.loads(text)
    assert written["person"]["personId"] is None
    assert [(i["kind"], i["value"]) for i in written["person"]["identifiers"]] == [("duf", unknown)]
    assert [t["id"] for t in written["tickets"]] == [theirs.id]
    assert (
        written["tickets"][0]["dufNumber"] == unknown
        and written["tickets"][0]["description"] == "called about it"
    )
    assert [(r["actor"], r["action"]) for r in written["accessLog"]] == [
        ("kari", "search_person"),
        (written["accessLog"][1]["actor"], "person_export"),
    ]
    for theirs_not in (someone.duf_number, someone.national_id, "not theirs", "4601"):
        assert theirs_not and theirs_not not in text, theirs_not
    html = tmp_path / "innsyn.html"
    page = hub_command(
        hub.settings,
        "person",
        "export",
        "--out",
        str(html),
        "--format",
        "html",
        "--reason",
        "x",
        stdin=unknown,
    )
    assert page.returncode == 0, page.stderr
    shown = html.read_text(encoding="utf-8")
    assert unknown in shown and "called about it" in shown and "DUF-nummer" in shown
    assert not re.search(r">None<", shown)  # nothing derived is shown as missing, not as None
    with make_session_factory(hub.engine)() as session:
        exports = session.scalars(
            select(AccessLogEntry).where(AccessLogEntry.action == "person_export")
        ).all()
    assert [(e.person_id, e.subject_key, e.reason) for e in exports] == [
        (None, subject_key(unknown), "art. 15"),
        (None, subject_key(unknown), "x"),
    ]
    # A number the register holds nothing about is told so, and no read is logged.
    none = hub_command(
        hub.settings, "person", "export", "--out", str(tmp_path / "n"), "--reason", "x", stdin=nobody
    )
    assert none.returncode == 1 and "holds nothing" in none.stderr and nobody not in none.stderr
    assert not (tmp_path / "n").exists()


def test_on_the_desk_the_export_of_a_ticket_s_never_registered_person_holds_their_ticket(
    database_url: str,
) -> None:
    from hub.support.tickets import file_manual_case
    from tests.integration.test_support_web import PASSWORD as STAFF_PASSWORD
    from tests.integration.test_support_web import Client, page_and_token, serve, sign_in, web_hub

    hub = web_hub(database_url)
    unknown = "201812345604"
    with hub.unit_of_work() as uow:
        ticket = file_manual_case(
            uow, duf_number=unknown, description="by phone", municipality="0301", now=hub.clock()
        )
        uow.commit()
        ticket_id = ticket.id

    async def work(client: Client) -> tuple[int, str, str]:
        await sign_in(client, "kari", STAFF_PASSWORD)
        _, token = await page_and_token(client, f"/support/tickets/{ticket_id}")
        answer = await client.post(
            f"/support/tickets/{ticket_id}/export",
            data={"number": "duf", "format": "json", "form_token": token},
        )
        return answer.status, answer.headers.get("Content-Disposition", ""), await answer.text()

    status, disposition, text = serve(hub, work)
    assert status == 200, text
    assert f'filename="innsyn-person-sak-{ticket_id}.json"' in disposition
    written = json.loads(text)
    assert written["person"]["personId"] is None and [t["id"] for t in written["tickets"]] == [ticket_id]
    assert [r["action"] for r in written["accessLog"]] == ["view_ticket", "person_export"]
