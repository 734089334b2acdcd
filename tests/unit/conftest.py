"""Fixtures of the unit tier: the hub over the register in memory."""

from __future__ import annotations

import dataclasses

import pytest

from hub.bootstrap import Hub
from hub.config import Settings
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from tests.fakes import FakeRegister, FakeUnitOfWork


@pytest.fixture
def store() -> FakeRegister:
    return FakeRegister()


@pytest.fixture
def hub(store: FakeRegister) -> Hub:
    settings = dataclasses.replace(Settings(), allow_synthetic_identifiers=True)
    return Hub(
        settings=settings,
        registry=SourceRegistry.load(settings.sources_file),
        catalog=catalog(),
        registration_units=lambda: FakeUnitOfWork(store),
    )
