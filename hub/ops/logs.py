"""How the hub's processes log: one place that decides what a log line may contain and how often.

- **No personal data.** `RedactingFilter` formats each record and cleans it as everything else
  the hub writes is cleaned (`hub.domain.redaction`): identifiers masked, control characters
  dropped (a line break in a sender's value cannot forge a log line), a traceback kept as the one
  record it belongs to, with its identifiers masked too. Masks are keyed (`hub.domain.identifiers`);
  a record logged before the process has its key shows identifiers as `<id:11:unkeyed>`. The Kafka client and Faust's transport
  log each message's bytes at debug level, so their loggers never go below INFO.
- **Quiet outages.** While the broker or the database is down, the Kafka client and the retry
  loops say the same thing many times a second. `RepeatFilter` lets a record through once per
  `interval` seconds for each logger, level and message template, and the next one that passes
  says how many were held back.
- **Quiet probes.** Where a failure is the answer (is a broker running here?), `silenced` keeps
  the Kafka client from printing it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from hub.domain.identifiers import has_mask_key, mask
from hub.domain.redaction import blind, clean, mask_identifiers

# Loggers that print message keys, values or whole requests at debug level.
CHATTY_LOGGERS = ("aiokafka", "kafka", "faust.transport", "mode.utils.aiter")
# A log line's message is cut here; a traceback is kept whole (identifiers masked).
LOG_MESSAGE_LIMIT = 4000


# A record passes every handler's filters in turn; what the first decided and did is kept on it.
_CLEANED, _PASSES = "nir_cleaned", "nir_passes"


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _CLEANED, False):
            return True
        setattr(record, _CLEANED, True)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: say so, not what it held
            message = f"unformattable log record from {record.pathname}:{record.lineno}"
        # A record from before the wiring handed over the key (a library logging at import): a
        # log call must not fail, and must not fall back to a hash that could be reversed.
        masker: Callable[[str], str] = mask if has_mask_key() else blind
        record.msg, record.args = clean(message, LOG_MESSAGE_LIMIT, masker), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_identifiers(record.exc_text, masker)
        if record.stack_info:
            record.stack_info = mask_identifiers(record.stack_info, masker)
        return True


class RepeatFilter(logging.Filter):
    """At most one record per `interval` seconds for each (logger, level, template); a CRITICAL
    record (the process is about to end) always passes."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}  # passed at, held back since

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _PASSES, None)
        if decided is None:
            decided = self._passes(record)
            setattr(record, _PASSES, decided)
        return bool(decided)

    def _passes(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            passed_at, held = self._last.get(key, (-self.interval, 0))
            if now - passed_at < self.interval:
                self._last[key] = (passed_at, held + 1)
                return False
            self._last[key] = (now, 0)
            if len(self._last) > 10_000:  # templates are few; this bounds a pathological logger
                self._last.clear()
        if held:
            record.msg = f"{record.msg} [and {held} more like this in the last {now - passed_at:.0f} s]"
        return True


def install(level: int, *, repeat_seconds: float, handlers: Iterable[logging.Handler] | None = None) -> None:
    """Put the filters on every handler of the root logger (a handler's filters see the records
    of every logger, a logger's only its own), and keep the chatty loggers at INFO or above."""
    repeats, redaction = RepeatFilter(repeat_seconds), RedactingFilter()
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(repeats)  # first: a record held back is never formatted
            handler.addFilter(redaction)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))


SERVICE_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def for_service(repeat_seconds: float) -> None:
    """Logging for a long-running command outside Faust's worker (the connector, the gateway, the
    lag exporter): INFO to stderr, with the repeat and redaction filters on."""
    logging.basicConfig(level=logging.INFO, format=SERVICE_FORMAT)
    install(logging.INFO, repeat_seconds=repeat_seconds)


@contextmanager
def silenced(name: str) -> Iterator[None]:
    """No records from logger `name` or its children inside the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
