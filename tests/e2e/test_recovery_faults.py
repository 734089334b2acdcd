"""The recovery of tests/e2e/test_recovery.py under faults, on SQLite and PostgreSQL (a file of
its own, so the suite's two workers share the recovery tests): the backup taken while a batch is
provably in flight, and recovery without the manifest with the catch-up worker killed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.dev.localrun import LocalBroker
from tests.e2e.test_recovery import SMALL, lose_restore_recover_and_compare

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("variant", ["in-flight", "by-register-with-a-kill"])
def test_a_register_lost_under_a_fault_is_restored_and_recovered_whole(
    kafka_broker: LocalBroker, database_url: str, tmp_path: Path, variant: str
) -> None:
    lose_restore_recover_and_compare(kafka_broker, database_url, tmp_path, variant, SMALL)
