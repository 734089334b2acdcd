"""Wiring: builds the hub's collaborators from settings. Tests wire their own where they need to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.config import Settings
from hub.domain.calendar import norwegian_date
from hub.register.database import make_engine, make_session_factory
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.codec import SchemaCatalog, catalog
from hub.sources import SourceRegistry
from hub.topics import TopicNames


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Hub:
    """Everything the pipeline needs besides the broker."""

    settings: Settings
    registry: SourceRegistry
    catalog: SchemaCatalog
    clock: Callable[[], dt.datetime] = field(default=utc_now)
    # Where units of work come from; tests of decisions wire an in-memory register here.
    units: Callable[[], UnitOfWork] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Hub:
        return cls(settings=settings, registry=SourceRegistry.load(settings.sources_file, settings.service_principals), catalog=catalog())

    @cached_property
    def names(self) -> TopicNames:
        return TopicNames(self.settings.topic_prefix)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    def unit_of_work(self) -> UnitOfWork:
        return self.units() if self.units is not None else UnitOfWork(self.session_factory)

    def today(self) -> dt.date:
        """Today in Norway: what "in the future" means for a fact's date."""
        return norwegian_date(self.clock())
