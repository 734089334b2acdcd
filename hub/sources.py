"""The source registry: which fagsystem installations exist and whom they may report for."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import ConfigurationError

SOURCE_ID_PATTERN = r"[a-z0-9][a-z0-9-]*"
# A Kafka principal's name: a SCRAM user name, or a Maskinporten client id (a UUID).
PRINCIPAL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
AUTHENTICATIONS = ("scram", "maskinporten")


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    municipalities: frozenset[str]
    # Who the source is on the broker. `scram`: the hub keeps the principal's password and makes
    # its credential (`hub sources grant`); `maskinporten`: the principal is the client id in the
    # source's Maskinporten access tokens, and there is no password.
    principal: str = ""
    authentication: str = "scram"

    @property
    def user(self) -> str:
        """The principal's name (a SCRAM user name or a Maskinporten client id)."""
        return self.principal or self.id

    @property
    def kafka_principal(self) -> str:
        return f"User:{self.user}"


@dataclass(frozen=True)
class SourceRegistry:
    sources: dict[str, Source]

    def get(self, source_id: str) -> Source | None:
        return self.sources.get(source_id)

    def __iter__(self) -> Iterator[Source]:
        return iter(self.sources.values())

    @classmethod
    def load(cls, path: str | Path) -> SourceRegistry:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"source registry {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"source registry {path} is not valid TOML: {exc}") from exc
        return cls.from_mapping(data, origin=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], origin: str = "<mapping>") -> SourceRegistry:
        sources: dict[str, Source] = {}
        for source_id, entry in (data.get("sources") or {}).items():
            if not re.fullmatch(SOURCE_ID_PATTERN, source_id):
                raise ConfigurationError(
                    f"{origin}: source id {source_id!r} must be lower-case letters, digits and '-'"
                )
            municipalities = entry.get("municipalities")
            if not municipalities or not all(
                isinstance(m, str) and re.fullmatch(r"\d{4}", m) for m in municipalities
            ):
                raise ConfigurationError(
                    f"{origin}: source {source_id!r} needs a non-empty list of 4-digit municipality numbers"
                )
            authentication = entry.get("authentication", "scram")
            if authentication not in AUTHENTICATIONS:
                raise ConfigurationError(
                    f"{origin}: source {source_id!r}: authentication must be scram or maskinporten"
                )
            principal = entry.get("principal", "" if authentication == "scram" else None)
            if principal is None:
                raise ConfigurationError(
                    f"{origin}: source {source_id!r} authenticates with Maskinporten: its principal "
                    "must be its Maskinporten client id"
                )
            if principal and not (isinstance(principal, str) and re.fullmatch(PRINCIPAL_PATTERN, principal)):
                raise ConfigurationError(
                    f"{origin}: source {source_id!r}: principal must be letters, digits, '.', '_' and '-'"
                )
            sources[source_id] = Source(
                id=source_id,
                name=str(entry.get("name", source_id)),
                municipalities=frozenset(municipalities),
                principal=principal,
                authentication=authentication,
            )
        if not sources:
            raise ConfigurationError(f"{origin}: the source registry lists no sources")
        principals = [s.kafka_principal for s in sources.values()]
        if len(set(principals)) != len(principals):
            raise ConfigurationError(f"{origin}: two sources have the same principal")
        return cls(sources)
