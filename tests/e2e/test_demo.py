"""The README's first command runs `hub demo`; it must keep doing what the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.localrun import LocalBroker
from tests.conftest import MaskinportenService, free_port


def test_the_demo_transfers_the_bundled_sample_and_prints_the_summary(
    kafka_broker: LocalBroker, broker_maskinporten: MaskinportenService, tmp_path: Path
) -> None:
    broker = kafka_broker.settings()
    # The running broker trusts the session's Maskinporten stand-in: the demo's Oslo source
    # signs in with a token from it, as the demo's own stand-in would give.
    maskinporten = {
        name: value
        for name, value in broker_maskinporten.client_settings(broker).to_env().items()
        if name.startswith("NIR_MASKINPORTEN_")
    }
    env = {
        **os.environ,
        "NIR_KAFKA_BOOTSTRAP": broker.kafka_bootstrap,
        "NIR_KAFKA_CA_FILE": broker.kafka_ca_file,
        "NIR_KAFKA_SECRETS_DIR": broker.kafka_secrets_dir,
        "NIR_WEB_PORT": str(free_port()),
        **maskinporten,
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
    assert "oslo-fagsystem signs in to Kafka as 5f1c9a52" in result.stdout
    assert "with a Maskinporten access token" in result.stdout
    summary = result.stdout.split("summary", 1)[1]
    assert "accepted       9" in summary
    assert "duplicates     1" in summary
    assert "rejected       2" in summary
    assert "dead-lettered  2" in summary
    assert "register       3 persons, 9 registrations, 3 addresses" in summary
    assert (tmp_path / "var" / "demo" / "register.sqlite3").exists()
