"""Settings from the environment and the source registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hub.config import Settings
from hub.errors import ConfigurationError
from hub.kafka.topics import TopicNames, required_topics
from hub.sources import SourceRegistry


def test_defaults_run_on_the_embedded_register_and_a_local_broker() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.database_url.startswith("sqlite:///")
    assert not settings.allow_synthetic_identifiers


def test_settings_survive_the_trip_through_environment_variables() -> None:
    settings = Settings.from_env(
        {"NIR_WEB_PORT": "7001", "NIR_ALLOW_SYNTHETIC_IDENTIFIERS": "yes", "NIR_RETRY_MAX_SECONDS": "2.5"}
    )
    assert (settings.web_port, settings.allow_synthetic_identifiers, settings.retry_max_seconds) == (
        7001,
        True,
        2.5,
    )
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("NIR_WEB_PORT", "web", "whole number"),
        ("NIR_ALLOW_SYNTHETIC_IDENTIFIERS", "maybe", "true or false"),
        ("NIR_TOPIC_PREFIX", "NIR prod", "lower-case"),
        ("NIR_REGISTRATION_PARTITIONS", "0", "at least 1"),
        ("NIR_FETCH_MIN_BYTES", "0", "at least 1"),
        ("NIR_FETCH_WAIT_SECONDS", "0", "more than 0"),
        ("NIR_FETCH_WAIT_SECONDS", "5", "at most 1"),
    ],
)
def test_a_bad_setting_is_refused_by_name(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Settings.from_env({variable: value})
    assert variable in str(caught.value)


def test_the_database_password_is_masked_when_settings_are_printed() -> None:
    settings = Settings.from_env({"NIR_DATABASE_URL": "postgresql+psycopg://hub:s3cret@db/nir"})
    assert "s3cret" not in settings.describe()
    assert "postgresql+psycopg://hub:***@db/nir" in settings.describe()


def test_the_shipped_source_registry_loads() -> None:
    registry = SourceRegistry.load(Settings().sources_file)
    assert {s.id for s in registry} == {"oslo-fagsystem", "vestland-fagsystem"}
    assert registry.get("vestland-fagsystem").municipalities == {"4601", "4631"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sources.Bad_Id]\nmunicipalities=['0301']", "lower-case"),
        ("[sources.ok]\nmunicipalities=[]", "non-empty"),
        ("[sources.ok]\nmunicipalities=['301']", "4-digit"),
        ("", "no sources"),
        ("[sources.ok", "not valid TOML"),
        ("[sources.nir-admin]\nmunicipalities=['0301']", "the id 'nir-admin' is reserved"),
        ("[sources.ok]\nmunicipalities=['0301']\nprincipal='nir-gateway'", "the principal 'nir-gateway' is reserved"),
        ("[sources.ok]\nmunicipalities=['0301']\nprincipal='NIR-Broker'", "the principal 'NIR-Broker' is reserved"),
    ],
)
def test_a_broken_source_registry_is_refused_with_a_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        SourceRegistry.load(path)


def test_a_source_may_not_take_a_service_principals_configured_name(tmp_path: Path) -> None:
    """Issue 29, point 7: `hub sources grant` of such a source would hand over that service's password."""
    path = tmp_path / "sources.toml"
    path.write_text("[sources.ok]\nmunicipalities=['0301']\nprincipal='hub-worker'")
    settings = dataclasses.replace(Settings(), kafka_worker_user="hub-worker")
    with pytest.raises(ConfigurationError, match="'hub-worker' is reserved"):
        SourceRegistry.load(path, settings.service_principals)
    assert SourceRegistry.load(path).get("ok") is not None  # the name is free where no service has it


def test_each_source_has_its_own_registrations_and_receipts_topic_matched_by_the_pattern() -> None:
    names = TopicNames("nir")
    settings = Settings()
    specs = {
        s.name: s.partitions for s in required_topics(settings, SourceRegistry.load(settings.sources_file))
    }
    assert specs["nir.source.oslo-fagsystem.registrations"] == settings.registration_partitions
    assert "nir.source.oslo-fagsystem.receipts" in specs
    assert names.source_of("nir.source.oslo-fagsystem.registrations") == "oslo-fagsystem"
    assert names.source_of("nir.source.oslo-fagsystem.receipts") is None
    assert names.source_of("nirx.source.a.registrations") is None
    assert names.matching_registrations(["nir.dead-letters", "nir.source.x.registrations"]) == [
        "nir.source.x.registrations"
    ]


def test_the_configuration_page_documents_every_setting_with_its_default() -> None:
    from dataclasses import fields

    page = (Path(__file__).resolve().parents[2] / "docs" / "operations" / "configuration.md").read_text(
        encoding="utf-8"
    )
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[2].strip(" `")
        for line in page.splitlines()
        if line.startswith("| `NIR_")
    }
    # Defaults that depend on where things are on this machine are described, not written out.
    described = {"sources_file", "kafka_ca_file", "kafka_secrets_dir", "kafka_password_file", "mask_key_file"}
    for f in fields(Settings):
        assert f.metadata["env"] in rows, f.metadata["env"]
        if f.name not in described:
            default = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
            assert rows[f.metadata["env"]] == default, f.metadata["env"]
    assert set(rows) == {f.metadata["env"] for f in fields(Settings)}


def test_the_configuration_page_is_the_one_generated_from_the_settings() -> None:
    # The table is written by tools/configuration_docs.py; a setting added, removed or reworded in
    # hub/config.py without regenerating it fails here, saying how to regenerate.
    from tools import configuration_docs

    configuration_docs.check()


def test_a_configuration_page_whose_table_differs_from_the_settings_is_stale(tmp_path: Path) -> None:
    from tools import configuration_docs

    page = tmp_path / "configuration.md"
    current = configuration_docs.PAGE.read_text(encoding="utf-8")
    page.write_text(current.replace("| `NIR_DATABASE_URL` |", "| `NIR_DATABASE_URI` |"), encoding="utf-8")
    with pytest.raises(configuration_docs.StalePage, match=r"is stale.*Run `python -m tools\.configuration_docs`"):
        configuration_docs.check(page)


def test_every_secret_is_masked_when_settings_are_printed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "NIR_KAFKA_PASSWORD": "kafka-s3cret",
            "NIR_DATABASE_URL": "postgresql+psycopg://hub@db/nir?sslmode=verify-full&sslpassword=key-s3cret",
        }
    )
    printed = settings.describe()
    assert "s3cret" not in printed
    assert "kafka_password = ***" in printed
    assert "sslmode=verify-full&sslpassword=***" in printed
    assert "kafka_username = nir-worker" in printed  # who, not how
    # The connection made from them does not show the password either.
    (tmp_path / "ca.pem").write_text("not checked here")
    kafka = dataclasses.replace(settings, kafka_ca_file=str(tmp_path / "ca.pem")).kafka
    assert "kafka-s3cret" not in repr(kafka)


def test_a_kafka_password_comes_from_the_principals_file_and_a_missing_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "nir-connector.password").write_text("from-the-file\n")
    settings = dataclasses.replace(
        Settings(), kafka_ca_file="", kafka_secrets_dir=str(tmp_path), kafka_username="nir-connector"
    )
    assert settings.kafka.password == "from-the-file"
    assert settings.kafka.librdkafka()["sasl.username"] == "nir-connector"
    with pytest.raises(ConfigurationError, match="nir-worker"):
        _ = settings.as_kafka_user("nir-worker").kafka


def test_a_source_names_its_principal_and_how_it_authenticates() -> None:
    registry = SourceRegistry.from_mapping(
        {
            "sources": {
                "a": {"municipalities": ["0301"]},
                "b": {"municipalities": ["4601"], "authentication": "maskinporten", "principal": "c1-uuid"},
            }
        }
    )
    assert registry.sources["a"].kafka_principal == "User:a"
    assert registry.sources["b"].kafka_principal == "User:c1-uuid"
    with pytest.raises(ConfigurationError, match="Maskinporten client id"):
        SourceRegistry.from_mapping(
            {"sources": {"b": {"municipalities": ["4601"], "authentication": "maskinporten"}}}
        )
    with pytest.raises(ConfigurationError, match="same principal"):
        SourceRegistry.from_mapping(
            {
                "sources": {
                    "a": {"municipalities": ["0301"]},
                    "b": {"municipalities": ["4601"], "principal": "a"},
                }
            }
        )


def test_the_web_server_serves_https_only_with_both_certificate_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="go together"):
        Settings.from_env({"NIR_WEB_TLS_CERT_FILE": "/x.crt"})
    settings = Settings.from_env({"NIR_WEB_TLS_CERT_FILE": "/nope.crt", "NIR_WEB_TLS_KEY_FILE": "/nope.key"})
    assert settings.served_over_tls
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        settings.web_ssl_context()
    assert Settings().web_ssl_context() is None and not Settings().served_over_tls
