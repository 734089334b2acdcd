"""Wiring: builds the hub's collaborators from settings. Tests wire their own where they need to.

Every hub process hands the domain its mask key here, once, at start (`install_masks`): the
domain reads no files, and `hub.domain.identifiers.mask` refuses to work without a key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from hub.config import LOCAL_MASK_KEY_FILE, Settings
from hub.domain.calendar import norwegian_date
from hub.domain.identifiers import MASK_KEY_BYTES, Masker, use_masker
from hub.errors import ConfigurationError
from hub.kafka.topics import TopicNames
from hub.pipeline.ports import UnitOfWork as RegistrationUnitOfWork
from hub.register.database import make_engine
from hub.register.unit_of_work import UnitOfWork, units_over
from hub.schemas.codec import SchemaCatalog, catalog
from hub.sources import SourceRegistry


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Hub:
    """Everything the pipeline needs besides the broker."""

    settings: Settings
    registry: SourceRegistry
    catalog: SchemaCatalog
    clock: Callable[[], dt.datetime] = field(default=utc_now)
    # Where the registration flow's units of work come from, if not from the register: tests of
    # decisions wire an in-memory one here (`hub.wiring.registration_flow` reads it).
    registration_units: Callable[[], RegistrationUnitOfWork] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Hub:
        install_masks(settings)
        registry = SourceRegistry.load(settings.sources_file, settings.service_principals)
        return cls(settings=settings, registry=registry, catalog=catalog())

    @cached_property
    def names(self) -> TopicNames:
        return TopicNames(self.settings.topic_prefix)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def _units(self) -> Callable[[], UnitOfWork]:
        return units_over(self.engine)

    def unit_of_work(self) -> UnitOfWork:
        """A unit of work on the register: the only door to it (`hub.register.unit_of_work`)."""
        return self._units()

    def today(self) -> dt.date:
        """Today in Norway: what "in the future" means for a fact's date."""
        return norwegian_date(self.clock())


def install_masks(settings: Settings) -> None:
    """Hand the domain this process's mask key (`NIR_MASK_KEY_FILE`); see `read_mask_key`."""
    use_masker(Masker(read_mask_key(Path(settings.mask_key_file))))


def read_mask_key(path: Path) -> bytes:
    """The mask key in `path`. The default file (this machine's local state) is made by the first
    process that needs it, as the local broker's passwords are; a file named in NIR_MASK_KEY_FILE
    must exist, so that a deployment that lost its key stops with a clear error rather than carry
    on with masks nobody can compare to yesterday's.

    Raises `ConfigurationError` for a missing, unreadable or too short key; never masks unkeyed."""
    if not path.exists() and path == LOCAL_MASK_KEY_FILE:
        _make_mask_key(path)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"NIR_MASK_KEY_FILE {path} does not exist: identifiers are masked with a secret key; "
            f"make one ({MASK_KEY_BYTES} random bytes, mode 0600: "
            f"`head -c {MASK_KEY_BYTES} /dev/urandom > {path}`) or restore the one in use "
            "(docs/operations/security.md, Masked identifiers)"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"NIR_MASK_KEY_FILE {path} cannot be read: {exc.strerror}") from None
    if len(key) < MASK_KEY_BYTES:
        raise ConfigurationError(
            f"NIR_MASK_KEY_FILE {path} holds {len(key)} bytes; a mask key is at least {MASK_KEY_BYTES} random bytes"
        )
    return key


def _make_mask_key(path: Path) -> None:
    """Write a new key to `path` (0600, its directory 0700) unless another process got there
    first: the key is written whole to a file of its own, then linked into place, which fails if
    `path` exists, so every process starting together reads the same, complete key."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(secrets.token_bytes(MASK_KEY_BYTES))
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot make the mask key {path}: {exc.strerror}; set NIR_MASK_KEY_FILE to a key file"
        ) from None
