"""Folkeregisteret's feed through the connector into the register, and the affiliation warning,
with a worker and the connector as processes on the real broker."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.dev.folkeregister_standin import FolkeregisterStandIn, serving
from hub.dev.localrun import WorkerProcess
from hub.register.database import make_session_factory
from hub.register.models import AddressRecord
from hub.register.people import describe_person
from hub.register.repository import find_person_id
from tests.factories import event, synthetic_person
from tests.harness import HubHarness, wait_until


@pytest.fixture
def feed() -> Iterator[tuple[FolkeregisterStandIn, str]]:
    stand_in = FolkeregisterStandIn()
    with serving(stand_in) as url:
        yield stand_in, url


def addresses_of(harness: HubHarness, national_id: str) -> list[AddressRecord]:
    with make_session_factory(harness.hub.engine)() as session:
        person_id = find_person_id(session, national_id)
        return list(session.scalars(select(AddressRecord).where(AddressRecord.person_id == person_id)))


def test_a_move_reaches_the_register_in_seconds_and_a_registration_from_elsewhere_gets_a_warning(
    harness: HubHarness, feed: tuple[FolkeregisterStandIn, str], tmp_path: Path
) -> None:
    stand_in, url = feed
    mover, latecomer = synthetic_person(), synthetic_person()
    assert mover.national_id and latecomer.national_id
    # The latecomer moved to Bergen before the register knew them.
    stand_in.move(latecomer.national_id, "4601", dt.date.today() - dt.timedelta(days=30))

    harness.start_worker()
    settings = dataclasses.replace(harness.settings, folkeregister_url=url, folkeregister_poll_seconds=0.2)
    connector = WorkerProcess.connector(settings, tmp_path / "connector.log").start()
    try:
        harness.publish([event(mover), event(latecomer, municipality="0301")])
        harness.wait_for_receipts(2)
        # Looked up once known: the address that changed before is not missed.
        wait_until(
            lambda: len(addresses_of(harness, latecomer.national_id or "")) == 1,
            timeout=60,
            what="the look-up",
        )

        moved_on = dt.date.today() - dt.timedelta(days=3)
        published_at = time.monotonic()
        stand_in.move(mover.national_id, "4601", moved_on, postal_place="BERGEN")
        wait_until(
            lambda: len(addresses_of(harness, mover.national_id or "")) == 1,
            timeout=60,
            what="the move",
            interval=0.05,
        )
        visible_after = time.monotonic() - published_at
        print(f"\naddress change visible in the register {visible_after:.2f} s after the feed published it")

        # Oslo reports a fact dated after the move to Bergen: accepted, with a warning.
        harness.publish([event(mover, "TRAINING_DECISION", fact_date=moved_on + dt.timedelta(days=1))])
        receipts, _ = harness.wait_for_receipts(3)
    finally:
        connector.stop()
    warned = receipts[-1]
    assert warned["outcome"] == "ACCEPTED_WITH_WARNINGS"
    [warning] = [v for v in warned["violations"] if v["code"] == "NIR-MUNI-002"]
    assert "0301" in warning["message"] and "4601" in warning["message"]
    assert mover.national_id not in str(warned)
    with make_session_factory(harness.hub.engine)() as session:
        shown = describe_person(session, find_person_id(session, mover.national_id) or 0)
    assert shown["municipalityOn"]["municipality"] == "4601"
    assert "Traceback" not in (tmp_path / "connector.log").read_text()
