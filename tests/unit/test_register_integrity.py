"""The register's integrity (issue 27) at the unit tier: the registration flow over the register
in memory, one test or two for each of the faults the issue found, each of which failed on the
main of 2026-12-06. No event joins two people, changes another municipality's record, or makes
a mistake that cannot be undone; event ids are a source's own; the order of arrival does not
decide; Folkeregisteret's word about a person waits for them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from typing import Any

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import Registration
from hub.domain.identifiers import make_national_id
from hub.domain.lifecycle import effective_facts
from hub.domain.snapshot import IDENTITY_CHANGED, PERSON_DIED, Target
from hub.pipeline.decode import decode_registration
from hub.rules import RuleContext, evaluate
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from tests.decisions import codes, days_ago, later, message, programme, run, topic_of
from tests.factories import Person, event, synthetic_person
from tests.fakes import FakeRegister, FakeUnitOfWork

BERGEN = "vestland-fagsystem"


def correction(of: dict[str, Any], action: str = "CORRECT", **changes: Any) -> dict[str, Any]:
    """A correction (or annulment) of `of`, sent a second after it, by the same source unless told."""
    fresh = event(Person(**_named(of)), of["eventType"], fact_date=dt.date.fromisoformat(of["factDate"]))
    return {
        **fresh,
        "action": action,
        "correctsEventId": of["eventId"],
        "sentAt": later(of["sentAt"]),
        **changes,
    }


def _named(e: dict[str, Any]) -> dict[str, str | None]:
    return {"national_id": e["person"]["nationalId"], "duf_number": e["person"]["dufNumber"]}


def decoded(e: dict[str, Any]) -> Registration:
    return decode_registration(catalog(), message(e).value)


def persons(store: FakeRegister) -> set[frozenset[str]]:
    """Each person of the register as the set of their numbers."""
    found: dict[int, set[str]] = {}
    for person_id, _, value in store.identifiers:
        found.setdefault(person_id, set()).add(value)
    return {frozenset(numbers) for numbers in found.values()}


# --- 1. two people are never joined by one event ------------------------------------------------


def test_an_event_naming_two_registered_persons_numbers_is_rejected_and_joins_no_one(
    hub: Hub, store: FakeRegister
) -> None:
    p1, p2 = synthetic_person(), synthetic_person()
    run(hub, [event(p1), event(p2)])
    mixed = event(Person(p1.national_id, p2.duf_number), "TRAINING_DECISION")
    outcomes, publisher = run(hub, [mixed])
    assert outcomes == [["REJECTED"]]
    assert codes(publisher) == [["NIR-ID-005"]]  # and nothing else: no one person's register to read
    assert persons(store) == {
        frozenset({p1.national_id, p1.duf_number}),
        frozenset({p2.national_id, p2.duf_number}),
    }
    assert store.merges == []


def test_a_second_duf_number_is_a_conflict_and_a_fodselsnummer_after_a_d_number_is_not(
    hub: Hub, store: FakeRegister
) -> None:
    p1, stranger = synthetic_person(), synthetic_person()
    run(hub, [event(p1)])
    outcomes, publisher = run(hub, [event(Person(p1.national_id, stranger.duf_number), "TRAINING_DECISION")])
    assert outcomes == [["REJECTED"]] and codes(publisher) == [["NIR-ID-005"]]
    assert persons(store) == {frozenset({p1.national_id, p1.duf_number})}
    # DOMAIN.md: a DUF number, then a D-number, then a fødselsnummer: one person.
    arrival, d_number = synthetic_person(), synthetic_d_number()
    outcomes, _ = run(
        hub,
        [event(Person(None, arrival.duf_number), fact_date=days_ago(30))],
        [event(Person(d_number, arrival.duf_number), "TRAINING_DECISION", fact_date=days_ago(20))],
        [event(arrival, "TRAINING_LANGUAGES")],
    )
    assert outcomes == [["ACCEPTED"], ["ACCEPTED"], ["ACCEPTED"]]
    assert frozenset({arrival.duf_number, d_number, arrival.national_id}) in persons(store)


# --- 2. only the owner (or IMDi) corrects or annuls ---------------------------------------------


def test_another_municipalitys_source_cannot_annul_or_correct_a_registration(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    decision = event(person, "TRAINING_DECISION")
    run(hub, [event(person, fact_date=days_ago(20)), decision])
    from_bergen = correction(decision, "ANNUL", sourceSystem=BERGEN, municipality="4601")
    corrected_by_bergen = correction(decision, sourceSystem=BERGEN, municipality="4601")
    outcomes, publisher = run(hub, [from_bergen, corrected_by_bergen])
    assert outcomes == [["REJECTED", "REJECTED"]]
    assert codes(publisher, BERGEN) == [["NIR-CORR-004"], ["NIR-CORR-004"]]
    assert len(effective_facts(store.facts())) == 2  # Oslo's registration stands
    outcomes, _ = run(hub, [correction(decision, "ANNUL")])  # Oslo's own fagsystem may
    assert outcomes == [["ACCEPTED"]] and len(effective_facts(store.facts())) == 1


def test_imdi_approves_a_foreign_annulment_for_that_very_message_only(hub: Hub, store: FakeRegister) -> None:
    person = synthetic_person()
    decision = event(person, "TRAINING_DECISION")
    run(hub, [event(person, fact_date=days_ago(20)), decision])
    annulment = correction(decision, "ANNUL", sourceSystem=BERGEN, municipality="4601")
    approved = message(annulment, 7)
    store.open_ticket(
        event_id=annulment["eventId"],
        topic=topic_of(BERGEN),
        approved_code="NIR-CORR-004",
        approved_digest=hashlib.sha256(b"another message").hexdigest(),
    )
    outcomes, _ = run(hub, [annulment])
    assert outcomes == [["REJECTED"]]  # approved for other bytes: not this message
    store.tickets.clear()
    store.open_ticket(
        event_id=annulment["eventId"],
        topic=topic_of(BERGEN),
        approved_code="NIR-CORR-004",
        approved_digest=hashlib.sha256(approved.value or b"").hexdigest(),
    )
    outcomes, _ = run(hub, [annulment])
    assert outcomes == [["ACCEPTED"]] and len(effective_facts(store.facts())) == 1


def test_a_successor_municipality_may_correct_what_its_predecessor_registered() -> None:
    """Bærum was 3024 in 2020-2023 and is 3201 from 2024; Ålesund 1507 split into 1508 and 1580."""
    registry = SourceRegistry.from_mapping(
        {
            "sources": {
                "baerum": {"municipalities": [{"number": "3201", "from": dt.date(2024, 1, 1)}]},
                "haram": {"municipalities": ["1580"]},
                "oslo-fagsystem": {"municipalities": ["0301"]},
            }
        }
    )
    annulment = decoded(
        {
            # No DUF number: a synthetic one may be from a year after the rule's 2023 (NIR-ID-003).
            **event(synthetic_person(with_duf=False), "TRAINING_DECISION"),
            "action": "ANNUL",
            "correctsEventId": str(uuid.uuid4()),
        }
    )

    def refused(source: str, registered_by: str, today: dt.date = dt.date(2026, 12, 6)) -> bool:
        context = RuleContext(
            today=today,
            now=dt.datetime.combine(today, dt.time(12), dt.UTC),
            topic_source=source,
            registry=registry,
            allow_synthetic_identifiers=True,
            target=Target("k", "TRAINING_DECISION", same_person=True, municipality=registered_by),
        )
        return "NIR-CORR-004" in {
            v.code for v in evaluate(dataclasses.replace(annulment, source_system=source), context)
        }

    assert not refused("baerum", "3024") and not refused("haram", "1507")
    assert refused("oslo-fagsystem", "3024") and refused("baerum", "0301")
    assert refused("baerum", "3024", today=dt.date(2023, 6, 1))  # it reports for 3201 from 2024 only


# --- 3. a mistake can be undone ----------------------------------------------------------------


def test_an_annulled_final_test_is_restored_by_a_correction_naming_the_annulment(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    test = event(person, "TRAINING_FINAL_TEST", fact_date=days_ago(5))
    training = [
        event(person, "TRAINING_CLAIM", fact_date=days_ago(60)),
        event(person, "TRAINING_DECISION", fact_date=days_ago(50)),
        event(person, "TRAINING_STARTED", fact_date=days_ago(40)),
        test,
    ]
    annulment = correction(test, "ANNUL")
    results = [{"skill": "ORAL", "result": "B1"}]
    restored = correction(annulment, payload={"partialResults": results, "socialStudiesTest": None})
    restored["sentAt"] = later(annulment["sentAt"])
    outcomes, _ = run(hub, training, [annulment], [restored])
    assert outcomes == [["ACCEPTED"] * 4, ["ACCEPTED"], ["ACCEPTED"]]
    [standing] = [f for f in effective_facts(store.facts()) if f.event_type == "TRAINING_FINAL_TEST"]
    assert standing.payload["partialResults"] == results


def test_a_restoration_years_later_counts_its_deadlines_from_when_the_original_came(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    jan_2024 = dt.datetime(2024, 1, 12, 10, tzinfo=dt.UTC)
    hub.clock = lambda: jan_2024
    claim = {**event(person, "TRAINING_CLAIM", fact_date=dt.date(2024, 1, 5)), "sentAt": jan_2024.isoformat()}
    annulment = {**correction(claim, "ANNUL"), "sentAt": (jan_2024 + dt.timedelta(days=1)).isoformat()}
    run(hub, [claim])
    hub.clock = lambda: jan_2024 + dt.timedelta(days=2)
    run(hub, [annulment])
    march_2026 = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    hub.clock = lambda: march_2026
    restored = {**correction(annulment), "sentAt": march_2026.isoformat()}
    sent_again = {
        **event(person, "TRAINING_CLAIM", fact_date=dt.date(2024, 1, 5)),
        "sentAt": march_2026.isoformat(),
    }
    outcomes, publisher = run(hub, [restored, sent_again])
    assert outcomes == [["ACCEPTED", "REJECTED"]]
    assert codes(publisher) == [[], ["NIR-DEADLINE-002"]]
    assert [f.event_type for f in effective_facts(store.facts())] == ["TRAINING_CLAIM"]


def test_a_correction_of_a_correction_corrects_the_registration(hub: Hub, store: FakeRegister) -> None:
    person = synthetic_person()
    languages = event(person, "TRAINING_LANGUAGES")
    first = correction(languages, payload={"motherTongue": "som", "otherLanguages": []})
    second = correction(first, payload={"motherTongue": "amh", "otherLanguages": []})
    second["sentAt"] = later(first["sentAt"])
    outcomes, _ = run(hub, [languages], [first], [second])
    assert outcomes == [["ACCEPTED"], ["ACCEPTED"], ["ACCEPTED"]]
    [standing] = effective_facts(store.facts())
    assert standing.key == languages["eventId"] and standing.payload["motherTongue"] == "amh"


# --- 4. an event id is its source's own ---------------------------------------------------------


def test_another_sources_event_with_an_id_in_use_is_refused_openly_not_answered_duplicate(
    hub: Hub, store: FakeRegister
) -> None:
    oslo = event(synthetic_person())
    bergen = {**event(synthetic_person(), source=BERGEN, municipality="4601"), "eventId": oslo["eventId"]}
    outcomes, publisher = run(hub, [oslo], [bergen])
    assert outcomes == [["ACCEPTED"], ["REJECTED"]]
    assert codes(publisher, BERGEN) == [["NIR-EVENT-001"]]
    assert len(store.rows) == 1 and store.rows[0]["source_system"] == "oslo-fagsystem"


def test_only_the_same_event_sent_again_is_a_duplicate(hub: Hub, store: FakeRegister) -> None:
    claim = event(synthetic_person())
    again = {**claim, "sentAt": later(claim["sentAt"], 60)}  # a retry: another sentAt, the same event
    other = {**claim, "factDate": days_ago(11).isoformat()}
    outcomes, publisher = run(hub, [claim], [again], [other])
    assert outcomes == [["ACCEPTED"], ["DUPLICATE"], ["REJECTED"]]
    assert codes(publisher)[2] == ["NIR-EVENT-001"]


def test_a_duplicate_of_an_old_event_does_not_close_the_ticket_of_a_later_one(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    claim = event(person, "TRAINING_CLAIM")
    failed = store.open_ticket(  # a later claim of the person's that failed
        event_type="TRAINING_CLAIM",
        source_system="oslo-fagsystem",
        national_id=person.national_id,
        sent_at=dt.datetime.fromisoformat(later(claim["sentAt"], 600)),
    )
    outcomes, _ = run(hub, [claim], [{**claim, "sentAt": later(claim["sentAt"], 3600)}])
    assert outcomes == [["ACCEPTED"], ["DUPLICATE"]]
    assert store.tickets[failed]["status"] == "open"


# --- 5. the order of arrival does not decide -----------------------------------------------------


def test_hours_on_the_end_day_are_accepted_whether_they_come_before_or_after_the_end(
    hub: Hub, store: FakeRegister
) -> None:
    for end_first in (False, True):
        person = synthetic_person()
        claim, decision, start, end = programme(person)
        absence = event(person, "INTRODUCTION_PROGRAMME_ABSENCE", fact_date=days_ago(2))  # the end's day
        last = [end, absence] if end_first else [absence, end]
        outcomes, _ = run(hub, [claim, decision, start, *last])
        assert outcomes == [["ACCEPTED"] * 5], end_first


def test_a_correction_that_moves_the_end_before_registered_hours_is_rejected_at_once(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    claim, decision, start, end = programme(person)
    absence = event(person, "INTRODUCTION_PROGRAMME_ABSENCE", fact_date=days_ago(10))
    earlier_end = correction(end, factDate=days_ago(15).isoformat())
    outcomes, publisher = run(hub, [claim, decision, start, absence, end], [earlier_end])
    assert outcomes[1] == ["REJECTED"] and codes(publisher)[-1] == ["NIR-DATE-004"]


def test_a_start_corrected_to_after_its_end_is_rejected_at_once_not_held(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    claim, decision, start, end = programme(person)
    moved = correction(start, factDate=days_ago(1).isoformat())
    outcomes, _ = run(hub, [claim, decision, start, end], [moved])
    assert outcomes[1] == ["REJECTED"] and store.held == {}


# --- 6. Folkeregisteret's word waits for its person ---------------------------------------------


def test_an_identity_change_before_the_person_is_known_joins_their_numbers_when_they_appear(
    hub: Hub, store: FakeRegister
) -> None:
    fodselsnummer, d_number = synthetic_person(with_duf=False).national_id or "", synthetic_d_number()
    store.keep_person_event(IDENTITY_CHANGED, [fodselsnummer, d_number], ceased=[d_number])
    outcomes, _ = run(
        hub,
        [event(Person(d_number, None), "TRAINING_CLAIM", fact_date=days_ago(30))],
        [event(Person(fodselsnummer, None), "TRAINING_DECISION", fact_date=days_ago(20))],
    )
    assert outcomes == [["ACCEPTED"], ["ACCEPTED"]]
    assert persons(store) == {frozenset({d_number, fodselsnummer})}
    assert store.pending == {}


def test_a_death_before_the_person_is_known_is_warned_about_on_their_first_registration(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    store.keep_person_event(PERSON_DIED, [person.national_id or ""], event_date=days_ago(40))
    outcomes, publisher = run(hub, [event(person, fact_date=days_ago(10))])
    assert outcomes == [["ACCEPTED_WITH_WARNINGS"]] and codes(publisher) == [["NIR-PERSON-001"]]
    assert [state.state for _, state in store.states] == ["dead"]


def synthetic_d_number() -> str:
    """A valid synthetic D-number (a foreigner's number before a fødselsnummer)."""
    for individual in range(100, 500):
        number = make_national_id(dt.date(1990, 4, 7), individual, d_number=True)
        if number is not None:
            return number
    raise AssertionError("no D-number")


def test_the_municipality_a_registration_became_corrects_it_under_its_number_today(
    store: FakeRegister,
) -> None:
    """Bærum registered as 3024 in 2023 and reports as 3201 from 2024; Oslo may not touch it."""
    registry = SourceRegistry.from_mapping(
        {
            "sources": {
                "baerum-2023": {"municipalities": [{"number": "3024", "until": dt.date(2024, 1, 1)}]},
                "baerum": {"municipalities": [{"number": "3201", "from": dt.date(2024, 1, 1)}]},
                "oslo-fagsystem": {"municipalities": ["0301"]},
            }
        }
    )
    hub = Hub(
        settings=dataclasses.replace(Settings(), allow_synthetic_identifiers=True),
        registry=registry,
        catalog=catalog(),
        registration_units=lambda: FakeUnitOfWork(store),
    )
    person = synthetic_person(with_duf=False)  # a synthetic DUF number may be from 2024, after its clock
    december_2023 = dt.datetime(2023, 12, 15, 10, tzinfo=dt.UTC)
    hub.clock = lambda: december_2023
    decision = {
        **event(
            person,
            "TRAINING_DECISION",
            source="baerum-2023",
            municipality="3024",
            fact_date=dt.date(2023, 12, 10),
        ),
        "sentAt": december_2023.isoformat(),
    }
    assert run(hub, [decision])[0] == [["ACCEPTED"]]
    now = dt.datetime(2026, 12, 6, 10, tzinfo=dt.UTC)
    hub.clock = lambda: now
    from_oslo = correction(
        decision, sourceSystem="oslo-fagsystem", municipality="0301", sentAt=now.isoformat()
    )
    from_baerum = correction(decision, sourceSystem="baerum", municipality="3201", sentAt=now.isoformat())
    from_baerum["payload"] = {**decision["payload"], "scopeHours": 550}
    outcomes, publisher = run(hub, [from_oslo, from_baerum])
    assert outcomes == [["REJECTED", "ACCEPTED"]]
    assert codes(publisher, "oslo-fagsystem") == [["NIR-CORR-004"]]
    [standing] = effective_facts(store.facts())
    assert standing.payload["scopeHours"] == 550
