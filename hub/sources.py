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


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    municipalities: frozenset[str]


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
            sources[source_id] = Source(
                id=source_id,
                name=str(entry.get("name", source_id)),
                municipalities=frozenset(municipalities),
            )
        if not sources:
            raise ConfigurationError(f"{origin}: the source registry lists no sources")
        return cls(sources)
