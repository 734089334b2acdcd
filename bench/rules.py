"""What the rule catalogue costs per event: `hub.rules.evaluate` over the rule contexts of the
mixed stream (`bench/mixed.py`), the lifecycle's `transition_problem` in it, and the costliest
rules, in this process without Faust or a broker.

The contexts are those the registration flow builds: the flow runs the stream on a SQLite
register first, and every event's rule context (its person's history as the register had it)
is kept. Then each figure is the least of `--rounds` timed passes over them all. A rule's own
figure includes the payload walk or the lifecycle question it asks first of an event (later
rules get the answer from the memo); rules after a shape rule that rejects are not asked by
`evaluate`, but are timed here.

    python bench/rules.py [--events 10000] [--rounds 7] [--top 12]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SOURCE, fresh_register, machine, national_ids
from bench.mixed import describe, encoded, mixed_stream
from bench.stages import DroppingPublisher
from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import Origin, Registration
from hub.domain.lifecycle import transition_problem
from hub.domain.transfer import Message
from hub.pipeline import decide
from hub.pipeline.registrations import RegistrationFlow
from hub.rules import RULES, RuleContext, Violation, evaluate
from hub.rules.catalogue import _fact_of
from hub.wiring import registration_flow

Asked = list[tuple[Registration, RuleContext]]


def asked(events: int) -> Asked:
    """Every (event, context) the rules were asked about while the flow ran the mixed stream."""
    work = Path(tempfile.mkdtemp(prefix="nir-bench-rules-"))
    url = f"sqlite:///{work}/register.sqlite3"
    fresh_register(url)
    hub = Hub.from_settings(Settings(database_url=url, allow_synthetic_identifiers=True, data_dir=str(work)))
    stream = mixed_stream(national_ids(events), events)
    print(f"stream: {describe(stream)}")
    topic = hub.names.registrations(SOURCE)
    now = dt.datetime.now(dt.UTC)
    messages = [
        Message(Origin(topic, 0, offset), key, value, (), now)
        for offset, (key, value, _) in enumerate(encoded(hub, stream))
    ]
    kept: Asked = []
    original = decide.evaluate

    def keeping(event: Registration, context: RuleContext) -> list[Violation]:
        kept.append((event, context))
        return original(event, context)

    async def run(flow: RegistrationFlow) -> None:
        size = hub.settings.batch_size
        for start in range(0, len(messages), size):
            await flow.process_batch(messages[start : start + size])

    decide.evaluate = keeping  # type: ignore[assignment]
    try:
        asyncio.run(run(registration_flow(hub, DroppingPublisher())))
    finally:
        decide.evaluate = original
    return kept


def per_event(work: Callable[[], object], count: int, rounds: int) -> float:
    """Microseconds per event of `work` (over `count` events), the least of `rounds` passes."""
    return min(timeit.repeat(work, number=1, repeat=rounds)) / count * 1e6


def each_rule(contexts: Asked, rounds: int) -> dict[str, float]:
    """Each rule's microseconds per event, asked in catalogue order as `evaluate` asks them."""
    clock = time.perf_counter_ns
    spent = dict.fromkeys((r.code for r in RULES), 0)
    for _ in range(rounds):
        for event, context in contexts:
            for r in RULES:
                started = clock()
                r.check(event, context)
                spent[r.code] += clock() - started
    return {code: ns / 1000 / rounds / len(contexts) for code, ns in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--top", type=int, default=12, help="how many of the costliest rules to print")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    contexts = asked(args.events)
    count = len(contexts)
    lifecycle = [(context.history, _fact_of(event, context)) for event, context in contexts]
    whole = per_event(lambda: [evaluate(e, c) for e, c in contexts], count, args.rounds)
    folds = per_event(lambda: [transition_problem(h, f) for h, f in lifecycle], count, args.rounds)
    history = sum(len(h) for h, _ in lifecycle) / count
    print(f"\n{count:,} rule contexts, {len(RULES)} rules; CPU time per event:")
    print(
        f"  evaluate (the whole catalogue)       {whole:6.1f} us  ({1e6 / whole:,.0f} events/s on one core)"
    )
    print(
        f"  transition_problem (the lifecycle)   {folds:6.1f} us  (histories of {history:.1f} facts on average)"
    )
    print(f"  the costliest rules, each asked of every event ({args.rounds} rounds):")
    for code, cost in sorted(each_rule(contexts, args.rounds).items(), key=lambda item: -item[1])[: args.top]:
        print(f"    {code:<20} {cost:6.2f} us")


if __name__ == "__main__":
    main()
