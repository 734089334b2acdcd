from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.dev.localrun import LocalBroker
from tests.conftest import make_settings
from tests.harness import HubHarness


@pytest.fixture
def harness(kafka_broker: LocalBroker, database_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    """A hub with its own topics and consumer group, on SQLite and on PostgreSQL."""
    with HubHarness(make_settings(kafka_broker, database_url, tmp_path), tmp_path) as h:
        yield h
