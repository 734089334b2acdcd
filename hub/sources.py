"""The source registry: which fagsystem installations exist and whom they may report for, and
whether IMDi has revoked one.

The registry file (`sources.toml`) says who the sources are; a revocation is state, not
configuration: `hub sources revoke` records it in the register (`source_states`, read by the
worker in each batch's transaction) and publishes it on the compacted topic
`TopicNames.source_states` (read by the gateway, which has no database), so both stop a revoked
source without a restart. `SourceState` is the one shape of that state in both places.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.domain.municipalities import numbers_since
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
class SourceState:
    """Whether a source is revoked, since when, by whom and why (a restoration is a state with
    `revoked` False). On the source-states topic: the source id as key, `as_bytes` as value."""

    source: str
    revoked: bool
    since: dt.datetime
    by: str
    reason: str

    def as_bytes(self) -> bytes:
        return json.dumps(
            {
                "source": self.source,
                "revoked": self.revoked,
                "since": self.since.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "by": self.by,
                "reason": self.reason,
            },
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_bytes(cls, value: bytes) -> SourceState:
        """ValueError for anything that is not a state this hub wrote."""
        try:
            data = json.loads(value)
            since = dt.datetime.fromisoformat(data["since"])
            state = cls(str(data["source"]), data["revoked"], since, str(data["by"]), str(data["reason"]))
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError("not a source state") from exc
        if not isinstance(state.revoked, bool) or since.tzinfo is None:
            raise ValueError("not a source state")
        return state


@dataclass(frozen=True)
class Reporting:
    """That a source reports for a municipality, from the day `since` (None: always) until the
    day before `until` (None: still)."""

    municipality: str
    since: dt.date | None = None
    until: dt.date | None = None

    def on(self, day: dt.date) -> bool:
        return (self.since is None or self.since <= day) and (self.until is None or day < self.until)


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    # When it reports for each municipality: always, or from one day until another.
    reporting: tuple[Reporting, ...]
    # Who the source is on the broker. `scram`: the hub keeps the principal's password and makes
    # its credential (`hub sources grant`); `maskinporten`: the principal is the client id in the
    # source's Maskinporten access tokens, and there is no password.
    principal: str = ""
    authentication: str = "scram"

    @property
    def municipalities(self) -> frozenset[str]:
        """Every municipality it reports or reported for."""
        return frozenset(r.municipality for r in self.reporting)

    def reports_for(self, municipality: str, day: dt.date) -> bool:
        """Whether the source reports for this municipality on `day` (for a municipality listed
        without dates: always)."""
        return any(r.municipality == municipality and r.on(day) for r in self.reporting)

    def municipalities_on(self, day: dt.date) -> frozenset[str]:
        return frozenset(m for m in self.municipalities if self.reports_for(m, day))

    def past_numbers(self, fact_date: dt.date, today: dt.date) -> frozenset[str]:
        """The numbers besides today's under which the source may report a fact of `fact_date`.

        The registry names the numbers a source reports for, its periods judged on today's date. A
        municipality reports its own past (DOMAIN.md) under the number it had on the fact's date or
        any it has had since, read through SSB's changes: a 3201 (Bærum) source sends a fact of 2019
        as 0219, 3024 or 3201. Through a merger that is the merged municipality's number: Haram
        (1580) sends its 2022 past as 1507, the Ålesund it was then part of, as DOMAIN.md says it
        would have to, and Ålesund (1508) too. Never a number that was not this municipality: not
        0301 from Bærum, nor 1534 Haram (a part that left again, see hub.domain.municipalities)
        from Ålesund."""
        current = self.municipalities_on(today)
        return frozenset(n for m in current for n in numbers_since(m, fact_date, today)) - current

    def may_report(self, municipality: str, fact_date: dt.date, today: dt.date) -> bool:
        """Whether the source may report a fact of `fact_date` for `municipality` (rule
        NIR-SOURCE-002, and the support desk's check of a replay): a number it reports for today,
        or one of that municipality's past (`past_numbers`)."""
        return self.reports_for(municipality, today) or municipality in self.past_numbers(fact_date, today)

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
