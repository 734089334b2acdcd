"""The source registry: which fagsystem installations exist and whom they may report for, and
whether IMDi has revoked one.

The registry file (`sources.toml`) says who the sources are; a revocation is state, not
configuration: `hub sources revoke` records it in the register (`source_states`, read by the
worker in each batch's transaction) and publishes it on the compacted topic
`TopicNames.source_states` (read by the gateway, which has no database), so both stop a revoked
source without a restart. The registry itself, and `SourceState`, the one shape of that state in
both places, are `hub.domain.sources`'s; this module reads and checks the file.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.domain.sources import Reporting, Source
from hub.domain.sources import SourceRegistry as Registry
from hub.errors import ConfigurationError

SOURCE_ID_PATTERN = r"[a-z0-9][a-z0-9-]*"
# A Kafka principal's name: a SCRAM user name, or a Maskinporten client id (a UUID).
PRINCIPAL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
AUTHENTICATIONS = ("scram", "maskinporten")
# Names no source may take, as its id or its principal: the hub's own principals and the broker's
# super users all begin so (nir-admin, nir-broker, nir-worker, nir-gateway, ...). A source named
# so would share a service's rights, or `hub sources grant` would hand over a super user's password.
RESERVED_PREFIX = "nir-"


@dataclass(frozen=True)
class SourceRegistry(Registry):
    """The registry as read from its file (`load`) or a mapping, each source checked."""

    @classmethod
    def load(cls, path: str | Path, reserved: Collection[str] = ()) -> SourceRegistry:
        """The registry in `path`; `reserved`: the hub's service principals as configured (they
        may be named without the reserved prefix), which no source may use either."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"source registry {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"source registry {path} is not valid TOML: {exc}") from exc
        return cls.from_mapping(data, origin=str(path), reserved=reserved)

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], origin: str = "<mapping>", reserved: Collection[str] = ()
    ) -> SourceRegistry:
        sources: dict[str, Source] = {}
        for source_id, entry in (data.get("sources") or {}).items():
            if not re.fullmatch(SOURCE_ID_PATTERN, source_id):
                raise ConfigurationError(
                    f"{origin}: source id {source_id!r} must be lower-case letters, digits and '-'"
                )
            reporting = _reporting(entry.get("municipalities"), f"{origin}: source {source_id!r}")
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
                reporting=reporting,
                principal=principal,
                authentication=authentication,
            )
        for source in sources.values():
            for what, name in (("id", source.id), ("principal", source.user)):
                if name.lower().startswith(RESERVED_PREFIX) or name in reserved:
                    raise ConfigurationError(
                        f"{origin}: source {source.id!r}: the {what} {name!r} is reserved for the hub's "
                        f"own principals (names beginning {RESERVED_PREFIX!r}, and the configured ones)"
                    )
        if not sources:
            raise ConfigurationError(f"{origin}: the source registry lists no sources")
        principals = [s.kafka_principal for s in sources.values()]
        if len(set(principals)) != len(principals):
            raise ConfigurationError(f"{origin}: two sources have the same principal")
        return cls(sources)


def _reporting(municipalities: Any, where: str) -> tuple[Reporting, ...]:
    """A source's `municipalities`: numbers, or tables `{ number = "3201", from = 2024-01-01,
    until = 2030-01-01 }` for a municipality it reports for from one day (`from`) until the day
    before another (`until`)."""
    needs = f"{where} needs a non-empty list of 4-digit municipality numbers"
    if not isinstance(municipalities, list) or not municipalities:
        raise ConfigurationError(needs)
    found: list[Reporting] = []
    for item in municipalities:
        if isinstance(item, str):
            item = {"number": item}
        if not isinstance(item, dict) or set(item) - {"number", "from", "until"}:
            raise ConfigurationError(f"{needs}, or tables with number, from and until")
        number, since, until = item.get("number"), item.get("from"), item.get("until")
        if not (isinstance(number, str) and re.fullmatch(r"\d{4}", number)):
            raise ConfigurationError(needs)
        for name, day in (("from", since), ("until", until)):
            if day is not None and not (isinstance(day, dt.date) and not isinstance(day, dt.datetime)):
                raise ConfigurationError(
                    f"{where}: {name} of municipality {number} must be a date (2024-01-01)"
                )
        if since is not None and until is not None and until <= since:
            raise ConfigurationError(f"{where}: municipality {number} is reported for until before from")
        found.append(Reporting(number, since, until))
    plain = [r.municipality for r in found if r.since is None and r.until is None]
    if len(plain) != len(set(plain)) or set(plain) & {r.municipality for r in found if r.since or r.until}:
        raise ConfigurationError(f"{where}: a municipality is listed twice, once without dates")
    return tuple(found)
