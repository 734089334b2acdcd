"""Support users, sessions, municipality scope and the audit log, against a real SQLite register."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from hub.kafka.topics import TopicNames
from hub.register.database import make_engine, make_session_factory
from hub.register.models import AuditEntry, CaseTicket, User
from hub.register.unit_of_work import UnitOfWork
from hub.sources import SourceRegistry
from hub.support.access import (
    SESSION_LIFETIME,
    AccessDenied,
    Role,
    create_user,
    hash_password,
    sign_in,
    user_for_token,
    verify_password,
)
from hub.support.scope import Scope, Sources
from hub.support.tickets import TicketStatus, file_manual_case, settle
from tests.second_factor import SEALER, signed_in

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)


def test_a_password_is_stored_salted_and_only_the_right_one_verifies() -> None:
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first != second and "correct horse" not in first
    assert verify_password("correct horse battery", first)
    assert not verify_password("correct horse batterY", first)
    assert not verify_password("anything", "not-a-hash")


def test_a_session_works_until_it_expires_and_a_wrong_password_says_nothing_more(sqlite_url: str) -> None:
    sessions = make_session_factory(make_engine(sqlite_url))
    with UnitOfWork(sessions) as uow:
        s = uow.session
        create_user(uow, "kari", "a long enough secret", Role.IMDI_SUPPORT, None, NOW)
        s.commit()
    token = signed_in(sessions, "kari", "a long enough secret", NOW)
    assert token is not None
    with UnitOfWork(sessions) as uow:
        assert user_for_token(uow, token, NOW + dt.timedelta(hours=1)).username == "kari"
        with pytest.raises(AccessDenied, match="expired"):
            user_for_token(uow, token, NOW + SESSION_LIFETIME)
    for username, password in (("kari", "wrong password!!"), ("nobody", "a long enough secret")):
        refused = sign_in(lambda: UnitOfWork(sessions), username, password, NOW, client_address="127.0.0.1", sealer=SEALER)
        assert refused.token is None and refused.refusal is not None
    with sessions() as s:
        stored = s.scalar(select(User.password_hash))
        assert stored is not None and "a long enough secret" not in stored


def test_a_municipality_super_user_sees_only_their_own_municipalitys_tickets(sqlite_url: str) -> None:
    sessions = make_session_factory(make_engine(sqlite_url))
    with UnitOfWork(sessions) as uow:
        s = uow.session
        oslo = create_user(uow, "oslo-su", "a long enough secret", Role.MUNICIPALITY_SUPERUSER, "0301", NOW)
        imdi = create_user(uow, "imdi", "a long enough secret", Role.IMDI_SUPPORT, None, NOW)
        own = file_manual_case(uow, duf_number="201812345604", description="x", municipality="0301", now=NOW)
        other = file_manual_case(uow, duf_number="201912345678", description="y", municipality="4601", now=NOW)
        sources = Sources(SourceRegistry.load("hub/sources.toml"), TopicNames("nir"))
        oslo_scope, imdi_scope = Scope.of(oslo, sources), Scope.of(imdi, sources)
        assert oslo_scope.sees(own) and not oslo_scope.sees(other)
        assert imdi_scope.sees(own) and imdi_scope.sees(other)
        visible = s.scalars(select(CaseTicket.id).where(oslo_scope.tickets())).all()  # type: ignore[arg-type]
        assert visible == [own.id]
        with pytest.raises(AccessDenied, match="needs a municipality"):
            create_user(uow, "nowhere", "a long enough secret", Role.MUNICIPALITY_SUPERUSER, None, NOW)
        with pytest.raises(AccessDenied, match="12 characters"):
            create_user(uow, "short", "short", Role.IMDI_SUPPORT, None, NOW)


def test_settling_a_ticket_is_written_to_the_audit_log(sqlite_url: str) -> None:
    sessions = make_session_factory(make_engine(sqlite_url))
    with UnitOfWork(sessions) as uow:
        s = uow.session
        ticket = file_manual_case(uow, duf_number="201812345604", description="x", municipality="0301", now=NOW)
        settle(uow, ticket.id, TicketStatus.RESOLVED, "done", NOW, username="kari")
        uow.commit()
        [entry] = s.scalars(select(AuditEntry)).all()
        assert (entry.username, entry.action, entry.ticket_id) == ("kari", "resolved", ticket.id)
        assert s.get_one(CaseTicket, ticket.id).status == "resolved"
