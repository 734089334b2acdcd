"""The README's first command runs `hub demo`; it must keep doing what docs/developers/demo.md says."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import hub
from hub.dev.demo import DEMO_SUPPORT_PERSON
from hub.dev.localrun import LocalBroker
from tests.conftest import MaskinportenService, free_port
from tests.integration.test_support_web import CHROMIUM

CHECKOUT = Path(hub.__file__).resolve().parents[1]


def demo_environment(kafka_broker: LocalBroker, broker_maskinporten: MaskinportenService) -> dict[str, str]:
    broker = kafka_broker.settings()
    # The running broker trusts the session's Maskinporten stand-in: the demo's Oslo source
    # signs in with a token from it, as the demo's own stand-in would give.
    maskinporten = {
        name: value
        for name, value in broker_maskinporten.client_settings(broker).to_env().items()
        if name.startswith("NIR_MASKINPORTEN_")
    }
    return {
        **os.environ,
        # The demo runs in a directory of its own: it must still import this checkout's hub (not
        # another one installed in the interpreter, as a git worktree's would be).
        "PYTHONPATH": os.pathsep.join([str(CHECKOUT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "NIR_KAFKA_BOOTSTRAP": broker.kafka_bootstrap,
        "NIR_KAFKA_CA_FILE": broker.kafka_ca_file,
        "NIR_KAFKA_SECRETS_DIR": broker.kafka_secrets_dir,
        "NIR_WEB_PORT": str(free_port()),
        **maskinporten,
    }


def test_the_demo_transfers_the_bundled_sample_and_prints_the_summary(
    kafka_broker: LocalBroker, broker_maskinporten: MaskinportenService, tmp_path: Path
) -> None:
    env = demo_environment(kafka_broker, broker_maskinporten)
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
    # Part of the sample goes through the HTTPS gateway, the rest over Kafka.
    assert "oslo-fagsystem posts 4 events to the gateway with a Maskinporten token" in result.stdout
    assert result.stdout.count("accepted by the gateway") == 4, result.stdout
    assert re.search(r"gateway started at https://127\.0\.0\.1:\d+ ", result.stdout)  # TLS, as in production
    summary = result.stdout.split("summary", 1)[1]
    assert "accepted       9" in summary
    assert "duplicates     1" in summary
    assert "rejected       2" in summary
    assert "dead-lettered  2" in summary
    assert "register       3 persons, 9 registrations, 3 addresses" in summary
    assert (tmp_path / "var" / "demo" / "register.sqlite3").exists()

    # The command lines it suggests run as printed, from where the demo ran.
    lines = result.stdout.splitlines()
    [show_person] = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Look at a person:")]
    [support_page] = [line.split(":", 1)[1].strip() for line in lines if line.startswith("The support page:")]
    assert show_person.startswith("echo 201812345604 | NIR_DATABASE_URL=sqlite:///var/demo/register.sqlite3 ")
    assert show_person.endswith(" person show --reason 'a look at the demo'")
    assert support_page.endswith(" demo --support")
    shown = subprocess.run(
        show_person, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "duf: 201812345604" in shown.stdout


def test_the_demo_asks_whether_a_broker_runs_without_printing_connection_errors(
    kafka_broker: LocalBroker,
) -> None:
    broker = kafka_broker.settings()
    env = {
        **os.environ,
        "NIR_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nothing listens there
        "NIR_KAFKA_CA_FILE": broker.kafka_ca_file,
        "NIR_KAFKA_SECRETS_DIR": broker.kafka_secrets_dir,
    }
    code = "from hub.config import Settings; from hub.dev.localrun import local_broker_answers as a; print(a(Settings.from_env()))"
    asked = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert (asked.stdout, asked.stderr) == ("False\n", "")


def test_the_demo_keeps_serving_its_support_page_over_tls_until_interrupted_and_its_user_signs_in_through_its_id_porten_stand_in(
    kafka_broker: LocalBroker, broker_maskinporten: MaskinportenService, tmp_path: Path
) -> None:
    env = {**demo_environment(kafka_broker, broker_maskinporten), "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "demo", "--support"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not any("sign in as demo" in line for line in lines):
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
        lines.append(demo.stdout.readline())  # printed with the password: how to sign in instead
        printed = "".join(lines)
        [address] = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Support page:")]
        assert address.startswith("https://127.0.0.1:"), printed  # TLS, as in production
        [password] = re.findall(r"sign in as demo, password (\S+);", printed)
        [(person, issuer)] = re.findall(
            r"or sign in with ID-porten: pick (.+) at the stand-in \((http://127\.0\.0\.1:\d+/)\), linked to demo",
            printed,
        )
        assert person == DEMO_SUPPORT_PERSON.name and f"ID-porten stand-in at {issuer} " in printed
        context = ssl.create_default_context(cafile=env["NIR_KAFKA_CA_FILE"])
        with urllib.request.urlopen(address + "login", timeout=30, context=context) as page:
            text = page.read().decode()
            assert page.status == 200 and "Logg inn" in text
            assert 'id="sign-in-oidc"' in text and "Logg inn med ID-porten" in text
        assert password  # a new one each run, printed once for the person who ran the demo
        # As the printed line says: the button, then the person at the stand-in.
        signed_in_as = _sign_in_through_the_stand_in_in_chromium(address, issuer, person)
        assert signed_in_as is not None and "demo" in signed_in_as
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0
    finally:
        if demo.poll() is None:  # a failed test: Ctrl-C first, so the demo stops its children too
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
    # The stand-in's numbers are synthetic, but the demo prints none, and the audit masks it.
    assert DEMO_SUPPORT_PERSON.pid not in printed + rest
    audit = _audit_log(tmp_path / "var" / "demo" / "register.sqlite3")
    assert "demo sign_in oidc idporten-loa-high from 127.0.0.1" in audit
    assert "link_user user demo to <id:11:" in audit and DEMO_SUPPORT_PERSON.pid not in audit


def _sign_in_through_the_stand_in_in_chromium(address: str, issuer: str, person: str) -> str | None:
    """In Chromium, from the ticket list: the sign-in page's provider button, the named person at
    the stand-in, and back on the ticket list; returns the page's header there (None if it is not
    reached). The demo's certificate is the local CA's, which this browser does not know."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            tab = browser.new_context(ignore_https_errors=True).new_page()
            tab.goto(address + "tickets")
            assert tab.url.startswith(address + "login")
            tab.click("#sign-in-oidc")
            assert tab.url.startswith(issuer + "authorize")
            tab.locator("a.person", has_text=person).click()
            tab.wait_for_url(address + "tickets")
            return str(tab.inner_text("header"))
        finally:
            browser.close()


def _audit_log(register: Path) -> str:
    with sqlite3.connect(register) as connection:
        rows = connection.execute("SELECT username, action, detail FROM audit_log ORDER BY id").fetchall()
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


def test_the_disaster_demo_loses_its_register_restores_and_recovers_it_and_says_it_equals_what_it_was(
    kafka_broker: LocalBroker, broker_maskinporten: MaskinportenService, tmp_path: Path
) -> None:
    env = demo_environment(kafka_broker, broker_maskinporten)
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--disaster"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The ordinary demo first, as without --disaster.
    assert "register       3 persons, 9 registrations, 3 addresses" in result.stdout.split("summary", 1)[1]
    disaster = result.stdout.split("\ndisaster\n", 1)[1]
    # Each step on a line of its own, named in its first word, in this order (the events sent
    # after the backup are listed as the demo lists its sample's).
    figures = {
        line.split()[0]: line for line in disaster.splitlines() if line.startswith("  ") and line[2] != " "
    }
    named = ["backup", "more", "before", "loss", "restore", "recover", "catch-up", "receipts"]
    assert [step for step in figures if step in named] == named, disaster
    # Seven events after the backup: two persons' claims and decisions, a held end, a rejection
    # and a duplicate; four of them registered, lost with the register and registered again.
    assert "7 sent after the backup, all answered" in figures["more"]
    before = re.search(r"(\d+) registrations, (\d+) held, (\d+) tickets", figures["before"])
    restored = re.search(r"(\d+) registrations, (\d+) held, (\d+) tickets", figures["restore"])
    caught_up = re.search(r"(\d+) registrations, (\d+) held, (\d+) tickets", figures["catch-up"])
    assert before and restored and caught_up, disaster
    assert int(before[1]) == int(restored[1]) + 4 and int(before[2]) == int(restored[2]) + 1
    assert caught_up.groups() == before.groups()
    # The source's topic went back over the seven events; every one of them was answered again alike.
    assert "nir-demo.source.vestland-fagsystem.registrations  7 back" in disaster
    assert re.search(r"receipts       (\d+) sent again, \1 of them with the same outcome", disaster), disaster
    assert int(re.search(r"receipts       (\d+) sent again", disaster)[1]) >= 7  # type: ignore[index]
    assert disaster.rstrip().endswith("the register equals what it was before the loss")
    assert (tmp_path / "var" / "demo" / "backup" / "register.sqlite3.manifest.json").exists()


def test_the_disaster_demo_tells_a_register_that_differs_from_the_one_before_the_loss() -> None:
    from collections import Counter

    from hub.dev.demo.disaster import RegisterState

    before = RegisterState(
        Counter({"a": 1, "b": 1}),
        {"a": ("t", 0, 1), "b": ("t", 0, 2)},
        Counter({"c": 1}),
        Counter({("d", "OPEN", "REJECTED", "NIR-X", 3, 1): 1}),
    )
    assert before.differences(before) == []
    lost = RegisterState(Counter({"a": 1}), {"a": ("t", 0, 1)}, before.held, before.tickets)
    twice = RegisterState(Counter({"a": 2, "b": 1}), before.origins, before.held, before.tickets)
    moved = RegisterState(
        before.registrations, {"a": ("t", 0, 1), "b": ("t", 0, 5)}, before.held, before.tickets
    )
    unheld = RegisterState(before.registrations, before.origins, Counter(), before.tickets)
    retried = RegisterState(
        before.registrations,
        before.origins,
        before.held,
        Counter({("d", "OPEN", "REJECTED", "NIR-X", 3, 2): 1}),
    )
    assert lost.differences(before) == ["registrations", "origins"]
    assert twice.differences(before) == ["registrations"]
    assert moved.differences(before) == ["origins"]
    assert unheld.differences(before) == ["held"]
    assert retried.differences(before) == ["tickets"]
