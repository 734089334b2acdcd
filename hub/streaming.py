"""What the hub changes in faust-streaming, and why. Each change is a documented subclass wired
in through Faust's own configuration (`hub.app`), never a patch of Faust's modules.

- `HubWorker` never runs Faust's terminal progress spinner. With a log level of WARN or higher,
  Faust's worker sets the root logger to DEBUG so that every log record turns the spinner; every
  library's debug record (aiokafka logs one for each message it sends) is then built and handled,
  which cost the registrations path about a quarter of its rate. A service logs to files; it has
  no terminal to spin.
- `HubPrometheusMonitor` is Faust's Prometheus sensor with the same series and values, cheaper
  per message: the sensor looks up a labelled child (`metric.labels(topic=..., partition=...)`)
  several times for every message, and prometheus_client validates the labels and takes a lock
  on each look-up; here each label set is looked up once and the child kept. The stream's label,
  which Faust derives with a regular expression for every event, is likewise kept per stream.
"""

from __future__ import annotations

import logging
from typing import Any
from weakref import WeakKeyDictionary

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import StreamT


class HubWorker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # before Faust's handler, which only spins when there is a spinner
        super().on_setup_root_logger(logger, level)


class HubPrometheusMonitor(PrometheusMonitor):
    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        labelled: dict[str, Any] = {
            name: _LabelledOnce(m) for name, m in metrics._asdict().items() if m._labelnames
        }
        super().__init__(metrics=metrics._replace(**labelled), **kwargs)
        self._stream_labels: WeakKeyDictionary[StreamT, str] = WeakKeyDictionary()

    def _stream_label(self, stream: StreamT) -> str:
        label = self._stream_labels.get(stream)
        if label is None:
            label = self._stream_labels[stream] = super()._stream_label(stream)
        return label


class _LabelledOnce:
    """A labelled prometheus_client metric whose children are looked up once per label set."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[tuple[str, Any], ...], Any] = {}

    def labels(self, **labels: Any) -> Any:
        key = tuple(labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(**labels)
        return child

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)
