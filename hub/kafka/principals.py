"""Who may do what on the broker: the ACLs and SCRAM credentials the hub makes, through Kafka's
admin API (confluent-kafka's admin client; aiokafka has no ACL or SCRAM calls).

The broker allows nothing that no ACL allows (StandardAuthorizer,
allow.everyone.if.no.acl.found=false). Each principal gets only what its work needs:

| principal        | may                                                                      |
|------------------|--------------------------------------------------------------------------|
| a source         | write its registrations topic; read its receipts topic, in consumer      |
|                  | groups named `<prefix>.source.<id>.*`                                    |
| the worker       | read every hub topic; write each source's receipts and the dead letters; |
|                  | consume in the group `<app id>`                                          |
| replays          | write each source's registrations (the support page and `hub cases       |
|                  | replay` send corrected events as this principal, not as the worker)      |
| the gateway      | write each source's registrations and read its receipts (`hub gateway`   |
|                  | sends for the source a verified token names; it uses no consumer group); |
|                  | read the sources' revocations (`TopicNames.source_states`)               |
| the connector    | write address changes; read and write its position; its transactional id |
| the monitor      | describe the hub's topics and the worker's consumer group: end offsets    |
|                  | and committed offsets for `hub lag-exporter`, no message read or written |
| nir-admin        | everything (a super user in the broker's configuration): topics, ACLs,   |
|                  | credentials; only for `hub topics ensure` and `hub sources`              |

Every call is idempotent: creating an ACL that exists changes nothing, and a SCRAM credential is
written again from the password the hub keeps (which is also how a password is rotated).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from hub.config import Settings
from hub.domain.sources import Source
from hub.errors import BrokerUnavailable, ConfigurationError
from hub.kafka.admin import ensure_topics
from hub.kafka.topics import TopicNames, required_topics
from hub.sources import SourceRegistry

log = logging.getLogger(__name__)

SCRAM_ITERATIONS = 8192
_TIMEOUT = 30.0

READ, WRITE, DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED


def _allow(
    principal: str, kind: ResourceType, name: str, pattern: ResourcePatternType, operation: Any
) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)


def service_acls(settings: Settings) -> list[AclBinding]:
    """The ACLs of the hub's own services for this hub's topics (its prefix) and group (its app id)."""
    names = TopicNames(settings.topic_prefix)
    worker = f"User:{settings.kafka_worker_user}"
    connector = f"User:{settings.kafka_connector_user}"
    monitor = f"User:{settings.kafka_monitor_user}"
    gateway = f"User:{settings.kafka_gateway_user}"
    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    return [
        _allow(worker, topic, f"{settings.topic_prefix}.", PREFIXED, READ),
        _allow(worker, topic, names.dead_letters, LITERAL, WRITE),
        _allow(worker, group, settings.app_id, LITERAL, READ),
        _allow(connector, topic, names.address_changes, LITERAL, WRITE),
        _allow(connector, topic, names.connector_position, LITERAL, READ),
        _allow(connector, topic, names.connector_position, LITERAL, WRITE),
        _allow(connector, txn, f"{settings.app_id}-folkeregister-connector", LITERAL, WRITE),
        # The gateway follows the sources' revocations (by offset, without a consumer group; read
        # implies describe).
        _allow(gateway, topic, names.source_states, LITERAL, READ),
        # Describe, not read: offsets are metadata; the messages stay out of the monitor's reach.
        _allow(monitor, topic, f"{settings.topic_prefix}.", PREFIXED, DESCRIBE),
        _allow(monitor, group, settings.app_id, LITERAL, DESCRIBE),
    ]


def source_acls(settings: Settings, source: Source) -> list[AclBinding]:
    """A source's ACLs: its own two topics and its own consumer groups, nothing else."""
    names = TopicNames(settings.topic_prefix)
    principal = source.kafka_principal
    return [
        _allow(principal, ResourceType.TOPIC, names.registrations(source.id), LITERAL, WRITE),
        _allow(principal, ResourceType.TOPIC, names.receipts(source.id), LITERAL, READ),
        _allow(principal, ResourceType.GROUP, receipt_group_prefix(settings, source.id), PREFIXED, READ),
    ]


def services_acls_for(settings: Settings, source: Source) -> list[AclBinding]:
    """The hub's services' rights on one source's topics: the worker answers it on its receipts
    topic, replays send its corrected events to its registrations topic, and the gateway sends
    its events there and reads its receipts (by offset, without a consumer group)."""
    names = TopicNames(settings.topic_prefix)
    gateway = f"User:{settings.kafka_gateway_user}"
    return [
        _allow(gateway, ResourceType.TOPIC, names.registrations(source.id), LITERAL, WRITE),
        _allow(gateway, ResourceType.TOPIC, names.receipts(source.id), LITERAL, READ),
        _allow(
            f"User:{settings.kafka_worker_user}",
            ResourceType.TOPIC,
            names.receipts(source.id),
            LITERAL,
            WRITE,
        ),
        _allow(
            f"User:{settings.kafka_replay_user}",
            ResourceType.TOPIC,
            names.registrations(source.id),
            LITERAL,
            WRITE,
        ),
    ]


def receipt_group_prefix(settings: Settings, source_id: str) -> str:
    """Consumer groups a source may use to follow its receipts start with this."""
    return f"{settings.topic_prefix}.source.{source_id}."


def managed_password(settings: Settings, principal: str) -> str:
    """The SCRAM password the hub keeps for a principal, made (random) the first time; the file
    is readable by its owner only."""
    path = Path(settings.password_file(principal))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        log.info("made a SCRAM password for %s in %s", principal, path)
    password = path.read_text(encoding="utf-8").strip()
    if not password:
        raise ConfigurationError(f"the password file {path} is empty")
    return password


class BrokerAccess:
    """The admin's hand on the broker's ACLs and credentials (settings of the admin principal)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin = AdminClient({**settings.kafka.librdkafka(), "logger": log})  # type: ignore[dict-item]

    def ensure(self, registry: SourceRegistry) -> None:
        """Credentials and ACLs of the hub's services and of every source in the registry, in
        one request of each kind."""
        settings = self.settings
        services = (
            settings.kafka_worker_user,
            settings.kafka_replay_user,
            settings.kafka_connector_user,
            settings.kafka_monitor_user,
            settings.kafka_gateway_user,
        )
        scram_sources = [source.user for source in registry if source.authentication == "scram"]
        self.set_passwords({user: managed_password(settings, user) for user in (*services, *scram_sources)})
        acls = service_acls(settings)
        for source in registry:
            acls += [*source_acls(settings, source), *services_acls_for(settings, source)]
        self.allow(acls)

    def grant(self, source: Source) -> list[AclBinding]:
        """The source's credential (if the hub keeps its password) and ACLs; returns the ACLs."""
        if source.authentication == "scram":
            self.set_passwords({source.user: managed_password(self.settings, source.user)})
        acls = source_acls(self.settings, source)
        self.allow([*acls, *services_acls_for(self.settings, source)])
        return acls

    def revoke(self, source: Source) -> int:
        """Remove every ACL of the source's principal, and its SCRAM credential if the hub made
        it; its topics and what they hold stay, and so do the services' rights on them (the
        worker answers what is still on the topic). Returns how many ACLs were removed."""
        removed = self.forbid_principal(source.kafka_principal)
        if source.authentication == "scram":
            self.delete_password(source.user)
        return removed

    def set_topic_configs(self, changes: Iterable[tuple[str, str, str]]) -> None:
        """Set (topic, key, value) configs incrementally: only the keys named change, so the
        operator's other settings on the topic stay."""
        by_topic: dict[str, list[ConfigEntry]] = {}
        for topic, key, value in changes:
            entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            by_topic.setdefault(topic, []).append(entry)
        if by_topic:
            resources = [
                ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
                for topic, entries in by_topic.items()
            ]
            admin_results(self._admin.incremental_alter_configs(resources, request_timeout=_TIMEOUT))

    def allow(self, acls: Iterable[AclBinding]) -> None:
        admin_results(self._admin.create_acls(list(acls), request_timeout=_TIMEOUT))

    def acls_of(self, principal: str) -> list[AclBinding]:
        future = self._admin.describe_acls(_filter(principal), request_timeout=_TIMEOUT)
        return list(admin_result(future))

    def forbid_principal(self, principal: str) -> int:
        results = admin_results(self._admin.delete_acls([_filter(principal)], request_timeout=_TIMEOUT))
        return sum(len(deleted) for deleted in results)

    def set_passwords(self, passwords: dict[str, str]) -> None:
        """Write each principal's SCRAM credential from its password (made again if it exists)."""
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upsertions: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(user, info, secret.encode()) for user, secret in passwords.items()
        ]
        admin_results(self._admin.alter_user_scram_credentials(upsertions, request_timeout=_TIMEOUT))

    def delete_password(self, principal: str) -> None:
        deletion = UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512)
        try:
            admin_results(self._admin.alter_user_scram_credentials([deletion], request_timeout=_TIMEOUT))
        except ConfigurationError as exc:
            if "RESOURCE_NOT_FOUND" not in str(exc):  # already gone: revoking twice is fine
                raise


def _filter(principal: str) -> AclBindingFilter:
    # None matches any name and any host (librdkafka's filter; its type hints say str).
    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        principal,
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def describe(acl: AclBinding) -> str:
    """One ACL as a line: who may do what to which resource."""
    kind, operation, pattern = (
        getattr(value, "name", value) for value in (acl.restype, acl.operation, acl.resource_pattern_type)
    )
    return f"{acl.principal} may {operation} {kind} {acl.name} ({pattern})"


def admin_results(futures: dict[Any, Future[Any]]) -> list[Any]:
    """The results of a confluent-kafka admin call's futures (`admin_result` each)."""
    return [admin_result(future) for future in futures.values()]


def admin_result(future: Future[Any]) -> Any:
    """One admin future's result, its failure as the hub's error: the broker not answering
    (BrokerUnavailable), or a refusal (ConfigurationError, with the first line of its text)."""
    try:
        return future.result(timeout=_TIMEOUT + 5)
    except TimeoutError:
        raise BrokerUnavailable("Kafka did not answer the admin request in time") from None
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        name = getattr(error, "name", lambda: type(error).__name__)()
        if name in ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT"):
            raise BrokerUnavailable(f"Kafka does not answer: {name}") from None
        if name.endswith("AUTHORIZATION_FAILED"):
            raise ConfigurationError(
                f"Kafka refused the admin request ({name}): run it as the admin principal"
            ) from None
        # The broker's text can carry a dump of the request: its first line is enough.
        detail = str(getattr(error, "str", lambda: "")()).splitlines()[:1]
        raise ConfigurationError(
            f"Kafka refused the admin request ({name}): {''.join(detail)[:200]}"
        ) from None


async def prepare_broker(admin: Settings, registry: SourceRegistry) -> list[str]:
    """Everything `hub topics ensure` does, as the admin principal: the hub's topics, its
    services' credentials and ACLs, and every registered source's grant. Returns the topics it
    created."""
    created = await ensure_topics(admin.kafka, required_topics(admin, registry), admin.replication_factor)
    await asyncio.to_thread(BrokerAccess(admin).ensure, registry)
    return created
