"""The `hub` command and the fagsystem connector, against the real broker."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from hub.config import Settings
from hub.connectors.fagsystem import FagsystemProducer, UnknownSourceTopic
from hub.dev.localrun import LocalBroker
from hub.schemas.codec import catalog
from tests.conftest import make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness, hub_command, jsonl


@pytest.fixture
def harness(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    with HubHarness(make_settings(kafka_broker, sqlite_url, tmp_path), tmp_path) as harness:
        yield harness


def test_hub_help_lists_the_hubs_commands_in_sections_without_faust_or_a_banner() -> None:
    helped = hub_command(Settings(), "--help")
    assert helped.returncode == 0, helped.stderr
    sections: dict[str, list[str]] = {}
    for line in helped.stdout.split("Options:", 1)[1].splitlines():
        if line.endswith(":") and not line.startswith(" "):
            sections[line.removesuffix(":")] = []
        elif line.startswith("  ") and sections:
            sections[list(sections)[-1]].append(line.split()[0])
    assert list(sections) == ["Run", "Register", "Sources", "Cases", "Reports", "Operations"]
    assert sections["Run"][0] == "worker" and "person" in sections["Register"]
    assert {"cases", "users"} <= set(sections["Cases"]) and "faust" in sections["Operations"]
    # Faust's own commands and options are under `hub faust`, not beside the hub's.
    assert not {"agents", "tables", "send", "livecheck"} & {c for cs in sections.values() for c in cs}
    assert "Welcome" not in helped.stdout and "--datadir" not in helped.stdout
    faust = hub_command(Settings(), "faust", "--help")
    assert "Usage: hub faust" in faust.stdout and "agents" in faust.stdout and "Welcome" not in faust.stdout
    worker = hub_command(Settings(), "worker", "--help")
    assert "Usage: hub worker" in worker.stdout and "--web-port" in worker.stdout


def test_hub_version_prints_the_hubs_version() -> None:
    from importlib.metadata import version

    shown = hub_command(Settings(), "--version")
    assert (shown.returncode, shown.stdout) == (0, f"hub {version('nir-hub')}\n")


def test_publish_reports_every_line_and_exits_non_zero_when_a_line_is_refused(
    harness: HubHarness, tmp_path: Path
) -> None:
    person = synthetic_person()
    good = [event(person, "TRAINING_CLAIM"), event(person, "TRAINING_STARTED"), event(synthetic_person())]
    bad_contract = dict(event(person), factDate="yesterday")
    lines = (
        jsonl(good[:2])
        + "{not json\n"
        + jsonl([bad_contract])
        + "\n"
        + jsonl([dict(event(person), sourceSystem="unknown-source")])
        + jsonl(good[2:])
    )
    path = tmp_path / "events.jsonl"
    path.write_text(lines)

    # As a fagsystem runs it: as its source's principal, which may write only its own topic.
    result = hub_command(harness.settings.as_kafka_user("oslo-fagsystem"), "publish", str(path))

    assert result.returncode == 1, result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith(
        f"line 1: sent {good[0]['eventId']} to {harness.hub.names.registrations('oslo-fagsystem')}"
    )
    assert out[1].startswith("line 2: sent")
    assert out[2].startswith("line 3: refused: not valid JSON")
    assert out[3] == "line 4: refused: factDate: must be a date written YYYY-MM-DD"
    assert out[4].startswith("line 6: refused: topic ") and "unknown-source" in out[4]
    assert out[5].startswith("line 7: sent")
    assert out[-1] == "sent 3, refused 3"
    assert person.national_id not in result.stdout + result.stderr


def test_publish_with_source_refuses_lines_of_another_source(harness: HubHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl([event(synthetic_person(), source="vestland-fagsystem", municipality="4601")]))
    oslo = harness.settings.as_kafka_user("oslo-fagsystem")
    result = hub_command(oslo, "publish", "--source", "oslo-fagsystem", str(path))
    assert result.returncode == 1
    assert "sourceSystem: is 'vestland-fagsystem', but it is sent as 'oslo-fagsystem'" in result.stdout


def test_all_events_of_one_person_land_on_one_partition(harness: HubHarness) -> None:
    persons = [synthetic_person() for _ in range(12)]
    events = [event(p, t) for p in persons for t in ("TRAINING_CLAIM", "TRAINING_STARTED", "TRAINING_ENDED")]
    sent = harness.publish(events)
    partitions: dict[str, set[int]] = {}
    for e, s in zip(events, sent, strict=True):
        partitions.setdefault(e["person"]["dufNumber"], set()).add(s.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1  # and persons spread over partitions


def test_a_source_without_a_topic_is_refused_at_once_not_auto_created(harness: HubHarness) -> None:
    async def attempt() -> None:
        producer = FagsystemProducer(
            harness.admin.kafka, "nobody", topic_prefix=harness.settings.topic_prefix
        )
        await producer.start()

    with pytest.raises(UnknownSourceTopic, match="source registry"):
        asyncio.run(attempt())


def test_the_hub_creates_its_topics_with_their_partition_counts(harness: HubHarness) -> None:
    async def describe() -> dict[str, int]:
        admin = AIOKafkaAdminClient(**harness.admin.kafka.aiokafka())
        await admin.start()
        try:
            topics = await admin.describe_topics()
        finally:
            await admin.close()
        return {
            t["topic"]: len(t["partitions"])
            for t in topics
            if t["topic"].startswith(harness.settings.topic_prefix)
        }

    result = hub_command(harness.admin, "topics", "ensure")
    assert result.returncode == 0, result.stderr
    assert "exists" in result.stdout and "created" not in result.stdout  # the harness made them
    assert "warning" not in result.stderr  # every topic has the configs the hub asks for
    partitions = asyncio.run(describe())
    names = harness.hub.names
    assert partitions[names.registrations("oslo-fagsystem")] == harness.settings.registration_partitions
    assert partitions[names.address_changes] == harness.settings.address_partitions
    assert partitions[names.receipts("oslo-fagsystem")] == 1


def test_vendors_can_list_and_export_the_schemas(harness: HubHarness, tmp_path: Path) -> None:
    listed = hub_command(harness.settings, "schemas", "list")
    assert listed.returncode == 0
    assert "registration_event.v2.avsc  fingerprint " in listed.stdout and "(current)" in listed.stdout
    exported = hub_command(harness.settings, "schemas", "export", str(tmp_path / "contract"))
    assert exported.returncode == 0
    files = sorted(p.name for p in (tmp_path / "contract").iterdir())
    assert files == sorted(v.path.name for v in catalog())
    assert (
        json.loads((tmp_path / "contract" / "registration_event.v2.avsc").read_text())["name"]
        == "RegistrationEvent"
    )


def _keys(value: Any) -> Iterator[str]:
    """Every key in a JSON value, at any depth."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def test_person_show_prints_everything_the_register_holds_as_json(harness: HubHarness) -> None:
    person = synthetic_person()
    e = event(person, "TRAINING_LANGUAGES")
    harness.start_worker()
    harness.publish([e])
    harness.wait_for_receipts(1)
    harness.stop_all()
    for identifier in (person.national_id, person.duf_number):
        result = hub_command(
            harness.settings, "person", "show", "--json", "--reason", "test", stdin=identifier
        )
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert {i["value"] for i in shown["identifiers"]} == {person.national_id, person.duf_number}
        [registration] = shown["registrations"]
        assert registration["eventId"] == e["eventId"]
        assert registration["payload"] == e["payload"]
        assert {"status", "startedOn", "endReason"} <= shown["state"]["norwegianAndSocialStudies"].keys()
        assert not [key for key in _keys(shown) if not re.fullmatch("[a-z][a-zA-Z0-9]*", key)]
    missing = hub_command(harness.settings, "person", "show", "--reason", "test", stdin="00000000000")
    assert missing.returncode == 1 and "no person" in missing.stderr


def test_the_worker_refuses_to_start_on_a_register_that_is_missing_or_not_migrated(
    kafka_broker: LocalBroker, tmp_path: Path
) -> None:
    register = tmp_path / "new.sqlite3"
    settings = make_settings(kafka_broker, f"sqlite:///{register}", tmp_path)
    missing = hub_command(settings, "worker")
    assert missing.returncode == 2
    assert "error [NIR-REGISTER-MISSING]" in missing.stderr and "hub db upgrade" in missing.stderr
    assert not register.exists()
    sqlite3.connect(register).close()  # an empty database: a register at no migration
    result = hub_command(settings, "worker")
    assert result.returncode == 2
    assert "error [NIR-REGISTER-NOT-MIGRATED]" in result.stderr and "hub db upgrade" in result.stderr
    upgraded = hub_command(settings, "db", "upgrade")
    from hub.register.migrate import head_revision

    assert upgraded.returncode == 0 and f"register at revision {head_revision()}" in upgraded.stdout


def test_rules_list_prints_the_catalogue_and_every_other_failure_code_sorted_under_a_header(
    harness: HubHarness,
) -> None:
    from hub.errors import FAILURE_CODES
    from hub.rules import RULES

    every_code = sorted({r.code for r in RULES} | {e.code for e in FAILURE_CODES})
    result = hub_command(harness.settings, "rules", "list")
    assert result.returncode == 0 and result.stderr == ""
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["code", "severity", "kind", "title"]
    assert [row.split()[0] for row in rows] == every_code
    squeezed = "\n".join(" ".join(row.split()) for row in rows)
    assert "NIR-ID-002 REJECT rule The fødselsnummer or D-number is valid" in squeezed
    assert "NIR-ID-005 REJECT rule The person's numbers name one person in the register" in squeezed
    assert "NIR-DEADLINE-001 WARNING rule Received within two months" in squeezed
    assert "NIR-DECODE REJECT failure The message bytes are not a single-object-encoded" in squeezed
    norwegian = hub_command(harness.settings, "rules", "list", "--lang", "nb")
    assert "Fødselsnummeret eller D-nummeret er gyldig" in norwegian.stdout
    assert "Huben stoppet gang på gang" in norwegian.stdout

    as_json = [
        json.loads(line)
        for line in hub_command(harness.settings, "rules", "list", "--json").stdout.splitlines()
    ]
    assert [c["code"] for c in as_json] == every_code
    assert {"code", "severity", "kind", "title", "titleNb", "advice", "adviceNb"} == as_json[0].keys()
    deadline = next(c for c in as_json if c["code"] == "NIR-DEADLINE-001")
    assert deadline["advice"] and deadline["adviceNb"] and deadline["advice"] != deadline["adviceNb"]
    assert next(c for c in as_json if c["code"] == "NIR-DECODE")["advice"] is None

    advised = hub_command(harness.settings, "rules", "list", "--advice", "--lang", "nb")
    assert advised.stdout.splitlines()[0].split()[-1] == "advice"
    assert deadline["adviceNb"][:40] in " ".join(advised.stdout.split())

    limited = hub_command(harness.settings, "rules", "list", "--limit", "3")
    assert [row.split()[0] for row in limited.stdout.splitlines()[1:]] == every_code[:3]
    assert "only the first 3 codes are shown; there are more (--limit)" in limited.stderr


def test_receipts_can_be_awaited_through_the_api_and_listed_with_the_cli(harness: HubHarness) -> None:
    from hub.connectors.receipts import ReceiptReader

    person = synthetic_person()
    events = [
        event(person, "TRAINING_CLAIM"),
        event(person, "TRAINING_ENDED"),
        event(person, "TRAINING_DECISION"),
    ]
    harness.start_worker()
    sent = harness.publish(events)

    async def wait() -> dict:  # type: ignore[type-arg]
        async with ReceiptReader(
            harness.source_kafka("oslo-fagsystem"),
            "oslo-fagsystem",
            topic_prefix=harness.settings.topic_prefix,
        ) as reader:
            return await reader.wait_for([s.event_id for s in sent], timeout=15)

    final = asyncio.run(wait())
    # The end waits for a start that never comes: its HELD receipt is all there is so far.
    assert {str(k): v.outcome for k, v in final.items()} == {
        events[0]["eventId"]: "ACCEPTED",
        events[1]["eventId"]: "HELD",
        events[2]["eventId"]: "ACCEPTED",
    }
    assert not final[sent[1].event_id].final

    listed = hub_command(harness.settings, "receipts", "--source", "oslo-fagsystem")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3
    assert f"{events[1]['eventId']}  HELD  NIR-LIFE-001 (HOLD)" in lines[1]
    as_json = hub_command(harness.settings, "receipts", "--source", "oslo-fagsystem", "--json")
    written = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["eventId"], r["outcome"]) for r in written] == [
        (events[0]["eventId"], "ACCEPTED"),
        (events[1]["eventId"], "HELD"),
        (events[2]["eventId"], "ACCEPTED"),
    ]
    # The contract's language, as the gateway and `person show --json` speak it: camelCase.
    assert {"originalTopic", "originalOffset", "processedAt"} <= set(written[0])
    assert not [k for r in written for k in r if "_" in k]
    unknown = hub_command(harness.settings, "receipts", "--source", "nobody")
    assert unknown.returncode == 1 and "not in the source registry" in unknown.stderr


def test_person_show_as_of_a_date_shows_what_the_register_knew_then(harness: HubHarness) -> None:
    import datetime as dt

    person = synthetic_person()
    harness.start_worker()
    harness.publish([event(person, "TRAINING_CLAIM")])
    harness.wait_for_receipts(1)
    now = hub_command(
        harness.settings, "person", "show", "--json", "--reason", "test", stdin=person.duf_number
    )
    assert len(json.loads(now.stdout)["registrations"]) == 1
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    before = hub_command(
        harness.settings,
        "person",
        "show",
        "--json",
        "--as-of",
        yesterday,
        "--reason",
        "test",
        stdin=person.duf_number,
    )
    assert json.loads(before.stdout)["registrations"] == []
    assert json.loads(before.stdout)["state"] == {}


def test_a_registrations_topic_created_without_the_brokers_timestamps_is_reported_with_its_fix(
    harness: HubHarness,
) -> None:
    """A topic made before the hub asked for LogAppendTime keeps the producer's time; the hub
    never alters it itself, and `hub topics ensure` says so and how to put it right."""
    from aiokafka.admin import NewTopic

    from hub.kafka.admin import config_drift
    from hub.kafka.topics import RECEIVED_BY_BROKER, TopicSpec

    old = f"{harness.settings.topic_prefix}.source.made-by-hand.registrations"

    async def create() -> None:
        admin = AIOKafkaAdminClient(**harness.admin.kafka.aiokafka())
        await admin.start()
        try:
            await admin.create_topics([NewTopic(old, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    current = harness.hub.names.registrations("oslo-fagsystem")
    specs = [TopicSpec(old, 1, RECEIVED_BY_BROKER), TopicSpec(current, 1, RECEIVED_BY_BROKER)]
    [drift] = asyncio.run(config_drift(harness.admin.kafka, specs))
    assert (drift.topic, drift.key, drift.wanted, drift.actual) == (
        old,
        "message.timestamp.type",
        "LogAppendTime",
        "CreateTime",
    )
    assert f"--entity-name {old} --add-config message.timestamp.type=LogAppendTime" in drift.fix("b:9093")


def test_the_cli_masks_a_number_written_with_separators_with_the_workers_key(
    harness: HubHarness, tmp_path: Path
) -> None:
    from hub.domain.identifiers import mask

    national_id = synthetic_person().national_id or ""
    written = f"{national_id[:6]} {national_id[6:]}"
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl([dict(event(synthetic_person()), sourceSystem=written)]))
    oslo = harness.settings.as_kafka_user("oslo-fagsystem")
    result = hub_command(oslo, "publish", "--source", "oslo-fagsystem", str(path))
    assert result.returncode == 1, result.stderr
    output = result.stdout + result.stderr
    assert written not in output and national_id[6:] not in output
    assert f"sourceSystem: is '{mask(national_id)}'" in output  # this machine's key, as the tests'


def test_the_cli_refuses_to_start_without_its_named_mask_key(tmp_path: Path) -> None:
    missing = tmp_path / "nir-mask.key"
    result = hub_command(Settings(mask_key_file=str(missing)), "rules", "list")
    assert result.returncode == 2
    assert f"NIR_MASK_KEY_FILE {missing} does not exist" in result.stderr
    assert not missing.exists()
