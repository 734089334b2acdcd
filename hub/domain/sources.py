"""The sources as the register and its rules see them: which fagsystem installations exist, whom
they may report for, and whether IMDi has revoked one (`SourceState`, the one shape of that state
in the register and on the source-states topic). Reading the registry file is `hub.sources`'s."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

from hub.domain.municipalities import numbers_since


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

    def municipalities_of(self, source_id: str) -> frozenset[str]:
        """The municipalities the source reports for (none for a source not in the registry)."""
        source = self.sources.get(source_id)
        return source.municipalities if source is not None else frozenset()

    def __iter__(self) -> Iterator[Source]:
        return iter(self.sources.values())

