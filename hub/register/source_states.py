"""Sources revoked and restored, as the register records them (`source_states`): each change is
a row, and a source's state is its newest. `hub sources revoke` and `restore` write here (and on
the source-states topic, for the gateway); the worker reads `revoked_sources` in each batch's
transaction."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.domain.calendar import as_utc
from hub.domain.sources import SourceState
from hub.register.models import SourceStateChange


def record_source_state(session: Session, state: SourceState) -> None:
    session.add(
        SourceStateChange(
            source_id=state.source,
            revoked=state.revoked,
            since=state.since,
            changed_by=state.by,
            reason=state.reason,
        )
    )


def current_source_states(session: Session) -> dict[str, SourceState]:
    """Each source's newest state, revoked or restored."""
    newest = select(func.max(SourceStateChange.id)).group_by(SourceStateChange.source_id)
    rows = session.scalars(select(SourceStateChange).where(SourceStateChange.id.in_(newest)))
    return {
        row.source_id: SourceState(row.source_id, row.revoked, as_utc(row.since), row.changed_by, row.reason)
        for row in rows
    }


def revoked_sources(session: Session) -> dict[str, SourceState]:
    """The sources revoked now, with their revocation."""
    return {source: state for source, state in current_source_states(session).items() if state.revoked}


class SourceStatesRepository:
    """The sources' states on the unit of work (`uow.sources`)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def record(self, state: SourceState) -> None:
        record_source_state(self._session, state)

    def current(self) -> dict[str, SourceState]:
        return current_source_states(self._session)
