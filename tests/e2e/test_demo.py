"""The README's first command runs `hub demo`; it must keep doing what the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.localrun import LocalBroker
from tests.conftest import free_port


def test_the_demo_transfers_the_bundled_sample_and_prints_the_summary(
    kafka_broker: LocalBroker, tmp_path: Path
) -> None:
    broker = kafka_broker.settings()
    env = {
        **os.environ,
        "NIR_KAFKA_BOOTSTRAP": broker.kafka_bootstrap,
        "NIR_KAFKA_CA_FILE": broker.kafka_ca_file,
        "NIR_KAFKA_SECRETS_DIR": broker.kafka_secrets_dir,
        "NIR_WEB_PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.split("summary", 1)[1]
    assert "accepted       9" in summary
    assert "duplicates     1" in summary
    assert "rejected       2" in summary
    assert "dead-lettered  2" in summary
    assert "register       3 persons, 9 registrations, 3 addresses" in summary
    assert (tmp_path / "var" / "demo" / "register.sqlite3").exists()
