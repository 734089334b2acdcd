"""Support work as a signed-in user does it (`hub.support.desk`), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from hub.config import Settings
from hub.kafka.topics import TopicNames
from hub.register.database import make_engine, make_session_factory
from hub.register.models import AuditEntry
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from hub.support import desk
from hub.support.access import AccessDenied, Role, create_user, sign_out, user_for_token
from hub.support.scope import Sources
from hub.support.tickets import TicketError, TicketFilter, TicketStatus, file_manual_case
from tests.second_factor import signed_in

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
SOURCES = Sources(SourceRegistry.load(Settings().sources_file), TopicNames(Settings().topic_prefix))
SECRET = "a long enough secret"


def test_lists_and_counts_are_scoped_to_the_user_s_municipality(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with UnitOfWork(sessions) as uow:
        oslo = create_user(uow, "oslo", SECRET, Role.MUNICIPALITY_SUPERUSER, "0301", NOW)
        imdi = create_user(uow, "imdi", SECRET, Role.IMDI_SUPPORT, None, NOW)
        for duf, municipality in (
            ("201812345604", "0301"),
            ("201912345678", "4601"),
            ("202012345678", "4601"),
        ):
            file_manual_case(uow, duf_number=duf, description="x", municipality=municipality, now=NOW)
        everything = TicketFilter()
        assert [
            t["municipality"]
            for t in desk.ticket_list(uow, catalog(), oslo, everything, sources=SOURCES)
        ] == ["0301"]
        widened = TicketFilter(municipality="4601")  # a filter cannot widen a municipality's scope
        assert [
            t["municipality"] for t in desk.ticket_list(uow, catalog(), oslo, widened, sources=SOURCES)
        ] == ["0301"]
        assert len(desk.ticket_list(uow, catalog(), imdi, everything, sources=SOURCES)) == 3
        assert desk.error_code_counts(uow, oslo, everything, sources=SOURCES) == [("-", 1)]
        assert desk.error_code_counts(uow, imdi, TicketFilter(error_code="X"), sources=SOURCES) == [
            ("-", 3)
        ]
        listed = desk.ticket_list(
            uow, catalog(), imdi, TicketFilter(identifiers=("201912345678",)), sources=SOURCES
        )
        assert [t["municipality"] for t in listed] == ["4601"]
        assert "201912345678" not in str(listed)  # shown by its last digits, though it was the filter
        assert listed[0]["dufNumber"] == "…5678"
        assert (
            desk.ticket_list(
                uow, catalog(), oslo, TicketFilter(identifiers=("201912345678",)), sources=SOURCES
            )
            == []
        )


def test_a_view_is_audited_and_a_ticket_out_of_scope_looks_like_a_missing_one(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with UnitOfWork(sessions) as uow:
        s = uow.session
        oslo = create_user(uow, "oslo", SECRET, Role.MUNICIPALITY_SUPERUSER, "0301", NOW)
        own = file_manual_case(uow, duf_number="201812345604", description="x", municipality="0301", now=NOW)
        other = file_manual_case(uow, duf_number="201912345678", description="y", municipality="4601", now=NOW)
        shown = desk.view_ticket(uow, catalog(), oslo, own.id, NOW, sources=SOURCES)
        assert shown["dufNumber"] == "201812345604"
        for act in (
            lambda: desk.view_ticket(uow, catalog(), oslo, other.id, NOW, sources=SOURCES),
            lambda: desk.settle_as(
                uow, oslo, other.id, TicketStatus.DISCARDED, "not mine", NOW, sources=SOURCES
            ),
        ):
            with pytest.raises(AccessDenied, match=f"^there is no ticket {other.id}$"):
                act()
        with pytest.raises(AccessDenied, match=r"^there is no ticket 999999$"):
            desk.view_ticket(uow, catalog(), oslo, 999999, NOW, sources=SOURCES)
        assert other.status == "open"
        actions = [(a.username, a.action, a.ticket_id) for a in s.scalars(select(AuditEntry))]
        assert actions == [("oslo", "view_ticket", own.id)]


def test_a_case_filed_by_a_municipality_user_is_theirs_and_needs_a_valid_duf_number(
    database_url: str,
) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with UnitOfWork(sessions) as uow:
        oslo = create_user(uow, "oslo", SECRET, Role.MUNICIPALITY_SUPERUSER, "0301", NOW)
        filed = desk.file_case_as(
            uow, oslo, duf_number=" 201812345604 ", description="call me", municipality="4601", now=NOW
        )
        assert (filed.municipality, filed.duf_number) == ("0301", "201812345604")
        with pytest.raises(TicketError, match="DUF number must be exactly 12 digits"):
            desk.file_case_as(
                uow, oslo, duf_number="12345", description="x", municipality=None, now=NOW
            )


def test_signing_out_ends_the_session_at_once(database_url: str) -> None:
    sessions = make_session_factory(make_engine(database_url))
    with UnitOfWork(sessions) as uow:
        s = uow.session
        create_user(uow, "kari", SECRET, Role.IMDI_SUPPORT, None, NOW)
        s.commit()
    token = signed_in(sessions, "kari", SECRET, NOW)
    assert token is not None
    with UnitOfWork(sessions) as uow:
        assert user_for_token(uow, token, NOW).username == "kari"
        sign_out(uow, token)
        with pytest.raises(AccessDenied):
            user_for_token(uow, token, NOW)


def test_a_search_by_one_number_finds_the_cases_under_the_person_s_other_numbers(database_url: str) -> None:
    from hub.register.repository import RegisterRepository

    sessions = make_session_factory(make_engine(database_url))
    with UnitOfWork(sessions) as uow:
        s = uow.session
        imdi = create_user(uow, "imdi", SECRET, Role.IMDI_SUPPORT, None, NOW)
        national_id = "31129956715"
        RegisterRepository(s).person_with(national_id, "201812345604", NOW)  # one person, two numbers
        file_manual_case(uow, duf_number="201812345604", description="x", municipality="0301", now=NOW)
        file_manual_case(uow, duf_number="202012345678", description="y", municipality="0301", now=NOW)
        found = desk.ticket_list(
            uow, catalog(), imdi, TicketFilter(identifiers=(national_id,)), sources=SOURCES
        )
        assert [t["dufNumber"] for t in found] == ["…5604"]
        desk.record_search(uow, imdi, national_id, NOW)
        assert [(a.action, a.detail) for a in s.scalars(select(AuditEntry))] == [("search_person", None)]
