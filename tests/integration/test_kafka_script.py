"""deploy/kafka/kafka.sh, run for real: no password on any command line, the credentials one file
per principal readable by its owner only, and the files docker-compose.yml hands out as secrets.

Every local user can read every process's command line (/proc/<pid>/cmdline, `ps`); a password
given as an argument is a password given to all of them.
"""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.config import Settings
from hub.dev.localrun import KAFKA_SCRIPT, free_port

# What the script runs that could be handed a secret.
WATCHED = ("java", "openssl", "keytool", "mvn")


def _shims(directory: Path, log: Path) -> dict[str, str]:
    """A PATH whose java, openssl, keytool and mvn write their arguments to `log`, then run the
    real program: every command line the script makes, even the short-lived ones."""
    directory.mkdir()
    for program in WATCHED:
        real = shutil.which(program)
        if real is None:
            continue
        shim = directory / program
        shim.write_text(f'#!/usr/bin/env bash\nprintf \'%s\\0\' "$0" "$@" >> "{log}"\nexec "{real}" "$@"\n')
        shim.chmod(0o755)
    return {"PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}


def _command_lines() -> Iterator[str]:
    """Every running process's command line, as any local user reads it."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # it ended meanwhile


def test_the_local_broker_starts_without_a_password_on_any_command_line(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "kafka", tmp_path / "argv.log"
    env = {
        **os.environ,
        **_shims(tmp_path / "shims", log),
        "NIR_KAFKA_DATA_DIR": str(data_dir),
        "NIR_KAFKA_PORT": str(free_port(pair=True)),
    }
    env.pop("NIR_KAFKA_JWKS_URL", None)
    started = subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], env=env, capture_output=True, text=True)
    try:
        assert started.returncode == 0, started.stderr
        running = list(_command_lines())
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop"], env=env, capture_output=True)

    secrets = data_dir / "secrets"
    passwords = {path.stem: path.read_text().strip() for path in secrets.glob("*.password")}
    assert set(passwords) == {"nir-broker", "nir-admin"}
    arguments = log.read_bytes().decode().split("\0")
    # The shims saw the broker's storage being formatted and the broker itself starting.
    assert any(argument.startswith("@") for argument in arguments), "the format ran without its argument file"
    assert "kafka.Kafka" in arguments
    assert any("kafka.Kafka" in line for line in running)
    for principal, password in passwords.items():
        assert len(password) == 64
        assert not [a for a in arguments if password in a], f"{principal}'s password was an argument"
        assert not [line for line in running if password in line], f"{principal}'s password is in /proc"
    # Nothing of the argument file is left behind.
    assert not (data_dir / "format.args").exists()
    # One file per principal, readable and writable by the owner only, in a directory only the
    # owner can enter; the CA's key likewise.
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for path in [*secrets.glob("*.password"), data_dir / "tls" / "ca.key", data_dir / "tls" / "web.pem"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The local web servers' certificate is issued by the same CA, and is not the broker's.
    context = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))
    context.load_cert_chain(str(data_dir / "tls" / "web.pem"))
    assert (data_dir / "tls" / "web.pem").read_text() != (data_dir / "tls" / "broker.pem").read_text()


def test_compose_secrets_are_one_file_per_principal_and_a_worker_certificate_for_the_compose_names(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "compose-secrets"
    made = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "compose-secrets", str(directory)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    principals = {
        "nir-broker",
        "nir-admin",
        "nir-worker",
        "nir-replay",
        "nir-connector",
        "nir-gateway",
        "nir-monitor",
        "nir-gateway-db",  # not a Kafka principal: the register's role nir_gateway
    }
    passwords = {path.stem: path.read_text() for path in directory.glob("*.password")}
    assert set(passwords) == principals
    assert len(set(passwords.values())) == len(principals), "two principals share a password"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "web-ca.key").stat().st_mode) == 0o600
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(directory / "web-ca.pem"), str(directory / "worker.crt")],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    names = subprocess.run(
        ["openssl", "x509", "-in", str(directory / "worker.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:worker" in names and "DNS:support" in names
    # A second run keeps what the first made: the broker's credentials must not change under it.
    again = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "compose-secrets", str(directory)], capture_output=True
    )
    assert again.returncode == 0
    assert {path.stem: path.read_text() for path in directory.glob("*.password")} == passwords


@pytest.mark.parametrize("argument", ["", "compose-secrets"])
def test_the_script_refuses_what_it_does_not_know(argument: str) -> None:
    result = subprocess.run(["bash", str(KAFKA_SCRIPT), *argument.split()], capture_output=True, text=True)
    assert result.returncode != 0 and "usage" in result.stderr


def test_the_workers_compose_certificate_serves_tls_to_a_client_that_trusts_its_ca(tmp_path: Path) -> None:
    """The worker's web server loads worker.crt and worker.key as NIR_WEB_TLS_* name them in
    compose, and a client trusting web-ca.pem completes a handshake for the name `worker`."""
    directory = tmp_path / "compose-secrets"
    subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "compose-secrets", str(directory)], check=True, capture_output=True
    )
    settings = Settings(
        web_tls_cert_file=str(directory / "worker.crt"), web_tls_key_file=str(directory / "worker.key")
    )
    server_context = settings.web_ssl_context()
    assert server_context is not None
    client_context = ssl.create_default_context(cafile=str(directory / "web-ca.pem"))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    client = client_context.wrap_bio(to_client, to_server, server_hostname="worker")
    for _ in range(10):  # the handshake's round trips, in memory
        done = 0
        for end in (client, server):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        if done == 2:
            break
    assert done == 2
    assert client.getpeercert()["subject"] == ((("commonName", "worker"),),)
