"""The private names of faust-streaming, mode, aiokafka and prometheus_client that the hub relies
on, each checked against the installed libraries.

The hub's changes to Faust (`hub.worker`, `hub.ops.monitor`, `hub.kafka.transport`) subclass Faust's classes, override some of their
private methods and read some of their private state. A private name may go in any release,
and an override of a method that no longer exists is simply never called: nothing would fail,
the hub would only quietly lose what it changes. So every private name the module uses is
listed here, either as upstream's (and then it must exist upstream) or as the hub's own (and then
it must not, or it would shadow upstream's). A new private name in them fails the test
until it is listed; an upgrade that removes one fails it with what relies on it.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.producer.message_accumulator import BatchBuilder  # noqa: F401  # aiokafka's public batches
from faust.sensors.prometheus import PrometheusMonitor
from faust.transport.drivers import aiokafka as kafka_driver
from prometheus_client import Counter

import hub.kafka.transport
import hub.ops.monitor
import hub.worker

MODULES = (hub.worker, hub.ops.monitor, hub.kafka.transport)

# Upstream's private names the modules use: the name → where it lives and what relies on it.
UPSTREAM: dict[str, tuple[type, str]] = {
    "_schedule_shutdown": (faust.Worker, "HubWorker arms its stop deadline when a stop begins"),
    "_signal_stop_time": (faust.Worker, "HubWorker arms the deadline once per stop"),
    "_metrics": (PrometheusMonitor, "HubPrometheusMonitor.publish writes Faust's metrics"),
    "_clear_partition_related_metrics": (PrometheusMonitor, "a rebalance publishes the counts first"),
    "_stream_label": (PrometheusMonitor, "the stream's label, looked up once per stream"),
    "_labelnames": (Counter, "which of Faust's metrics are labelled"),
    "_create_worker_consumer": (kafka_driver.AIOKafkaConsumerThread, "the fetch wait and size are set"),
    "_fetch_max_wait_ms": (AIOKafkaConsumer, "HubConsumerThread lets the broker gather a fetch"),
    "_fetch_min_bytes": (AIOKafkaConsumer, "HubConsumerThread lets the broker gather a fetch"),
    "_new_consumer_thread": (kafka_driver.Consumer, "HubConsumer runs HubConsumerThread"),
    "_committed_offset": (kafka_driver.Consumer, "HubConsumer.ack acknowledges a batch's records"),
    "_acked": (kafka_driver.Consumer, "HubConsumer.ack acknowledges a batch's records"),
    "_acked_index": (kafka_driver.Consumer, "HubConsumer.ack acknowledges a batch's records"),
    "_n_acked": (kafka_driver.Consumer, "HubConsumer.ack acknowledges a batch's records"),
    "_wait_next_records": (kafka_driver.Consumer, "HubConsumer.getmany reads a fetch"),
    "_buffered_partitions": (kafka_driver.Consumer, "HubConsumer.getmany delivers as Faust would"),
    "_read_offset": (kafka_driver.Consumer, "HubConsumer._note_holes passes over offsets without a record"),
    "_add_gap": (kafka_driver.Consumer, "HubConsumer._note_holes passes over offsets without a record"),
    "_settings_extra": (kafka_driver.Producer, "HubProducer is always idempotent"),
    "_ensure_producer": (kafka_driver.Producer, "HubProducer.send_batches hands over record batches"),
    "_send_on_produce_message": (kafka_driver.Producer, "Faust's sensors hear of each message sent"),
}

# The modules' own private names: the name → the hub's class it belongs to, which must not
# shadow a name of the class's upstream bases; None for a module-level name, a class of the
# module's own, or the standard library's (`os._exit`, a named tuple's `_asdict` and `_replace`,
# which are public API despite the underscore).
OWN: dict[str, str | None] = {
    "_active_events": "HubPrometheusMonitor",
    "_events_label": "HubPrometheusMonitor",
    "_new_events": "HubPrometheusMonitor",
    "_new_events_by_stream": "HubPrometheusMonitor",
    "_new_messages": "HubPrometheusMonitor",
    "_new_messages_by_topic": "HubPrometheusMonitor",
    "_new_sent": "HubPrometheusMonitor",
    "_new_sent_by_topic": "HubPrometheusMonitor",
    "_stream_labels": "HubPrometheusMonitor",
    "_is_delivery": "HubConsumer",
    "_note_holes": "HubConsumer",
    "_report": "HubProducer",
    "_setting": "HubWorker",
    "_LabelledOnce": None,
    "_children": None,  # _LabelledOnce's, which subclasses nothing
    "_metric": None,  # _LabelledOnce's
    "_arm_shutdown_deadline": None,
    "_log_thread_death": None,
    "_exit": None,
    "_asdict": None,
    "_replace": None,
}


def _private_names(path: Path) -> set[str]:
    """Every private (not dunder) name the module reads, sets or defines."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = node.name
        else:
            continue
        if name.startswith("_") and not name.startswith("__"):
            names.add(name)
    return names


def _upstream_has(owner: type, name: str) -> bool:
    """Whether `owner` (or a class it inherits from) has `name`: as a class attribute or method,
    or as an attribute its methods set on `self`."""
    if hasattr(owner, name):
        return True
    pattern = re.compile(rf"\bself\.{re.escape(name)}\b\s*(:[^=\n]*)?=[^=]")
    for cls in inspect.getmro(owner):
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):  # a builtin
            continue
        if pattern.search(source):
            return True
    return False


def _hub_class(name: str) -> type:
    [found] = [getattr(m, name) for m in MODULES if hasattr(m, name)]
    return found  # type: ignore[no-any-return]


def test_every_private_name_the_modules_use_is_listed_as_upstreams_or_its_own() -> None:
    used = set().union(*(_private_names(Path(str(m.__file__))) for m in MODULES))
    unlisted = used - set(UPSTREAM) - set(OWN)
    assert not unlisted, f"list these in UPSTREAM (with what relies on them) or OWN: {sorted(unlisted)}"
    assert not set(UPSTREAM) & set(OWN)


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_each_upstream_private_name_the_hub_relies_on_exists_in_the_installed_library(name: str) -> None:
    owner, relied_on_by = UPSTREAM[name]
    assert _upstream_has(owner, name), (
        f"{owner.__module__}.{owner.__qualname__} has no {name} any more, and {relied_on_by} "
        f"(hub.worker, hub.ops.monitor, hub.kafka.transport): adapt the hub to the new release before upgrading"
    )


def test_none_of_the_hubs_own_private_names_shadows_one_of_upstreams() -> None:
    shadowing = [
        f"{owner}.{name} (in {base.__qualname__})"
        for name, owner in OWN.items()
        if owner is not None
        for base in _hub_class(owner).__bases__
        if _upstream_has(base, name)
    ]
    assert not shadowing, f"these names of the hub's are also upstream's: {shadowing}"


def test_the_drain_loop_still_has_the_shape_hub_consumer_wait_first_recognises() -> None:
    # HubConsumer.wait_first awaits a delivery directly when Faust's drain loop calls
    # `wait_first(deliver(message), self.suspend_flow.wait())`; another shape goes to Faust's own.
    drain = inspect.getsource(kafka_driver.Consumer._drain_messages)
    assert re.search(r"wait_first\(\s*\w+\(\w+\),\s*self\.suspend_flow\.wait\(\)", drain), (
        "Faust's drain loop no longer calls wait_first(deliver(message), self.suspend_flow.wait()): "
        "HubConsumer.wait_first's fast path is never taken (correct, but slower); adapt _is_delivery"
    )
